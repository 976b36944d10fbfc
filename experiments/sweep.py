r"""Runs methods x tasks x seeds and writes a markdown table of the results.

  python -m experiments.sweep --config=experiments/configs/source_only.py \
    --tasks=office_caltech10,mnist_usps,default --seeds=0,1,2 --root=runs \
    --out=docs/results_source_only.md

Every run goes through :func:`tlax.train.run_experiment` in this process,
in ``<root>/<method>/<source>--<target>/<seed>`` (slashes of domain names
become underscores). Finished runs are skipped (their ``result.json`` is
read back) and killed ones resume from their checkpoint, so the sweep can be
stopped and restarted at any time. ``--config.<field>=...`` overrides apply
to every run of ``--config``; ``--methods`` adds further config files (e.g.
``--methods=experiments/configs/dann.py,experiments/configs/dan.py``).
``--group=K`` trains up to K seeds of a method and task as one program
(:mod:`tlax.train.many_runs`, docs/many_runs.md), each in its own workdir.

The table has one row per task: the target accuracy (percent) at the final
step, and at the steps selected without target labels by source-validation
accuracy and by the importance-weighted (DEV) validation risk
(``--columns``), as mean ± standard deviation over seeds (ddof=1). Runs
made before DEV was recorded show "-" in its column. The
``average`` row of a group is the mean of the task means; its ± is the
standard deviation over seeds of the per-seed average over tasks.

A table is never replaced by one with fewer finished cells (a rerun whose
runs all fail, a mistyped override): the sweep then prints the new table,
leaves ``--out`` as it was and exits with status 1. Seeds must be distinct
integers. SIGINT / SIGTERM stop the sweep after checkpointing the current
run (exit status 130 / 143); rerunning the same command continues it.

Task groups (``--tasks``, comma-separated): ``office_caltech10`` (the 12
ordered pairs), ``mnist_usps`` (both directions), ``coil20`` (both
directions), ``default`` (the embedded default task, ``digits/fonts`` ->
``digits/sklearn``), ``sklearn_mnistm`` (the embedded ``digits/sklearn`` ->
``digits/mnistm``), ``selftaught`` and ``selftaught_clustering``
(experiments/configs/selftaught/), the zero-shot groups ``zsl_digits``,
``zsl_office``, ``zsl_pacs`` and ``gbu`` (experiments/configs/zsl/), ``ssl``
(USPS, MNIST and sklearn digits, each with itself: semi-supervised
learning), ``ssda`` (SynDigits -> USPS), or one task written
``<source>:<target>``.
"""

from __future__ import annotations

import collections
import copy
import datetime
import importlib.util
import itertools
import json
import os
import re
import sys
import time
import traceback

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
import tqdm

from experiments.configs import common
from tlax import train
from tlax.train import workdir as workdir_lib
from tlax.train.metrics_log import write_atomic

_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/configs/source_only.py",
    "Config file of the (first) method.", lock_config=True)
_METHODS = flags.DEFINE_list(
    "methods", [], "More config files (path[:arg]), run with the same tasks "
    "and seeds; --config.* overrides do not apply to them.")
