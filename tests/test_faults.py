"""Fault injection: kills, interrupts, two runs in one workdir, damaged
checkpoints, a full disk, NaN in data and hyper-parameters, a sweep rerun.

The subprocess tests run ``python -m experiments.run`` on the quick
source-only config (an MLP on the embedded digits task) and compare final
states bit for bit with an uninterrupted run; they are marked slow. The
others run in this process.
"""

import dataclasses
import errno
import json
import logging
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from experiments.configs import source_only
from tests.quick import quick_config  # pylint: disable=g-bad-import-order
from tlax import train
from tlax.train import checkpoint as ckpt_lib
from tlax.train import trainer
from tlax.train import workdir as workdir_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _state(workdir):
  manager = ckpt_lib.read_only_manager(pathlib.Path(workdir) / "checkpoints")
  try:
    return ckpt_lib.restore_state_numpy(manager, manager.latest_step())
  finally:
    manager.close()


def _assert_same_state(a, b):
  a, b = _state(a), _state(b)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _train_losses(workdir):
  return [(r["step"], r["loss"]) for r in train.read_metrics(
      pathlib.Path(workdir) / "metrics.jsonl", type="train")]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted quick run (10 steps, checkpoints at 5 and 10)."""
  workdir = tmp_path_factory.mktemp("reference")
  result = train.train_and_evaluate(quick_config(), workdir)
  return workdir, result


# ---------------------------------------------------------------------------
# One run per workdir
# ---------------------------------------------------------------------------
_HOLDER = """
import fcntl, os, sys, time
f = open(os.path.join(sys.argv[1], "run.lock"), "a+")
fcntl.flock(f.fileno(), fcntl.LOCK_EX)
f.truncate(0); f.write(f"process {os.getpid()} on testhost"); f.flush()
print("locked", flush=True)
time.sleep(120)
"""


def test_second_run_is_refused_naming_the_live_process(tmp_path):
  holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(train.WorkdirBusyError,
                       match=rf"in use by process {holder.pid} on testhost"):
      train.run_experiment(quick_config(), tmp_path)
    assert not (tmp_path / "checkpoints").exists()  # refused before anything
  finally:
    holder.kill()
    holder.wait()
  # The holder died without unlocking: its lock is stale and taken over.
  result = train.run_experiment(quick_config(), tmp_path)
  assert result["steps"] == 10
  assert not (tmp_path / "run.lock").exists()  # released at the end


def test_lock_is_reentrant_in_one_process_and_released(tmp_path):
  with workdir_lib.WorkdirLock(tmp_path):
    with workdir_lib.WorkdirLock(tmp_path):
      assert (tmp_path / "run.lock").exists()
    assert (tmp_path / "run.lock").exists()
  assert not (tmp_path / "run.lock").exists()


# ---------------------------------------------------------------------------
# Verified checkpoints
# ---------------------------------------------------------------------------
def _largest_file(folder):
  files = [p for p in pathlib.Path(folder).rglob("*") if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


def _damage(path, how):
  if how == "flip":
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
  elif how == "truncate":
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  else:  # delete
    path.unlink()


@pytest.mark.parametrize("how", [
    "flip", pytest.param("truncate", marks=pytest.mark.slow),
    pytest.param("delete_array", marks=pytest.mark.slow),
    pytest.param("delete_metadata", marks=pytest.mark.slow)])
def test_damaged_latest_checkpoint_is_named_and_the_previous_one_used(
    tmp_path, reference, how, caplog):
  ref_dir, ref_result = reference
  workdir = tmp_path / "run"
  shutil.copytree(ref_dir, workdir)
  (workdir / "result.json").unlink()  # as if killed after the last save
  state_dir = workdir / "checkpoints" / "10" / "state"
  if how == "delete_metadata":
    _damage(state_dir / "_METADATA", "delete")
  else:
    _damage(_largest_file(state_dir), how.split("_")[0])
  result = train.train_and_evaluate(quick_config(), workdir)
  assert "checkpoints/10 is damaged" in caplog.text
  assert "Resuming from step 5" in caplog.text
  damaged = os.listdir(workdir / "checkpoints.damaged")
  assert len(damaged) == 1 and damaged[0].startswith("10-")
  # Retrained from step 5 to exactly the reference.
  assert result["target_accuracy"] == ref_result["target_accuracy"]
  _assert_same_state(workdir, ref_dir)
  assert _train_losses(workdir) == _train_losses(ref_dir)


def test_every_checkpoint_damaged_is_an_error_naming_them(tmp_path,
                                                          reference):
  workdir = tmp_path / "run"
  shutil.copytree(reference[0], workdir)
  (workdir / "result.json").unlink()
  for step in ("5", "10"):
    _damage(workdir / "checkpoints" / step / "state" / "_METADATA", "delete")
  with pytest.raises(train.CheckpointError,
                     match=r"No intact checkpoint(.|\n)*checkpoints/10:"
                     r"(.|\n)*checkpoints/5:(.|\n)*Delete"):
    train.train_and_evaluate(quick_config(), workdir)


def test_damaged_result_json_is_named(tmp_path, reference):
  workdir = tmp_path / "run"
  shutil.copytree(reference[0], workdir)
  (workdir / "result.json").write_text('{"target_accuracy": 9')
  with pytest.raises(train.WorkdirError, match=r"result\.json is damaged"):
    train.train_and_evaluate(quick_config(), workdir)


# ---------------------------------------------------------------------------
# Files and folders, full disk
# ---------------------------------------------------------------------------
def test_workdir_that_is_a_file(tmp_path):
  path = tmp_path / "file"
  path.write_text("x")
  with pytest.raises(train.WorkdirError,
                     match=r"--workdir .*file is a file.*another --workdir"):
    train.run_experiment(quick_config(), path)


def test_unwritable_workdir(tmp_path):
  if os.geteuid() == 0:
    pytest.skip("root can write anywhere")
  tmp_path.chmod(0o500)
  try:
    with pytest.raises(train.WorkdirError, match="not readable and writable"):
      train.run_experiment(quick_config(), tmp_path)
  finally:
    tmp_path.chmod(0o700)


def test_full_disk_names_the_path_leaves_nothing_and_resumes(
    tmp_path, reference, monkeypatch):
  """ENOSPC while saving the checkpoint of step 10 (simulated; the real
  full disk of a tmpfs is the next test, where the tests run as root)."""
  real_save = ckpt_lib.save_checkpoint

  def full_disk(manager, state, config, extra=None):
    if int(jax.device_get(state.step)) == 10:
      tmp = pathlib.Path(manager.directory) / "10.orbax-checkpoint-tmp-1"
      tmp.mkdir()  # what a write cut short leaves
      raise OSError(errno.ENOSPC, "No space left on device")
    return real_save(manager, state, config, extra)

  monkeypatch.setattr(ckpt_lib, "save_checkpoint", full_disk)
  with pytest.raises(train.WorkdirError,
                     match=r"checkpoint of step 10 to .*checkpoints: the disk "
                     r"is full\. Free space"):
    train.train_and_evaluate(quick_config(), tmp_path)
  assert not (tmp_path / "result.json").exists()
  monkeypatch.setattr(ckpt_lib, "save_checkpoint", real_save)
  result = train.train_and_evaluate(quick_config(), tmp_path)  # resumes
  assert not any("tmp" in n for n in os.listdir(tmp_path / "checkpoints"))
  assert result["target_accuracy"] == reference[1]["target_accuracy"]
  _assert_same_state(tmp_path, reference[0])


def _mount_tmpfs(path, size_kb):
  """Mounts a tmpfs of ``size_kb`` at ``path``; False without privileges."""
  if os.geteuid() != 0 or not shutil.which("mount"):
    return False
  proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k",
                         "tmpfs", str(path)], capture_output=True, check=False)
  return proc.returncode == 0


@pytest.mark.slow
def test_real_full_disk_one_line_nothing_left_and_resume(tmp_path, reference,
                                                        capfd):
  """A real full disk: a tmpfs smaller than the run's files."""
  size = sum(f.stat().st_size for f in pathlib.Path(reference[0]).rglob("*")
             if f.is_file())
  mnt = tmp_path / "disk"
  mnt.mkdir()
  # Room for the metrics and the first checkpoint, not for all of the run.
  if not _mount_tmpfs(mnt, max(size * 2 // 3 // 1024, 64)):
    pytest.skip("mounting a tmpfs needs root")
  try:
    workdir = mnt / "run"
    with pytest.raises(train.WorkdirError,
                       match=r"cannot write .* the disk is full\. Free space"):
      train.train_and_evaluate(quick_config(), workdir)
    leftovers = [p.name for p in workdir.rglob("*")
                 if "tmp" in p.name and p.name != "run.lock"]
    assert not leftovers, leftovers
    assert not (workdir / "result.json").exists()
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]
    subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
    result = train.train_and_evaluate(quick_config(), workdir)  # resumes
    assert result["target_accuracy"] == reference[1]["target_accuracy"]
    _assert_same_state(workdir, reference[0])
  finally:
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_write_atomic_leaves_no_temporary_file(tmp_path, monkeypatch):
  def boom(*_):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(os, "replace", boom)
  with pytest.raises(OSError):
    train.metrics_log.write_atomic(tmp_path / "result.json", "{}")
  assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Non-finite values
# ---------------------------------------------------------------------------
def test_overflowing_update_is_caught_before_checkpoint_and_result(tmp_path):
  # One step: the loss (computed before the update) is finite, the updated
  # parameters are not.
  config = quick_config(**{"steps": 1, "log_every": 1, "eval_every": 1,
                           "checkpoint_every": 1, "optimizer.lr": 1e38,
                           "optimizer.weight_decay": 1e3,
                           "optimizer.momentum": 0.0})
  with pytest.raises(train.NonFiniteLossError,
                     match=r"parameters or the optimiser state hold NaN or inf"
                     r" after step 1 .*No checkpoint was saved before it.*"
                     r"optimizer\.lr .*new --workdir"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "result.json").exists()
  assert not os.listdir(tmp_path / "checkpoints")
  assert not train.read_metrics(tmp_path / "metrics.jsonl", type="eval")


def test_nan_in_the_data_stops_the_run(tmp_path, monkeypatch):
  real = trainer.load_task

  def with_nan(config):
    task = real(config)
    xs = np.array(task.xs, copy=True)
    xs[:, 0] = np.nan
    return dataclasses.replace(task, xs=xs)

  monkeypatch.setattr(trainer, "load_task", with_nan)
  with pytest.raises(train.NonFiniteLossError,
                     match=r"training loss is nan at step 1 .*NaN/inf in the "
                     r"data"):
    train.train_and_evaluate(quick_config(), tmp_path)
  assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("field", [
    "optimizer.lr", "optimizer.momentum", "optimizer.b1", "optimizer.b2",
    "optimizer.eps", "optimizer.weight_decay", "optimizer.clip_norm"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.5])
def test_bad_optimiser_fields_are_refused_up_front(tmp_path, field, value):
  if field.endswith(("b1", "b2")):
    config = quick_config(**{"optimizer.name": "adam", field: value})
  else:
    config = quick_config(**{field: value})
  with pytest.raises(ValueError, match=rf"config\.{field} must be"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "checkpoints").exists()


def test_momentum_of_one_is_refused(tmp_path):
  with pytest.raises(ValueError, match=r"optimizer\.momentum .*\[0, 1\)"):
    train.train_and_evaluate(quick_config(**{"optimizer.momentum": 1.0}),
                             tmp_path)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nan_method_hyper_parameter_is_refused(tmp_path, value):
  config = source_only.get_config("quick")
  config.method.name = "dann"
  with config.unlocked():
    config.method["lambda"] = value
  with pytest.raises(ValueError, match="lambda"):
    train.train_and_evaluate(config, tmp_path)


# ---------------------------------------------------------------------------
# Config-safe resume, faithful log
# ---------------------------------------------------------------------------
def test_finished_run_compares_keys_left_none(tmp_path):
  train.train_and_evaluate(quick_config(target_batch_size=4), tmp_path)
  with pytest.raises(train.ConfigMismatchError,
                     match=r"target_batch_size: requested None, workdir has 4"):
    train.train_and_evaluate(quick_config(), tmp_path)


@pytest.mark.slow
def test_switching_iw_validation_mid_run_is_refused(tmp_path):
  config = quick_config(**{"stop_after_step": -1})
  train.train_and_evaluate(config, tmp_path)
  (tmp_path / "result.json").unlink()
  with pytest.raises(train.ConfigMismatchError, match="iw_validation"):
    train.train_and_evaluate(quick_config(iw_validation=False), tmp_path)


def test_interrupt_mid_window_keeps_the_log_of_one_run(tmp_path, reference,
                                                       monkeypatch):
  """SIGINT after step 7 (log_every 5): the checkpoint at step 7 carries the
  window of steps 6-7, so the record of step 10 averages steps 6-10."""
  from tlax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  real_step = step_lib.make_train_step

  def step_then_signal(*args, **kwargs):
    fn = real_step(*args, **kwargs)

    def step(state, batch):
      out = fn(state, batch)
      if int(jax.device_get(out[0].step)) == 7:
        os.kill(os.getpid(), signal.SIGINT)
      return out
    return step

  monkeypatch.setattr(step_lib, "make_train_step", step_then_signal)
  with pytest.raises(train.RunInterrupted,
                     match="interrupted at step 7; run the same command"):
    train.train_and_evaluate(quick_config(), tmp_path)
  assert sorted(os.listdir(tmp_path / "checkpoints"), key=int) == ["5", "7"]
  monkeypatch.setattr(step_lib, "make_train_step", real_step)
  train.train_and_evaluate(quick_config(), tmp_path)
  assert _train_losses(tmp_path) == _train_losses(reference[0])
  _assert_same_state(tmp_path, reference[0])


def test_second_interrupt_stops_at_once_and_the_run_resumes(
    tmp_path, reference, monkeypatch):
  """Two SIGINTs inside step 7: the second one stops the run there, before
  the step-7 checkpoint the first one asked for; step 5's is intact."""
  from tlax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  real_step = step_lib.make_train_step

  def step_then_two_signals(*args, **kwargs):
    fn = real_step(*args, **kwargs)

    def step(state, batch):
      out = fn(state, batch)
      if int(jax.device_get(out[0].step)) == 7:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
      return out
    return step

  monkeypatch.setattr(step_lib, "make_train_step", step_then_two_signals)
  before = signal.getsignal(signal.SIGINT)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(quick_config(), tmp_path)
  assert os.listdir(tmp_path / "checkpoints") == ["5"]
  assert not (tmp_path / "result.json").exists()
  # The run's handlers are gone: the process's own handler is back.
  assert signal.getsignal(signal.SIGINT) is before
  monkeypatch.setattr(step_lib, "make_train_step", real_step)
  result = train.train_and_evaluate(quick_config(), tmp_path)
  assert result["target_accuracy"] == reference[1]["target_accuracy"]
  _assert_same_state(tmp_path, reference[0])


# ---------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------
def _sweep(tmp_path, *extra):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  from experiments import sweep  # pylint: disable=g-import-not-at-top
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["sweep",
                 f"--config={REPO / 'experiments/configs/source_only.py'}"
                 ":quick", "--tasks=default", f"--root={tmp_path / 'runs'}",
                 f"--out={tmp_path / 'table.md'}", *extra])
    sweep.main(["sweep"])


