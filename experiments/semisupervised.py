r"""Semi-supervised experiments: the LabelSpreading runner and the plots.

LabelSpreading (Zhou et al., 2004) through the runner contract
(``config.runner = "experiments.semisupervised:run_label_spreading"``): the
same task as the deep semi-supervised runs (``config.labels_per_class``
labelled examples per class, the unlabelled rest, the test split), on raw
pixels; ``result.json`` holds ``target_accuracy`` and ``labels_per_class``.

Plots of the thresholds and the mask rate logged by the FixMatch family
(``metrics.jsonl``), one panel pair per method::

  python -m experiments.semisupervised --root=runs/ssl/1 \
    --task=mnist_usps_usps--mnist_usps_usps --seed=0 \
    --out=docs/img/ssl_thresholds.png
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import numpy as np

METHODS_PLOTTED = ("fixmatch", "flexmatch", "freematch", "softmatch",
                   "pseudo_label")


def run_label_spreading(config, workdir) -> dict:
  """Fits ``sklearn.semi_supervised.LabelSpreading`` on the config's task.

  ``config.method`` options: ``kernel`` ("knn" or "rbf"), ``n_neighbors``,
  ``gamma``, ``alpha``. A finished run with the same config is returned as
  is; another config in the same workdir is refused, naming the keys.
  """
  from sklearn import semi_supervised  # pylint: disable=g-import-not-at-top
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  from tlax.train.evaluate import classification_metrics  # pylint: disable=g-import-not-at-top
  from tlax.train.metrics_log import write_atomic  # pylint: disable=g-import-not-at-top

  t0 = time.time()
  workdir = os.path.abspath(os.fspath(workdir))
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "result.json")
  config_dict = trainer.config_to_dict(config)
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    diff = train.config_diff(config_dict, previous.get("config", {}))
    if diff:
      raise train.ConfigMismatchError(
          f"{path} was made with a different config:\n" + "\n".join(diff)
          + "\nUse another --workdir or delete this one.")
    return previous
  kernel = str(config.method.get("kernel", "knn"))
  if kernel not in ("knn", "rbf"):
    raise ValueError(f"config.method.kernel must be 'knn' or 'rbf', got "
                     f"{kernel!r}.")
  task = trainer.load_task(config)
  flat = lambda x: np.asarray(x, np.float64).reshape(len(x), -1)
  x = np.concatenate([flat(task.xs), flat(task.xt)])
  y = np.concatenate([task.ys, -np.ones(len(task.xt), np.int64)])
  model = semi_supervised.LabelSpreading(
      kernel=kernel, n_neighbors=int(config.method.get("n_neighbors", 10)),
      gamma=float(config.method.get("gamma", 20.0)),
      alpha=float(config.method.get("alpha", 0.2)), max_iter=100)
  model.fit(x, y)
  pred = model.predict(flat(task.xt_test))
  metrics = classification_metrics(pred, task.yt_test, task.num_classes)
  result = {
      "method": config.method.name, "source": config.source,
      "target": config.target, "seed": int(config.seed),
      "labels_per_class": int(config.get("labels_per_class", 0)),
      "target_accuracy": metrics["accuracy"],
      "target_mean_class_accuracy": metrics["mean_class_accuracy"],
      "per_class_accuracy": metrics["per_class_accuracy"],
      "num_target_test": metrics["num_examples"],
      "wall_time_s": time.time() - t0,
      "device": "cpu (scikit-learn)", "config": config_dict,
  }
  write_atomic(path, json.dumps(result, indent=2) + "\n")
  return result


def read_curves(metrics_path: str, keys=("threshold", "threshold_min",
                                         "threshold_max", "mask_rate")):
  """``{key: (steps, values)}`` of the train records of a metrics.jsonl."""
  steps, values = [], {k: [] for k in keys}
  with open(metrics_path) as f:
    for line in f:
      r = json.loads(line)
      if r.get("type") != "train":
        continue
      steps.append(r["step"])
      for k in keys:
        values[k].append(r.get(k, np.nan))
  return {k: (np.array(steps), np.array(v, np.float64))
          for k, v in values.items()}


def plot_thresholds(root: str, task: str, seed: int, out: str,
                    methods=METHODS_PLOTTED) -> str:
  """Threshold (mean, min-max band) and mask rate over training per method.

  Reads ``<root>/<method>/<task>/<seed>/metrics.jsonl``; writes ``out``.
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  found = [m for m in methods if os.path.exists(
      os.path.join(root, m, task, str(seed), "metrics.jsonl"))]
  if not found:
    raise FileNotFoundError(f"No metrics.jsonl under {root}/<method>/{task}/"
                            f"{seed} for any of {', '.join(methods)}.")
  fig, axes = plt.subplots(2, len(found), figsize=(2.6 * len(found), 4.2),
                           sharex=True, sharey="row", squeeze=False)
  for j, m in enumerate(found):
    c = read_curves(os.path.join(root, m, task, str(seed), "metrics.jsonl"))
    steps, mean = c["threshold"]
    ax = axes[0, j]
    ax.plot(steps, mean, color="C0", label="mean over classes")
    ax.fill_between(steps, c["threshold_min"][1], c["threshold_max"][1],
                    color="C0", alpha=0.25, label="min-max")
    ax.set_title(m, fontsize=9)
    ax.set_ylim(0, 1.02)
    axes[1, j].plot(*c["mask_rate"], color="C1")
    axes[1, j].set_xlabel("step")
  axes[0, 0].set_ylabel("threshold\n(SoftMatch: mean μ)")
  axes[1, 0].set_ylabel("mask rate\n(mean weight)")
  axes[1, 0].set_ylim(0, 1.02)
  axes[0, 0].legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  fig.savefig(out, dpi=80)
  plt.close(fig)
  return out


def main(argv):
  del argv
  print(plot_thresholds(FLAGS.root, FLAGS.task, FLAGS.seed, FLAGS.out))


if __name__ == "__main__":
  # Flags only when run as a script: the runner is imported by the sweep,
  # which defines flags of the same names.
  flags.DEFINE_string("root", "runs/ssl/1", "Sweep root of the runs.")
  flags.DEFINE_string("task", "mnist_usps_usps--mnist_usps_usps",
                      "Task folder name.")
  flags.DEFINE_integer("seed", 0, "Seed.")
  flags.DEFINE_string("out", "docs/img/ssl_thresholds.png", "PNG path.")
  FLAGS = flags.FLAGS
  app.run(main)
