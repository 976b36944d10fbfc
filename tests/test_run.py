"""The runner contract and exact resumption after a kill.

``python -m experiments.run`` is run in subprocesses: once killed with
SIGKILL after a mid-way checkpoint (the test-only ``stop_after_step`` makes
the process kill itself, so the test is deterministic), then restarted to
completion. Its final parameters, metrics and result must equal those of an
uninterrupted run bit for bit.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from tlax import train
from tlax.train import checkpoint as ckpt_lib

# Subprocesses, compiled C++, notebooks or benchmarks: not in the quick suite.
pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS, EVERY, KILL_AFTER = 20, 5, 13


def _run_cli(workdir, *flags):
  cmd = [sys.executable, "-m", "experiments.run",
         "--config=experiments/configs/source_only.py:quick",
         f"--config.steps={STEPS}", f"--workdir={workdir}", *flags]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=300)


def _final_state(workdir):
  """The TrainState of the last checkpoint of a finished run."""
  manager = ckpt_lib.read_only_manager(pathlib.Path(workdir) / "checkpoints")
  try:
    # The CLI runs on the CPU (JAX_PLATFORMS above); this reads its arrays
    # whatever this process's device is.
    return ckpt_lib.restore_state_numpy(manager, manager.latest_step())
  finally:
    manager.close()


def test_killed_run_resumes_exactly(tmp_path):
  # All three runs in the CLI on the CPU: bit-for-bit equality needs one
  # backend (this process may be on a GPU).
  uninterrupted = _run_cli(tmp_path / "uninterrupted")
  assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
  with open(tmp_path / "uninterrupted" / "result.json") as f:
    reference = json.load(f)

  workdir = tmp_path / "killed"
  killed = _run_cli(workdir, f"--config.stop_after_step={KILL_AFTER}")
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert not (workdir / "result.json").exists()
  assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["5", "10"]
  logged = [r["step"] for r in train.read_metrics(workdir / "metrics.jsonl")]
  assert max(logged) == 10  # nothing was logged after step 10 (log_every 5)

  resumed = _run_cli(workdir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  summary = json.loads(resumed.stdout.strip().splitlines()[-1])
  with open(workdir / "result.json") as f:
    result = json.load(f)
  for key in ("method", "source", "target", "seed", "steps",
              "target_accuracy"):
    assert summary[key] == result[key]
  assert result["steps"] == STEPS

  # Same numbers as the uninterrupted run, bit for bit.
  for key in ("target_accuracy", "per_class_accuracy", "source_val_accuracy",
              "selected"):
    assert result[key] == reference[key], key
  a = _final_state(tmp_path / "uninterrupted")
  b = _final_state(workdir)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)  # params, opt state, rng

  # The metrics file describes one run: same steps, same training losses.
  def losses(d):
    return [(r["step"], r["loss"]) for r in
            train.read_metrics(d / "metrics.jsonl", type="train")]
  assert losses(workdir) == losses(tmp_path / "uninterrupted")
