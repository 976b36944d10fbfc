"""Many runs in one program (tlax.train.many_runs).

K runs trained as one jitted program must end where K sequential runs of
the trainer end; the scanned loop (several steps per call) where the
step-by-step loop ends; a killed group resumes to the state of an
uninterrupted one; runs that cannot share a program are refused by name.
The tasks are small arrays (16 features, 4 classes) and the model a small
MLP, so each run takes seconds.
"""

import copy
import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.configs import dann
from tlax import data
from tlax import train
from tlax.train import checkpoint as ckpt_lib
from tlax.train import many_runs

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 12
TIMING_KEYS = {"elapsed", "steps_per_sec"}
RESULT_TIMING_KEYS = {"wall_time_s", "process_time_s", "images_per_sec",
                      "checkpoint"}
# Parameters after vmapped or scanned steps equal the sequential ones to
# float32 rounding: the programs differ, and XLA may fuse and reduce in
# another order (docs/many_runs.md).
RTOL, ATOL = 1e-6, 1e-6


def _task(seed=0, dim=16):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(4, dim))
  ys = rng.integers(0, 4, 200)
  yt = rng.integers(0, 4, 120)
  xs = (means[ys] + rng.normal(size=(200, dim))).astype(np.float32)
  xt = (means[yt] + 0.5 + rng.normal(size=(120, dim))).astype(np.float32)
  return data.task_from_arrays(xs, ys, xt, yt, seed=0)


def _config(seed=0, lam=1.0, lr=0.01, weight_decay=0.0, **over):
  c = dann.get_config("quick")
  c.steps, c.log_every, c.eval_every, c.checkpoint_every = STEPS, 3, 6, 6
  c.iw_validation = False
  c.seed = seed
  c.method["lambda"] = lam
  c.optimizer.lr = lr
  c.optimizer.weight_decay = weight_decay
  for key, value in over.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c


RUNS = [dict(seed=0, lam=1.0, lr=0.01, weight_decay=0.0),
        dict(seed=1, lam=0.3, lr=0.02, weight_decay=5e-4),
        dict(seed=2, lam=0.0, lr=0.005, weight_decay=1e-3)]


def _final_state(workdir):
  manager = ckpt_lib.read_only_manager(os.path.join(workdir, "checkpoints"))
  return ckpt_lib.restore_state_numpy(manager, manager.latest_step())


def _records(workdir):
  return [{k: v for k, v in r.items() if k not in TIMING_KEYS}
          for r in train.read_metrics(os.path.join(workdir, "metrics.jsonl"))]


def _assert_runs_match(a_dir, b_dir, *, exact):
  a, b = _final_state(a_dir), _final_state(b_dir)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  if exact:
    jax.tree.map(np.testing.assert_array_equal, a, b)
  else:
    jax.tree.map(lambda x, y: np.testing.assert_allclose(
        x, y, rtol=RTOL, atol=ATOL), a, b)
  ra, rb = _records(a_dir), _records(b_dir)
  assert [(r["type"], r["step"]) for r in ra] == [
      (r["type"], r["step"]) for r in rb]
  for x, y in zip(ra, rb):
    assert x.keys() == y.keys()
    for key in x:
      if exact or not isinstance(x[key], float):
        assert x[key] == y[key], (x["step"], key)
      else:
        np.testing.assert_allclose(x[key], y[key], rtol=1e-5, atol=1e-6)


def test_indices_range_equals_indices_of_each_step():
  dg = data.make_dg_task("digits/fonts+digits/sklearn", "digits/mnistm",
                         image_size=8, channels=3)
  labelled = data.make_task("digits/fonts", "digits/sklearn", image_size=8,
                            target_labeled_per_class=2)
  for task, labeled in ((_task(), 0), (dg, 0), (labelled, 3)):
    b = data.PairedBatches(task, 6, seed=3, target_batch_size=5,
                           labeled_batch_size=labeled)
    got = b.indices_range(30, 45)  # crosses epochs of every stream
    assert sorted(got) == sorted(b.indices(0))
    for s in range(45):
      want = b.indices(30 + s)
      for key in want:
        np.testing.assert_array_equal(got[key][s], want[key])


def test_pool_stores_shared_rows_once():
  a = np.arange(12, dtype=np.float32).reshape(6, 2)
  ya = np.array([0, 1, 0, 1, 0, 1], np.int32)
  b, yb = a[[5, 0, 2]], ya[[5, 0, 2]]
  c = np.concatenate([a[:2], [[100.0, 101.0]]]).astype(np.float32)
  yc = np.array([0, 1, 1], np.int32)
  (px, py), maps = many_runs._pool([(a, ya), (b, yb), (c, yc), (a, ya)])
  assert len(px) == 7  # the 6 rows of a plus the one new row of c
  for (x, y), m in zip([(a, ya), (b, yb), (c, yc), (a, ya)], maps):
    np.testing.assert_array_equal(px[m], x)
    np.testing.assert_array_equal(py[m], y)


def test_runs_that_cannot_share_a_program_are_refused(tmp_path):
  task = _task()
  with pytest.raises(many_runs.GroupError,
                     match=r"model\.kwargs\.hidden"):
    many_runs.train_many(
        [_config(), _config(**{"model.kwargs.hidden": (8,)})],
        [tmp_path / "a", tmp_path / "b"], tasks=[task, task])
  with pytest.raises(many_runs.GroupError, match="different shapes"):
    many_runs.train_many([_config(), _config(seed=1)],
                         [tmp_path / "c", tmp_path / "d"],
                         tasks=[task, _task(dim=12)])
  with pytest.raises(many_runs.GroupError, match="share a workdir"):
    many_runs.train_many([_config(), _config(seed=1)],
                         [tmp_path / "e", tmp_path / "e"],
                         tasks=[task, task])
  assert not (tmp_path / "a" / "result.json").exists()


