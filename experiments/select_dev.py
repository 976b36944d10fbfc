r"""Chooses a method's hyperparameter per run without target labels (DEV).

Each candidate value of a hyperparameter is a finished sweep of the same
method, tasks and seeds under its own root (``experiments/sweep.py`` with
``--config=<file>:<hparam>=<value> --root=<root>``). For every task and seed
this script picks, among the candidates, the run with the lowest
importance-weighted validation risk (DEV: You et al., ICML 2019, recorded by
the trainer at every evaluation, :mod:`tlax.train.selection`), and reports
that run's target accuracy. Target labels are only read for the reported
number, never for the choice.

Two columns, as in the sweep tables:

* ``final``: the value chosen by the DEV risk at the last step, and the
  target accuracy at the last step;
* ``DEV selected``: value and step chosen jointly, by the lowest DEV risk
  over every evaluation of every candidate run.

Mean ± std over seeds (ddof=1) per task; the ``average`` row is the mean of
the task means, its ± the std over seeds of the per-seed average.

COMMAND (the Office-Caltech10 grid of docs/results_deep_da.md):
  python -m experiments.select_dev --method=coral \
    --candidates=1:runs/deep_da,0.1:runs/deep_da_grid/lam0.1,0.01:runs/deep_da_grid/lam0.01 \
    --tasks=office_caltech10 --out=docs/results_dev_grid.md
"""

from __future__ import annotations

import collections
import json
import os

from absl import app
from absl import flags

from experiments import sweep

# Checked in main() rather than required=True: a required flag would fail
# the parsing of any other tool (or test) that imports this module.
_METHOD = flags.DEFINE_string("method", None, "Method name (run folder).")
_CANDIDATES = flags.DEFINE_list(
    "candidates", None, "value:root pairs, one per candidate value.")
_HPARAM = flags.DEFINE_string("hparam", "lambda", "Name of the hyperparameter "
                              "(for the table only).")
# --tasks, --seeds and --out are experiments/sweep.py's flags (same meaning;
# --out: the table is appended to the file).

def read_evals(run_dir: str) -> list[dict]:
  """The evaluation records (``type == "eval"``) of a finished run."""
  if not os.path.exists(os.path.join(run_dir, "result.json")):
    raise FileNotFoundError(f"{run_dir} has no result.json: the sweep of this "
                            "candidate has not finished.")
  evals = []
  with open(os.path.join(run_dir, "metrics.jsonl")) as f:
    for line in f:
      row = json.loads(line)
      if row.get("type") == "eval":
        evals.append(row)
  if not evals or any(r.get("dev_risk") is None for r in evals):
    raise ValueError(f"{run_dir} has no DEV risk records (made before DEV "
                     "was recorded, or with config.iw_validation off).")
  return evals


def choose(candidates: dict[str, list[dict]]) -> dict[str, tuple]:
  """``{"final": (value, acc), "dev": (value, step, acc)}`` for one run.

  ``candidates`` maps each value to its run's evaluation records. Ties go to
  the earlier candidate (``--candidates`` order) and the later step.
  """
  order = list(candidates)
  final = min(order, key=lambda v: (candidates[v][-1]["dev_risk"],
                                    order.index(v)))
  value, r = min(((v, r) for v in order for r in candidates[v]),
                 key=lambda vr: (vr[1]["dev_risk"], order.index(vr[0]),
                                 -vr[1]["step"]))
  return {"final": (final, candidates[final][-1]["target_accuracy"]),
          "dev": (value, r["step"], r["target_accuracy"])}


def run(method, candidates, groups, seeds):
  """Per-task choices: ``{(source, target): [choice per seed]}``."""
  out = {}
  for _, tasks in groups:
    for source, target in tasks:
      out[(source, target)] = [
          choose({value: read_evals(os.path.join(
              root, method, sweep.task_dir(source, target), str(seed)))
                  for value, root in candidates})
          for seed in seeds]
  return out


def make_table(method, hparam, choices, groups, values) -> str:
  """One row per task (mean ± std over seeds) and the group average, as
  :func:`experiments.sweep._cells` computes them for the sweep tables."""
  lines = [f"| task | final | DEV selected | {hparam} chosen (DEV selected) |",
           "|---|---:|---:|---|"]
  for group, tasks in groups:
    n_seeds = len(choices[tasks[0]])
    # The chosen runs' accuracies as sweep results: one "method" per column.
    results = {(col, src, tgt, i): {"target_accuracy": c[col][-1]}
               for src, tgt in tasks
               for i, c in enumerate(choices[(src, tgt)])
               for col in ("final", "dev")}
    cols = [sweep._cells(results, col, tasks, range(n_seeds), "final")  # pylint: disable=protected-access
            for col in ("final", "dev")]
    for j, (source, target) in enumerate(tasks):
      counts = collections.Counter(c["dev"][0]
                                   for c in choices[(source, target)])
      chosen = ", ".join(f"{v} x{counts[v]}" for v in values if counts[v])
      lines.append(f"| {sweep._task_label(group, source, target)} | "  # pylint: disable=protected-access
                   f"{cols[0][0][j]} | {cols[1][0][j]} | {chosen} |")
    if len(tasks) > 1:
      lines.append(f"| **average** | {cols[0][1]} | {cols[1][1]} | |")
  header = (f"{method}: {hparam} in {{{', '.join(values)}}} chosen per run "
            "by the DEV risk (no target labels)\n\n")
  return header + "\n".join(lines) + "\n"


def main(argv):
  del argv
  if not _METHOD.value or not _CANDIDATES.value:
    raise app.UsageError("--method and --candidates are required.")
  candidates = []
  for spec in _CANDIDATES.value:
    value, sep, root = spec.partition(":")
    if not sep or not root:
      raise app.UsageError(f"--candidates item {spec!r} is not value:root.")
    candidates.append((value, root))
  groups = sweep.expand_tasks(sweep._TASKS.value)  # pylint: disable=protected-access
  choices = run(_METHOD.value, candidates, groups,
                sweep._SEEDS.value)  # pylint: disable=protected-access
  text = make_table(_METHOD.value, _HPARAM.value, choices, groups,
                    [v for v, _ in candidates])
  print(text)
  out = sweep._OUT.value  # pylint: disable=protected-access
  if out:
    with open(out, "a") as f:
      f.write("\n" + text)


if __name__ == "__main__":
  app.run(main)
