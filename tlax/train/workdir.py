"""A run's folder: one run at a time, clear file errors, clean interrupts.

* :class:`WorkdirLock`: a run holds an exclusive ``flock`` on
  ``<workdir>/run.lock`` (the file names the holder: process id, host,
  command). A second run in the same folder is refused at once, naming the
  live process. The operating system drops the lock when its process dies
  however it dies, so the lock of a killed run is stale by construction and
  the next run takes it over.
* :func:`check_folder` / :func:`prepare_workdir`: a workdir, data or cache
  directory that is a file, cannot be created or is not writable gives one
  line naming the path and the flag or variable to change.
* :func:`disk_errors`: a full disk (or a read-only or vanished folder) while
  writing a checkpoint, a metrics record or a result becomes one line naming
  the path; the run resumes from its last checkpoint once space is freed.
* :class:`Interrupts`: SIGINT and SIGTERM (preemption) are turned into a flag
  the training loop reads at each step boundary; the loop then saves a
  checkpoint and raises :class:`RunInterrupted`, which the command-line
  entry points turn into one line and exit status 130 / 143.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging as py_logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Iterator

from absl import logging


class RunError(Exception):
  """An error of a run that the command line reports as one line."""


class WorkdirBusyError(RunError):
  """Another live process holds the workdir."""


class WorkdirError(RunError):
  """A folder or file of the run cannot be used (names the path and fix)."""


class RunInterrupted(RunError):
  """SIGINT / SIGTERM stopped the run at a step boundary after a checkpoint.

  Attributes:
    step: the step of the checkpoint saved (None if nothing was saved).
    signum: the signal number.
    exit_code: ``128 + signum`` (130 for SIGINT, 143 for SIGTERM).
  """

  def __init__(self, step: int | None, signum: int):
    self.step, self.signum = step, signum
    self.exit_code = 128 + int(signum)
    where = f"at step {step}" if step is not None else "before training"
    super().__init__(f"interrupted {where}; run the same command to resume")


# ----------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------
def check_folder(path: str | os.PathLike, what: str, fix: str, *,
                 create: bool = False, writable: bool = False) -> str:
  """Returns ``path`` as an absolute folder path or raises one clear line.

  Args:
    path: the folder.
    what: what it is, for the message (``"--workdir"``, ``"$TLAX_DATA_DIR"``).
    fix: how to change it (``"give another --workdir"``).
    create: create it (and its parents) when absent.
    writable: it must be writable.

  Raises:
    WorkdirError: the path is a file, cannot be created, or is not readable
      (or writable when asked).
  """
  path = os.path.abspath(os.path.expanduser(os.fspath(path)))
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"{what} {path} is a file, not a folder; {fix}.")
  if not os.path.exists(path):
    if not create:
      raise WorkdirError(f"{what} {path} does not exist; {fix}.")
    try:
      os.makedirs(path, exist_ok=True)
    except OSError as e:
      raise WorkdirError(f"cannot create {what} {path}: {e.strerror or e}; "
                         f"{fix}.") from None
  mode = os.R_OK | os.X_OK | (os.W_OK if writable else 0)
  if not os.access(path, mode):
    need = "readable and writable" if writable else "readable"
    raise WorkdirError(f"{what} {path} is not {need} by this user; {fix}.")
  return path


def prepare_workdir(workdir: str | os.PathLike) -> str:
  """The absolute workdir, created and checked (see :func:`check_folder`)."""
  if workdir is None or not os.fspath(workdir).strip():
    raise WorkdirError("--workdir is empty; give the run's own folder, e.g. "
                       "--workdir=runs/<name>.")
  path = check_folder(workdir, "--workdir", "give another --workdir",
                      create=True, writable=True)
  for name, is_folder in _WORKDIR_ENTRIES:
    entry = os.path.join(path, name)
    if os.path.lexists(entry) and os.path.isdir(entry) != is_folder:
      raise WorkdirError(
          f"{entry} is a {'file' if is_folder else 'folder'}, but the run "
          f"keeps its {name} there as a {'folder' if is_folder else 'file'}; "
          "remove it or give another --workdir.")
  return path


# What a run keeps in its workdir: (name, is a folder).
_WORKDIR_ENTRIES = (("run.lock", False), ("metrics.jsonl", False),
                    ("result.json", False), ("checkpoints", True))


_DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT:
                "the disk quota is exceeded", errno.EROFS:
                "the file system is read-only", errno.EACCES:
                "permission denied", errno.ENOENT: "the folder vanished"}


def _disk_errno(exc: BaseException) -> int | None:
  seen = 0
  while exc is not None and seen < 10:
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
      return exc.errno
    if "No space left on device" in str(exc):
      return errno.ENOSPC
    exc = exc.__cause__ or exc.__context__
    seen += 1
  return None


@contextlib.contextmanager
def disk_errors(path: str | os.PathLike, what: str) -> Iterator[None]:
  """Turns a full disk (or read-only / vanished folder) into one clear line.

  Args:
    path: the file or folder being written.
    what: what is written (``"the checkpoint of step 10"``).

  Raises:
    WorkdirError: naming ``path``, the cause and what to do.
  """
  quiet = _QuietDiskErrors()
  absl_logger = py_logging.getLogger("absl")
  absl_logger.addFilter(quiet)
  try:
    yield
  except RunError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    code = _disk_errno(e)
    if code is None:
      raise
    if os.path.isdir(path):  # a checkpoint folder: drop the partial write
      remove_temporaries(path)
    raise WorkdirError(
        f"cannot write {what} to {os.fspath(path)}: "
        f"{_DISK_ERRNOS[code]}. Free space (or fix the folder) and run the "
        "same command to resume from the last checkpoint, or give another "
        "--workdir.") from None
  finally:
    absl_logger.removeFilter(quiet)


class _QuietDiskErrors(py_logging.Filter):
  """Drops orbax's background-thread tracebacks of a full disk: the
  :class:`WorkdirError` raised by :func:`disk_errors` says it in one line."""

  def filter(self, record: py_logging.LogRecord) -> bool:
    if "orbax" not in record.pathname:
      return True
    text = record.getMessage()
    return not any(m in text for m in ("No space left on device",
                                       "Disk quota exceeded",
                                       "Read-only file system"))


def remove_temporaries(folder: str | os.PathLike) -> None:
  """Deletes what an interrupted write left in ``folder``: files named
  ``*.tmp<pid>`` (:func:`tlax.train.metrics_log.write_atomic`) and orbax's
  ``*.orbax-checkpoint-tmp*`` folders. Only call it while holding the lock."""
  import shutil  # pylint: disable=g-import-not-at-top
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    return
  for name in os.listdir(folder):
    path = os.path.join(folder, name)
    if ".orbax-checkpoint-tmp" in name:
      shutil.rmtree(path, ignore_errors=True)
    elif ".tmp" in name and name.rsplit(".tmp", 1)[1].isdigit():
      with contextlib.suppress(OSError):
        os.remove(path)


# ----------------------------------------------------------------------------
# One run per workdir
# ----------------------------------------------------------------------------
LOCK_NAME = "run.lock"
_held: dict[str, list] = {}  # lock path -> [file object, depth]
_held_mutex = threading.Lock()


class WorkdirLock:
  """An exclusive lock on ``<workdir>/run.lock`` for the life of a run.

  Re-entrant within one process (the runner and the trainer it calls both
  take it). Use as a context manager.

  Raises (on entry):
    WorkdirBusyError: another live process holds the lock; the message names
      its process id, host and command.
  """

  def __init__(self, workdir: str | os.PathLike):
    self.workdir = os.path.abspath(os.fspath(workdir))
    self.path = os.path.join(self.workdir, LOCK_NAME)

  def __enter__(self) -> "WorkdirLock":
    with _held_mutex:
      if self.path in _held:
        _held[self.path][1] += 1
        return self
      self._acquire()
    return self

  def _acquire(self) -> None:
    for _ in range(5):
      with disk_errors(self.path, "the lock file"):
        f = open(self.path, "a+")  # pylint: disable=consider-using-with
      try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise WorkdirBusyError(
            f"{self.workdir} is in use by {holder}. One run per workdir: "
            "wait for it to finish, stop it, or give another --workdir."
        ) from None
      # The file may have been removed by the previous holder between our
      # open and our lock: then lock the new one.
      try:
        same = os.path.samestat(os.fstat(f.fileno()), os.stat(self.path))
      except FileNotFoundError:
        same = False
      if not same:
        f.close()
        continue
      f.seek(0)
      previous = f.read().strip()
      if previous:
        logging.warning("Taking over the stale lock of %s in %s (that "
                        "process has ended).", previous, self.workdir)
      f.seek(0)
      f.truncate()
      f.write(f"process {os.getpid()} on {socket.gethostname()} since "
              f"{time.strftime('%Y-%m-%d %H:%M:%S')} "
              f"({' '.join(sys.argv)[:300]})\n")
      f.flush()
      _held[self.path] = [f, 1]
      return
    raise WorkdirBusyError(f"could not lock {self.path}; it keeps changing.")

  def __exit__(self, *exc) -> None:
    with _held_mutex:
      entry = _held.get(self.path)
      if entry is None:
        return
      entry[1] -= 1
      if entry[1] > 0:
        return
      del _held[self.path]
      f = entry[0]
      with contextlib.suppress(OSError):
        os.remove(self.path)
      f.close()  # releases the flock


# ----------------------------------------------------------------------------
# Interrupts
# ----------------------------------------------------------------------------
class Interrupts:
  """Records SIGINT / SIGTERM for the training loop to act on.

  Inside the ``with`` block the first SIGINT or SIGTERM sets
  :attr:`signum`; the loop checks it at each step boundary, saves a
  checkpoint and raises :class:`RunInterrupted`. A second signal stops at
  once (``KeyboardInterrupt``); the last checkpoint is still there. Outside
  the main thread (where Python cannot install handlers) it does nothing.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signum: int | None = None
    self._previous = {}

  def _handler(self, signum, frame):
    del frame
    if self.signum is not None:
      raise KeyboardInterrupt
    self.signum = signum
    logging.warning("Received signal %d; stopping at the end of this step.",
                    signum)

  def __enter__(self) -> "Interrupts":
    if threading.current_thread() is threading.main_thread():
      for s in self.SIGNALS:
        self._previous[s] = signal.signal(s, self._handler)
    return self

  def __exit__(self, *exc) -> None:
    for s, h in self._previous.items():
      signal.signal(s, h)
    self._previous.clear()

  def check(self, step: int | None) -> None:
    """Raises :class:`RunInterrupted` if a signal arrived (no saving)."""
    if self.signum is not None:
      raise RunInterrupted(step, self.signum)


