r"""Per-layer CPU timings behind docs/results_deep_da.md ("Speed").

The two 5x5 SAME convolutions of the DANN LeNet at batch 128 (conv1: 28x28,
1 -> 32; conv2: 14x14, 32 -> 48) and its 2352-1024-1024-1 domain
discriminator, forward and forward + gradients, in XLA (jax.jit) and in
PyTorch eager (oneDNN), median milliseconds over 20 calls after a warm-up.
Run it with ``XLA_FLAGS`` set to compare XLA:CPU options (e.g.
``--xla_cpu_use_onednn=true``), or with ``--threads 1`` for one thread each.

COMMAND:
  python experiments/bench_conv_layers.py
  XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
    python experiments/bench_conv_layers.py --threads 1

torch is imported only here (``pip install torch==2.13.0``, the CPU build).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

BATCH = 128


def _median_ms(fn, n=20):
  jax.block_until_ready(fn())
  times = []
  for _ in range(n):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t)
  return 1000 * float(np.median(times))


def _conv(x, w):
  return jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--threads", type=int, default=2, help="PyTorch threads")
  args = p.parse_args(argv)
  import torch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  rng = np.random.RandomState(0)
  print(f"batch {BATCH}; jax {jax.__version__}, torch {torch.__version__} "
        f"({args.threads} threads); median ms")
  print("layer                      XLA fwd  XLA fwd+grads  torch fwd  "
        "torch fwd+grads")
  for size, cin, cout in ((28, 1, 32), (14, 32, 48)):
    x = jnp.asarray(rng.rand(BATCH, size, size, cin).astype(np.float32))
    w = jnp.asarray(rng.rand(5, 5, cin, cout).astype(np.float32) * 0.1)
    fwd = jax.jit(_conv)
    both = jax.jit(jax.grad(lambda a, b: jnp.sum(_conv(a, b) ** 2),
                            argnums=(0, 1)))
    tx = torch.rand(BATCH, cin, size, size, requires_grad=True)
    tw = torch.rand(cout, cin, 5, 5, requires_grad=True)

    def t_fwd():
      with torch.no_grad():
        torch.nn.functional.conv2d(tx, tw, padding=2)

    def t_both():
      (torch.nn.functional.conv2d(tx, tw, padding=2) ** 2).sum().backward()

    print(f"conv {size}x{size}, {cin:2d} -> {cout:2d}      "
          f"{_median_ms(lambda: fwd(x, w)):7.2f}  "
          f"{_median_ms(lambda: both(x, w)):13.2f}  "
          f"{_median_ms(t_fwd):9.2f}  {_median_ms(t_both):15.2f}")
  x = jnp.asarray(rng.rand(BATCH, 2352).astype(np.float32))
  ws = tuple(jnp.asarray(rng.rand(*s).astype(np.float32) * 0.01)
             for s in ((2352, 1024), (1024, 1024), (1024, 1)))

  def disc(ws, x):
    h = jax.nn.relu(x @ ws[0])
    h = jax.nn.relu(h @ ws[1])
    return jnp.sum(h @ ws[2])

  grads = jax.jit(jax.value_and_grad(disc, argnums=(0, 1)))
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
