r"""Few-shot fine-tuning: full, linear probe, L2-SP, output-KL and LoRA.

Fine-tunes one pretrained source model (``experiments/configs/pretrain.py``)
on ``k`` labelled target examples per class for several ``k`` and seeds,
with each preset of ``experiments/configs/finetune.py`` (plus ``scratch``:
the same network and training from a random initialisation), and writes a
table of the target test accuracy (mean ± std over seeds, ddof=1) and a PNG
plot of accuracy against ``k``.

COMMAND (the numbers of docs/results_finetune.md):
  python -m experiments.run --config=experiments/configs/pretrain.py:small \
    --workdir=runs/pretrain/syndigits20k_lenet
  TLAX_DATA_DIR=<data folder> python -m experiments.few_shot \
    --pretrained=runs/pretrain/syndigits20k_lenet --root=runs/few_shot \
    --shots=1,5,10,50 --seeds=0,1,2 \
    --methods=scratch,full,linear_probe,l2sp,output_kl,lora \
    --table=runs/few_shot/table.md --plot=docs/img/few_shot.png

Every run goes through :func:`tlax.train.train_and_evaluate` in this process
(workdir ``<root>/<method>/k<k>/<seed>``); finished runs are read back, so
the script can be stopped and restarted. ``--steps`` and ``--config.*``-like
overrides (``--set=optimizer.lr=3e-3``) apply to every run. A persistent XLA
compilation cache under ``<root>/.jax_cache`` makes runs that differ only in
the seed or ``k`` reuse one compilation.

The helpers here (:func:`run_config`, :func:`mean_std`,
:func:`markdown_table`) are shared by
``experiments/layer_transfer.py`` and ``experiments/multitask.py``.
"""

from __future__ import annotations

import ast
import json
import os
import time
from typing import Any, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from experiments import pages

FLAGS = flags.FLAGS


# --------------------------------------------------------------------------
# Shared helpers.
# --------------------------------------------------------------------------
def set_dotted(config, dotted: str, value) -> None:
  """``config.a.b = value`` for ``dotted = "a.b"``."""
  *parents, leaf = dotted.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.unlocked() if hasattr(node, "unlocked") else _null():
    node[leaf] = value


class _null:  # pylint: disable=invalid-name
  def __enter__(self):
    return self

  def __exit__(self, *a):
    return False


def parse_sets(items: Sequence[str]) -> list[tuple[str, Any]]:
  """``["a.b=3", "c=x"]`` -> ``[("a.b", 3), ("c", "x")]`` (literals parsed)."""
  out = []
  for item in items or ():
    key, _, raw = item.partition("=")
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    out.append((key.strip(), value))
  return out


def run_config(config, workdir: str) -> dict:
  """``train_and_evaluate`` (pretraining included), returning the result."""
  from tlax import train  # pylint: disable=g-import-not-at-top
  t = time.time()
  done = os.path.join(workdir, "result.json")
  if os.path.exists(done):
    # Read a finished run back. The per-collection defaults table
    # (config.auto) is not compared: the resolved values it gave are.
    with open(done) as f:
      previous = json.load(f)
    diff = [l for l in train.config_diff(config, previous.get("config", {}),
                                         partial=True)
            if not l.strip().startswith("auto.")]
    if diff:
      raise train.ConfigMismatchError(
          f"{done} was made with a different config:\n" + "\n".join(diff))
    return previous
  result = train.train_and_evaluate(config, workdir)
  logging.info("%s: %.2f%% (%.0fs)", workdir,
               result.get("target_accuracy") or float("nan"), time.time() - t)
  return result


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample standard deviation (ddof=1; 0 for a single value)."""
  v = np.asarray([x for x in values if x is not None], np.float64)
  if v.size == 0:
    return float("nan"), float("nan")
  return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt(values: Sequence[float]) -> str:
  m, s = mean_std(values)
  if not np.isfinite(m):
    return "n/a"
  return f"{m:.1f} ± {s:.1f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]
                   ) -> str:
  lines = ["| " + " | ".join(str(h) for h in header) + " |",
           "|" + "|".join("---" for _ in header) + "|"]
  for r in rows:
    lines.append("| " + " | ".join(str(c) for c in r) + " |")
  return "\n".join(lines) + "\n"


def save_plot(path: str, xs: Sequence[float],
              curves: dict[str, Sequence[Sequence[float]]], *, xlabel: str,
              ylabel: str, title: str, logx: bool = False,
              xticks: Sequence[Any] | None = None) -> None:
  """Mean ± std curves (one per name) as a small PNG."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top,unused-import
  fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
  for name, per_x in curves.items():
    stats = [mean_std(v) for v in per_x]
    m = np.array([s[0] for s in stats])
    s = np.array([s[1] for s in stats])
    ax.errorbar(xs, m, yerr=s, marker="o", ms=4, capsize=3, label=name)
  if logx:
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  if xticks is not None:
    ax.set_xticks(xs)
    ax.set_xticklabels([str(t) for t in xticks])
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path)
  plt.close(fig)


