"""Shared parts of the scripts that run many runs and write a results page.

:func:`enable_compilation_cache` lets runs with the same shapes compile
once; :func:`run_or_read` runs one run, or with ``table_only`` reads its
finished ``result.json``; :func:`nothing_finished` is the message when a
``--table_only`` page would be empty; :func:`finish` writes the page.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, Sequence

from absl import logging

from tlax.train.metrics_log import write_atomic


def enable_compilation_cache(root: str) -> None:
  """A persistent XLA cache under ``<root>/.jax_cache``: runs with the same
  graph compile once, also across processes."""
  import jax  # pylint: disable=g-import-not-at-top
  path = os.path.abspath(os.path.join(root, ".jax_cache"))
  os.makedirs(path, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  try:
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
  except (AttributeError, KeyError):  # a JAX without the option
    pass


def command_line(main: Callable[[list[str]], int | None]):
  """``main`` for ``absl.app.run`` that ends a many-run script as
  ``python -m experiments.run`` ends (:func:`tlax.train.workdir.run_cli`):
  one line instead of a traceback, for an interrupted run (``interrupted at
  step N; run the same command to resume``, exit status ``128 + signal``)
  and for missing benchmark files (``error: ...``, exit status 1), which
  would fail every run the same way; else ``main``'s own status."""
  def wrapped(argv):
    from tlax.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
    status = []
    code = workdir_lib.run_cli(lambda: status.append(main(argv)))
    if code:
      sys.exit(code)
    return status[0]
  return wrapped


def run_or_read(workdir: str, make_config: Callable[[], object],
                table_only: bool, failures: list[str],
                label: str) -> dict | None:
  """The run's ``result.json`` content, or None.

  ``table_only``: reads ``<workdir>/result.json`` if it exists (None if not)
  and runs nothing; a result made with another config than
  ``make_config()`` (another ``--steps``, say) is not read but named in
  ``failures``, as running would name it (:func:`finished_result`).
  Otherwise prints ``label`` and runs
  ``train.run_experiment(make_config(), workdir)`` (which resumes or reads
  back a finished run); a failure of the run is logged (one line for the
  errors whose message names the fix, :func:`tlax.train.workdir.run_errors`,
  else with its traceback), appended to ``failures`` and gives None, so that
  one failed run does not stop the others. An interruption and missing
  benchmark files (``DataFileError``, the same for every run) propagate.
  """
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.data.files import DataFileError  # pylint: disable=g-import-not-at-top
  from tlax.train import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  if table_only:
    if not os.path.exists(os.path.join(workdir, "result.json")):
      return None
    try:
      return finished_result(make_config(), workdir)
    except workdir_lib.ConfigMismatchError as e:
      logging.error("%s", e)
      failures.append(f"{workdir}: {type(e).__name__}: {e}")
      return None
  print(label, flush=True)
  try:
    return train.run_experiment(make_config(), workdir)
  except (workdir_lib.RunInterrupted, KeyboardInterrupt, DataFileError):
    raise
  except workdir_lib.run_errors() as e:  # the message says it all
    logging.error("%s failed: %s: %s", workdir, type(e).__name__, e)
    failures.append(f"{workdir}: {type(e).__name__}: {e}")
    return None
  except Exception as e:  # pylint: disable=broad-except
    logging.error("%s failed:\n%s", workdir, traceback.format_exc())
    failures.append(f"{workdir}: {type(e).__name__}: {e}")
    return None


def finished_result(config, workdir: str) -> dict | None:
  """The ``result.json`` of a finished run of ``config`` in ``workdir``, or
  None; checked against ``config`` as running it would check it.

  Raises:
    ConfigMismatchError: the stored result was made with another config.
  """
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  # A family with its own runner compares the config as given; the trainer
  # compares it with its table defaults filled in.
  requested = (trainer.config_to_dict(config) if config.get("runner", None)
               else trainer.resolve_config(config))
  return trainer.stored_result(workdir, requested, partial=True)


def nothing_finished(script: str, root: str, what: str) -> int:
  """Says on stderr that ``--table_only`` found no finished run; returns the
  exit code 1."""
  print(f"{script}: no finished run under {root} for these {what}; nothing "
        "written (run without --table_only first).", file=sys.stderr)
  return 1


def finish(text: str, failures: Sequence[str], out: str | None) -> int:
  """Appends the failed runs to ``text``, writes it to ``out`` (atomically,
  when given) and prints it; returns the exit code (1 if a run failed)."""
  if failures:
    text += "\nRuns that failed:\n\n" + "\n".join(f"- {f}" for f in failures)
  if out:
    write_atomic(out, text + "\n")
  print(text)
  return 1 if failures else 0
