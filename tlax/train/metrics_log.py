"""Metrics as JSON lines: one object per line, ``{"type", "step", ...}``.

``type`` is ``"train"`` (training metrics averaged over the last
``log_every`` steps, with ``elapsed`` seconds and ``steps_per_sec``) or
``"eval"`` (accuracies on the target test split and the source validation
split). A resumed run first drops the records written after its checkpoint,
so the file always describes one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Iterable


def _json_value(v: Any) -> Any:
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # "nan" / "inf": keep the file valid JSON
  return v


def read_metrics(path: str | os.PathLike, type: str | None = None  # pylint: disable=redefined-builtin
                 ) -> list[dict]:
  """The records of a ``metrics.jsonl`` file (optionally of one ``type``).

  A truncated last line (a run killed while writing) is ignored; a line
  that is not JSON before the last one raises
  :class:`tlax.train.workdir.WorkdirError` naming the file and the line.
  """
  records = []
  if not os.path.exists(path):
    return records
  with open(path, errors="replace") as f:
    lines = [(i, l.strip()) for i, l in enumerate(f, 1) if l.strip()]
  for k, (number, line) in enumerate(lines):
    try:
      rec = json.loads(line)
    except json.JSONDecodeError:
      if k == len(lines) - 1:
        continue  # cut short by a kill
      from tlax.train import workdir  # pylint: disable=g-import-not-at-top
      raise workdir.WorkdirError(
          f"{os.fspath(path)}, line {number}, is not a JSON record (the file "
          "was damaged or edited); delete that line, or the file to keep "
          "only what the next run writes.") from None
    if not isinstance(rec, dict):
      continue
    if type is None or rec.get("type") == type:
      records.append(rec)
  return records


def write_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and a rename (the
  temporary file is removed if the write fails)."""
  tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):  # a full disk, an interrupt: leave nothing behind
      os.remove(tmp)
    raise


class MetricsLog:
  """Appends records to ``metrics.jsonl``.

  Args:
    path: the file.
    keep_until_step: records with ``step <= keep_until_step`` already in the
      file are kept (a resumed run); None starts an empty file.
  """

  def __init__(self, path: str | os.PathLike, keep_until_step: int | None):
    self.path = os.fspath(path)
    if keep_until_step is None:
      self.records = []
    else:
      self.records = [r for r in read_metrics(self.path)
                      if r.get("step", 0) <= keep_until_step]
    write_atomic(self.path, "".join(json.dumps(r) + "\n"
                                    for r in self.records))

  def write(self, record: dict) -> None:
    record = {k: _json_value(v) for k, v in record.items()}
    self.records.append(record)
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
      f.flush()

  def of_type(self, type: str) -> Iterable[dict]:  # pylint: disable=redefined-builtin
    return [r for r in self.records if r.get("type") == type]
