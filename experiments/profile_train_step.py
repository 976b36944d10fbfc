r"""Where tlax's train step spends its time on XLA:CPU, op by op.

Builds the step that ``experiments/bench_train_step.py`` times (same nets,
methods, batch and optimiser), runs it, then records ``--steps`` steps with
``jax.profiler`` and sums the time of every XLA operation over the
runtime's worker threads. Each operation is named with the source of its
HLO instruction (its ``op_name`` metadata: ``jvp(LeNet)/conv2/dot_general``
is conv2's forward, ``transpose(jvp(...))`` a gradient), and the time is
also summed per layer (``conv1``, ``conv2``, ``fc1``, ...,
``DomainDiscriminator/fc1``, the optimiser's update: ``(update)``).
On XLA:CPU most operations of a step run one after another, each on all
cores, so their sum is close to the profiled step's time (more where
independent operations overlapped); the profiler itself slows the step,
so read the shares, not the milliseconds.

COMMAND:
  python experiments/profile_train_step.py --net=dann --image_size=16 --method=source_only
  python experiments/profile_train_step.py --net=dann --image_size=16 --method=dann --top=40
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import bench_train_step as bench  # pylint: disable=g-import-not-at-top,wrong-import-position

_SKIP = ("ThunkExecutor", "SlinkyThreadPool")  # wrappers around the ops


def op_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
  """HLO instruction name -> (result shape, op_name metadata)."""
  out = {}
  for m in re.finditer(r"%([\w.\-]+) = (\S+) [^\n]*?op_name=\"([^\"]*)\"",
                       hlo_text):
    out[m.group(1)] = (m.group(2), m.group(3))
  return out


def layer_of(op_name: str) -> str:
  """The module path an op_name belongs to: ``LeNet/conv2``,
  ``DomainDiscriminator/Dropout_0``, ``LeNet`` for ops outside a submodule
  (pooling, ReLU), ``(update)`` for the optimiser's."""
  path = re.sub(r"[\w.]+\(", "", op_name.replace("jit(train_step)/", ""))
  mods = []
  for part in path.replace(")", "").split("/")[:-1]:  # last: the primitive
    if part in ("while", "cond", "scan") or "." in part:
      break  # a loop's body or a traced method: counted where it is called
    if part and not part.startswith("_") and (not mods or mods[-1] != part):
      mods.append(part)
  return "/".join(mods) if mods else "(update)"


def profile(run, steps: int) -> tuple[collections.Counter, float]:
  """Microseconds per step of each XLA operation over ``steps`` profiled
  steps, and their median step time in ms."""
  import jax  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as d:
    jax.profiler.start_trace(d)
    times = run(steps)
    jax.profiler.stop_trace()
    files = glob.glob(os.path.join(d, "**", "*.xplane.pb"), recursive=True)
    if not files:
      raise RuntimeError(f"jax.profiler wrote no trace under {d}")
    data = jax.profiler.ProfileData.from_file(files[0])
  total = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith("tf_XLA"):
        continue
      for ev in line.events:
        if not ev.name.startswith(_SKIP):
          total[ev.name] += ev.duration_ns / 1e3 / steps
  return total, float(np.median(times)) * 1e3


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--net", default="dann", choices=sorted(bench.NETS))
  p.add_argument("--image_size", type=int, default=16)
  p.add_argument("--method", default="source_only",
                 choices=("source_only", "dann"))
  p.add_argument("--steps", type=int, default=30, help="profiled steps")
  p.add_argument("--warmup", type=int, default=20)
  p.add_argument("--timed", type=int, default=50,
                 help="steps timed without the profiler")
  p.add_argument("--top", type=int, default=30, help="operations listed")
  args = p.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  if jax.default_backend() != "cpu":
    raise SystemExit("this profile reads XLA:CPU's worker threads; run it "
                     "with JAX_PLATFORMS=cpu")
  data = bench._data(args.image_size, 1)  # pylint: disable=protected-access
  run = bench.tlax_step_fn(args.method, data,
                           args.warmup + args.timed + args.steps,
                           net=args.net)
  run(args.warmup)
  wall = float(np.median(run(args.timed))) * 1e3
  ops, profiled = profile(run, args.steps)
  sources = op_sources(run.compiled.as_text())
  total = sum(ops.values()) / 1e3
  print(f"{args.method} step, LeNet ({args.net}) {args.image_size}x"
        f"{args.image_size}, batch 64 + 64, {jax.devices()[0].device_kind}: "
        f"median step {wall:.2f} ms unprofiled, {profiled:.2f} ms profiled; "
        f"its XLA operations sum to {total:.2f} ms")
  print(f"\n{'ms':>7} {'share':>6}  operation, result, source")
  for name, us in ops.most_common(args.top):
    shape, src = sources.get(name, ("", ""))
    src = src.replace("jit(train_step)/", "")
    print(f"{us / 1e3:7.3f} {us / 1e3 / total:6.1%}  {name}  {shape[:32]}  "
          f"{src[:80]}")
  layers = collections.Counter()
  for name, us in ops.items():
    layers[layer_of(sources.get(name, ("", ""))[1])] += us
  print(f"\n{'ms':>7} {'share':>6}  layer")
  for layer, us in layers.most_common():
    print(f"{us / 1e3:7.3f} {us / 1e3 / total:6.1%}  {layer}")
  return ops, layers


if __name__ == "__main__":
  main()
