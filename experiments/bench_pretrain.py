r"""Pretraining throughput (images/s) of the pmap stage on 1, 2, 4 devices.

Each device count runs in its own subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (JAX fixes the device
count when it starts). A run times ``--steps`` data-parallel steps of
:func:`tlax.train.parallel.make_parallel_train_step` (after ``--warmup``
compiling/warm-up steps) on a fixed global batch of random 16x16 images; it
measures the training step, not data loading.

On CPU the fake devices share the same cores, so more devices do not make it
faster: the CPU figures check that the scaling code runs at every device
count (and show its overhead), not speed. With ``--platform=gpu`` the parent
runs one child per requested count up to the number of visible GPUs.

COMMAND:
  python -m experiments.bench_pretrain --devices=1,2,4 --model=lenet \
    --batch_size=256 --steps=20 --out=runs/bench_pretrain.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def child(num_devices: int, model_name: str, batch_size: int, steps: int,
          warmup: int, optimizer: str, conv_impl: str = "auto") -> dict:
  """Runs in the subprocess: times the pmap step on ``num_devices``."""
  import jax  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tlax.methods import METHODS  # pylint: disable=g-import-not-at-top
  from tlax.models import get_model  # pylint: disable=g-import-not-at-top
  from tlax.train import optim, parallel, state as state_lib  # pylint: disable=g-import-not-at-top

  devices = jax.local_devices()[:num_devices]
  if len(devices) < num_devices:
    raise SystemExit(f"only {len(devices)} devices")
  cfg = ml_collections.ConfigDict({
      "seed": 0, "steps": 1000, "method": {"name": "source_only"},
      "optimizer": {"name": optimizer, "lr": 1e-3, "schedule": "constant",
                    "weight_decay": 0.0, "momentum": 0.9, "b1": 0.9,
                    "b2": 0.999, "eps": 1e-6, "clip_norm": 0.0}})
  kwargs = {} if model_name == "mlp" else {"conv_impl": conv_impl}
  model = get_model(model_name, 10, **kwargs)
  method = METHODS["source_only"](parallel.with_axis_name(model), 10,
                                  total_steps=1000)
  init_method = METHODS["source_only"](model, 10, total_steps=1000)
  rng = np.random.default_rng(0)
  batch = {"xs": rng.random((batch_size, 16, 16, 1), np.float32),
           "ys": rng.integers(0, 10, batch_size).astype(np.int32),
           "ws": np.ones(batch_size, np.float32)}
  batch["xt"] = batch["xs"]
  per_dev = parallel.per_device_batch_size(batch_size, process_count=1,
                                           local_devices=num_devices)
  key = jax.random.key(0)
  params, mstate = init_method.init(key, {k: v[:per_dev]
                                          for k, v in batch.items()})
  tx = parallel.make_optimizer(cfg, params)
  st = state_lib.TrainState(
      step=np.int32(0), params=params, state=mstate,
      opt_state=tx.init(params), rng=jax.random.key_data(key),
      hparams=state_lib.init_hparams(cfg, init_method))
  p_step = parallel.make_parallel_train_step(method, tx,
                                             optim.make_schedule(cfg))
  rstate = parallel.replicate(st, devices)
  sharded = parallel.shard_batch(batch, num_devices)
  sharded = jax.device_put(sharded, rstate.step.sharding)
  t = time.time()
  for _ in range(warmup):
    rstate, _ = p_step(rstate, sharded)
  jax.block_until_ready(rstate)
  compile_s = time.time() - t
  t = time.time()
  for _ in range(steps):
    rstate, metrics = p_step(rstate, sharded)
  jax.block_until_ready(rstate)
  dt = time.time() - t
  d = devices[0]
  return {"num_devices": num_devices, "platform": d.platform,
          "device_kind": getattr(d, "device_kind", ""),
          "model": model_name, "optimizer": optimizer,
          "conv_impl": conv_impl,
          "global_batch": batch_size, "per_device_batch": per_dev,
          "steps": steps, "seconds": dt, "warmup_seconds": compile_s,
          "images_per_sec": steps * batch_size / dt,
          "final_loss": float(parallel.unreplicate(metrics)["loss"]),
          "cpu_count": os.cpu_count(), "jax_version": jax.__version__}


def main(argv):
  del argv
  if FLAGS.child:
    res = child(FLAGS.child, FLAGS.model, FLAGS.batch_size, FLAGS.steps,
                FLAGS.warmup, FLAGS.optimizer, FLAGS.conv_impl)
    print("RESULT " + json.dumps(res))
    return
  rows = []
  for n in [int(x) for x in FLAGS.devices]:
    env = dict(os.environ)
    if FLAGS.platform == "cpu":
      env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                          f" --xla_force_host_platform_device_count={n}")
      env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "experiments.bench_pretrain",
           f"--child={n}", f"--model={FLAGS.model}",
           f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}",
           f"--warmup={FLAGS.warmup}", f"--optimizer={FLAGS.optimizer}",
           f"--conv_impl={FLAGS.conv_impl}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if proc.returncode or not line:
      print(proc.stderr[-3000:], file=sys.stderr)
      raise SystemExit(f"benchmark with {n} devices failed")
    res = json.loads(line[-1][len("RESULT "):])
    rows.append(res)
    print(f"{n} {res['platform']} device(s) [{res['device_kind']}]: "
          f"{res['images_per_sec']:.0f} images/s (global batch "
          f"{res['global_batch']}, {res['per_device_batch']} per device, "
          f"{res['steps']} steps in {res['seconds']:.2f}s)", flush=True)
  if FLAGS.out:
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
    with open(FLAGS.out, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  flags.DEFINE_list("devices", ["1", "2", "4"], "Device counts.")
  flags.DEFINE_enum("platform", "cpu", ["cpu", "gpu"], "cpu: fake devices.")
  flags.DEFINE_string("model", "lenet", "Model name (tlax.models).")
  flags.DEFINE_string("optimizer", "adam", "sgd | adam | adamw | lamb.")
  flags.DEFINE_integer("batch_size", 256, "Global batch.")
  flags.DEFINE_string("conv_impl", "auto", "Conv models: tlax Conv impl "
                      "(auto | xla | patches | winograd | im2col).")
  flags.DEFINE_integer("steps", 20, "Timed steps.")
  flags.DEFINE_integer("warmup", 2, "Untimed steps (compilation).")
  flags.DEFINE_integer("child", 0, "Internal: run one measurement.")
  flags.DEFINE_string("out", None, "Write the rows as JSON here.")
  app.run(main)
