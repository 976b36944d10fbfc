r"""Multitask learning: does sharing a trunk with a large task help a small one?

Two related tasks, MNIST digits (the large task, 2,000 images) and USPS
digits (the small task, ``k`` labelled images per class), train one LeNet
trunk with one head per task and the joint loss
``w_s CE_mnist + w_t CE_usps`` (:class:`tlax.methods.multitask.Multitask`).
"Alone" is the same network, optimiser and batches with ``w_s = 0``: the
USPS head and trunk learn from the ``k`` USPS labels only. The small task's
accuracy on its held-out test split is reported as mean ± std over seeds.

No pretraining is involved: both runs start from the same random
initialisation for a given seed.

COMMAND (the numbers of docs/results_finetune.md):
  TLAX_DATA_DIR=<data folder> python -m experiments.multitask \
    --root=runs/multitask --shots=5,20 --seeds=0,1,2 \
    --table=runs/multitask/table.md --plot=docs/img/multitask.png

``--source`` / ``--target`` choose other tasks of the same label set (e.g.
``--source=digits/syndigits``).
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
import ml_collections

from experiments import few_shot
from experiments import pages
from experiments.configs import common

FLAGS = flags.FLAGS


def multitask_config(source: str, target: str, k: int, shared: bool,
                     seed: int, steps: int, sets, quick: bool = False):
  """The config of one run: ``shared`` sets the large task's weight to 1/0."""
  c = common.base_config()
  c.stage = "multitask"
  c.source = source
  c.target = target
  c.seed = int(seed)
  c.image_size = 16
  c.channels = 1
  c.domain_options = ml_collections.ConfigDict({"target": {"holdout": 0.3}})
  c.target_labeled_per_class = int(k)
  c.batch_size = 32           # large-task examples per step
  c.target_batch_size = 8     # unlabelled target: unused by the loss
  c.labeled_batch_size = 32   # small-task examples per step
  c.model.name = "lenet"
  c.method.name = "multitask"
  c.method.source_weight = 1.0 if shared else 0.0
  c.method.target_weight = 1.0
  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.optimizer.schedule = "constant"
  c.optimizer.weight_decay = 0.0
  c.steps = int(steps)
  c.log_every = 100
  c.eval_every = int(steps)
  c.checkpoint_every = int(steps)
  if quick:
    c.quick = True
    c.domain_options = ml_collections.ConfigDict({
        "source": {"n_train": 200, "n_test": 40},
        "target": {"n_train": 200, "n_test": 60}})
    c.model.kwargs = ml_collections.ConfigDict(
        {"conv_features": (4, 8), "hidden": (16,)})
    c.batch_size = 8
    c.labeled_batch_size = 8
    c.eval_batch_size = 64
    c.progress = False
  for key, value in sets:
    few_shot.set_dotted(c, key, value)
  return c


def main(argv):
  del argv
  root = FLAGS.root
  pages.enable_compilation_cache(root)
  shots = [int(s) for s in FLAGS.shots]
  seeds = [int(s) for s in FLAGS.seeds]
  sets = few_shot.parse_sets(FLAGS.set)
  modes = {"shared": True, "alone": False}
  acc = {m: {k: [] for k in shots} for m in modes}
  t0 = time.time()
  for k in shots:
    for mode, shared in modes.items():
      for seed in seeds:
        c = multitask_config(FLAGS.source, FLAGS.target, k, shared, seed,
                             FLAGS.steps, sets, FLAGS.quick)
        r = few_shot.run_config(c, os.path.join(root, mode, f"k{k}",
                                                str(seed)))
        acc[mode][k].append(r["target_accuracy"])
  header = ["labelled small-task examples per class",
            f"{FLAGS.target} alone", f"{FLAGS.target} + {FLAGS.source} "
            "(shared trunk)", "difference"]
  rows = []
  for k in shots:
    diffs = [a - b for a, b in zip(acc["shared"][k], acc["alone"][k])]
    rows.append([k, few_shot.fmt(acc["alone"][k]),
                 few_shot.fmt(acc["shared"][k]), few_shot.fmt(diffs)])
  table = few_shot.markdown_table(header, rows)
  print(table)
  few_shot.write(FLAGS.table, table)
  few_shot.write(os.path.join(root, "summary.json"), json.dumps(
      {"accuracy": {m: {str(k): v for k, v in d.items()}
                    for m, d in acc.items()},
       "seeds": seeds, "wall_time_s": time.time() - t0}, indent=1))
  if FLAGS.plot:
    few_shot.save_plot(
        FLAGS.plot, shots,
        {"small task alone": [acc["alone"][k] for k in shots],
         "multitask (shared trunk)": [acc["shared"][k] for k in shots]},
        xlabel="labelled small-task examples per class (k)",
        ylabel="small-task test accuracy (%)", title=FLAGS.title,
        logx=True, xticks=shots)


if __name__ == "__main__":
  flags.DEFINE_string("source", "mnist_usps/mnist", "The large task.")
  flags.DEFINE_string("target", "mnist_usps/usps", "The small task.")
  flags.DEFINE_string("root", "runs/multitask", "Root of the workdirs.")
  flags.DEFINE_list("shots", ["5", "20"], "Labels per class, small task.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
  flags.DEFINE_integer("steps", 600, "Training steps.")
  flags.DEFINE_multi_string("set", [], "Config overrides key=value.")
  flags.DEFINE_boolean("quick", False, "Quick configs (tests).")
  flags.DEFINE_string("table", None, "Write the markdown table here.")
  flags.DEFINE_string("plot", None, "Write the PNG plot here.")
  flags.DEFINE_string("title", "Multitask MNIST + USPS, LeNet", "Plot title.")
  app.run(main)