def test_sweep_rerun_with_refused_runs_keeps_the_table(tmp_path, capsys):
  _sweep(tmp_path, "--seeds=0")
  table = (tmp_path / "table.md").read_text()
  assert "1 of 1 runs finished" in table
  # The finished run now differs from the request (as after a mistyped
  # override): the rerun is refused.
  result_path = next((tmp_path / "runs").rglob("result.json"))
  result = json.loads(result_path.read_text())
  result["config"]["batch_size"] = 4
  result_path.write_text(json.dumps(result))
  with pytest.raises(SystemExit) as e:
    _sweep(tmp_path, "--seeds=0")
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert "batch_size: requested 8, workdir has 4" in err
  assert "table.md kept as it was: it has" in err
  assert (tmp_path / "table.md").read_text() == table


@pytest.mark.parametrize("seeds,match", [
    ("0,0", "repeats 0"), ("0,1.5", "'1.5' is not an integer"),
    ("a", "'a' is not an integer")])
def test_sweep_refuses_bad_seeds(tmp_path, capsys, seeds, match):
  with pytest.raises(SystemExit) as e:
    _sweep(tmp_path, f"--seeds={seeds}")
  assert e.value.code == 1
  assert match in capsys.readouterr().err
  assert not (tmp_path / "table.md").exists()
  assert not (tmp_path / "runs").exists()


