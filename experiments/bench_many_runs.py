r"""K runs in one program against K runs one after another.

The runs are K seeds of one config (default: DANN, LeNet, a batch of 64
source + 64 target digits, SGD with momentum, weight decay and the DANN
annealing). Three loops train each run for ``--steps`` steps from the same
initial states on the same batches:

* ``sequential``: the trainer's loop, run after run: one jitted step
  (:func:`tlax.train.make_train_step`) per call, the batch of
  :meth:`tlax.data.PairedBatches.batch` made on the host and sent each step;
* ``vmap, 1 step/call``: :mod:`tlax.train.many_runs` with
  ``steps_per_dispatch=1``: the K runs' step under ``jax.vmap``, batches
  gathered on the device from the host's indices, one call per step;
* ``vmap, scan``: the same with ``--steps_per_dispatch`` steps per call
  (``jax.lax.scan``).

Each figure is runs x steps per second over the timed steps (after one
untimed call that compiles; compile times are printed apart), the best of
``--rounds`` rounds (``--loops`` picks the loops to time). The script
prints a table with the speed-ups (the faster vmapped loop over sequential,
scan over one step per call) and the largest difference between a vmapped
run's parameters (the last vmapped loop timed) and its sequential run's
after the same steps. Nothing here is specific to a backend: on a GPU the same command
times the GPU (``--ks=1,4,16,64 --steps=200``).

Data: ``--source``/``--target`` as in the configs (default the MNIST ->
USPS digits when ``$TLAX_DATA_DIR`` has them, else the embedded
``digits/fonts`` -> ``digits/sklearn``). All K runs use the seed-0 task
split; the seeds differ in initialisation, batches and randomness.

COMMAND:
  nice python experiments/bench_many_runs.py --ks=1,4,16 --steps=40 \
    --steps_per_dispatch=20 --image_size=16 --batch=64
  (on a GPU: --ks=1,4,16,64 --steps=400 --steps_per_dispatch=100)

Figures: docs/many_runs.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from tlax.train import many_runs  # pylint: disable=g-import-not-at-top
from tlax.train import trainer  # pylint: disable=g-import-not-at-top
from tlax.train.optim import make_schedule  # pylint: disable=g-import-not-at-top
from tlax.train.state import create_train_state  # pylint: disable=g-import-not-at-top
from tlax.train.step import make_train_step  # pylint: disable=g-import-not-at-top


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="dann",
                 help="experiments/configs/<name>.py (a method of the "
                 "trainer)")
  p.add_argument("--source", default=None)
  p.add_argument("--target", default=None)
  p.add_argument("--model", default="lenet")
  p.add_argument("--image_size", type=int, default=16)
  p.add_argument("--batch", type=int, default=64,
                 help="source and target examples per batch (each)")
  p.add_argument("--ks", default="1,4,16", help="numbers of runs K")
  p.add_argument("--steps", type=int, default=40, help="timed steps per run")
  p.add_argument("--steps_per_dispatch", type=int, default=20)
  p.add_argument("--scan_unroll", type=int, default=1,
                 help="config.scan_unroll of the scanned loop (0: the whole "
                 "chunk unrolled)")
  p.add_argument("--rounds", type=int, default=2)
  p.add_argument("--loops", default="seq,one,scan",
                 help="the loops to time (seq, one, scan); '-' in the "
                 "table for the others")
  return p.parse_args(argv)


def make_config(args, seed: int):
  import importlib  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f"experiments.configs.{args.config}")
  c = module.get_config()
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  default = (("mnist_usps/mnist", "mnist_usps/usps") if files.available()
             else (c.source, c.target))
  c.source = args.source or default[0]
  c.target = args.target or default[1]
  c.seed = seed
  c.image_size = args.image_size
  c.model.name = args.model
  c.batch_size = args.batch
  c.steps = 2000  # the schedule's length, as in the digit tables
  c.progress = False
  c.scan_unroll = args.scan_unroll
  return c


def build(args, k: int):
  """K resolved configs, their methods and batches (one shared task)."""
  configs, methods, batches = [], [], []
  task = None
  for seed in range(k):
    config = trainer.resolve_config(make_config(args, seed))
    if task is None:
      task = trainer.load_task(config)
    config = trainer.resolve_config(config, task)
    configs.append(config)
    methods.append(trainer.build_method(config, task))
    batches.append(trainer.make_batches(config, task))
  return configs, methods, batches


def time_sequential(configs, methods, batches, steps):
  """Runs x steps per second of the trainer's step, run after run, and the
  final states."""
  config, method = configs[0], methods[0]
  state0, tx = create_train_state(config, method, batches[0].batch(0))
  step_fn = make_train_step(method, tx, make_schedule(config))
  t = time.perf_counter()
  warm, _ = step_fn(state0, batches[0].batch(0))  # compiles
  jax.block_until_ready(warm)
  compile_s = time.perf_counter() - t
  finals, total = [], 0.0
  for config, method, b in zip(configs, methods, batches):
    state, _ = create_train_state(config, method, b.batch(0))
    jax.block_until_ready(state)
    t = time.perf_counter()
    for step in range(steps):
      state, metrics = step_fn(state, b.batch(step))
    jax.block_until_ready((state, metrics))
    total += time.perf_counter() - t
    finals.append(jax.device_get(state))
  return len(configs) * steps / total, compile_s, finals


def time_group(configs, methods, batches, steps, per_call):
  """Runs x steps per second of :mod:`tlax.train.many_runs`' program."""
  states = [create_train_state(c, m, b.batch(0))[0]
            for c, m, b in zip(configs, methods, batches)]
  stacked = many_runs.stack(states)
  pools, maps = many_runs._device_pools(batches)  # pylint: disable=protected-access
  decays = np.zeros(len(configs), np.float32)
  chunk = many_runs.make_chunk_fn(methods[0], configs[0], states[0].params,
                                  vary_weight_decay=False)
  # Compile on a copy (the program donates its input states).
  t = time.perf_counter()
  idx = many_runs.chunk_indices(batches, maps, 0, per_call)
  warm, m = chunk(jax.device_put(stacked), decays, idx, pools)
  jax.block_until_ready((warm, m))
  compile_s = time.perf_counter() - t
  del warm
  state = jax.device_put(stacked)
  jax.block_until_ready(state)
  t = time.perf_counter()
  for start in range(0, steps, per_call):
    idx = many_runs.chunk_indices(batches, maps, start, per_call)
    state, metrics = chunk(state, decays, idx, pools)
    jax.device_get(metrics)  # as the training loop does after each call
  jax.block_until_ready(state)
  elapsed = time.perf_counter() - t
  return len(configs) * steps / elapsed, compile_s, jax.device_get(state)