def write(path: str | None, text: str) -> None:
  if not path:
    return
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    f.write(text)


# --------------------------------------------------------------------------
# The few-shot comparison.
# --------------------------------------------------------------------------
METHOD_NAMES = {
    "source_model": "source model as is (no target training)",
    "scratch": "from scratch (no pretraining)",
    "full": "full fine-tuning",
    "linear_probe": "linear probe",
    "l2sp": "L2-SP",
    "output_kl": "output KL",
    "lora": "LoRA (r=4)",
}


def few_shot_config(method: str, k: int, seed: int, pretrained: str,
                    steps: int | None, sets, quick: bool = False):
  from experiments.configs import finetune as ft  # pylint: disable=g-import-not-at-top
  preset = method if method in ft.PRESETS else "full"
  c = ft.get_config(preset + (",quick" if quick else ""))
  c.seed = int(seed)
  c.target_labeled_per_class = int(k)
  c.finetune.checkpoint = "" if method == "scratch" else pretrained
  if steps:
    c.steps = int(steps)
    c.eval_every = int(steps)
    c.checkpoint_every = int(steps)
  for key, value in sets:
    set_dotted(c, key, value)
  return c


def source_model_accuracy(config) -> float:
  """Target test accuracy of the pretrained network with its own head.

  The zero-shot reference: the checkpoint loaded strictly with nothing
  re-initialised, evaluated on the same target test split as the runs.
  """
  # pylint: disable=g-import-not-at-top
  import jax
  from tlax.train import trainer
  from tlax.train.evaluate import evaluate
  # pylint: enable=g-import-not-at-top
  with config.unlocked():
    config.finetune.reinit = ()
  task = trainer.load_task(config)
  config = trainer.resolve_config(config, task)
  method = trainer.build_method(config, task)
  batch = trainer.make_batches(config, task).batch(0)
  params, state = method.init(jax.random.key(int(config.seed)), batch)
  res = evaluate(method, params, state, task.xt_test, task.yt_test,
                 config.eval_batch_size, task.num_classes)
  return res["accuracy"]


def main(argv):
  del argv
  root = FLAGS.root
  pages.enable_compilation_cache(root)
  from tlax import train  # pylint: disable=g-import-not-at-top
  train.quiet_orbax_logs()
  shots = [int(s) for s in FLAGS.shots]
  seeds = [int(s) for s in FLAGS.seeds]
  methods = list(FLAGS.methods)
  sets = parse_sets(FLAGS.set)
  acc = {m: {k: [] for k in shots} for m in methods}
  t0 = time.time()
  for method in methods:
    for k in shots:
      for seed in seeds:
        c = few_shot_config(method, k, seed, FLAGS.pretrained, FLAGS.steps,
                            sets, FLAGS.quick)
        if method == "source_model":  # no training: evaluate the checkpoint
          acc[method][k].append(source_model_accuracy(c))
          continue
        r = run_config(c, os.path.join(root, method, f"k{k}", str(seed)))
        acc[method][k].append(r["target_accuracy"])
  header = ["method"] + [f"k={k}" for k in shots]
  rows = [[METHOD_NAMES.get(m, m)] + [fmt(acc[m][k]) for k in shots]
          for m in methods]
  table = markdown_table(header, rows)
  print(table)
  write(FLAGS.table, table)
  write(os.path.join(root, "summary.json"),
        json.dumps({"accuracy": {m: {str(k): v for k, v in d.items()}
                                 for m, d in acc.items()},
                    "seeds": seeds, "wall_time_s": time.time() - t0},
                   indent=1))
  if FLAGS.plot:
    save_plot(FLAGS.plot, shots,
              {METHOD_NAMES.get(m, m): [acc[m][k] for k in shots]
               for m in methods},
              xlabel="labelled target examples per class (k)",
              ylabel="target test accuracy (%)",
              title=FLAGS.title, logx=True, xticks=shots)


if __name__ == "__main__":
  flags.DEFINE_string("pretrained", None, "Workdir of the pretraining run.")
  flags.DEFINE_string("root", "runs/few_shot", "Root of the run workdirs.")
  flags.DEFINE_list("shots", ["1", "5", "10", "50"], "Labels per class.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
  flags.DEFINE_list("methods", list(METHOD_NAMES), "Methods (presets).")
  flags.DEFINE_integer("steps", None, "Training steps (default: config's).")
  flags.DEFINE_multi_string("set", [], "Config overrides key=value.")
  flags.DEFINE_boolean("quick", False, "Quick configs (tests).")
  flags.DEFINE_string("table", None, "Write the markdown table here.")
  flags.DEFINE_string("plot", None, "Write the PNG plot here.")
  flags.DEFINE_string("title", "SynDigits (20k) -> USPS, LeNet", "Plot title.")
  flags.mark_flag_as_required("pretrained")
  app.run(main)