def test_sweep_table_only_with_nothing_finished_writes_nothing(tmp_path,
                                                               capsys):
  with pytest.raises(SystemExit) as e:
    _sweep(tmp_path, "--seeds=0,1", "--table_only")
  assert e.value.code == 1
  assert "no finished run" in capsys.readouterr().err
  assert not (tmp_path / "table.md").exists()


# ---------------------------------------------------------------------------
# Subprocesses: kills and signals through the runner
# ---------------------------------------------------------------------------
STEPS = 100
_LONG = (f"--config.steps={STEPS}", "--config.log_every=10",
         "--config.eval_every=50", "--config.checkpoint_every=50")


def _cli(workdir, *flags, wait=True):
  cmd = [sys.executable, "-m", "experiments.run",
         "--config=experiments/configs/source_only.py:quick",
         f"--workdir={workdir}", *flags]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  if wait:
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
  return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(path, timeout=200):
  t0 = time.time()
  while not os.path.exists(path):
    if time.time() - t0 > timeout:
      raise TimeoutError(path)
    time.sleep(0.05)


@pytest.fixture(scope="module")
def cli_reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("cli_reference")
  done = _cli(workdir, *_LONG)
  assert done.returncode == 0, done.stderr[-3000:]
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130),
                                      (signal.SIGTERM, 143)])
