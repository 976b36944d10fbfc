r"""Per-layer CPU timings behind docs/results_deep_da.md ("Speed").

The 5x5 convolutions of the two LeNets (``--batch``, default 128): the DANN
LeNet's SAME convolutions at 28x28 (conv1: 28x28, 1 -> 32; conv2: 14x14,
32 -> 48) and at 16x16 (conv1: 16x16, 1 -> 32; conv2: 8x8, 32 -> 48), TLL's
VALID conv2 (12x12, 20 -> 50), and the DANN LeNet's 2352-1024-1024-1 domain
discriminator; forward and forward + gradients, in XLA (jax.jit;
``layers.conv2d(impl="xla")``, XLA's own convolution, and with ``--impls``
tlax's other implementations, forward + both gradients) and in PyTorch
eager (oneDNN), median milliseconds over 20 calls after a warm-up.
XLA's programs are compiled with ``xla.compiler_options()`` as
tlax's own are (XLA's convolutions through Eigen, not YNNPACK);
``--xla_options=default`` compiles with XLA's defaults instead. Run it with
``XLA_FLAGS`` set to compare other XLA:CPU options, or with ``--threads 1``
for one thread each.

COMMAND:
  python experiments/bench_conv_layers.py
  python experiments/bench_conv_layers.py --batch 64
  python experiments/bench_conv_layers.py --batch 64 --xla_options=default
  python experiments/bench_conv_layers.py --batch 64 --extra --impls=winograd
  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
    python experiments/bench_conv_layers.py --threads 1

torch is imported only here (``pip install torch==2.13.0``, the CPU build).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH = 128


def _median_ms(fn, n=20):
  jax.block_until_ready(fn())
  times = []
  for _ in range(n):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return 1000 * float(np.median(times))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  p.add_argument("--batch", type=int, default=BATCH)
  p.add_argument("--impls", default="patches,winograd",
                 help="tlax layers.conv2d implementations to time too")
  p.add_argument("--extra", action="store_true",
                 help="also the shapes behind layers.py's Winograd limits: "
                 "5x5, 32 -> 48 on 10x10 and 12x12 maps, 3x3, 32 -> 32 on "
                 "8x8 and 16x16")
  p.add_argument("--xla_options", choices=("tlax", "default"),
                 default="tlax",
                 help="compile with xla.compiler_options() (tlax) or "
                 "XLA's default options")
  args = p.parse_args(argv)
  from tlax.models import layers  # pylint: disable=g-import-not-at-top
  opts = (xla.compiler_options() if args.xla_options == "tlax"
          else {})
  jit = lambda f: jax.jit(f, compiler_options=opts)
  impls = [i for i in args.impls.split(",") if i]
  batch = args.batch
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  rng = np.random.RandomState(0)
  print(f"batch {batch}; jax {jax.__version__}, torch {torch.__version__} "
        f"({args.threads} threads); XLA options {opts or 'default'}; "
        "median ms")
  print("layer                           XLA fwd  XLA fwd+grads  torch fwd  "
        "torch fwd+grads  " + "  ".join(f"{i} fwd+grads" for i in impls))
  shapes = [(28, 1, 32, 2, 5), (14, 32, 48, 2, 5), (16, 1, 32, 2, 5),
            (8, 32, 48, 2, 5), (12, 20, 50, 0, 5)]
  if args.extra:
    shapes += [(10, 32, 48, 2, 5), (12, 32, 48, 2, 5), (8, 32, 32, 1, 3),
               (16, 32, 32, 1, 3)]
  for size, cin, cout, pad, k in shapes:
    x = jnp.asarray(rng.rand(batch, size, size, cin).astype(np.float32))
    w = jnp.asarray(rng.rand(k, k, cin, cout).astype(np.float32) * 0.1)
    padding = "SAME" if pad else "VALID"
    conv = lambda a, b, impl, padding=padding: layers.conv2d(
        a, b, (1, 1), padding, impl=impl)
    fwd = jit(lambda a, b: conv(a, b, "xla"))
    grads = {impl: jit(jax.grad(
        lambda a, b, impl=impl: jnp.sum(conv(a, b, impl) ** 2),
        argnums=(0, 1))) for impl in ["xla", *impls]}
    tx = torch.rand(batch, cin, size, size, requires_grad=True)
    tw = torch.rand(cout, cin, k, k, requires_grad=True)

    def t_fwd(tx=tx, tw=tw, pad=pad):
      with torch.no_grad():
        torch.nn.functional.conv2d(tx, tw, padding=pad)

    def t_both(tx=tx, tw=tw, pad=pad):
      (torch.nn.functional.conv2d(tx, tw, padding=pad) ** 2).sum().backward()

    ours = [f"{_median_ms(lambda g=grads[i]: g(x, w)):{len(i) + 10}.2f}"
            for i in impls]
    print(f"conv{k} {size:2d}x{size:2d}, {cin:2d} -> {cout:2d} {padding:5s}   "
          f"{_median_ms(lambda: fwd(x, w)):7.2f}  "
          f"{_median_ms(lambda: grads['xla'](x, w)):13.2f}  "
          f"{_median_ms(t_fwd):9.2f}  {_median_ms(t_both):15.2f}  "
          + "  ".join(ours))
  x = jnp.asarray(rng.rand(batch, 2352).astype(np.float32))
  ws = tuple(jnp.asarray(rng.rand(*s).astype(np.float32) * 0.01)
             for s in ((2352, 1024), (1024, 1024), (1024, 1)))

  def disc(ws, x):
    h = jax.nn.relu(x @ ws[0])
    h = jax.nn.relu(h @ ws[1])
    return jnp.sum(h @ ws[2])

  grads = jit(jax.value_and_grad(disc, argnums=(0, 1)))
  tx = torch.from_numpy(np.array(x)).requires_grad_()
  tws = [torch.from_numpy(np.array(w)).requires_grad_() for w in ws]

  def t_disc():
    h = torch.relu(tx @ tws[0])
    h = torch.relu(h @ tws[1])
    (h @ tws[2]).sum().backward()

  print(f"discriminator 2352-1024-1024-1          "
        f"{_median_ms(lambda: grads(ws, x)):13.2f}  {'':9s}  "
        f"{_median_ms(t_disc):15.2f}")


if __name__ == "__main__":
  main()