@pytest.mark.slow
def test_group_equals_sequential_runs(tmp_path):
  task = _task()
  configs = [_config(**r) for r in RUNS]
  seq = [train.train_and_evaluate(c, tmp_path / "seq" / str(i), task=task)
         for i, c in enumerate(configs)]
  grp = many_runs.train_many(
      configs, [tmp_path / "grp" / str(i) for i in range(len(configs))],
      tasks=[task] * len(configs), steps_per_dispatch=4)
  for i, (a, b) in enumerate(zip(seq, grp)):
    assert a.keys() == b.keys()
    for key in a.keys() - RESULT_TIMING_KEYS:
      if key in ("target_accuracy", "source_val_accuracy"):
        np.testing.assert_allclose(a[key], b[key], atol=1.0)  # <= 1 example
      elif key not in ("per_class_accuracy", "target_mean_class_accuracy",
                       "selected", "selected_dev"):
        assert a[key] == b[key], key
    _assert_runs_match(tmp_path / "seq" / str(i), tmp_path / "grp" / str(i),
                       exact=False)
  assert not (tmp_path / "grp" / ".groups").exists()  # removed when done
  # Finished runs are returned as they are.
  again = many_runs.train_many(
      configs, [tmp_path / "grp" / str(i) for i in range(len(configs))],
      tasks=[task] * len(configs))
  assert again == grp


@pytest.mark.slow
def test_scan_loop_equals_step_by_step_loop(tmp_path):
  task = _task()
  configs = [_config(**r) for r in RUNS[:2]]
  for name, per_call, unroll in (("step", 1, 1), ("scan", 6, 1),
                                 ("unrolled", 6, 0), ("unroll2", 6, 2)):
    for c in configs:
      c.scan_unroll = unroll
    many_runs.train_many(configs, [tmp_path / name / str(i) for i in (0, 1)],
                         tasks=[task, task], steps_per_dispatch=per_call)
  for i in (0, 1):
    for name in ("scan", "unrolled", "unroll2"):
      _assert_runs_match(tmp_path / "step" / str(i), tmp_path / name / str(i),
                         exact=False)


def test_scan_unroll_values():
  c = _config()
  assert many_runs.scan_unroll(c) == 1
  c.scan_unroll = 0
  assert many_runs.scan_unroll(c) is True
  c.scan_unroll = 3
  assert many_runs.scan_unroll(c) == 3
  c.scan_unroll = -2
  with pytest.raises(ValueError, match=r"scan_unroll must be an integer >= 0"
                     r".*got -2"):
    many_runs.scan_unroll(c)


def _group_main(root: str, stop_after: int) -> None:
  """Trains the group of the resume test (also in a subprocess)."""
  train.quiet_orbax_logs()
  task = _task()
  configs = [_config(**r, stop_after_step=stop_after) for r in RUNS[:2]]
  many_runs.train_many(configs, [os.path.join(root, str(i)) for i in (0, 1)],
                       tasks=[task, task], steps_per_dispatch=4)


@pytest.mark.slow
def test_killed_group_resumes_to_the_uninterrupted_state(tmp_path):
  _group_main(str(tmp_path / "whole"), -1)
  code = (f"from tests import test_many_runs as t; "
          f"t._group_main({str(tmp_path / 'killed')!r}, 8)")
  killed = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          check=False)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
  assert not (tmp_path / "killed" / "0" / "result.json").exists()
  groups = tmp_path / "killed" / ".groups"
  (group,) = os.listdir(groups)
  assert os.listdir(groups / group / "checkpoints") == ["6"]
  _group_main(str(tmp_path / "killed"), -1)
  for i in ("0", "1"):
    _assert_runs_match(tmp_path / "whole" / i, tmp_path / "killed" / i,
                       exact=True)
    with open(tmp_path / "whole" / i / "result.json") as f:
      a = json.load(f)
    with open(tmp_path / "killed" / i / "result.json") as f:
      b = json.load(f)
    for key in a.keys() - RESULT_TIMING_KEYS:
      assert a[key] == b[key], key


@pytest.mark.slow
def test_run_experiment_with_steps_per_dispatch_and_sweep_groups(tmp_path):
  config = dann.get_config("quick")
  config.steps_per_dispatch = 5
  result = train.run_experiment(config, tmp_path / "one")
  assert result["steps"] == 10 and (tmp_path / "one" / "result.json").exists()
  configs = [copy.deepcopy(config) for _ in range(3)]
  for seed, c in enumerate(configs):
    c.seed = seed
    c.steps_per_dispatch = 1
  out = many_runs.run_many(configs, [tmp_path / "s" / str(i) for i in
                                     range(3)], group_size=2)
  assert [r["seed"] for r in out] == [0, 1, 2]
  for i in range(3):
    assert (tmp_path / "s" / str(i) / "result.json").exists()


@pytest.mark.slow
def test_sweep_group_flag_trains_seeds_together(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.sweep",
       "--config=experiments/configs/dann.py:quick", "--tasks=default",
       "--seeds=0,1", "--group=2", f"--root={tmp_path / 'runs'}",
       f"--out={tmp_path / 'table.md'}"],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for seed in (0, 1):
    path = (tmp_path / "runs" / "dann" / "digits_fonts--digits_sklearn" /
            str(seed) / "result.json")
    with open(path) as f:
      assert json.load(f)["seed"] == seed
  assert "2 of 2 runs finished" in (tmp_path / "table.md").read_text()