def test_signal_saves_prints_one_line_and_resumes_exactly(
    tmp_path, cli_reference, sig, code):
  proc = _cli(tmp_path, *_LONG, wait=False)
  _wait_for(tmp_path / "metrics.jsonl")
  time.sleep(random.uniform(0.0, 0.5))
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=200)
  if proc.returncode == 0:
    pytest.skip("the run finished before the signal arrived")
  assert proc.returncode == code, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert last.startswith("interrupted at step ") and last.endswith(
      "; run the same command to resume"), err[-2000:]
  assert "Traceback" not in err
  step = int(last.split()[3].rstrip(";"))
  assert str(step) in os.listdir(tmp_path / "checkpoints")
  assert not (tmp_path / "result.json").exists()
  del out
  resumed = _cli(tmp_path, *_LONG)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  _assert_same_state(tmp_path, cli_reference)
  assert _train_losses(tmp_path) == _train_losses(cli_reference)


@pytest.mark.slow
def test_sigkill_at_random_moments_during_checkpoint_writes(tmp_path,
                                                            cli_reference):
  """A checkpoint every step: a SIGKILL at a random moment most likely lands
  inside a write. The resumed run (checkpoint_every does not change
  results, so it may differ on resume) ends bitwise equal to the
  reference."""
  proc = _cli(tmp_path, *_LONG[:-1], "--config.checkpoint_every=1",
              wait=False)
  _wait_for(tmp_path / "checkpoints" / "1")
  time.sleep(random.uniform(0.0, 1.0))
  proc.kill()
  proc.communicate()
  assert proc.returncode == -signal.SIGKILL
  resumed = _cli(tmp_path, *_LONG)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert not [n for n in os.listdir(tmp_path / "checkpoints") if "tmp" in n]
  _assert_same_state(tmp_path, cli_reference)
  assert _train_losses(tmp_path) == _train_losses(cli_reference)


