r"""Data-parallel train steps: ``sharded`` jit against ``pmap`` (and one device).

For each ``--modes`` value of ``config.parallel`` this times the trainer's
step as :func:`tlax.train.devices.data_parallel` places it (the source-only
step of a LeNet on a fixed global batch of random 16x16 digits, SGD), after
``--warmup`` compiling steps, every step synchronised; the modes alternate
for ``--rounds`` rounds and the median ms per step over rounds is reported
with the images per second. It also checks that every mode reaches the
parameters of the one-device step (max abs difference after the timed
steps, from the same start).

JAX fixes its device count when it starts: on the CPU run it with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``. The fake CPU devices
share the machine's cores, so more of them are not faster; the comparison
is of the two ways of writing the same data-parallel step.

COMMAND:
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
    python -m experiments.bench_parallel --batch_size=256 --rounds=3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import types

import numpy as np


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--modes", default="none,sharded,pmap")
  p.add_argument("--model", default="lenet")
  p.add_argument("--batch_size", type=int, default=256)
  p.add_argument("--steps", type=int, default=10, help="timed steps a round")
  p.add_argument("--warmup", type=int, default=2)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--json", default=None)
  args = p.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from tlax.train import devices, optim, trainer  # pylint: disable=g-import-not-at-top
  from tlax.train.state import create_train_state  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  b = args.batch_size
  batch = {"xs": rng.random((b, 16, 16, 1), np.float32),
           "ys": rng.integers(0, 10, b).astype(np.int32),
           "ws": np.ones(b, np.float32),
           "xt": rng.random((b, 16, 16, 1), np.float32)}
  cfg = ml_collections.ConfigDict({
      "seed": 0, "steps": 1000, "method": {"name": "source_only"},
      "model": {"name": args.model, "kwargs": {}},
      "parallel": "none", "num_devices": 0,
      "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9,
                    "nesterov": False, "clip_norm": 0.0, "warmup_steps": 0,
                    "schedule": "constant", "weight_decay": 5e-4}})
  task = types.SimpleNamespace(num_classes=10)
  method = trainer.build_method(cfg, task)
  state0, tx = create_train_state(cfg, method, batch)
  host0 = jax.device_get(state0)
  sched = optim.make_schedule(cfg)
  runs = {}
  for mode in args.modes.split(","):
    cfg.parallel = mode
    dp = devices.data_parallel(
        cfg, method, tx, sched,
        train_method=trainer.build_method(cfg, task, axis_name=devices.AXIS))
    runs[mode] = {"dp": dp, "state": dp.put_state(
        jax.tree.map(np.array, host0)), "batch": dp.put_batch(batch)}
    for _ in range(args.warmup):
      runs[mode]["state"], m = dp.step(runs[mode]["state"],
                                       runs[mode]["batch"])
      jax.block_until_ready(m)
  times = {mode: [] for mode in runs}
  for _ in range(args.rounds):
    for mode, r in runs.items():
      per = []
      for _ in range(args.steps):
        t = time.perf_counter()
        r["state"], m = r["dp"].step(r["state"], r["batch"])
        jax.block_until_ready(m)
        per.append(time.perf_counter() - t)
      times[mode].append(statistics.median(per) * 1e3)
  ref = jax.device_get(runs[next(iter(runs))]["dp"].get_state(
      runs[next(iter(runs))]["state"]))
  out = {"devices": jax.local_device_count(), "device": devices.device_name(),
         "batch_size": b, "model": args.model, "modes": {}}
  for mode, r in runs.items():
    st = jax.device_get(r["dp"].get_state(r["state"]))
    diff = max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(ref.params),
                               jax.tree.leaves(st.params)))
    ms = statistics.median(times[mode])
    out["modes"][mode] = {"median_ms": ms, "rounds_ms": times[mode],
                          "images_per_sec": b / ms * 1e3,
                          "max_param_diff_vs_first": diff}
    print(f"{mode:<8} {r['dp'].num_devices} device(s): {ms:8.2f} ms/step, "
          f"{b / ms * 1e3:8.0f} images/s, params vs {next(iter(runs))}: "
          f"{diff:.2e}", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=1)
  return out


if __name__ == "__main__":
  main()
