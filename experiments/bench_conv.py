"""Micro-benchmark: a jitted train step with nn.Conv vs tlax's Conv.

A DANN-style digits step: 64 source + 64 target images of 16x16x1 go through
the network in one forward/backward (128 images), with softmax cross entropy
on all of them and an SGD (momentum 0.9) update. Rows, per network:

* ``flax conv+pool``   nn.Conv and nn.max_pool (LeNet only): plain flax;
* ``nn.Conv``          nn.Conv with tlax's reshape :func:`max_pool`;
* ``im2col (dx)``      tlax Conv, input gradient by im2col + matmul, weight
                       gradient by XLA;
* ``im2col (dx+dw)``   tlax Conv, both gradients by im2col + matmul;
* ``tlax Conv auto``   tlax Conv as the models use it (``impl="auto"``).

Measured on the 2-core shared development CPU (jax 0.10.2, load average
about 18, so read the ratios; min ms over repeats), rows in the order above:
LeNet 225 / 63 / 241 / 403 / 72 ms: the plain flax step's cost was
max-pooling's gradient (select_and_scatter), not the convolution's, and the
im2col gradients are 3-6x slower than XLA's. ResNet-8 272 / 752 / 869 ms and
ResNet-20 1538 / 1604 / 2389 ms for nn.Conv / im2col (dx) / im2col (dx+dw).
Hence ``layers.CPU_IMPL = "xla"`` (what ``impl="auto"`` picks on CPU).

COMMAND:
  python experiments/bench_conv.py                      # LeNet, ResNet-8/20
  python experiments/bench_conv.py --models lenet --iters 200

Prints milliseconds per step (median and min over repeats) and the speed-up
over the first row.
The CPU is shared in development machines, so compare numbers from one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from tlax import models
from tlax.kernels import conv as layers


def _flax_conv(features, kernel_size, strides=1, padding="SAME",
               use_bias=True, dtype=None, param_dtype=jnp.float32,
               impl=None, name=None):
  """nn.Conv with tlax Conv's signature (``impl`` ignored)."""
  del impl
  k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
  return nn.Conv(features, k, strides=strides, padding=padding,
                 use_bias=use_bias, dtype=dtype, param_dtype=param_dtype,
                 name=name)


def _conv_variant(weight_grad):
  def make(*args, impl=None, **kwargs):
    del impl
    return layers.Conv(*args, impl="im2col", weight_grad=weight_grad, **kwargs)
  return make


def _flax_pool(x, window):
  return nn.max_pool(x, (window, window), strides=(window, window))


# name -> (Conv factory, max_pool for LeNet or None for tlax's max_pool).
VARIANTS = {
    "flax conv+pool": (_flax_conv, _flax_pool),
    "nn.Conv": (_flax_conv, None),
    "im2col (dx)": (_conv_variant("xla"), None),
    "im2col (dx+dw)": (_conv_variant("im2col"), None),
    "tlax Conv auto": (models.Conv, None),
}


def make_step(model, tx):
  def loss_fn(params, state, x, y):
    variables = {"params": params, **state}
    if state:
      (logits, _), new_state = model.apply(variables, x, train=True,
                                           mutable=list(state))
    else:
      logits, _ = model.apply(variables, x, train=True)
      new_state = state
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, new_state

  @jax.jit
  def step(params, state, opt_state, x, y):
    (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, state, x, y)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state, loss

  return step


def bench(model_name, conv_factory, pool, batch, size, channels, iters, repeats):
  # Patch the Conv class the model modules use, so nn.Conv and every tlax
  # variant run the very same network.
  from tlax.models import lenet, resnet  # pylint: disable=g-import-not-at-top
  saved = lenet.Conv, resnet.Conv, lenet.max_pool
  lenet.Conv = resnet.Conv = conv_factory
  lenet.max_pool = pool or saved[2]
  try:
    model = models.get_model(model_name, 10)
    x = jax.random.normal(jax.random.key(0), (batch, size, size, channels))
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 10)
    variables = dict(model.init(jax.random.key(2), x, train=False))
    params = variables.pop("params")
    state = variables
    tx = optax.sgd(0.01, momentum=0.9)
    opt_state = tx.init(params)
    step = make_step(model, tx)
    out = step(params, state, opt_state, x, y)
    jax.block_until_ready(out)
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      p, s, o = params, state, opt_state
      for _ in range(iters):
        p, s, o, loss = step(p, s, o, x, y)
      jax.block_until_ready(loss)
      times.append((time.perf_counter() - t0) / iters * 1e3)
    return statistics.median(times), min(times)
  finally:
    lenet.Conv, resnet.Conv, lenet.max_pool = saved


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default="lenet,resnet8,resnet20")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--size", type=int, default=16)
  parser.add_argument("--channels", type=int, default=1)
  parser.add_argument("--iters", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, "
        f"batch {args.batch} x {args.size}x{args.size}x{args.channels}, "
        f"{args.iters} steps x {args.repeats} repeats")
  for name in args.models.split(","):
    base = None
    for variant, (factory, pool) in VARIANTS.items():
      if pool is not None and name != "lenet":
        continue
      med, best = bench(name, factory, pool, args.batch, args.size, args.channels,
                        args.iters, args.repeats)
      base = base or med
      print(f"{name:9s} {variant:16s} {med:8.2f} ms/step (min {best:7.2f})"
            f"  x{base / med:5.2f} vs first row", flush=True)


if __name__ == "__main__":
  main()