@pytest.mark.slow
def test_run_errors_are_one_line_without_traceback(tmp_path):
  (tmp_path / "f").write_text("x")
  done = _cli(tmp_path / "f")
  assert done.returncode == 1
  assert "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1].startswith(
      f"error: --workdir {tmp_path / 'f'} is a file")


def test_missing_benchmark_files_are_one_line_without_traceback(tmp_path):
  done = _cli(tmp_path / "run", "--config.source=mnist_usps/mnist",
              "--config.target=mnist_usps/usps",
              f"--config.data_dir={tmp_path / 'nowhere'}")
  assert done.returncode == 1
  assert "Traceback" not in done.stderr
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "nowhere" in last, last


@pytest.mark.parametrize("workdir", ["", "  "])
def test_empty_workdir_is_refused(workdir):
  with pytest.raises(train.WorkdirError, match="--workdir is empty"):
    train.run_experiment(quick_config(), workdir)


def test_zero_target_batch_size_is_refused(tmp_path):
  with pytest.raises(ValueError, match="target_batch_size must be a positive"):
    train.run_experiment(quick_config(target_batch_size=0), tmp_path)


def test_data_dir_that_is_a_file_is_named(tmp_path):
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  path = tmp_path / "data"
  path.write_text("x")
  with pytest.raises(files.DataFileError, match="is a file, not a folder"):
    files.default_data_dir(path)


