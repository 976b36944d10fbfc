r"""A fault-injection pass: bad inputs and damaged files, tried as a new user
and a careless script would, each classified automatically.

  python -m experiments.fault_pass --out=fault_pass.json

Every case feeds one fault to one public surface (``experiments.run``
config overrides and flags, ``experiments.sweep`` flags,
:func:`tlax.data.task_from_arrays`, the losses of :mod:`tlax.losses`, the
estimators of :mod:`tlax.shallow`, the zero-shot, self-taught, prototype
and domain-generalisation entry points, backbone conversion, damaged
checkpoints and results, interrupted writes) and is classified:

* ``CLEAR``: an exception whose message names the offending value, key,
  file or flag (or, for a jitted loss, a non-finite result for non-finite
  input, the documented answer);
* ``UNCLEAR``: an exception whose message does not (a raw error from deep
  inside, or one blaming the wrong thing);
* ``SILENT``: no error and a plausible-looking output;
* ``LOST``: finished data gone or overwritten.

Runs of the trainer stop where training would start (everything is
validated before that point), so the pass takes a few minutes on two cores;
a handful of cases run ``python -m experiments.run`` / ``experiments.sweep``
in a subprocess on the quick config. The table and totals are printed;
``--out`` receives a JSON report (one record per case).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Any, Callable, NamedTuple, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

_OUT = flags.DEFINE_string("out", None, "JSON report of the pass.")
_ONLY = flags.DEFINE_string("only", "", "Run only the cases whose id "
                            "contains this string.")

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ("CLEAR", "UNCLEAR", "SILENT", "LOST")


class Case(NamedTuple):
  """One fault.

  Attributes:
    id: short unique name.
    surface: the public surface it is fed to.
    fault: what is wrong, in words.
    fn: ``fn(tmp) -> output``; raising is the expected answer.
    names: strings of which one must appear in the error for CLEAR.
    signals: ``signals(output) -> bool``: an output that itself signals the
      fault (a NaN loss for NaN input); otherwise an output is SILENT. For
      a run stopped where training would start: ``signals(tmp) -> str |
      None``, how the fault was handled as documented (a damaged checkpoint
      moved aside and the previous one used), else SILENT.
    lost: ``lost(tmp) -> str | None``: what finished data was lost.
  """
  id: str
  surface: str
  fault: str
  fn: Callable[[pathlib.Path], Any]
  names: Sequence[str]
  signals: Callable[[Any], bool] | None = None
  lost: Callable[[pathlib.Path], str | None] | None = None


class _Accepted(Exception):
  """Raised where a run would start training: the config was accepted."""


def _nonfinite(out) -> bool:
  leaves = out if isinstance(out, (tuple, list)) else [out]
  try:
    return any(not np.all(np.isfinite(np.asarray(v, np.float64)))
               for v in leaves)
  except (TypeError, ValueError):
    return False


# ----------------------------------------------------------------------------
# The trainer, stopped where training would start.
# ----------------------------------------------------------------------------
def _config(overrides: dict):
  from tests.quick import quick_config  # pylint: disable=g-import-not-at-top
  return quick_config(**overrides)


@contextlib.contextmanager
def _stop_before_training():
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  original = trainer.FiniteCheck

  def accepted(*args, **kwargs):
    raise _Accepted()
  trainer.FiniteCheck = accepted
  try:
    yield
  finally:
    trainer.FiniteCheck = original


def _run(overrides: dict | None = None, workdir=None, env: dict | None = None,
         full: bool = False):
  """``run_experiment`` of the quick config with ``overrides``."""
  from tlax import train  # pylint: disable=g-import-not-at-top
  def go(tmp):
    config = _config(overrides or {})
    wd = workdir(tmp) if callable(workdir) else (workdir or tmp / "run")
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update({k: str(v) for k, v in (env or {}).items()})
    try:
      if full:
        return train.run_experiment(config, str(wd))
      with _stop_before_training():
        return train.run_experiment(config, str(wd))
    finally:
      for k, v in saved.items():
        if v is None:
          os.environ.pop(k, None)
        else:
          os.environ[k] = v
  return go


def _run_case(cid, overrides, names, fault, **kwargs):
  return Case(cid, "experiments.run config", fault, _run(overrides, **kwargs),
              names)


def _cli(module: str, args: list[str], env: dict | None = None,
         timeout: float = 240):
  """``python -m <module> args`` in a subprocess; raises its error line."""
  def go(tmp):
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    argv = [a.replace("{tmp}", str(tmp)) for a in args]
    p = subprocess.run([sys.executable, "-m", module, *argv], cwd=tmp,
                       env=e, capture_output=True, text=True, timeout=timeout)
    if p.returncode == 0:
      return p.stdout.strip().splitlines()[-1:] or ["(no output)"]
    if "Traceback (most recent call last)" in p.stderr:
      tail = [l for l in p.stderr.strip().splitlines() if l.strip()][-3:]
      raise _CliTraceback(p.returncode, "\n".join(tail))
    tail = [l for l in p.stderr.strip().splitlines() if l.strip()][-6:]
    raise _CliError(p.returncode, "\n".join(tail))
  return go


class _CliError(Exception):

  def __init__(self, code, tail):
    super().__init__(f"exit {code}: {tail}")
    self.code, self.tail = code, tail


class _CliTraceback(_CliError):
  """The command printed a traceback: UNCLEAR whatever its last line."""


# ----------------------------------------------------------------------------
# A finished run to damage (made once, copied per case).
# ----------------------------------------------------------------------------
_FINISHED: list[pathlib.Path] = []


def _finished(tmp: pathlib.Path) -> pathlib.Path:
  """A copy of a finished quick run in ``tmp/run``."""
  from tlax import train  # pylint: disable=g-import-not-at-top
  if not _FINISHED:
    src = pathlib.Path(tempfile.mkdtemp(prefix="tlax_fault_finished_"))
    train.run_experiment(_config({}), str(src / "run"))
    _FINISHED.append(src / "run")
  dst = tmp / "run"
  shutil.copytree(_FINISHED[0], dst)
  return dst


def _digest(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() \
      else ""


def _latest_ckpt(workdir: pathlib.Path) -> pathlib.Path:
  steps = sorted((p for p in (workdir / "checkpoints").iterdir()
                  if p.name.isdigit()), key=lambda p: int(p.name))
  return steps[-1]


def _damaged_resume(damage: Callable[[pathlib.Path], None]):
  """A finished run without result.json whose checkpoints are damaged;
  CLEAR when the damage is named (moved to checkpoints.damaged/)."""
  def go(tmp):
    wd = _finished(tmp)
    (wd / "result.json").unlink()
    damage(wd)
    out = _run(workdir=wd)(tmp)
    return out
  return go


def _moved_aside(tmp) -> str | None:
  """The damaged checkpoint was named in a warning and moved aside."""
  if (tmp / "run" / "checkpoints.damaged").exists():
    return "named in a warning, moved to checkpoints.damaged/, resumed " \
        "from the previous checkpoint"
  return None


def _tmp_removed(tmp) -> str | None:
  if not any("tmp" in p.name for p in (tmp / "run" / "checkpoints").iterdir()):
    return "the partial checkpoint folder was removed; resumed from step 5"
  return None


def _cut_line_dropped(tmp) -> str | None:
  if "cut_sh" not in (tmp / "run" / "metrics.jsonl").read_text():
    return "the cut-short last line was dropped on resume"
  return None


# ----------------------------------------------------------------------------
# The cases.
# ----------------------------------------------------------------------------
def _cases() -> list[Case]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from tlax import data as data_lib  # pylint: disable=g-import-not-at-top
  from tlax import losses as L  # pylint: disable=g-import-not-at-top
  from tlax import shallow as S  # pylint: disable=g-import-not-at-top

  nan, inf = float("nan"), float("inf")
  cases: list[Case] = []
  add = cases.append

  # --- Config overrides: the optimiser ------------------------------------
  for field, value in [
      ("lr", nan), ("lr", inf), ("lr", -0.1),
      ("momentum", nan), ("momentum", 1.0), ("momentum", -0.5),
      ("b1", 1.0), ("b1", nan), ("b2", -0.1), ("b2", 1.5),
      ("eps", -1e-8), ("eps", nan), ("weight_decay", -1e-4),
      ("weight_decay", inf), ("clip_norm", -1.0), ("clip_norm", nan),
      ("warmup_steps", -5)]:
    add(_run_case(f"opt.{field}={value}", {f"optimizer.{field}": value},
                  [f"optimizer.{field}"], f"optimizer.{field} = {value}"))
  for name in ("adamx", ""):
    add(_run_case(f"opt.name={name!r}", {"optimizer.name": name},
                  ["optimizer.name", repr(name)], f"unknown optimiser {name!r}"))
  add(_run_case("opt.schedule=cosin", {"optimizer.schedule": "cosin"},
                ["cosin"], "mistyped schedule"))
  add(_run_case("opt.adam.b2=1", {"optimizer.name": "adam",
                                  "optimizer.b2": 1.0},
                ["optimizer.b2"], "adam with b2 = 1"))
  add(_run_case("opt.warmup>steps", {"optimizer.warmup_steps": 50},
                ["warmup_steps"], "warm-up longer than the run"))

  # --- Config overrides: steps, batches, evaluation ----------------------
  for field, value in [("steps", 0), ("steps", -3), ("batch_size", 0),
                       ("batch_size", -8), ("target_batch_size", 0),
                       ("eval_every", 0), ("eval_every", -1),
                       ("log_every", 0), ("checkpoint_every", 0),
                       ("eval_batch_size", 0), ("labeled_batch_size", -2)]:
    add(_run_case(f"{field}={value}", {field: value}, [field],
                  f"{field} = {value}"))
  add(_run_case("log_every=-1", {"log_every": -1}, ["log_every"],
                "log_every = -1"))
  add(_run_case("seed=-1", {"seed": -1}, ["seed"], "a negative seed"))
  for value in (1.0, -0.1, nan, 1.5):
    add(_run_case(f"source_val_fraction={value}",
                  {"source_val_fraction": value}, ["source_val_fraction"],
                  f"source_val_fraction = {value}"))
  for value in (0, -16):
    add(_run_case(f"image_size={value}", {"image_size": value},
                  ["image_size"], f"image_size = {value}"))
  for value in (0, 2, 5):
    add(_run_case(f"channels={value}", {"channels": value}, ["channels"],
                  f"channels = {value}"))
  add(_run_case("target_labeled_per_class=-1",
                {"target_labeled_per_class": -1},
                ["target_labeled_per_class"], "negative labels per class"))
  add(_run_case("validators=nope", {"validators": ("entropy", "nope")},
                ["nope"], "an unknown validator"))
  add(_run_case("parallel=bogus", {"parallel": "bogus"}, ["bogus",
                                                          "parallel"],
                "an unknown device mode"))
  add(_run_case("num_devices=-1", {"num_devices": -1}, ["num_devices"],
                "negative device count"))
  add(_run_case("num_devices=64", {"parallel": "sharded", "num_devices": 64},
                ["num_devices", "64"], "more devices than there are"))
  add(_run_case("model.name=resnet9000", {"model.name": "resnet9000"},
                ["resnet9000"], "an unknown model"))
  add(_run_case("model.kwargs.bogus", {"model.kwargs": {"hidden": (32,),
                                                        "bogus": 1}},
                ["bogus"], "an unknown model argument"))
  add(_run_case("model.kwargs.hidden=-4", {"model.kwargs": {"hidden": (-4,)}},
                ["hidden"], "a negative hidden width"))

  # --- Config overrides: methods and their hyper-parameters --------------
  add(_run_case("method.name=nope", {"method.name": "nope"}, ["nope"],
                "an unknown method"))
  add(_run_case("method.name=pkg:missing",
                {"method.name": "tlax.methods:no_such_factory"},
                ["no_such_factory"], "a missing factory path"))
  add(_run_case("method.name=module:missing",
                {"method.name": "no_such_package.x:f"},
                ["no_such_package"], "a missing module path"))
  for method, option, value in [
      ("dann", "lambda", nan), ("dann", "lambda", inf),
      ("dan", "lambda", -inf), ("coral", "lambda", nan),
      ("cmd", "n_moments", 0), ("mcd", "n_gen", 0),
      ("fixmatch", "tau", 1.5), ("fixmatch", "tau", nan),
      ("mean_teacher", "ema_decay", 1.5), ("supcon", "temperature", 0.0), ("prototype_head", "temperature", -1.0),
      ("dann", "nope", 1.0)]:
    def method_case(method=method, option=option, value=value):
      from experiments.configs import common  # pylint: disable=g-import-not-at-top
      def go(tmp):
        overrides = {"method.name": method}
        config = _config(overrides)
        config.method = common.method_defaults(method)
        config.method.name = method
        config.method[option] = value
        from tlax import train  # pylint: disable=g-import-not-at-top
        with _stop_before_training():
          return train.run_experiment(config, str(tmp / "run"))
      return go
    add(Case(f"method.{method}.{option}={value}", "experiments.run config",
             f"{method} with {option} = {value}", method_case(),
             [option + ("_" if option == "lambda" else ""), option]))

  # --- Config overrides: tasks, domains, data -----------------------------
  add(_run_case("source=nope", {"source": "nope"}, ["nope"],
                "a source without a collection"))
  add(_run_case("source=digits/nope", {"source": "digits/nope"},
                ["digits/nope"], "an unknown domain"))
  add(_run_case("target=digits/Fonts", {"target": "digits/Fonts"},
                ["digits/Fonts"], "a domain name with the wrong case"))
  add(_run_case("domain_options.bogus", {"domain_options": {"bogus": 1}},
                ["bogus"], "an unknown domain option"))
  add(_run_case("data_dir=missing", {"source": "mnist_usps/mnist",
                                     "target": "mnist_usps/usps",
                                     "data_dir": "/nonexistent/tlax_data"},
                ["/nonexistent/tlax_data", "data_dir"],
                "a data_dir that does not exist"))
  add(_run_case("TLAX_DATA_DIR=empty", {"source": "mnist_usps/mnist",
                                        "target": "mnist_usps/usps"},
                ["TLAX_DATA_DIR", "mnist"], "a data dir without the files",
                env={"TLAX_DATA_DIR": tempfile.mkdtemp()}))

  def file_data_dir(tmp):
    f = tmp / "data.txt"
    f.write_text("not a folder")
    return _run({"source": "mnist_usps/mnist", "target": "mnist_usps/usps",
                 "data_dir": str(f)})(tmp)
  add(Case("data_dir=a file", "experiments.run config",
           "a data_dir that is a file", file_data_dir, ["data.txt"]))

  def env_file_data_dir(tmp):
    f = tmp / "data.txt"
    f.write_text("not a folder")
    return _run({"source": "mnist_usps/mnist", "target": "mnist_usps/usps"},
                env={"TLAX_DATA_DIR": str(f)})(tmp)
  add(Case("TLAX_DATA_DIR=a file", "experiments.run config",
           "$TLAX_DATA_DIR is a file", env_file_data_dir, ["data.txt"]))

  def data_dir_damaged(tmp):
    d = tmp / "data" / "mnist_usps"
    d.mkdir(parents=True)
    for name in ("mnist.npz", "usps.npz", "mnist.h5", "usps.h5",
                 "mnist_train.npz", "usps_train.npz"):
      (d / name).write_bytes(b"\x00garbage")
    return _run({"source": "mnist_usps/mnist", "target": "mnist_usps/usps",
                 "data_dir": str(tmp / "data")})(tmp)
  add(Case("data_dir=garbage files", "experiments.run config",
           "data files that are garbage", data_dir_damaged,
           ["mnist", "usps"]))

  # --- Workdirs ------------------------------------------------------------
  def workdir_file(tmp):
    (tmp / "wd").write_text("x")
    return tmp / "wd"
  add(_run_case("workdir=a file", {}, ["wd"], "a workdir that is a file",
                workdir=workdir_file))

  def workdir_under_file(tmp):
    (tmp / "f").write_text("x")
    return tmp / "f" / "run"
  add(_run_case("workdir under a file", {}, [str(pathlib.Path("f") / "run")],
                "a workdir below a file", workdir=workdir_under_file))

  def ckpt_is_file(tmp):
    (tmp / "run").mkdir()
    (tmp / "run" / "checkpoints").write_text("x")
    return tmp / "run"
  add(_run_case("checkpoints is a file", {}, ["checkpoints"],
                "<workdir>/checkpoints is a file", workdir=ckpt_is_file))

  def metrics_is_dir(tmp):
    (tmp / "run" / "metrics.jsonl").mkdir(parents=True)
    return tmp / "run"
  add(_run_case("metrics.jsonl is a folder", {}, ["metrics.jsonl"],
                "<workdir>/metrics.jsonl is a folder", workdir=metrics_is_dir))

  def lock_is_dir(tmp):
    (tmp / "run" / "run.lock").mkdir(parents=True)
    return tmp / "run"
  add(_run_case("run.lock is a folder", {}, ["run.lock"],
                "<workdir>/run.lock is a folder", workdir=lock_is_dir))

  # --- Finished runs, damaged results and checkpoints ---------------------
  def rerun_other_config(tmp):
    wd = _finished(tmp)
    (tmp / "digest").write_text(_digest(wd / "result.json"))
    return _run({"optimizer.lr": 0.05}, workdir=wd)(tmp)

  def result_lost(tmp):
    wd = tmp / "run"
    if _digest(wd / "result.json") != (tmp / "digest").read_text():
      return "result.json of the finished run changed"
    return None
  add(Case("finished: other lr", "experiments.run workdir",
           "a finished workdir rerun with another lr", rerun_other_config,
           ["optimizer.lr"], lost=result_lost))

  def rerun_other_method(tmp):
    wd = _finished(tmp)
    (tmp / "digest").write_text(_digest(wd / "result.json"))
    return _run({"method.name": "erm"}, workdir=wd)(tmp)
  add(Case("finished: other method", "experiments.run workdir",
           "a finished workdir rerun with another method", rerun_other_method,
           ["method.name"], lost=result_lost))

  def damaged_result(contents):
    """A finished run whose result.json is replaced by ``contents(text)``."""
    def case(tmp):
      wd = _finished(tmp)
      text = (wd / "result.json").read_text()
      (wd / "result.json").write_text(contents(text))
      return _run(workdir=wd)(tmp)
    return case
  for name, what, contents in (
      ("result.json truncated", "a result.json cut short",
       lambda text: text[: len(text) // 2]),
      ("result.json a list", "a result.json holding a list",
       lambda text: "[1, 2, 3]"),
      ("result.json empty", "an empty result.json", lambda text: "")):
    add(Case(name, "experiments.run workdir", what, damaged_result(contents),
             ["result.json"]))

  def no_config_result(tmp):
    wd = _finished(tmp)
    (wd / "result.json").write_text('{"target_accuracy": 99.0}')
    (tmp / "digest").write_text(_digest(wd / "result.json"))
    return _run(workdir=wd)(tmp)
  add(Case("result.json without config", "experiments.run workdir",
           "a result.json without its config (edited by hand)",
           no_config_result, ["result.json"], lost=result_lost))

  def flip(wd):
    files = [p for p in _latest_ckpt(wd).rglob("*") if p.is_file()
             and p.stat().st_size > 100 and "ocdbt" not in p.name
             and p.suffix != ".json" and "_METADATA" not in p.name]
    f = max(files, key=lambda p: p.stat().st_size)
    b = bytearray(f.read_bytes())
    b[len(b) // 2] ^= 0xFF
    f.write_bytes(bytes(b))

  def truncate(wd):
    files = [p for p in _latest_ckpt(wd).rglob("*") if p.is_file()
             and p.stat().st_size > 100 and p.suffix != ".json"
             and "_METADATA" not in p.name]
    f = max(files, key=lambda p: p.stat().st_size)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])

  def drop_metadata(wd):
    for p in _latest_ckpt(wd).rglob("*"):
      if p.is_file() and ("METADATA" in p.name or p.name.endswith(".json")):
        p.unlink()

  def drop_everything(wd):
    for c in (wd / "checkpoints").iterdir():
      if c.name.isdigit():
        for p in c.rglob("*"):
          if p.is_file() and "METADATA" in p.name:
            p.unlink()

  def empty_step_dir(wd):
    shutil.rmtree(_latest_ckpt(wd))
    (wd / "checkpoints" / "10").mkdir()

  def tmp_leftover(wd):
    shutil.copytree(_latest_ckpt(wd),
                    wd / "checkpoints" / "10.orbax-checkpoint-tmp-123")
    shutil.rmtree(_latest_ckpt(wd))

  for cid, damage, what in [
      ("ckpt: flipped byte", flip, "a flipped byte in the latest checkpoint"),
      ("ckpt: truncated", truncate, "a truncated array file"),
      ("ckpt: metadata gone", drop_metadata, "metadata files removed"),
      ("ckpt: empty step", empty_step_dir, "an empty step folder"),
  ]:
    add(Case(cid, "checkpoints", what, _damaged_resume(damage),
             ["checkpoints"], signals=_moved_aside))
  add(Case("ckpt: all damaged", "checkpoints",
           "every checkpoint without metadata",
           _damaged_resume(drop_everything), ["checkpoints"]))
  add(Case("ckpt: tmp leftover", "checkpoints",
           "a temporary folder of a killed checkpoint write",
           _damaged_resume(tmp_leftover), ["checkpoints"],
           signals=_tmp_removed))

  def garbage_metrics(tmp):
    wd = _finished(tmp)
    (wd / "result.json").unlink()
    with open(wd / "metrics.jsonl", "a") as f:
      f.write('{"type": "train", "step": 7, "cut_sh')
    return _run(workdir=wd)(tmp)
  add(Case("metrics.jsonl cut short", "experiments.run workdir",
           "a metrics.jsonl whose last line was cut by a kill",
           garbage_metrics, ["metrics.jsonl"], signals=_cut_line_dropped))

  def garbage_metrics_middle(tmp):
    wd = _finished(tmp)
    (wd / "result.json").unlink()
    lines = (wd / "metrics.jsonl").read_text().splitlines()
    lines.insert(1, "\x00\x00garbage")
    (wd / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return _run(workdir=wd)(tmp)
  add(Case("metrics.jsonl garbage line", "experiments.run workdir",
           "a garbage line inside metrics.jsonl", garbage_metrics_middle,
           ["metrics.jsonl"]))

  def atomic_leftover(tmp):
    from tlax.train.metrics_log import write_atomic  # pylint: disable=g-import-not-at-top
    target = tmp / "result.json"
    target.write_text('{"a": 1}')
    (tmp / "sub").mkdir()
    bad = tmp / "sub"  # writing a file onto a folder fails
    try:
      write_atomic(bad, "x")
    finally:
      left = [p.name for p in tmp.iterdir() if ".tmp" in p.name]
      if left:
        raise AssertionError(f"temporary files left: {left}")
  add(Case("write_atomic onto a folder", "interrupted writes",
           "an atomic write that fails", atomic_leftover, ["sub"]))

  def atomic_interrupt(tmp):
    from tlax.train import metrics_log  # pylint: disable=g-import-not-at-top
    target = tmp / "result.json"
    target.write_text('{"a": 1}')
    original = os.replace

    def boom(*a):
      raise KeyboardInterrupt()
    metrics_log.os.replace = boom
    try:
      metrics_log.write_atomic(target, '{"a": 2}')
    except KeyboardInterrupt:
      pass
    finally:
      metrics_log.os.replace = original
    left = [p.name for p in tmp.iterdir() if ".tmp" in p.name]
    if left or target.read_text() != '{"a": 1}':
      return "half-written"
    raise _Expected("nothing half-written")

  def atomic_lost(tmp):
    return None if (tmp / "result.json").read_text() == '{"a": 1}' else \
        "result.json replaced by a half-written one"
  add(Case("write_atomic interrupted", "interrupted writes",
           "Ctrl-C between write and rename", atomic_interrupt,
           ["nothing half-written"], lost=atomic_lost))

  # --- The command line ----------------------------------------------------
  quick = str(REPO / "experiments/configs/source_only.py") + ":quick"
  for cid, args, names in [
      ("cli: unknown key", [f"--config={quick}", "--config.nope=1",
                            "--workdir={tmp}/w"], ["nope"]),
      ("cli: wrong type", [f"--config={quick}", "--config.steps=ten",
                           "--workdir={tmp}/w"], ["steps", "ten"]),
      ("cli: optimizer typo", [f"--config={quick}",
                               "--config.optimizer.lrr=0.1",
                               "--workdir={tmp}/w"], ["lrr"]),
      ("cli: missing config file", ["--config=experiments/configs/nope.py",
                                    "--workdir={tmp}/w"], ["nope.py"]),
      ("cli: bad config arg", [
          str(f"--config={REPO}/experiments/configs/source_only.py:quik"),
          "--workdir={tmp}/w"], ["quik"]),
      ("cli: no workdir", [f"--config={quick}"], ["workdir"]),
      ("cli: stray argument", [f"--config={quick}", "--workdir={tmp}/w",
                               "extra"], ["extra"]),
      ("cli: lambda flag", [f"--config={REPO}/experiments/configs/dann.py:"
                            "quick", "--config.method.lambda_=1",
                            "--workdir={tmp}/w"], ["lambda_"]),
  ]:
    add(Case(cid, "python -m experiments.run", " ".join(args[1:2] or args),
             _cli("experiments.run", args), names))

  # --- The sweep -----------------------------------------------------------
  for cid, args, names in [
      ("sweep: seeds 0,0", ["--seeds=0,0"], ["seed", "0,0"]),
      ("sweep: seeds a", ["--seeds=a"], ["seed", "'a'"]),
      ("sweep: seeds 1.5", ["--seeds=1.5"], ["1.5"]),
      ("sweep: unknown task", ["--tasks=nope"], ["nope"]),
      ("sweep: bad task pair", ["--tasks=digits/fonts:digits/nope"],
       ["digits/nope"]),
      ("sweep: missing methods file", ["--methods=experiments/configs/x.py"],
       ["x.py"]),
      ("sweep: table_only empty root", ["--table_only"], ["finished",
                                                          "no finished"]),
      ("sweep: out is a folder", ["--table_only", "--out={tmp}"],
       ["--out", "folder", "directory"]),
  ]:
    base = [f"--config={quick}", "--root={tmp}/runs", "--out={tmp}/t.md"]
    if any(a.startswith("--out") for a in args):
      base = base[:2]
    add(Case(cid, "python -m experiments.sweep", " ".join(args),
             _cli("experiments.sweep", base + args), names))

  def sweep_mistyped(tmp):
    wd = _finished(tmp)
    root = tmp / "runs" / "source_only" / "digits_fonts--digits_sklearn"
    root.mkdir(parents=True)
    shutil.move(str(wd), str(root / "0"))
    args = [f"--config={quick}", f"--root={tmp}/runs", f"--out={tmp}/t.md",
            "--seeds=0"]
    _cli("experiments.sweep", args + ["--table_only"])(tmp)
    (tmp / "digest").write_text(_digest(tmp / "t.md"))
    return _cli("experiments.sweep",
                args + ["--config.optimizer.lr=0.5"])(tmp)

  def table_lost(tmp):
    return None if _digest(tmp / "t.md") == (tmp / "digest").read_text() \
        else "the table was replaced"
  def sweep_unknown_column(tmp):
    wd = _finished(tmp)
    root = tmp / "runs" / "source_only" / "digits_fonts--digits_sklearn"
    root.mkdir(parents=True)
    shutil.move(str(wd), str(root / "0"))
    return _cli("experiments.sweep", [
        f"--config={quick}", f"--root={tmp}/runs", f"--out={tmp}/t.md",
        "--seeds=0", "--table_only", "--columns=final,nope"])(tmp)
  add(Case("sweep: unknown column", "python -m experiments.sweep",
           "--columns=final,nope", sweep_unknown_column, ["nope"]))

  add(Case("sweep: mistyped override rerun", "python -m experiments.sweep",
           "a rerun whose runs are all refused", sweep_mistyped,
           ["optimizer.lr"], lost=table_lost))

  # --- tlax.data.task_from_arrays ------------------------------------------
  rng = np.random.default_rng(0)
  xs = rng.normal(size=(40, 5)).astype(np.float32)
  ys = np.arange(40) % 4
  xt = rng.normal(size=(30, 5)).astype(np.float32)
  yt = np.arange(30) % 4

  def arrays(cid, fault, names, **kw):
    args = dict(xs=xs, ys=ys, xt=xt, yt=yt)
    extra = {k: kw.pop(k) for k in list(kw) if k not in args}
    args.update(kw)

    def go(tmp):
      task = data_lib.task_from_arrays(args["xs"], args["ys"], args["xt"],
                                       args["yt"], **extra)
      return task.num_classes
    add(Case(cid, "tlax.data.task_from_arrays", fault, go, names))

  xs_nan = xs.copy()
  xs_nan[3, 2] = np.nan
  xt_inf = xt.copy()
  xt_inf[0, 0] = np.inf
  arrays("arrays: NaN in xs", "NaN in the source", ["xs", "NaN"], xs=xs_nan)
  arrays("arrays: inf in xt", "inf in the target", ["xt", "inf"], xt=xt_inf)
  arrays("arrays: ys too short", "ys shorter than xs", ["ys"], ys=ys[:-3])
  arrays("arrays: yt too long", "yt longer than xt", ["yt"],
         yt=np.arange(31) % 4)
  arrays("arrays: feature mismatch", "xs and xt feature counts differ",
         ["xt", "xs"], xt=xt[:, :3])
  arrays("arrays: float labels", "continuous float labels", ["ys"],
         ys=rng.normal(size=40))
  arrays("arrays: negative labels", "labels below 0", ["ys", "-1"],
         ys=ys - 1)
  arrays("arrays: labels >= num_classes", "num_classes smaller than labels",
         ["num_classes"], num_classes=2)
  arrays("arrays: empty source", "an empty source", ["xs"],
         xs=xs[:0], ys=ys[:0])
  arrays("arrays: empty target", "an empty target", ["xt"], xt=xt[:0],
         yt=yt[:0])
  arrays("arrays: 1-d xs", "a 1-d source", ["xs"], xs=xs[:, 0])
  arrays("arrays: string xs", "strings as features", ["xs"],
         xs=xs.astype(str))
  arrays("arrays: 2-d labels", "one-hot labels", ["ys"],
         ys=np.eye(4)[ys])
  arrays("arrays: val fraction 1", "source_val_fraction = 1", [
      "source_val_fraction"], source_val_fraction=1.0)
  arrays("arrays: NaN labels", "NaN among float labels", ["ys"],
         ys=np.where(ys == 0, np.nan, ys).astype(np.float64))

  # --- tlax.losses -----------------------------------------------------------
  a = jnp.asarray(rng.normal(size=(16, 6)), jnp.float32)
  b = jnp.asarray(rng.normal(size=(12, 6)) + 0.5, jnp.float32)
  a_nan = a.at[0, 0].set(jnp.nan)
  b_inf = b.at[1, 1].set(jnp.inf)
  la = jnp.asarray(np.arange(16) % 3)
  lb = jnp.asarray(np.arange(12) % 3)

  def loss(cid, fault, fn, names, nonfinite_ok=False):
    add(Case(cid, "tlax.losses", fault, lambda tmp: fn(),
             names, signals=_nonfinite if nonfinite_ok else None))

  for name, f in [("mmd", L.mmd), ("mk_mmd", L.mk_mmd),
                  ("linear_mmd", L.linear_mmd), ("coral", L.coral),
                  ("cmd", lambda x, y: L.cmd(jax.nn.sigmoid(x),
                                             jax.nn.sigmoid(y)))]:
    loss(f"{name}: NaN", "NaN in the source features",
         lambda f=f: f(a_nan, b), [], nonfinite_ok=True)
    if name != "cmd":
      loss(f"{name}: inf", "inf in the target features",
           lambda f=f: f(a, b_inf), [], nonfinite_ok=True)
  loss("cmd: inf", "inf in the target features (bounds (0, 1))",
       lambda: L.cmd(jax.nn.sigmoid(a), jax.nn.sigmoid(b).at[1, 1].set(
           jnp.inf)), [], nonfinite_ok=True)
  loss("mmd: feature mismatch", "xs and xt of different widths",
       lambda: L.mmd(a, b[:, :4]), ["6", "4"])
  loss("coral: feature mismatch", "xs and xt of different widths",
       lambda: L.coral(a, b[:, :4]), ["6", "4"])
  loss("cmd: feature mismatch", "xs and xt of different widths",
       lambda: L.cmd(a, b[:, :4]), ["6", "4"])
  loss("linear_mmd: rank 1", "1-d features", lambda: L.linear_mmd(a[0], b[0]),
       ["1", "rank", "(6,)"])
  loss("mk_mmd: rank 3", "3-d features",
       lambda: L.mk_mmd(a[None], b[None]), ["rank", "(1, 16, 6)", "2-d",
                                            "3-d", "ndim"])
  loss("mmd: empty source", "an empty source batch",
       lambda: L.mmd(a[:0], b), ["empty", "0"], nonfinite_ok=True)
  loss("coral: one example", "a batch of one (covariance undefined)",
       lambda: L.coral(a[:1], b[:1]), ["1"], nonfinite_ok=True)
  loss("mk_mmd: sigmas typo", "an unknown bandwidth spec",
       lambda: L.mk_mmd(a, b, sigmas="meen:5"), ["meen"])
  loss("mk_mmd: negative weights", "negative kernel weights",
       lambda: L.mk_mmd(a, b, sigmas=(1.0, 2.0), weights=(1.0, -2.0)),
       ["weights"], nonfinite_ok=True)
  loss("mk_mmd: weights length", "weights of the wrong length",
       lambda: L.mk_mmd(a, b, sigmas=(1.0, 2.0), weights=(1.0, 1.0, 1.0)),
       ["weights", "3"])
  loss("mmd: negative sigma", "a negative bandwidth",
       lambda: L.mmd(a, b, sigma=-1.0), ["sigma", "-1"])
  loss("mmd: NaN sigma", "a NaN bandwidth",
       lambda: L.mmd(a, b, sigma=nan), ["sigma", "nan"])
  loss("gaussian_kernel: zero sigma", "a zero bandwidth",
       lambda: L.gaussian_kernel(a, b, sigma=0.0), ["sigma", "0"])
  loss("mmd: unknown kernel", "a kernel name typo",
       lambda: L.mmd(a, b, kernel="gausian"), ["gausian"])
  loss("mmd: unknown estimator", "an estimator typo",
       lambda: L.mmd(a, b, estimator="unbaised"), ["unbaised"])
  loss("polynomial_kernel: degree -1", "a negative degree",
       lambda: L.polynomial_kernel(a, b, degree=-1), ["degree"])
  loss("jmmd: layer count", "source and target layer lists differ",
       lambda: L.jmmd([a, a], [b]), ["layer", "2", "1"])
  loss("class_conditional_mmd: label range", "labels >= num_classes",
       lambda: L.class_conditional_mmd(a, b, la + 5, lb, num_classes=3),
       ["label", "num_classes"], nonfinite_ok=True)
  loss("class_conditional_mmd: label count", "labels of the wrong length",
       lambda: L.class_conditional_mmd(a, b, la[:5], lb, num_classes=3),
       ["labels", "5", "16"])
  loss("class_conditional_mmd: num_classes 0", "num_classes = 0",
       lambda: L.class_conditional_mmd(a, b, la, lb, num_classes=0),
       ["num_classes"])
  loss("dynamic_mmd: mu 1.5", "mu outside [0, 1]",
       lambda: L.dynamic_mmd(a, b, la, lb, 1.5, num_classes=3), ["mu"],
       nonfinite_ok=True)
  loss("cmd: n_moments 0", "no moments", lambda: L.cmd(a, b, n_moments=0),
       ["n_moments"])
  loss("cmd: bounds reversed", "bounds (1, 0)",
       lambda: L.cmd(a, b, bounds=(1.0, 0.0)), ["bounds"])
  loss("proxy_a_distance: NaN", "NaN features",
       lambda: L.proxy_a_distance(a_nan, b, jax.random.key(0), num_steps=20),
       [], nonfinite_ok=True)
  loss("proxy_a_distance: empty", "an empty target",
       lambda: L.proxy_a_distance(a, b[:0], jax.random.key(0), num_steps=20),
       ["empty", "xt", "0"], nonfinite_ok=True)
  loss("nt_xent: temperature 0", "temperature 0",
       lambda: L.nt_xent(a, a, temperature=0.0), ["nt_xent: temperature"],
       nonfinite_ok=True)
  loss("nt_xent: view mismatch", "views of different shapes",
       lambda: L.nt_xent(a, b), ["view"])
  loss("supervised_contrastive: temperature -1", "negative temperature",
       lambda: L.supervised_contrastive(a, la, temperature=-1.0),
       ["temperature"], nonfinite_ok=True)
  loss("supervised_contrastive: label count", "labels of the wrong length",
       lambda: L.supervised_contrastive(a, lb), ["labels"])
  loss("prototype_logits: metric typo", "an unknown metric",
       lambda: L.prototype_logits(a, b, metric="cosin"), ["cosin"])
  loss("class_prototypes: num_classes 0", "num_classes = 0",
       lambda: L.class_prototypes(a, la, 0), ["num_classes"])
  loss("dann_domain_loss: NaN logits", "NaN domain logits",
       lambda: L.dann_domain_loss(a_nan[:, :1], b[:, :1]), [],
       nonfinite_ok=True)
  loss("entropy: NaN", "NaN probabilities",
       lambda: L.entropy(jax.nn.softmax(a_nan)), [], nonfinite_ok=True)
  loss("pseudo_label_cross_entropy: shapes", "logits and probs differ",
       lambda: L.pseudo_label_cross_entropy(a, jax.nn.softmax(b)),
       ["pseudo_label_cross_entropy"])
  loss("softmax_mse: shapes", "student and teacher differ",
       lambda: L.softmax_mse(a, b), ["softmax_mse"])
  loss("scale_invariant_mse: shapes", "x and x_hat differ",
       lambda: L.scale_invariant_mse(a, b), ["scale_invariant_mse"])
  loss("difference_loss: batch mismatch", "shared and private differ",
       lambda: L.difference_loss(a, b), ["16", "12"])
  loss("soft_label_loss: temperature 0", "temperature 0",
       lambda: L.soft_label_loss(a[:, :3], la, jax.nn.softmax(a[:3, :3]),
                                 temperature=0.0), ["temperature"],
       nonfinite_ok=True)
  loss("grl_lambda_schedule: NaN gamma", "NaN gamma",
       lambda: L.grl_lambda_schedule(0.5, gamma=nan), ["gamma"],
       nonfinite_ok=True)
  loss("mu_from_a_distances: NaN", "NaN A-distances",
       lambda: L.mu_from_a_distances(jnp.nan, jnp.asarray([0.5, 1.0])), [],
       nonfinite_ok=True)
  loss("l2_normalize: NaN", "NaN vector", lambda: L.l2_normalize(a_nan), [],
       nonfinite_ok=True)
  loss("gaussian_sigmas: median:0", "zero bandwidth count",
       lambda: L.gaussian_sigmas("mean:0", a, b), ["mean:0"])

  # --- tlax.shallow ----------------------------------------------------------
  xs_np, xt_np = np.asarray(xs, np.float64), np.asarray(xt, np.float64)

  def shallow(cid, fault, make, names, *, xs_=None, ys_=None, xt_=None,
              method="fit_predict"):
    def go(tmp):
      est = make()
      x1 = xs_np if xs_ is None else xs_
      y1 = ys if ys_ is None else ys_
      x2 = xt_np if xt_ is None else xt_
      if method == "fit_predict":
        return est.fit(x1, y1, x2).predict(x2)
      if method == "fit":
        return est.fit(x1, x2)
      if method == "predict":
        return est.predict(x2)
      return method(est, x1, y1, x2)
    add(Case(cid, "tlax.shallow", fault, go, names))

  shallow("JDA: k=2.5", "fractional k", lambda: S.JDA(k=2.5), ["k", "2.5"])
  shallow("JDA: k=0", "k = 0", lambda: S.JDA(k=0), ["k"])
  shallow("TCA: k > features", "k larger than the features",
          lambda: S.TCA(k=50), ["k", "50"],
          method=lambda e, x1, y1, x2: e.fit(x1, y1, x2).transform(x2))
  shallow("JDA: lam NaN", "NaN lam", lambda: S.JDA(lam=nan), ["lam"])
  shallow("JDA: T=0", "no iterations", lambda: S.JDA(T=0), ["T"])
  shallow("JDA: rbf gamma NaN", "NaN gamma", lambda: S.JDA(kernel="rbf",
                                                          gamma=nan),
          ["gamma"])
  shallow("JDA: kernel typo", "an unknown kernel",
          lambda: S.JDA(kernel="rbff"), ["rbff"])
  shallow("JDA: float labels", "continuous labels", lambda: S.JDA(k=3),
          ["labels", "ys", "y"], ys_=rng.normal(size=40))
  shallow("JDA: NaN xs", "NaN in xs", lambda: S.JDA(k=3), ["xs", "NaN"],
          xs_=np.asarray(xs_nan, np.float64))
  shallow("JDA: feature mismatch", "xs and xt widths differ",
          lambda: S.JDA(k=3), ["xt", "5", "3"], xt_=xt_np[:, :3])
  shallow("JDA: label count", "ys shorter than xs", lambda: S.JDA(k=3),
          ["ys", "39", "40"], ys_=ys[:-1])
  shallow("BDA: mu 2", "mu outside [0, 1]", lambda: S.BDA(k=3, mu=2.0),
          ["mu"])
  shallow("BDA: balance typo", "an unknown balance",
          lambda: S.BDA(k=3, balance="seperate"), ["seperate"])
  shallow("MEDA: rho NaN", "NaN rho", lambda: S.MEDA(dim=3, rho=nan),
          ["rho"])
  shallow("MEDA: dim 0", "dim = 0", lambda: S.MEDA(dim=0), ["dim"])
  shallow("MEDA: p 0", "p = 0 neighbours", lambda: S.MEDA(dim=3, p=0), ["p"])
  shallow("MEDA: mu -1", "mu = -1", lambda: S.MEDA(dim=3, mu=-1.0), ["mu"])
  shallow("KMM: B negative", "a negative bound",
          lambda: S.KMM(B=-1.0), ["B"], method="fit")
  shallow("KMM: gamma NaN", "NaN gamma", lambda: S.KMM(gamma=nan), ["gamma"],
          method="fit")
  shallow("KMM: NaN xt", "NaN in the target", lambda: S.KMM(), ["xt", "NaN"],
          method="fit", xt_=np.asarray(xs_nan[:30], np.float64))
  shallow("GFK: dim > features", "more dimensions than features",
          lambda: S.GFK(dim=20), ["dim", "20"],
          method=lambda e, x1, y1, x2: e.fit(x1, y1, x2))
  shallow("CORAL: eps NaN", "NaN eps", lambda: S.CORAL(eps=nan, C=1.0),
          ["eps"])
  shallow("LinearSVM: C=-1", "negative C", lambda: S.LinearSVM(C=-1.0),
          ["C"], method=lambda e, x1, y1, x2: e.fit(x1, y1).predict(x2))
  shallow("NearestNeighbor: predict before fit", "predict before fit",
          S.NearestNeighbor, ["fit"], method="predict")
  shallow("NearestNeighbor: single class", "one class only",
          S.NearestNeighbor, ["class", "ys"],
          method=lambda e, x1, y1, x2: e.fit(x1, np.zeros(40, int)).predict(
              x2), )
  shallow("TrAdaBoost: 0 estimators", "n_estimators = 0",
          lambda: S.TrAdaBoost(n_estimators=0), ["n_estimators"],
          method=lambda e, x1, y1, x2: e.fit(x1, y1, x2[:8], yt[:8]).predict(
              x2))
  shallow("domain_classifier_weights: clip reversed", "clip (20, 0)",
          lambda: None, ["clip"],
          method=lambda e, x1, y1, x2: S.domain_classifier_weights(
              x1, x2, clip=(20.0, 0.0)))
  shallow("kmm_weights: empty target", "an empty target", lambda: None,
          ["xt", "empty", "0"],
          method=lambda e, x1, y1, x2: S.kmm_weights(x1, x2[:0]))

  # --- Zero-shot, self-taught, prototypes, generalisation, methods --------
  def zsl_cases():
    from tlax.zsl import methods as zm  # pylint: disable=g-import-not-at-top
    from tlax.zsl import semantic  # pylint: disable=g-import-not-at-top
    s_nan = np.ones((4, 3))
    s_nan[2, 1] = np.nan

    add(Case("zsl: unknown method", "tlax.zsl", "a method name typo",
             lambda tmp: zm.get_method("esszl"), ["esszl"]))
    add(Case("zsl: eszsl gamma NaN", "tlax.zsl", "NaN gamma",
             lambda tmp: zm.eszsl(gamma=nan).fit(
                 jax.random.key(0), np.ones((8, 3)), np.arange(8) % 4,
                 np.eye(4)), ["gamma"]))
    add(Case("zsl: sae space typo", "tlax.zsl", "an unknown space",
             lambda tmp: zm.sae(space="semantik"), ["semantik"]))
    add(Case("zsl: NaN class embeddings", "tlax.zsl",
             "NaN in the attribute table",
             lambda tmp: semantic.check_class_embeddings(
                 s_nan, ["a", "b", "c", "d"]), ["c", "NaN", "class 2"]))
    add(Case("zsl: zero class embedding", "tlax.zsl",
             "an all-zero attribute row",
             lambda tmp: semantic.check_class_embeddings(
                 np.vstack([np.ones((3, 3)), np.zeros((1, 3))]),
                 ["a", "b", "c", "d"]), ["d", "zero"]))
    add(Case("zsl: labels beyond embeddings", "tlax.zsl",
             "labels beyond the class-embedding rows",
             lambda tmp: zm.eszsl().fit(jax.random.key(0), np.ones((8, 3)),
                                        np.arange(8), np.eye(4)),
             ["labels", "4"]))
    add(Case("zsl: feature width at test", "tlax.zsl",
             "test features of another width",
             lambda tmp: zm.check_scores_inputs(3, np.ones((5, 4)), np.eye(4),
                                                what="eszsl"), ["3", "4"]))

  def selftaught_cases():
    from tlax.selftaught import clustering  # pylint: disable=g-import-not-at-top
    from tlax.selftaught import learners  # pylint: disable=g-import-not-at-top
    add(Case("selftaught: unknown learner", "tlax.selftaught",
             "a learner name typo",
             lambda tmp: learners.get_learner("sparse_codin"),
             ["sparse_codin"]))
    add(Case("selftaught: NaN unlabelled", "tlax.selftaught",
             "NaN in the unlabelled data",
             lambda tmp: learners.get_learner("pca", n_components=2).fit(
                 np.asarray(xs_nan, np.float64)), ["NaN"]))
    add(Case("selftaught: PCA too many components", "tlax.selftaught",
             "more components than features",
             lambda tmp: learners.get_learner("pca", n_components=50).fit(
                 xs_np), ["n_components", "50"]))
    add(Case("selftaught: negative for clustering", "tlax.selftaught",
             "negative values for co-clustering",
             lambda tmp: clustering.self_taught_clustering(
                 xs_np, xt_np, 3, n_iter=2), ["negative"]))
    add(Case("selftaught: n_clusters 0", "tlax.selftaught",
             "zero clusters",
             lambda tmp: clustering.self_taught_clustering(
                 np.abs(xs_np), np.abs(xt_np), 0, n_iter=2),
             ["n_clusters", "0 clusters"]))

  def proto_cases():
    from tlax.prototypes import episodes  # pylint: disable=g-import-not-at-top
    add(Case("prototypes: n_way > classes", "tlax.prototypes",
             "more ways than classes",
             lambda tmp: episodes.sample_episodes(
                 ys, n_way=10, k_shot=1, n_query=2, n_episodes=3),
             ["n_way", "10"]))
    add(Case("prototypes: k_shot 0", "tlax.prototypes", "zero shots",
             lambda tmp: episodes.few_shot_accuracy(
                 xs_np, ys, n_way=2, k_shot=0, n_query=2, n_episodes=3),
             ["k_shot"]))
    add(Case("prototypes: too few examples", "tlax.prototypes",
             "fewer examples per class than k_shot + n_query",
             lambda tmp: episodes.sample_episodes(
                 ys, n_way=2, k_shot=5, n_query=15, n_episodes=3),
             ["k_shot", "n_query", "20"]))

  def methods_cases():
    from tlax import methods  # pylint: disable=g-import-not-at-top
    from tlax.methods import contract  # pylint: disable=g-import-not-at-top
    from tlax.models import convert  # pylint: disable=g-import-not-at-top
    add(Case("methods: unknown name", "tlax.methods", "a method name typo",
             lambda tmp: methods.get_method("dnan"), ["dnan"]))
    add(Case("methods: unknown option", "tlax.methods",
             "an option the factory does not take",
             lambda tmp: contract.call_factory(
                 methods.get_method("dann"), {"lamda": 1.0}, model=None,
                 num_classes=3, total_steps=10), ["lamda"]))
    add(Case("methods: fixmatch threshold typo", "tlax.methods",
             "an unknown threshold rule",
             lambda tmp: contract.call_factory(
                 methods.get_method("fixmatch"), {"threshold": "flex"},
                 model=None, num_classes=3, total_steps=10), ["flex"]))
    add(Case("methods: protonet negative n_way", "tlax.methods",
             "n_way = -1",
             lambda tmp: contract.call_factory(
                 methods.get_method("protonet"), {"n_way": -1}, model=None,
                 num_classes=3, total_steps=10), ["n_way"]))
    for name, option, value in [("irm", "lambda", nan),
                                ("vrex", "lambda", -1.0),
                                ("group_dro", "eta", -1.0),
                                ("mixup", "alpha", -0.2),
                                ("mixstyle", "alpha", 0.0)]:
      add(Case(f"methods: {name} {option}={value}", "tlax.methods",
               f"{name} with {option} = {value} (two training domains)",
               lambda tmp, name=name, option=option, value=value:
               contract.call_factory(
                   methods.get_method(name), {option: value}, model=None,
                   num_classes=3, total_steps=10, num_domains=2),
               [option]))

    def variables():
      return {"params": {"model": {"dense": {"kernel": np.zeros((4, 3))}}}}
    add(Case("convert: missing file", "tlax.models.convert",
             "a weights file that does not exist",
             lambda tmp: convert.load_weights(tmp / "resnet50.pth",
                                              variables()), ["resnet50.pth"]))
    def empty_file(tmp):
      (tmp / "w.npz").write_bytes(b"")
      return convert.load_weights(tmp / "w.npz", variables())
    add(Case("convert: empty file", "tlax.models.convert",
             "an empty weights file", empty_file, ["w.npz"]))
    def text_file(tmp):
      (tmp / "w.pth").write_text("<html>404 not found</html>")
      return convert.load_weights(tmp / "w.pth", variables())
    add(Case("convert: html file", "tlax.models.convert",
             "an HTML error page saved as weights", text_file, ["w.pth"]))
    def wrong_shapes(tmp):
      np.savez(tmp / "w.npz", **{"dense.weight": np.zeros((7, 7))})
      return convert.load_weights(tmp / "w.npz", variables())
    add(Case("convert: wrong shapes", "tlax.models.convert",
             "weights of another architecture", wrong_shapes,
             ["dense", "w.npz"]))
    def folder(tmp):
      (tmp / "w").mkdir()
      return convert.load_weights(tmp / "w", variables())
    add(Case("convert: a folder", "tlax.models.convert",
             "a folder instead of a file", folder, ["w"]))

  zsl_cases()
  selftaught_cases()
  proto_cases()
  methods_cases()
  return cases


class _Expected(Exception):
  """A case's own check found the fault handled as documented."""


