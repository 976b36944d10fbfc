"""The end of the commands that rebuild a results page from finished runs."""

from __future__ import annotations

from typing import Sequence

from tlax.train.metrics_log import write_atomic


def finish(text: str, failures: Sequence[str], out: str | None) -> int:
  """Appends the failed runs to ``text``, writes it to ``out`` (atomically,
  when given) and prints it; returns the exit code (1 if a run failed)."""
  if failures:
    text += "\nRuns that failed:\n\n" + "\n".join(f"- {f}" for f in failures)
  if out:
    write_atomic(out, text + "\n")
  print(text)
  return 1 if failures else 0