# ----------------------------------------------------------------------------
# result.json
# ----------------------------------------------------------------------------
def read_result(path: str | os.PathLike) -> dict:
  """A ``result.json``, or a clear error naming a damaged one.

  Raises:
    WorkdirError: the file is not valid JSON (a copy cut short, edited by
      hand); the message says to delete it to recompute the result from the
      last checkpoint.
  """
  path = os.fspath(path)
  try:
    with open(path) as f:
      result = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise WorkdirError(
        f"{path} is damaged ({e}); delete it and run the same command to "
        "recompute the result from the last checkpoint.") from None
  if not isinstance(result, dict):
    raise WorkdirError(f"{path} does not hold a result (a JSON object); "
                       "delete it and run the same command again.")
  return result


# ----------------------------------------------------------------------------
# Command-line entry points
# ----------------------------------------------------------------------------
class ConfigMismatchError(ValueError):
  """The workdir holds a run (checkpoint or result) made with another config."""


def run_errors() -> tuple[type[BaseException], ...]:
  """The errors a command line reports as one line: their messages name the
  path or config key and the fix (anything else keeps its traceback)."""
  # pylint: disable=g-import-not-at-top
  from tlax.data.domains import UnknownDomainError
  from tlax.data.files import DataFileError
  from tlax.train.checkpoint import CheckpointError
  from tlax.train.finite import NonFiniteLossError
  return (RunError, ConfigMismatchError, NonFiniteLossError, CheckpointError,
          UnknownDomainError, DataFileError)