# ----------------------------------------------------------------------------
# Classification and report.
# ----------------------------------------------------------------------------
def classify(case: Case, tmp: pathlib.Path) -> dict:
  t0 = time.time()
  record = {"id": case.id, "surface": case.surface, "fault": case.fault}
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      out = case.fn(tmp)
  except _Accepted:
    handled = case.signals(tmp) if case.signals is not None else None
    if handled:
      record.update(cls="CLEAR", detail=handled)
    else:
      record.update(cls="SILENT", detail="accepted; training would start")
  except _Expected as e:
    record.update(cls="CLEAR", detail=str(e))
  except Exception as e:  # pylint: disable=broad-except
    message = f"{type(e).__name__}: {e}"
    named = not isinstance(e, _CliTraceback) and ((not case.names) or any(
        n.lower() in str(e).lower() for n in case.names))
    record.update(cls="CLEAR" if named else "UNCLEAR",
                  detail=" ".join(message.split())[:400])
    if not named:
      record["where"] = traceback.format_exc().strip().splitlines()[-3:]
  else:
    if case.signals is not None and case.signals(out):
      record.update(cls="CLEAR", detail=f"non-finite result {out!r}"[:200])
    else:
      record.update(cls="SILENT", detail=f"returned {out!r}"[:300])
  if case.lost is not None:
    try:
      what = case.lost(tmp)
    except Exception as e:  # pylint: disable=broad-except
      what = f"check failed: {e}"
    if what:
      record.update(cls="LOST", detail=what + "; " + record["detail"])
  record["seconds"] = round(time.time() - t0, 2)
  return record


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from tlax import train  # pylint: disable=g-import-not-at-top
  train.quiet_orbax_logs()
  cases = _cases()
  ids = [c.id for c in cases]
  dupes = [i for i, n in collections.Counter(ids).items() if n > 1]
  if dupes:
    raise SystemExit(f"duplicate case ids: {dupes}")
  if _ONLY.value:
    cases = [c for c in cases if _ONLY.value in c.id]
  records = []
  t0 = time.time()
  root = pathlib.Path(tempfile.mkdtemp(prefix="tlax_fault_pass_"))
  try:
    for i, case in enumerate(cases):
      tmp = root / f"{i:03d}"
      tmp.mkdir()
      r = classify(case, tmp)
      records.append(r)
      print(f"{r['cls']:8s} {r['seconds']:6.1f}s  {case.surface:28s} "
            f"{case.id:42s} {r['detail'][:110]}", flush=True)
      shutil.rmtree(tmp, ignore_errors=True)
  finally:
    shutil.rmtree(root, ignore_errors=True)
    for f in _FINISHED:
      shutil.rmtree(f.parent, ignore_errors=True)
  totals = collections.Counter(r["cls"] for r in records)
  print()
  print(f"{len(records)} cases in {time.time() - t0:.0f} s: " + ", ".join(
      f"{c} {totals.get(c, 0)}" for c in CLASSES))
  for c in ("LOST", "SILENT", "UNCLEAR"):
    for r in records:
      if r["cls"] == c:
        print(f"  {c}: {r['id']}: {r['detail'][:200]}")
  if _OUT.value:
    report = {"cases": len(records),
              "totals": {c: totals.get(c, 0) for c in CLASSES},
              "records": records}
    from tlax.train.metrics_log import write_atomic  # pylint: disable=g-import-not-at-top
    write_atomic(_OUT.value, json.dumps(report, indent=1) + "\n")
    print(f"report: {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