# ---------------------------------------------------------------------------
# Second fault-injection pass (experiments/fault_pass.py): regressions
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("field,value,match", [
    ("seed", -1, r"config.seed must be an integer >= 0, got -1"),
    ("source_val_fraction", 1.0, r"config.source_val_fraction must be in "
     r"\[0, 1\).*got 1.0"),
    ("source_val_fraction", float("nan"), "config.source_val_fraction"),
    ("num_devices", -1, r"config.num_devices must be an integer >= 0"),
])
def test_bad_run_fields_are_refused_by_name(tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    train.run_experiment(quick_config(**{field: value}), tmp_path / "run")
  assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("name,make", [
    ("checkpoints", lambda p: p.write_text("x")),
    ("metrics.jsonl", lambda p: p.mkdir()),
    ("run.lock", lambda p: p.mkdir()),
    ("result.json", lambda p: p.mkdir()),
])
def test_workdir_entries_of_the_wrong_kind_are_named(tmp_path, name, make):
  make(tmp_path / name)
  with pytest.raises(train.WorkdirError,
                     match=f"{name} is a (file|folder).*give another "
                     "--workdir"):
    train.run_experiment(quick_config(), tmp_path)


def test_garbage_inside_metrics_log_is_named(tmp_path):
  from tlax.train import metrics_log  # pylint: disable=g-import-not-at-top
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1}\n\x00garbage\n{"step": 2}\n{"step": 3, "lo')
  with pytest.raises(train.WorkdirError, match=r"metrics.jsonl, line 2, is "
                     "not a JSON record"):
    metrics_log.read_metrics(path)
  path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
  assert [r["step"] for r in metrics_log.read_metrics(path)] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("args,line", [
    (["--config.optimizer.lrr=0.1"], "error: --config.optimizer.lrr: the "
     'config has no field \'lrr\'; Did you mean "lr"'),
    (["--config=experiments/configs/nope.py"], "error: --config: cannot "
     "load"),
])
def test_config_flag_errors_are_one_line(tmp_path, args, line):
  config = REPO / "experiments" / "configs" / "source_only.py"
  p = subprocess.run(
      [sys.executable, "-m", "experiments.run", f"--config={config}:quick",
       f"--workdir={tmp_path}", *args], cwd=REPO, capture_output=True,
      text=True, timeout=300)
  assert p.returncode == 1
  assert line in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_quiet_orbax_filter_drops_info_and_not_restored_items_only():
  f = ckpt_lib._QuietOrbax()  # pylint: disable=protected-access

  def record(level, msg, path="/x/orbax/checkpoint/handler.py"):
    return logging.LogRecord("absl", level, path, 1, msg, None, None)

  assert not f.filter(record(logging.INFO, "Saving item"))
  assert not f.filter(record(
      logging.WARNING, 'Item "config" was found in the checkpoint, but could '
      "not be restored. Please provide a `CheckpointHandlerRegistry`."))
  assert f.filter(record(logging.WARNING, "Disk almost full"))
  assert f.filter(record(logging.INFO, "Training step", "/x/tlax/train.py"))
