r"""How far each label-free selection is from the oracle, over finished runs.

  python -m experiments.validators_table --root=runs/validators \
    --out=docs/results_validators.md

Reads every run under ``<root>/<method>/<task>/<seed>/`` (``metrics.jsonl``
and ``result.json``, as the sweep writes them; runs made with
``--config.validators=entropy,bnm,snd,class_ami,mixval,reverse``). For each
run the oracle is the best target accuracy over its evaluated steps (it
reads target labels: it is the reference, never a selection). Each
selector picks the evaluated step with its best score; its gap is the
oracle's accuracy minus the pick's. A pick whose target accuracy is below
the final accuracy of the source-only run of the same task and seed
(``<root>/source_only/<task>/<seed>``) is flagged.

Selectors: ``final`` (the last step), ``src_val`` (source-validation
accuracy), ``dev`` (importance-weighted validation risk, lowest), and the
validators of :mod:`tlax.train.validators` (highest).
"""

from __future__ import annotations

import argparse
import collections
import os

import numpy as np

from tlax.train import validators as validators_lib
from tlax.train.metrics_log import read_metrics
from tlax.train.metrics_log import write_atomic

SELECTORS = ("final", "src_val", "dev") + tuple(
    f"val_{v}" for v in validators_lib.VALIDATORS)


def pick(evals: list[dict], selector: str) -> dict | None:
  """The evaluation a selector chooses (None when it was not recorded)."""
  if selector == "final":
    return max(evals, key=lambda r: r["step"])
  key = {"src_val": "source_val_accuracy", "dev": "dev_risk"}.get(selector,
                                                                   selector)
  scored = [r for r in evals if r.get(key) is not None]
  if not scored:
    return None
  sign = -1.0 if key == "dev_risk" else 1.0
  return max(scored, key=lambda r: (sign * r[key], r["step"]))


def collect(root: str):
  """``{(method, task, seed): evals}`` of the finished runs under ``root``."""
  runs = {}
  for method in sorted(os.listdir(root)):
    for task in sorted(os.listdir(os.path.join(root, method))):
      task_dir = os.path.join(root, method, task)
      if not os.path.isdir(task_dir):
        continue
      for seed in sorted(os.listdir(task_dir)):
        run = os.path.join(task_dir, seed)
        if not os.path.exists(os.path.join(run, "result.json")):
          continue
        evals = read_metrics(os.path.join(run, "metrics.jsonl"), type="eval")
        evals = [r for r in evals if r.get("target_accuracy") is not None]
        if evals:
          runs[(method, task, seed)] = evals
  return runs


def summarise(runs) -> list[dict]:
  """One row per selector: mean and worst gap to the oracle, picks below
  source-only, over the adaptation runs (source-only runs included)."""
  baseline = {(task, seed): pick(evals, "final")["target_accuracy"]
              for (method, task, seed), evals in runs.items()
              if method == "source_only"}
  rows = []
  for selector in SELECTORS:
    gaps, below, n = [], 0, 0
    worst = None
    for (method, task, seed), evals in runs.items():
      chosen = pick(evals, selector)
      if chosen is None:
        continue
      oracle = max(r["target_accuracy"] for r in evals)
      gap = oracle - chosen["target_accuracy"]
      gaps.append(gap)
      n += 1
      if worst is None or gap > worst[0]:
        worst = (gap, f"{method} {task} seed {seed}")
      base = baseline.get((task, seed))
      if base is not None and chosen["target_accuracy"] < base:
        below += 1
    if n:
      rows.append({"selector": selector, "runs": n,
                   "mean_gap": float(np.mean(gaps)), "worst_gap": worst[0],
                   "worst_run": worst[1], "below_source_only": below})
  return rows


def table(rows) -> str:
  lines = ["| selector | runs | mean gap to oracle | worst gap (run) | "
           "picks below source-only |", "|---|---:|---:|---|---:|"]
  for r in sorted(rows, key=lambda r: r["mean_gap"]):
    lines.append(f"| {r['selector']} | {r['runs']} | {r['mean_gap']:.2f} | "
                 f"{r['worst_gap']:.2f} ({r['worst_run']}) | "
                 f"{r['below_source_only']} |")
  return "\n".join(lines) + "\n"


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--root", default="runs/validators",
                      help="Root of the runs.")
  parser.add_argument("--out", default=None,
                      help="Markdown file for the table.")
  args = parser.parse_args(argv)
  runs = collect(args.root) if os.path.isdir(args.root) else {}
  if not runs:
    raise SystemExit(f"No finished runs under {args.root!r}: run the sweep "
                     "first (see this script's docstring).")
  methods = collections.Counter(m for m, _, _ in runs)
  text = (f"Gap (points of target accuracy) between each label-free "
          f"selection and the oracle step, over {len(runs)} runs "
          f"({', '.join(f'{m}: {c}' for m, c in sorted(methods.items()))}).\n\n"
          + table(summarise(runs)))
  print(text)
  if args.out:
    write_atomic(args.out, text)


if __name__ == "__main__":
  main()
