r"""Chooses conv_sparse_coding's window and pooling grid on development tasks.

The self-taught tables (``selftaught`` task group) must not choose a
learner's settings by their own target labels. This script runs
``conv_sparse_coding`` (``experiments/configs/selftaught/classification.py``)
for every window side of ``--patches`` and pooling grid of ``--pools`` on
the ``selftaught_dev`` task group instead: the reported tasks with their
roles swapped or their sister domain (USPS -> letters, letters -> MNIST,
photos -> COIL2, digits 0-4 -> 5-9), whose target examples are not those of
the reported tasks (the font letters are rendered with another seed,
:data:`DEV_LETTERS_SEED`, wherever they appear). The score of a setting is
the mean accuracy over the dev tasks, the seeds and ``k`` = 1, 5, 10; the
highest wins, and the config's ``PATCH`` and ``POOL`` hold the winner.

Runs go to ``<root>/p<patch>_pool<pool>/<task>/<seed>`` through the runner
contract (finished runs are read back, so the command resumes);
``--table_only`` rebuilds the page from finished runs.

COMMAND (docs/results_self_taught_dev.md):
  python -m experiments.selftaught_dev --patches=5,6,8 --pools=2,3 \
    --seeds=0,1,2 --root=runs/selftaught_dev \
    --out=docs/results_self_taught_dev.md
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
import numpy as np

from experiments import pages
from experiments import sweep

_PATCHES = flags.DEFINE_list("patches", ["5", "6", "8"], "Window sides.")
_POOLS = flags.DEFINE_list("pools", ["2", "3"], "Pooling grid sides.")
# --seeds, --root, --out and --table_only are experiments/sweep.py's flags
# (same meaning).
_QUICK = flags.DEFINE_bool("quick", False, "The learner's quick settings "
                           "(seconds a run; for tests).")
_KS = (1, 5, 10)
GROUP = "selftaught_dev"
# The rendering seed of fonts/letters in the development runs (the reported
# tasks use the domain's default, 0): other letter images.
DEV_LETTERS_SEED = 1


def make_config(patch: int, pool: int, source: str, target: str, seed: int,
                quick: bool = False):
  from experiments.configs.selftaught import classification  # pylint: disable=g-import-not-at-top
  c = classification.get_config("conv_sparse_coding"
                                + (",quick" if quick else ""))
  c.learner.conv_sparse_coding.patch = int(patch)
  c.learner.conv_sparse_coding.pool = int(pool)
  c.ks = _KS
  c.domain_options.fonts_letters.seed = DEV_LETTERS_SEED
  c.source, c.target, c.seed = source, target, int(seed)
  return c


def score(result: dict) -> float:
  """Mean accuracy over ``k`` = 1, 5, 10 of one run."""
  return float(np.mean([result[f"k{k}"] for k in _KS]))


def _ints(values, flag, lowest=1):
  try:
    out = [int(v) for v in values]
  except ValueError:
    raise app.UsageError(f"--{flag} takes integers, got {values}.") from None
  if not out or min(out) < lowest:
    raise app.UsageError(f"--{flag} takes integers >= {lowest}, got "
                         f"{values}.")
  return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  patches, pools = _ints(_PATCHES.value, "patches"), _ints(_POOLS.value,
                                                           "pools")
  seeds = _ints(sweep._SEEDS.value, "seeds", lowest=0)
  tasks = sweep.TASK_GROUPS[GROUP]
  settings = [(p, g) for p in patches for g in pools]
  failures, rows, wall = [], {}, []
  n_total, i = len(settings) * len(tasks) * len(seeds), 0
  for patch, pool in settings:
    cells = []
    for source, target in tasks:
      scores = []
      for seed in seeds:
        i += 1
        workdir = os.path.join(sweep._ROOT.value, f"p{patch}_pool{pool}",
                               sweep.task_dir(source, target), str(seed))
        result = pages.run_or_read(
            workdir, lambda p=patch, g=pool, s=source, t=target, e=seed:
            make_config(p, g, s, t, e, _QUICK.value), sweep._TABLE_ONLY.value,
            failures,
            f"[{i}/{n_total}] patch {patch}, pool {pool}: {source} -> "
            f"{target}, seed {seed}")
        if result is not None:
          scores.append(score(result))
          wall.append(float(result.get("wall_time_s", 0.0)))
      cells.append(scores)
    rows[(patch, pool)] = cells
  complete = {s: c for s, c in rows.items()
              if all(len(v) == len(seeds) for v in c)}
  if not complete:
    return pages.nothing_finished("selftaught_dev", sweep._ROOT.value,
                                  "settings")
  best = max(complete, key=lambda s: np.mean([np.mean(v)
                                              for v in complete[s]]))
  header = ("| patch | pool | " + " | ".join(
      f"{sweep.short(s)} → {sweep.short(t)}" for s, t in tasks)
            + " | average |")
  lines = [header, "|" + "---:|" * (len(tasks) + 3)]
  for (patch, pool), cells in rows.items():
    vals = [f"{np.mean(v):.1f}" if len(v) == len(seeds) else "-"
            for v in cells]
    avg = (f"{np.mean([np.mean(v) for v in cells]):.1f}"
           if (patch, pool) in complete else "-")
    if (patch, pool) == best:
      avg = f"**{avg}**"
    lines.append(f"| {patch} | {pool} | " + " | ".join(vals) + f" | {avg} |")
  command = ("python -m experiments.selftaught_dev "
             f"--patches={','.join(map(str, patches))} "
             f"--pools={','.join(map(str, pools))} "
             f"--seeds={','.join(map(str, seeds))} --root={sweep._ROOT.value}"
             + (" --quick" if _QUICK.value else "")
             + (f" --out={sweep._OUT.value}" if sweep._OUT.value else ""))
  text = (
      "# Self-taught learning: conv_sparse_coding's settings on development "
      "tasks\n\n"
      "Mean test accuracy (%) over k = 1, 5 and 10 labelled examples per "
      f"class and seeds {', '.join(map(str, seeds))}, per development task "
      "(the `selftaught_dev` task group: no target example of the reported "
      "self-taught tasks); the highest average, in bold, is the setting of "
      "`experiments/configs/selftaught/classification.py` "
      f"(patch {best[0]}, pool {best[1]}).\n\n"
      f"Rebuilt with:\n\n```\n{command}\n```\n\n"
      f"({len(wall)} of {n_total} runs finished, {sum(wall) / 60:.1f} min of "
      "run wall time in total.)\n\n" + "\n".join(lines) + "\n")
  print(f"chosen: patch {best[0]}, pool {best[1]}")
  return pages.finish(text, failures, sweep._OUT.value)


if __name__ == "__main__":
  app.run(pages.command_line(main))