def _sigterm(signum, frame):
  """SIGTERM outside a training loop (data loading, closed-form runners)."""
  del frame
  raise RunInterrupted(None, signum)


def run_cli(run, *args) -> int:
  """Calls ``run(*args)`` and returns the exit status: 0; 130 / 143 after
  SIGINT / SIGTERM (one line ``interrupted at step N; run the same command
  to resume`` on stderr); 1 after a run error (one ``error:`` line)."""
  main = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, _sigterm) if main else None
  try:
    run(*args)
    return 0
  except RunInterrupted as e:
    print(str(e), file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print("interrupted; run the same command to resume", file=sys.stderr)
    return 128 + signal.SIGINT
  except run_errors() as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  finally:
    if main:
      signal.signal(signal.SIGTERM, previous)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing for ``app.run(main, flags_parser=parse_flags)``,
  with one ``error:`` line and exit status 1 instead of a traceback when a
  ``--config`` file or override cannot be applied (an unknown field, a
  missing file, a bad ``<file>:<arg>``)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  try:
    rest = flags.FLAGS(argv)
    for name in ("config",):  # config files load (and fail) lazily
      if name in flags.FLAGS and flags.FLAGS[name].value is not None:
        _ = flags.FLAGS[name].value.keys()
    return rest
  except flags.Error as e:
    lines = [l for l in str(e).splitlines() if l.strip()]
    if "Traceback (most recent call last):" in str(e):  # the config's own
      lines = [lines[0].split(": Error whilst")[0], lines[-1]]
    print(f"FATAL Flags parsing error: {': '.join(lines)}", file=sys.stderr)
  except (AttributeError, KeyError) as e:  # ml_collections: unknown field
    text = str(e).strip("\"'")
    key = text.split("\\n")[0].split("\n")[0].strip("\"'\\")
    culprit = [a.split("=")[0] for a in argv[1:]
               if a.startswith("--config.") and key
               and key in a.split("=")[0].split(".")]
    hint = text.split("\\n", 1)[1] if "\\n" in text else ""
    hint = hint or (text.split("\n", 1)[1] if "\n" in text else "")
    where = culprit[0] if culprit else "a --config override"
    print(f"error: {where}: the config has no field {key!r}"
          + (f"; {hint.strip()}" if hint else "")
          + "; list the fields with --helpfull or in the config file.",
          file=sys.stderr)
  except (OSError, ValueError, TypeError) as e:
    text = " ".join(str(e).split())
    if "Attempted" in text:  # ml_collections: the config file cannot load
      text = "--config: cannot load" + text.split("Attempted", 1)[1]
    print(f"error: {text}", file=sys.stderr)
  sys.exit(1)
