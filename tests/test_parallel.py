"""The pmap pretraining stage (tlax/train/parallel.py) on fake CPU devices.

JAX fixes its device count when it starts, and pytest runs every test file
in one process whose JAX already has one CPU device. So the multi-device
checks run this file as a script in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` and read back JSON;
they run in CI like any other test (no skip).

Tolerance of the equivalence test: float32 parameters after one step agree
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


def _run(args, *, devices=4, timeout=600):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                      f" --xla_force_host_platform_device_count={devices}")
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run([sys.executable, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if proc.returncode:
    raise AssertionError(f"{args} failed:\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-6000:]}")
  return proc.stdout


# --------------------------------------------------------------------------
# Subprocess tests.
# --------------------------------------------------------------------------
def test_pmap_step_equals_single_device_step():
  out = _run([__file__, "equivalence"])
  res = json.loads(out.strip().splitlines()[-1])
  assert res["devices"] == 4
  for name in ("mlp_sgd", "resnet8_adam"):
    r = res[name]
    # One and two steps on the global batch of 16 (4 per device).
    assert r["max_param_diff"] < ATOL, r
    assert r["max_state_diff"] < ATOL, r
    assert abs(r["loss_1"] - r["loss_4"]) < 1e-5, r
    assert r["moved"] > 1e-4, r  # the step did change the parameters
  # ResNet BatchNorm statistics are synchronised across devices.
  assert res["resnet8_adam"]["has_batch_stats"]


def test_runner_pretrain_quick_writes_checkpoint_and_result(tmp_path):
  workdir = tmp_path / "pretrain"
  out = _run(["-m", "experiments.run",
              "--config=experiments/configs/pretrain.py:quick",
              f"--workdir={workdir}"])
  result = json.loads((workdir / "result.json").read_text())
  assert result["stage"] == "pretrain"
  assert result["num_devices"] == 4 and result["per_device_batch"] == 4
  assert 0.0 <= result["source_test_accuracy"] <= 100.0
  assert result["images_per_sec"] > 0
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps[-1] == 4
  assert json.loads(out.strip().splitlines()[-1])["steps"] == 4
  # The checkpoint loads strictly into a fresh LeNet of the same shape.
  from tlax.train import finetune
  trees = finetune.load_checkpoint_trees(str(workdir))
  assert trees["step"] == 4
  assert set(trees["params"]["model"]) == {"conv1", "conv2", "fc1", "head"}


# --------------------------------------------------------------------------
# In-process unit tests.
# --------------------------------------------------------------------------
def test_host_shard_covers_every_example_once():
  from tlax.train import parallel
  for n, hosts in [(10, 1), (10, 3), (100_000, 8), (7, 7)]:
    seen = []
    sizes = []
    for i in range(hosts):
      start, stop = parallel.host_shard(n, i, hosts)
      seen.extend(range(start, stop))
      sizes.append(stop - start)
    assert seen == list(range(n))
    assert max(sizes) - min(sizes) <= 1
  assert parallel.host_shard(10, 2, 3) == (7, 10)
  with pytest.raises(ValueError):
    parallel.host_shard(10, 3, 3)
  with pytest.raises(ValueError):
    parallel.host_shard(2, 0, 3)


def test_batch_splitting():
  from tlax.train import parallel
  assert parallel.per_device_batch_size(256, process_count=2,
                                        local_devices=4) == 32
  with pytest.raises(ValueError, match="not divisible"):
    parallel.per_device_batch_size(100, process_count=1, local_devices=8)
  b = {"x": np.arange(24).reshape(8, 3), "y": np.arange(8)}
  s = parallel.shard_batch(b, 4)
  assert s["x"].shape == (4, 2, 3)
  np.testing.assert_array_equal(s["y"][1], [2, 3])
  with pytest.raises(ValueError):
    parallel.shard_batch(b, 3)


def test_distributed_is_off_by_default():
  import ml_collections
  from tlax.train import parallel
  assert not parallel.maybe_initialize_distributed(
      ml_collections.ConfigDict({"distributed": False}))


def test_lamb_is_the_descent_direction_for_lr_one():
  import jax.numpy as jnp
  import ml_collections
  import optax
  from tlax.train import parallel
  c = ml_collections.ConfigDict({"optimizer": {
      "name": "lamb", "b1": 0.9, "b2": 0.999, "eps": 1e-6,
      "weight_decay": 0.01, "clip_norm": 0.0}})
  params = {"w": jnp.arange(1.0, 5.0)}
  grads = {"w": jnp.array([0.1, -0.2, 0.3, -0.4])}
  tx = parallel.make_optimizer(c, params)
  ref = optax.lamb(0.5, eps=1e-6, weight_decay=0.01)
  u, _ = tx.update(grads, tx.init(params), params)
  r, _ = ref.update(grads, ref.init(params), params)
  np.testing.assert_allclose(0.5 * u["w"], r["w"], rtol=1e-6)


# --------------------------------------------------------------------------
# The subprocess side.
# --------------------------------------------------------------------------
def _equivalence() -> dict:
  """One and two steps: pmap over 4 devices vs one device, same batches."""
  import jax
  import jax.numpy as jnp
  import ml_collections
  from tlax.methods import METHODS
  from tlax.models import get_model
  from tlax.train import optim, parallel
  from tlax.train.state import create_train_state
  from tlax.train.step import make_train_step

  out = {"devices": jax.local_device_count()}
  cases = {
      "mlp_sgd": ("mlp", {"hidden": (16,)}, "sgd"),
      "resnet8_adam": ("resnet8", {"widths": (2, 4, 4), "conv_impl": "xla"},
                       "adam"),
  }
  rng = np.random.default_rng(0)
  b = 16
  batches = [{"xs": rng.random((b, 8, 8, 1), np.float32),
              "ys": rng.integers(0, 10, b).astype(np.int32),
              "ws": rng.uniform(0.5, 1.5, b).astype(np.float32),
              "xt": rng.random((b, 8, 8, 1), np.float32)} for _ in range(2)]
  for case, (name, kwargs, opt) in cases.items():
    cfg = ml_collections.ConfigDict({
        "seed": 0, "steps": 10, "method": {"name": "source_only"},
        "optimizer": {"name": opt, "lr": 0.05, "momentum": 0.9,
                      "schedule": "cosine", "weight_decay": 1e-3}})
    model = get_model(name, 10, **kwargs)
    single = METHODS["source_only"](model, 10, total_steps=10)
    multi = METHODS["source_only"](parallel.with_axis_name(model), 10,
                                   total_steps=10)
    state0, tx = create_train_state(cfg, single, batches[0])
    sched = optim.make_schedule(cfg)
    host0 = jax.device_get(state0)
    step1 = make_train_step(single, tx, sched)
    s1 = jax.tree.map(jnp.array, host0)
    step4 = parallel.make_parallel_train_step(multi, tx, sched)
    s4 = parallel.replicate(host0)
    losses1, losses4 = [], []
    for batch in batches:
      s1, m1 = step1(s1, batch)
      s4, m4 = step4(s4, parallel.shard_batch(batch, 4))
      losses1.append(float(m1["loss"]))
      losses4.append(float(parallel.unreplicate(m4)["loss"]))
    s4 = parallel.unreplicate(s4)
    diff = lambda a, b: max([0.0] + [
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))])
    out[case] = {
        "max_param_diff": diff(s1.params, s4.params),
        "max_state_diff": diff(s1.state, s4.state),
        "max_opt_diff": diff(s1.opt_state, s4.opt_state),
        "loss_1": losses1[0], "loss_4": losses4[0],
        "moved": diff(s1.params, host0.params),
        "has_batch_stats": bool(jax.tree.leaves(s1.state)),
    }
  return out


if __name__ == "__main__":
  if sys.argv[1:] == ["equivalence"]:
    print(json.dumps(_equivalence()))
  else:
    raise SystemExit(f"unknown mode {sys.argv[1:]}")