_TASKS = flags.DEFINE_list("tasks", ["default"], "Task groups or src:tgt.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
_ROOT = flags.DEFINE_string("root", "runs", "Root folder of the workdirs.")
_OUT = flags.DEFINE_string("out", None, "Markdown file for the table.")
_LAYOUT = flags.DEFINE_enum(
    "layout", "tasks", ["tasks", "methods"],
    "tasks: a row per task, columns per method; methods: a row per method, a "
    "column per task (one table per column key).")
_TABLE_ONLY = flags.DEFINE_bool(
    "table_only", False,
    "Train nothing: build the table from the runs that have finished "
    "(result.json), '-' for the others.")
_COLUMNS = flags.DEFINE_list(
    "columns", ["final", "src_val", "dev"],
    "Table columns per method: final (last step), src_val (selected by "
    "source-validation accuracy), dev (selected by importance-weighted "
    "validation risk).")
_GROUP = flags.DEFINE_integer(
    "group", 1,
    "Train up to this many seeds of a method and task as one program "
    "(jax.vmap over their train states, tlax.train.many_runs); 1: one run "
    "at a time. Each run still gets its own workdir and result.json.")

_OFFICE = ("amazon", "caltech", "dslr", "webcam")
TASK_GROUPS = {
    "office_caltech10": [(f"office_caltech10/{s}", f"office_caltech10/{t}")
                         for s, t in itertools.permutations(_OFFICE, 2)],
    "mnist_usps": [("mnist_usps/mnist", "mnist_usps/usps"),
                   ("mnist_usps/usps", "mnist_usps/mnist")],
    "coil20": [("coil20/coil1", "coil20/coil2"),
               ("coil20/coil2", "coil20/coil1")],
    "default": [(common.DEFAULT_SOURCE, common.DEFAULT_TARGET)],
    # Self-taught learning (unlabelled source -> labelled target) and
    # self-taught clustering (auxiliary -> clustered target):
    # experiments/configs/selftaught/.
    "selftaught": [("mnist_usps/mnist", "fonts/letters"),
                   ("fonts/letters", "mnist_usps/usps"),
                   ("photos/sklearn", "coil20/coil1"),
                   ("digits/sklearn[5-9]", "digits/sklearn[0-4]")],
    # Development tasks for the self-taught learners' settings
    # (experiments/selftaught_dev.py): no target example of "selftaught".
    "selftaught_dev": [("mnist_usps/usps", "fonts/letters"),
                       ("fonts/letters", "mnist_usps/mnist"),
                       ("photos/sklearn", "coil20/coil2"),
                       ("digits/sklearn[0-4]", "digits/sklearn[5-9]")],
    "selftaught_clustering": [("coil20/coil2", "coil20/coil1"),
                              ("mnist_usps/mnist", "mnist_usps/usps"),
                              ("mnist_usps/usps", "mnist_usps/mnist")],
    # Zero-shot tasks (experiments/configs/zsl/): the seed draws the split.
    "zsl_digits": [("mnist_usps/mnist", "mnist_usps/usps"),
                   ("mnist_usps/mnist", "mnist_usps/mnist")],
    "zsl_office": [(f"office_caltech10/{d}", f"office_caltech10/{d}")
                   for d in ("amazon", "caltech")],
    "zsl_pacs": [(f"pacs/{d}", f"pacs/{d}") for d in ("photo", "sketch")],
    "gbu": [(f"gbu/{d}", f"gbu/{d}")
            for d in ("AWA1", "AWA2", "CUB", "SUN", "APY")],
    "sklearn_mnistm": [("digits/sklearn", "digits/mnistm")],
    # Classic semi-supervised learning within one domain (labels_per_class).
    "ssl": [("mnist_usps/usps", "mnist_usps/usps"),
            ("mnist_usps/mnist", "mnist_usps/mnist"),
            ("digits/sklearn", "digits/sklearn")],
    # Semi-supervised domain adaptation (target_labeled_per_class).
    "ssda": [("digits/syndigits", "mnist_usps/usps")],
}


def expand_tasks(specs) -> list[tuple[str, list[tuple[str, str]]]]:
  """``[(group name, [(source, target), ...]), ...]`` for ``--tasks``."""
  groups = []
  for spec in specs:
    if spec in TASK_GROUPS:
      groups.append((spec, TASK_GROUPS[spec]))
    elif spec.count(":") == 1:
      source, target = spec.split(":")
      groups.append((spec, [(source, target)]))
    else:
      raise ValueError(f"Unknown task group {spec!r}; valid: "
                       f"{', '.join(TASK_GROUPS)}, or <source>:<target>.")
  return groups


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """``get_config(arg)`` of ``path[:arg]``."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"Config file {path!r} not found.")
  module_spec = importlib.util.spec_from_file_location("_sweep_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)


class SweepError(workdir_lib.RunError, ValueError):
  """A bad sweep flag (printed as one line by the command line)."""


def parse_seeds(values) -> list[int]:
  """``--seeds`` as distinct integers, or a SweepError naming the bad ones."""
  seeds = []
  for v in values:
    try:
      seeds.append(int(str(v).strip()))
    except ValueError:
      raise SweepError(f"--seeds: {v!r} is not an integer; give distinct "
                       "integers such as --seeds=0,1,2.") from None
  if not seeds:
    raise SweepError("--seeds is empty; give integers such as --seeds=0,1,2.")
  dups = sorted({s for s in seeds if seeds.count(s) > 1})
  if dups:
    raise SweepError(f"--seeds repeats {', '.join(map(str, dups))}: a "
                     "repeated seed is the same run counted twice (its ± "
                     "would be 0); give distinct seeds.")
  return seeds


def finished_cells(text: str) -> int:
  """The number of table cells holding a number in a markdown page (header
  rows and the first column, the row labels, are not counted)."""
  lines = text.splitlines()
  count = 0
  for i, line in enumerate(lines):
    if not line.startswith("|") or re.match(r"^\|[-:| ]+\|$", line):
      continue
    if i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1]):
      continue  # a header row
    cells = [c.strip() for c in line.strip().strip("|").split("|")][1:]
    count += sum(bool(re.search(r"\d", c)) for c in cells)
  return count


def short(domain: str) -> str:
  return domain.split("/")[-1]


def task_dir(source: str, target: str) -> str:
  return f"{source.replace('/', '_')}--{target.replace('/', '_')}"


def _fmt(values) -> str:
  """``mean ± std`` of the finished runs; says how many when some are not."""
  done = [v for v in values if v is not None]
  if not done:
    return "-"
  if len(done) == 1:
    cell = f"{done[0]:.1f}"
  else:
    cell = f"{np.mean(done):.1f} ± {np.std(done, ddof=1):.1f}"
  if len(done) < len(values):
    cell += f" ({len(done)} of {len(values)} seeds)"
  return cell


# Columns of the tables: (key, header, how to read it from a result).
COLUMNS = {
    "final": ("final", lambda r: r["target_accuracy"]),
    "src_val": ("src-val selected",
                lambda r: (r.get("selected") or {}).get("target_accuracy")),
    "dev": ("DEV selected",
            lambda r: (r.get("selected_dev") or {}).get("target_accuracy")),
}

_BUILTIN_COLUMNS = tuple(COLUMNS)


def _result_key(key):
  """A reader of ``result[key]`` (dotted for nested fields) as a column."""
  def get(r):
    node = r
    for part in key.split("."):
      if not isinstance(node, dict) or node.get(part) is None:
        return None
      node = node[part]
    return node
  return (key, get)


def _check_columns(columns) -> None:
  for c in columns:
    if c not in COLUMNS:  # any result field works as a column
      if not c or not all(p.isidentifier() for p in c.split(".")):
        raise ValueError(f"Unknown column {c!r}; known: {sorted(COLUMNS)} "
                         "or a result.json field such as gzsl_h.")
      COLUMNS[c] = _result_key(c)


def _cells(results, method, tasks, seeds, key):
  """``(one "mean ± std" cell per task, the average cell)`` of a method.

  The average is the mean over tasks and seeds, ± the std over seeds of the
  per-seed average over tasks ("-" unless every run is there).
  """
  get = COLUMNS[key][1]
  mat = [[get(r) if (r := results.get((method, src, tgt, s))) else None
          for src, tgt in tasks] for s in seeds]          # seeds x tasks
  cells = [_fmt([row[j] for row in mat]) for j in range(len(tasks))]
  if any(v is None for row in mat for v in row):
    return cells, "-"
  mat = np.array(mat, dtype=np.float64)
  std = mat.mean(axis=1).std(ddof=1) if len(seeds) > 1 else 0.0
  return cells, f"**{mat.mean():.1f} ± {std:.1f}**"


def _task_label(group, source, target, compact=False):
  if group in ("default", "sklearn_mnistm"):
    return f"{source} → {target}"
  s, t = short(source), short(target)
  return f"{s[0].upper()}→{t[0].upper()}" if compact else f"{s} → {t}"


def _md_row(cells) -> str:
  return "| " + " | ".join(cells) + " |"


def make_table(results, groups, methods, seeds,
               columns=("final", "src_val", "dev")) -> str:
  """Markdown tables (one per group) of ``results[(method, src, tgt, seed)]``:
  a row per task (and the average), columns per method.

  ``columns``: keys of :data:`COLUMNS`, the target accuracy at the final
  step and at the steps the label-free criteria select.
  """
  _check_columns(columns)
  lines = []
  for group, tasks in groups:
    header = ["task"]
    for m in methods:
      prefix = f"{m} " if len(methods) > 1 else ""
      header += [f"{prefix}{COLUMNS[c][0]}" for c in columns]
    cols = [_cells(results, m, tasks, seeds, key) for m in methods
            for key in columns]
    lines += [f"### {group}\n", _md_row(header), "|" + "---|" * len(header)]
    for j, (source, target) in enumerate(tasks):
      lines.append(_md_row([_task_label(group, source, target)]
                           + [cells[j] for cells, _ in cols]))
    if len(tasks) > 1:
      lines.append(_md_row(["**average**"] + [avg for _, avg in cols]))
    lines.append("")
  return "\n".join(lines)


def make_method_table(results, groups, methods, seeds,
                      columns=("final", "dev")) -> str:
  """Markdown tables with one row per method and one column per task.

  One table per (group, column key); the last column is the average over
  the group's tasks (± the std over seeds of the per-seed task average).
  Task names are shortened to initials (``A→W``) when the group has more
  than four tasks.
  """
  _check_columns(columns)
  lines = []
  for group, tasks in groups:
    compact = len(tasks) > 4
    for key in columns:
      header = ["method"] + [_task_label(group, s, t, compact)
                             for s, t in tasks]
      if len(tasks) > 1:
        header.append("average")
      lines += [f"### {group}: {COLUMNS[key][0]}\n", _md_row(header),
                "|---|" + "---:|" * (len(header) - 1)]
      for m in methods:
        cells, avg = _cells(results, m, tasks, seeds, key)
        lines.append(_md_row([m] + cells + ([avg] if len(tasks) > 1 else [])))
      lines.append("")
  return "\n".join(lines)


def seeds_phrase(seeds) -> str:
  """How the cells aggregate: one run, or mean ± std over the seeds."""
  if len(seeds) == 1:
    return f"one run per cell (seed {seeds[0]}, no ± with one seed)"
  return f"mean ± std over seeds {', '.join(map(str, seeds))} (ddof=1)"


def provenance(results: dict) -> str:
  """"on <devices>; jax <versions>" of the finished runs (their result.json).

  Runs made on several devices (a sweep resumed on another machine) are
  counted per device, so a table says which of its numbers came from where.
  """
  def counted(key, default):
    counts = collections.Counter(r.get(key, default) for r in results.values())
    if len(counts) <= 1:
      return ", ".join(counts) or "?"
    return ", ".join(f"{k} ({n} run{'s' if n != 1 else ''})"
                     for k, n in sorted(counts.items()))
  return (f"on {counted('device', '?')}; "
          f"jax {counted('jax_version', jax.__version__)}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  train.quiet_orbax_logs()
  code = workdir_lib.run_cli(_sweep)
  sys.stdout.flush()
  if code:
    sys.exit(code)


def _sweep():
  t0 = time.time()
  if _OUT.value and os.path.isdir(_OUT.value):
    raise workdir_lib.RunError(f"--out {_OUT.value} is a folder; give the "
                               "table's file, e.g. --out=docs/results.md.")
  try:
    _check_columns(_COLUMNS.value)
    groups = expand_tasks(_TASKS.value)
    seeds = parse_seeds(_SEEDS.value)
    configs = [_CONFIG.value] + [load_config_file(p) for p in _METHODS.value]
  except (ValueError, FileNotFoundError) as e:  # a flag: one error line
    raise workdir_lib.RunError(str(e)) from None
  methods = [c.method.name for c in configs]
  if len(set(methods)) != len(methods):
    raise ValueError(f"Two configs of the same method: {methods}.")
  runs = [(c, source, target, seed) for c in configs
          for _, tasks in groups for source, target in tasks for seed in seeds]
  results, failures = {}, []
  if _GROUP.value < 1:
    raise ValueError(f"--group must be >= 1, got {_GROUP.value}.")
  grouped = _GROUP.value > 1 and not _TABLE_ONLY.value
  if grouped:
    _run_grouped(runs, results, failures)
  bar = tqdm.tqdm([] if grouped else runs, desc="sweep", dynamic_ncols=True,
                  disable=not sys.stderr.isatty())
  for base, source, target, seed in bar:
    method = base.method.name
    bar.set_postfix_str(f"{method} {short(source)}->{short(target)} s{seed}")
    config = copy.deepcopy(base)
    with config.unlocked():
      config.source, config.target, config.seed = source, target, seed
    workdir = os.path.join(_ROOT.value, method, task_dir(source, target),
                           str(seed))
    if _TABLE_ONLY.value:
      path = os.path.join(workdir, "result.json")
      if os.path.exists(path):
        results[(method, source, target, seed)] = workdir_lib.read_result(
            path)
      continue
    try:
      results[(method, source, target, seed)] = train.run_experiment(
          config, workdir)
    except (workdir_lib.RunInterrupted, KeyboardInterrupt):
      bar.close()
      raise
    except workdir_lib.run_errors() as e:  # the message says it all
      failures.append((workdir, f"{type(e).__name__}: {e}"))
      logging.error("Run %s failed: %s", workdir, failures[-1][1])
    except Exception as e:  # pylint: disable=broad-except
      logging.error("Run %s failed:\n%s", workdir, traceback.format_exc())
      failures.append((workdir, f"{type(e).__name__}: {e}"))
  bar.close()
  if _TABLE_ONLY.value and not results:
    raise workdir_lib.RunError(
        f"--table_only: no finished run (result.json) under {_ROOT.value} "
        f"for methods {', '.join(methods)}, tasks {', '.join(_TASKS.value)} "
        f"and seeds {', '.join(map(str, seeds))}; nothing written. Check "
        "--root, --tasks and --seeds.")

  for c in _COLUMNS.value:
    if c not in _BUILTIN_COLUMNS and results and all(
        COLUMNS[c][1](r) is None for r in results.values()):
      fields = sorted(k for k, v in next(iter(results.values())).items()
                      if isinstance(v, (int, float)))
      raise workdir_lib.RunError(
          f"--columns: no finished result has the field {c!r}; known "
          f"columns: {', '.join(_BUILTIN_COLUMNS)} or a numeric result.json "
          f"field ({', '.join(fields)}); nothing written.")

  command = "python -m experiments.sweep " + " ".join(
      a for a in sys.argv[1:])
  wall = sum(r.get("wall_time_s", 0.0) for r in results.values())
  header = (
      f"# Results: {', '.join(methods)}\n\n"
      + (f"Target accuracy (%) at the final step and at the steps selected "
         f"without target labels (src-val: best source-validation accuracy; "
         f"DEV: lowest importance-weighted validation risk, "
         f"tlax/train/selection.py), {seeds_phrase(seeds)}.\n\n"
         if set(_COLUMNS.value) & {"final", "src_val", "dev"} else
         f"The result.json fields {', '.join(_COLUMNS.value)}, "
         f"{seeds_phrase(seeds)}.\n\n") +
      f"Rebuilt with:\n\n```\n{command}\n```\n\n"
      f"({len(results)} of {len(runs)} runs finished, {wall / 60:.1f} min "
      f"of training wall time in total, {provenance(results)}; "
      f"{datetime.date.today().isoformat()}. Settings of each run: "
      f"`config` in its `result.json` under `{_ROOT.value}/`.)\n\n")
  if _LAYOUT.value == "methods":
    table = make_method_table(results, groups, methods, seeds,
                              _COLUMNS.value)
  else:
    table = make_table(results, groups, methods, seeds, _COLUMNS.value)
  text = header + table
  print(text)
  kept = None
  if _OUT.value:
    kept = _write_table(_OUT.value, text)
  if failures:
    print(f"{len(failures)} run(s) failed:", file=sys.stderr)
    for workdir, message in failures:
      print(f"--- {workdir}\n{message.strip()}", file=sys.stderr)
  if kept:
    print(kept, file=sys.stderr)
  if failures or kept:
    raise SystemExit(1)
  logging.info("Sweep done in %.1f min.", (time.time() - t0) / 60)


def _run_grouped(runs, results, failures) -> None:
  """Runs ``runs`` (config, source, target, seed) with the seeds of each
  method and task in groups of up to ``--group`` runs per program."""
  from tlax.train import many_runs  # pylint: disable=g-import-not-at-top
  blocks = itertools.groupby(runs, key=lambda r: (r[0].method.name, r[1],
                                                   r[2]))
  bar = tqdm.tqdm(total=len(runs), desc="sweep", dynamic_ncols=True,
                  disable=not sys.stderr.isatty())
  for (method, source, target), block in blocks:
    block = list(block)
    bar.set_postfix_str(f"{method} {short(source)}->{short(target)} "
                        f"{len(block)} seeds")
    configs, workdirs = [], []
    for base, _, _, seed in block:
      config = copy.deepcopy(base)
      with config.unlocked():
        config.source, config.target, config.seed = source, target, seed
      configs.append(config)
      workdirs.append(os.path.join(_ROOT.value, method,
                                   task_dir(source, target), str(seed)))

    def on_error(failed, e):
      for workdir in failed:
        failures.append((workdir, f"{type(e).__name__}: {e}"))
      logging.error("Runs %s failed:\n%s", ", ".join(failed),
                    traceback.format_exc())

    out = many_runs.run_many(configs, workdirs, group_size=_GROUP.value,
                             on_error=on_error)
    for (_, _, _, seed), result in zip(block, out):
      if result is not None:
        results[(method, source, target, seed)] = result
    bar.update(len(block))
  bar.close()


def _write_table(out: str, text: str) -> str | None:
  """Writes ``text`` to ``out`` unless ``out`` has more finished cells;
  returns the reason when it keeps the old file."""
  old_cells = 0
  if os.path.isfile(out):
    with open(out) as f:
      old_cells = finished_cells(f.read())
  new_cells = finished_cells(text)
  if new_cells < old_cells:
    return (f"{out} kept as it was: it has {old_cells} finished cell(s), "
            f"this sweep only {new_cells}. Fix the failed runs, or give "
            "another --out.")
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with workdir_lib.disk_errors(out, "the table"):
    write_atomic(out, text)
  return None


if __name__ == "__main__":
  app.run(main, flags_parser=workdir_lib.parse_flags)
