"""Data parallelism (tlax/train/devices.py) on fake CPU devices.

JAX fixes its device count when it starts, and pytest runs every test file
in one process whose JAX already has one CPU device. So the multi-device
checks run this file (or the runner) in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` and read back JSON.

Tolerance of the equivalence test: float32 parameters after two steps agree
to ``atol = 1e-5`` (observed differences ~1e-7: only the summation order of
the gradient mean differs).
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
ATOL = 1e-5


def _run(args, *, devices=4, timeout=900, check=True):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      f" --xla_force_host_platform_device_count={devices}")
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if check and proc.returncode:
    raise AssertionError(f"{args} failed:\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-6000:]}")
  return proc


def _last_json(proc):
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _params(workdir):
  from tlax.train import finetune
  return finetune.load_checkpoint_trees(str(workdir))["params"]


def _max_diff(a, b):
  import jax
  return max([0.0] + [
      float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
      for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])


# --------------------------------------------------------------------------
# Subprocess tests.
# --------------------------------------------------------------------------
@pytest.mark.slow
def test_data_parallel_steps_equal_the_single_device_step():
  res = _last_json(_run([__file__, "equivalence"]))
  assert res["devices"] == 4
  for case in ("mlp_sgd", "resnet8_adam"):
    for mode in ("sharded", "pmap"):
      r = res[case][mode]
      # Two steps on a global batch of 16 (4 per device).
      assert r["max_param_diff"] < ATOL, (case, mode, r)
      assert r["max_state_diff"] < ATOL, (case, mode, r)
      assert abs(r["loss_diff"]) < 1e-5, (case, mode, r)
    assert res[case]["moved"] > 1e-4  # the steps did change the parameters
  # ResNet's BatchNorm statistics: over the global batch in both modes.
  assert res["resnet8_adam"]["has_batch_stats"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sharded", "pmap"])
def test_many_queued_multi_device_steps_complete(tmp_path, mode):
  # 300 steps without a host sync in between (log, eval and checkpoint at the
  # end only): XLA:CPU's all-reduce aborts when more than about a hundred
  # such steps are queued unless the trainer bounds the queue.
  workdir = tmp_path / mode
  proc = _run(["-m", "experiments.run",
               "--config=experiments/configs/pretrain.py:quick",
               f"--config.parallel={mode}", "--config.steps=300",
               "--config.log_every=300", "--config.eval_every=300",
               "--config.checkpoint_every=300", f"--workdir={workdir}"],
              timeout=600)
  result = _last_json(proc)
  assert result["steps"] == 300 and result["num_devices"] == 4
  assert result["parallel"] == mode


@pytest.mark.slow
def test_default_pretrain_config_first_steps_on_four_devices(tmp_path):
  # The default program (SynDigits 100k, LeNet, batch 256), 3 steps.
  workdir = tmp_path / "pretrain"
  proc = _run(["-m", "experiments.run",
               "--config=experiments/configs/pretrain.py",
               "--config.steps=3", "--config.optimizer.warmup_steps=0",
               "--config.log_every=1", "--config.eval_every=3",
               "--config.checkpoint_every=3", f"--workdir={workdir}"])
  result = json.loads((workdir / "result.json").read_text())
  assert result["stage"] == "pretrain" and result["steps"] == 3
  assert result["num_devices"] == 4 and result["per_device_batch"] == 64
  assert result["parallel"] == "sharded"
  assert 0.0 <= result["source_test_accuracy"] <= 100.0
  assert result["images_per_sec"] > 0
  assert _last_json(proc)["steps"] == 3


@pytest.mark.slow
def test_runner_pretrain_quick_writes_checkpoint_and_result(tmp_path):
  workdir = tmp_path / "pretrain"
  proc = _run(["-m", "experiments.run",
               "--config=experiments/configs/pretrain.py:quick",
               f"--workdir={workdir}"])
  result = json.loads((workdir / "result.json").read_text())
  assert result["stage"] == "pretrain"
  assert result["num_devices"] == 4 and result["per_device_batch"] == 4
  assert 0.0 <= result["source_test_accuracy"] <= 100.0
  assert "target_accuracy" not in result
  assert result["images_per_sec"] > 0
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps[-1] == 4
  assert _last_json(proc)["steps"] == 4
  # The checkpoint loads strictly into a fresh LeNet of the same shape.
  from tlax.train import finetune
  trees = finetune.load_checkpoint_trees(str(workdir))
  assert trees["step"] == 4
  assert set(trees["params"]["model"]) == {"conv1", "conv2", "fc1", "head"}
  # Asked again: the stored result, no training.
  again = _last_json(_run(["-m", "experiments.run",
                           "--config=experiments/configs/pretrain.py:quick",
                           f"--workdir={workdir}"]))
  assert again["wall_time_s"] == result["wall_time_s"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["sharded", "pmap"])
def test_parallel_run_resumes_exactly(tmp_path, mode):
  common = ["-m", "experiments.run",
            "--config=experiments/configs/pretrain.py:quick",
            f"--config.parallel={mode}", "--config.steps=6",
            "--config.checkpoint_every=2", "--config.eval_every=2"]
  full, killed = tmp_path / "full", tmp_path / "killed"
  _run(common + [f"--workdir={full}"])
  proc = _run(common + [f"--workdir={killed}", "--config.stop_after_step=4"],
              check=False)
  assert proc.returncode != 0  # SIGKILLed after step 4
  assert not (killed / "result.json").exists()
  _run(common + [f"--workdir={killed}"])
  assert _max_diff(_params(full), _params(killed)) == 0.0


# --------------------------------------------------------------------------
# In-process unit tests.
# --------------------------------------------------------------------------
def test_host_rows_cover_the_global_batch_once():
  from tlax.train import devices
  for n, hosts in [(8, 1), (12, 3), (256, 8)]:
    rows = []
    for i in range(hosts):
      start, stop = devices.host_rows(n, i, hosts)
      rows.extend(range(start, stop))
    assert rows == list(range(n))
  assert devices.host_rows(12, 2, 3) == (8, 12)
  with pytest.raises(ValueError):
    devices.host_rows(12, 3, 3)
  with pytest.raises(ValueError, match="multiple"):
    devices.host_rows(10, 0, 3)


def test_batch_splitting():
  from tlax.train import devices
  assert devices.per_device_batch_size(256, process_count=2,
                                       local_devices=4) == 32
  with pytest.raises(ValueError, match="not divisible"):
    devices.per_device_batch_size(100, process_count=1, local_devices=8)
  b = {"x": np.arange(24).reshape(8, 3), "y": np.arange(8)}
  s = devices.shard_batch(b, 4)
  assert s["x"].shape == (4, 2, 3)
  np.testing.assert_array_equal(s["y"][1], [2, 3])
  with pytest.raises(ValueError):
    devices.shard_batch(b, 3)


def test_parallel_modes_are_checked():
  import ml_collections
  from tlax.train import devices
  c = ml_collections.ConfigDict({"parallel": "auto"})
  assert devices.resolve_mode(c) == devices.DEFAULT_PARALLEL
  c.parallel = "dp"
  with pytest.raises(ValueError, match="config.parallel"):
    devices.resolve_mode(c)
  c = ml_collections.ConfigDict({"num_devices": 64})
  with pytest.raises(ValueError, match="device_count"):
    devices.select_devices(c)


def test_distributed_is_off_by_default(monkeypatch):
  import ml_collections
  from tlax.train import devices
  monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
  assert not devices.maybe_initialize_distributed(
      ml_collections.ConfigDict({"distributed": False}))


def test_lamb_is_the_descent_direction_for_lr_one():
  import jax.numpy as jnp
  import ml_collections
  import optax
  from tlax.train import optim
  c = ml_collections.ConfigDict({"optimizer": {
      "name": "lamb", "b1": 0.9, "b2": 0.999, "eps": 1e-6,
      "weight_decay": 0.01, "clip_norm": 0.0}})
  params = {"w": jnp.arange(1.0, 5.0)}
  grads = {"w": jnp.array([0.1, -0.2, 0.3, -0.4])}
  tx = optim.make_optimizer(c, params)
  ref = optax.lamb(0.5, eps=1e-6, weight_decay=0.01)
  u, _ = tx.update(grads, tx.init(params), params)
  r, _ = ref.update(grads, ref.init(params), params)
  np.testing.assert_allclose(0.5 * u["w"], r["w"], rtol=1e-6)


# --------------------------------------------------------------------------
# The subprocess side.
# --------------------------------------------------------------------------
def _equivalence() -> dict:
  """Two steps: "sharded" and "pmap" over 4 devices vs one device."""
  import types
  import jax
  import ml_collections
  from tlax.train import devices, optim, trainer
  from tlax.train.state import create_train_state

  out = {"devices": jax.local_device_count()}
  cases = {
      "mlp_sgd": ("mlp", {"hidden": (16,)}, "sgd"),
      "resnet8_adam": ("resnet8", {"widths": (2, 4, 4)}, "adam"),
  }
  rng = np.random.default_rng(0)
  b = 16
  batches = [{"xs": rng.random((b, 8, 8, 1), np.float32),
              "ys": rng.integers(0, 10, b).astype(np.int32),
              "ws": rng.uniform(0.5, 1.5, b).astype(np.float32),
              "xt": rng.random((b, 8, 8, 1), np.float32)} for _ in range(2)]
  task = types.SimpleNamespace(num_classes=10)
  for case, (name, kwargs, opt) in cases.items():
    cfg = ml_collections.ConfigDict({
        "seed": 0, "steps": 10, "method": {"name": "source_only"},
        "model": {"name": name, "kwargs": kwargs},
        "parallel": "none", "num_devices": 0,
        "optimizer": {"name": opt, "lr": 0.05, "momentum": 0.9,
                      "nesterov": False, "b1": 0.9, "b2": 0.999,
                      "eps": 1e-8, "clip_norm": 0.0, "warmup_steps": 0,
                      "schedule": "cosine", "weight_decay": 1e-3}})
    method = trainer.build_method(cfg, task)
    state0, tx = create_train_state(cfg, method, batches[0])
    sched = optim.make_schedule(cfg)
    host0 = jax.device_get(state0)
    results = {}
    for mode in ("none", "sharded", "pmap"):
      cfg.parallel = mode
      dp = devices.data_parallel(
          cfg, method, tx, sched,
          train_method=trainer.build_method(cfg, task,
                                            axis_name=devices.AXIS))
      st = dp.put_state(jax.tree.map(np.array, host0))
      losses = []
      for batch in batches:
        st, m = dp.step(st, dp.put_batch(batch))
        losses.append(float(np.asarray(dp.get_metrics(m)["loss"])))
      results[mode] = (jax.device_get(dp.get_state(st)), losses)
    ref, ref_losses = results["none"]
    out[case] = {"moved": _max_diff(ref.params, host0.params),
                 "has_batch_stats": bool(jax.tree.leaves(ref.state))}
    for mode in ("sharded", "pmap"):
      st, losses = results[mode]
      out[case][mode] = {
          "max_param_diff": _max_diff(ref.params, st.params),
          "max_state_diff": _max_diff(ref.state, st.state),
          "max_opt_diff": _max_diff(ref.opt_state, st.opt_state),
          "loss_diff": max(abs(a - c) for a, c in zip(ref_losses, losses))}
  return out


if __name__ == "__main__":
  if sys.argv[1:] == ["equivalence"]:
    print(json.dumps(_equivalence()))
  else:
    raise SystemExit(f"unknown mode {sys.argv[1:]}")
