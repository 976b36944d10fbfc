"""Learning curves from a run's ``metrics.jsonl``.

One panel per available quantity: target and source-validation accuracy
(evaluation records), the classification and alignment losses, the
alignment weight (lambda schedules), and method-specific values such as
DDAN's learned ``mu``, the domain classifier's accuracy, DSN's
reconstruction and difference losses (training records, averaged over
``log_every`` steps by the trainer).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

# (panel title, [(record type, key, label), ...]), drawn when any key exists.
PANELS = (
    ("accuracy (%)", [("eval", "target_accuracy", "target test"),
                      ("eval", "source_val_accuracy", "source val")]),
    ("classification loss", [("train", "cls_loss", "cls_loss")]),
    ("alignment loss", [("train", "align_loss", "align_loss")]),
    ("alignment weight", [("train", "align_weight", "weight")]),
    ("DDAN mu", [("train", "mu", "mu")]),
    ("domain classifier accuracy", [("train", "domain_acc", "domain_acc"),
                                    ("train", "d_acc", "critic acc")]),
    ("DSN terms", [("train", "recon_loss", "reconstruction"),
                   ("train", "difference_loss", "difference")]),
)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _series(records, rtype, key):
  pts = [(r["step"], r[key]) for r in records
         if r.get("type") == rtype and key in r]
  pts = [(s, float(v)) for s, v in pts
         if isinstance(v, (int, float)) and np.isfinite(float(v))]
  if not pts:
    return None
  return np.asarray([p[0] for p in pts]), np.asarray([p[1] for p in pts])


def plot_learning_curves(metrics_path: str, path: str, *,
                         title: str | None = None,
                         panels: Sequence = PANELS) -> str:
  """Saves the learning curves of one run as a PNG; returns ``path``."""
  from tlax.train.metrics_log import read_metrics  # pylint: disable=g-import-not-at-top
  records = read_metrics(metrics_path)
  drawn = []
  for name, keys in panels:
    lines = [(label, _series(records, t, k)) for t, k, label in keys]
    lines = [(label, s) for label, s in lines if s is not None]
    if lines:
      drawn.append((name, lines))
  plt = _pyplot()
  n = max(len(drawn), 1)
  cols = min(n, 3)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows),
                           squeeze=False)
  for ax in axes.flat[len(drawn):]:
    ax.axis("off")
  for ax, (name, lines) in zip(axes.flat, drawn):
    for label, (x, y) in lines:
      ax.plot(x, y, label=label, marker="." if len(x) < 30 else None)
    ax.set_title(name)
    ax.set_xlabel("step")
    if len(lines) > 1:
      ax.legend(loc="best")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def plot_runs(metrics_paths: dict, path: str, key: str = "target_accuracy",
              rtype: str = "eval", title: str | None = None) -> str:
  """One quantity for several runs on one axis (``{label: metrics.jsonl}``)."""
  from tlax.train.metrics_log import read_metrics  # pylint: disable=g-import-not-at-top
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for label, mpath in metrics_paths.items():
    s = _series(read_metrics(mpath), rtype, key)
    if s is not None:
      ax.plot(*s, label=label)
  ax.set_xlabel("step")
  ax.set_ylabel(key)
  ax.legend(loc="best")
  if title:
    ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