def max_param_difference(finals, stacked) -> float:
  worst = 0.0
  for r, final in enumerate(finals):
    run = many_runs.unstack(stacked.params, r)
    diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(
        np.asarray(a, np.float64) - np.asarray(b, np.float64)))) if np.size(
            a) else 0.0, final.params, run)
    worst = max(worst, max(jax.tree.leaves(diffs)))
  return worst


def main(argv=None):
  args = parse_args(argv)
  ks = [int(k) for k in args.ks.split(",")]
  if args.steps % args.steps_per_dispatch:
    raise SystemExit(f"--steps={args.steps} must be a multiple of "
                     f"--steps_per_dispatch={args.steps_per_dispatch}.")
  from tlax.train import devices  # pylint: disable=g-import-not-at-top
  c = make_config(args, 0)
  print(f"# {args.config}, {args.model} {args.image_size}x{args.image_size}, "
        f"{c.source} -> {c.target}, batch {args.batch} + {args.batch}, "
        f"{args.steps} timed steps per run, best of {args.rounds} rounds; "
        f"{devices.device_name()}, {os.cpu_count()} CPUs, jax "
        f"{jax.__version__}")
  header = ("| K | sequential | vmap, 1 step/call | vmap, scan "
            f"{args.steps_per_dispatch} steps/call | best vmap / sequential "
            "| scan / 1 step per call | max abs param diff | compile s "
            "(seq, vmap 1, vmap scan) |")
  print(header)
  print("|" + "---|" * (header.count("|") - 1))
  for k in ks:
    configs, methods, batches = build(args, k)
    loops = set(args.loops.split(","))
    best = {"seq": 0.0, "one": 0.0, "scan": 0.0}
    compile_s = {"seq": 0.0, "one": 0.0, "scan": 0.0}
    finals = stacked = None
    for _ in range(args.rounds):
      if "seq" in loops:
        rate, cs, finals = time_sequential(configs, methods, batches,
                                           args.steps)
        best["seq"], compile_s["seq"] = max(best["seq"], rate), cs
      if "one" in loops:
        rate, cs, stacked = time_group(configs, methods, batches, args.steps,
                                       1)
        best["one"], compile_s["one"] = max(best["one"], rate), cs
      if "scan" in loops:
        rate, cs, stacked = time_group(configs, methods, batches, args.steps,
                                       args.steps_per_dispatch)
        best["scan"], compile_s["scan"] = max(best["scan"], rate), cs
    fast = max(best["one"], best["scan"])
    fmt = lambda v: f"{v:.1f}" if v else "-"
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
    diff = (f"{max_param_difference(finals, stacked):.2g}"
            if finals is not None and stacked is not None else "-")
    print(f"| {k} | {fmt(best['seq'])} | {fmt(best['one'])} | "
          f"{fmt(best['scan'])} | {ratio(fast, best['seq'])} | "
          f"{ratio(best['scan'], best['one'])} | {diff} | "
          + ", ".join(fmt(compile_s[n]) for n in ("seq", "one", "scan"))
          + " |", flush=True)
  print("(runs x steps per second)")


if __name__ == "__main__":
  main()
