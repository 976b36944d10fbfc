r"""The main job: domain adaptation on the embedded default task, one command.

  python -m experiments.main_job

Trains a LeNet on the labelled source domain only (source-only, the lower
bound) and with each adaptation method of ``--methods`` (labelled source +
unlabelled target), on the default task of ``experiments/configs/common.py``
(``DEFAULT_SOURCE`` -> ``DEFAULT_TARGET``, embedded domains: no download).
Then it writes, for each adaptation method, a t-SNE picture of the source and
target features before adaptation (the source-only network) and after (the
adapted network), and prints a table with one line per method and a line
explaining each column.

Runs go to ``<root>/<method>/<source>--<target>/<seed>``, the layout of
:mod:`experiments.sweep`, so a finished run is read back instead of trained
again and a killed one resumes; ``python -m experiments.sweep --table_only``
with the same ``--root`` tabulates them too. Each method runs with its config
file's defaults (``experiments/configs/<method>.py``); ``--steps`` shortens
every run (``--quick``: the configs' ten-step test mode).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from experiments.configs import common
from tlax import train

# The methods trained besides source-only (config files in
# experiments/configs/): see docs/main_job.md for how they were chosen.
DEFAULT_METHODS = ("ddan", "dann")
# Training steps of every run: half the configs' 2000, so that the job takes
# about three minutes on two CPU cores.
DEFAULT_STEPS = 1000

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "configs")

# (header, explanation) of each column of the table.
COLUMNS = (
    ("method", "source_only trains on labelled source images only; every "
               "other method also sees the unlabelled target images."),
    ("target acc %", "accuracy on the target domain's held-out test images "
                     "after the last training step (target labels are used "
                     "for nothing else)."),
    ("vs source-only", "target accuracy minus source-only's, in points: "
                       "what the adaptation gained."),
    ("source-val acc %", "accuracy on held-out source images: the network "
                         "learned the source task; the gap to the target "
                         "accuracy is the cost of the domain shift."),
    ("time s", "wall-clock seconds this run took to train and evaluate "
               "(0 when read back from a finished run)."),
)


def method_config(name: str, *, quick: bool = False):
  """``get_config()`` of ``experiments/configs/<name>.py``."""
  path = os.path.join(CONFIG_DIR, f"{name}.py")
  if not os.path.isfile(path):
    known = sorted(f[:-3] for f in os.listdir(CONFIG_DIR)
                   if f.endswith(".py") and f not in ("__init__.py",
                                                      "common.py"))
    raise ValueError(f"--methods: no config file {path!r} for method "
                     f"{name!r}; known: {', '.join(known)}.")
  spec = importlib.util.spec_from_file_location(f"_main_job_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("quick" if quick else None)


def workdir_of(root: str, method: str, source: str, target: str,
               seed: int) -> str:
  """``<root>/<method>/<source>--<target>/<seed>``, as experiments.sweep."""
  task = f"{source.replace('/', '_')}--{target.replace('/', '_')}"
  return os.path.join(root, method, task, str(seed))


def _cell(values) -> str:
  """``"52.5"`` for one value, ``"52.5 ± 1.2"`` (std, ddof=1) for several."""
  if len(values) == 1:
    return f"{values[0]:.1f}"
  return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def format_table(rows, *, source: str, target: str, seeds,
                 steps: int, pictures=()) -> str:
  """The main job's report: a table, its column legend, the pictures.

  Args:
    rows: ``[(method, target_accs, source_val_accs, seconds), ...]`` with
      source-only first; accuracies in percent, one per seed.
    source, target: the task's domain names.
    seeds: the runs' seeds.
    steps: training steps per run.
    pictures: ``[(method, path), ...]`` of the feature pictures written.

  Returns:
    Plain text, one line per method.
  """
  base = float(np.mean(rows[0][1]))
  cells = [[m, _cell(acc),
            "-" if i == 0 else f"{float(np.mean(acc)) - base:+.1f}",
            _cell(val), f"{sec:.0f}"]
           for i, (m, acc, val, sec) in enumerate(rows)]
  header = [h for h, _ in COLUMNS]
  widths = [max(len(r[j]) for r in cells + [header])
            for j in range(len(header))]

  def line(r):
    return "  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                     for j, (c, w) in enumerate(zip(r, widths))).rstrip()

  if len(seeds) == 1:
    what = f"one run per method (seed {seeds[0]}"
  else:
    what = (f"mean ± std over seeds {', '.join(map(str, seeds))} "
            f"({len(seeds)} runs per method")
  out = [f"Domain adaptation {source} -> {target}: {what}, {steps} "
         "training steps each).",
         "", line(header), line(["-" * w for w in widths])]
  out += [line(r) for r in cells]
  out += ["", "Columns:"]
  out += [f"  {h}: {text}" for h, text in COLUMNS]
  if pictures:
    out += ["", "t-SNE of source (blue) and target (red) features, top row "
                "before adaptation (source_only), bottom row after:"]
    out += [f"  {m}: {p}" for m, p in pictures]
  return "\n".join(out)


def feature_pictures(root: str, methods, source: str, target: str,
                     seed: int, embedding: str = "tsne",
                     max_points: int = 300) -> list[tuple[str, str]]:
  """Writes ``embedding_<embedding>.png`` into each adapted run's folder.

  Each figure has the source-only network's features (before adaptation) in
  its top row and the adapted network's (after) in its bottom row, for the
  same source training and target test examples.

  Returns:
    ``[(method, path), ...]``.
  """
  from tlax.viz import embedding as viz  # pylint: disable=g-import-not-at-top
  _, _, m0, s0 = viz.load_run(workdir_of(root, "source_only", source, target,
                                         seed))
  reference = ("source_only (before)", m0, s0.params, s0.state)
  out = []
  for name in methods:
    workdir = workdir_of(root, name, source, target, seed)
    _, task, method, st = viz.load_run(workdir)
    paths = viz.save_run_plots(workdir, method, st.params, st.state, task,
                               reference=reference, embedding=embedding,
                               max_points=max_points, seed=seed)
    out.append((name, paths[0]))
  return out


def run(methods=DEFAULT_METHODS, *, root: str = "runs/main", seeds=(0,),
        steps: int | None = None, plots: str = "tsne", quick: bool = False,
        source: str = common.DEFAULT_SOURCE,
        target: str = common.DEFAULT_TARGET) -> str:
  """Trains source-only and ``methods`` for each seed; the report text.

  The feature pictures are made for the first seed.
  """
  methods = [m for m in methods if m != "source_only"]
  rows, used_steps = [], None
  for name in ["source_only", *methods]:
    base = method_config(name, quick=quick)
    accs, vals, seconds = [], [], 0.0
    for seed in seeds:
      config = copy.deepcopy(base)
      with config.unlocked():
        config.source, config.target, config.seed = source, target, seed
        if steps is not None:
          config.steps = int(steps)
      workdir = workdir_of(root, name, source, target, seed)
      done = os.path.exists(os.path.join(workdir, "result.json"))
      print(f"[{name}] {'reading back' if done else 'training'} "
            f"{workdir}", flush=True)
      t0 = time.time()
      result = train.run_experiment(config, workdir)
      seconds += 0.0 if done else time.time() - t0
      used_steps = result["steps"]
      accs.append(result["target_accuracy"])
      vals.append(result["source_val_accuracy"])
    rows.append((name, accs, vals, seconds))
  pictures = []
  if plots != "none" and methods:
    print(f"[plots] {plots} of source and target features", flush=True)
    pictures = feature_pictures(root, methods, source, target, seeds[0],
                                plots)
  return format_table(rows, source=source, target=target, seeds=list(seeds),
                      steps=used_steps, pictures=pictures)


def define_flags():
  """The command-line flags (defined only when run as a program, so that
  importing this module next to :mod:`experiments.sweep` does not clash)."""
  flags.DEFINE_list(
      "methods", list(DEFAULT_METHODS),
      "Adaptation methods to train besides source-only: names of config "
      "files in experiments/configs/ (e.g. dann,cdan_e,ddan).")
  flags.DEFINE_list("seeds", ["0"], "Seeds; with several, the table gives "
                    "mean ± std over them.")
  flags.DEFINE_string("root", "runs/main", "Folder of the runs.")
  flags.DEFINE_integer("steps", DEFAULT_STEPS, "Training steps per run.")
  flags.DEFINE_enum("plots", "tsne", ["tsne", "pca", "none"],
                    "Embedding of the feature pictures (none: no pictures).")
  flags.DEFINE_bool("quick", False,
                    "Ten-step runs of a small MLP (a smoke test).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  train.quiet_orbax_logs()
  logging.set_verbosity(logging.WARNING)
  f = flags.FLAGS
  t0, c0 = time.time(), time.process_time()
  # --quick keeps its ten steps unless --steps is given.
  steps = None if f.quick and not f["steps"].present else f.steps
  text = run(f.methods, root=f.root, seeds=[int(x) for x in f.seeds],
             steps=steps,
             plots=f.plots, quick=f.quick)
  print()
  print(text)
  print(f"\nDone in {time.time() - t0:.0f} s ({time.process_time() - c0:.0f} "
        "s of CPU time).", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  app.run(main)
