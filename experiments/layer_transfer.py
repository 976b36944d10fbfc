r"""Layer transfer (Yosinski et al., 2014): how transferable is each layer?

For ``k = 0 .. L`` the first ``k`` layers of a pretrained source network are
copied into the target network and the remaining layers (and the head) are
re-initialised; the copied layers are either frozen ("AnB" in the paper) or
fine-tuned with the rest ("AnB+"). The target test accuracy against ``k`` is
written as a markdown table (mean ± std over seeds) and a PNG plot.

``k = 0`` copies nothing (training from scratch): both modes are the same
run. The layers are the model's top-level modules in order, the head
excluded (LeNet: conv1, conv2, fc1, fc2, so L = 4).

COMMAND (the numbers of docs/results_finetune.md):
  python -m experiments.run --config=experiments/configs/pretrain.py:small \
    --workdir=runs/pretrain/syndigits20k_lenet
  TLAX_DATA_DIR=<data folder> python -m experiments.layer_transfer \
    --pretrained=runs/pretrain/syndigits20k_lenet --root=runs/layer_transfer \
    --labels_per_class=20 --seeds=0,1,2 \
    --table=runs/layer_transfer/table.md --plot=docs/img/layer_transfer.png

Reference:
  Yosinski, Clune, Bengio, Lipson. How transferable are features in deep
  neural networks? NeurIPS 2014.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags

from experiments import few_shot
from experiments import pages

FLAGS = flags.FLAGS


def layer_transfer_config(k: int, frozen: bool, seed: int, pretrained: str,
                          labels_per_class: int, layers, steps, sets,
                          quick: bool = False):
  from experiments.configs import finetune as ft  # pylint: disable=g-import-not-at-top
  c = ft.get_config("layer_transfer" + (",quick" if quick else ""))
  c.seed = int(seed)
  c.target_labeled_per_class = int(labels_per_class)
  c.finetune.checkpoint = pretrained if k > 0 else ""
  c.finetune.copy_layers = int(k) if k > 0 else -1
  c.finetune.layers = tuple(layers)
  c.finetune.freeze_copied = bool(frozen)
  if steps:
    c.steps = int(steps)
    c.eval_every = int(steps)
    c.checkpoint_every = int(steps)
  for key, value in sets:
    few_shot.set_dotted(c, key, value)
  return c


def main(argv):
  del argv
  root = FLAGS.root
  pages.enable_compilation_cache(root)
  layers = list(FLAGS.layers)
  ks = list(range(len(layers) + 1))
  seeds = [int(s) for s in FLAGS.seeds]
  sets = few_shot.parse_sets(FLAGS.set)
  acc = {"frozen": {k: [] for k in ks}, "fine-tuned": {k: [] for k in ks}}
  t0 = time.time()
  for k in ks:
    for mode in ("frozen", "fine-tuned"):
      if k == 0 and mode == "fine-tuned":
        acc[mode][0] = acc["frozen"][0]  # the same run: nothing is copied
        continue
      for seed in seeds:
        c = layer_transfer_config(k, mode == "frozen", seed, FLAGS.pretrained,
                                  FLAGS.labels_per_class, layers, FLAGS.steps,
                                  sets, FLAGS.quick)
        name = "scratch" if k == 0 else f"{mode}_k{k}"
        r = few_shot.run_config(c, os.path.join(root, name, str(seed)))
        acc[mode][k].append(r["target_accuracy"])
  header = ["copied layers k", "layers copied", "copied frozen (AnB)",
            "copied fine-tuned (AnB+)"]
  rows = [[k, ", ".join(layers[:k]) or "none (scratch)",
           few_shot.fmt(acc["frozen"][k]), few_shot.fmt(acc["fine-tuned"][k])]
          for k in ks]
  table = few_shot.markdown_table(header, rows)
  print(table)
  few_shot.write(FLAGS.table, table)
  few_shot.write(os.path.join(root, "summary.json"), json.dumps(
      {"accuracy": {m: {str(k): v for k, v in d.items()}
                    for m, d in acc.items()},
       "layers": layers, "seeds": seeds,
       "wall_time_s": time.time() - t0}, indent=1))
  if FLAGS.plot:
    few_shot.save_plot(
        FLAGS.plot, ks, {"copied layers frozen (AnB)": [acc["frozen"][k]
                                                        for k in ks],
                         "copied layers fine-tuned (AnB+)":
                             [acc["fine-tuned"][k] for k in ks]},
        xlabel="number of copied layers k", ylabel="target test accuracy (%)",
        title=FLAGS.title, xticks=ks)


if __name__ == "__main__":
  flags.DEFINE_string("pretrained", None, "Workdir of the pretraining run.")
  flags.DEFINE_string("root", "runs/layer_transfer", "Root of the workdirs.")
  flags.DEFINE_list("layers", ["conv1", "conv2", "fc1", "fc2"],
                    "Ordered layers (LeNet).")
  flags.DEFINE_integer("labels_per_class", 20, "Labelled target per class.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
  flags.DEFINE_integer("steps", None, "Training steps (default: config's).")
  flags.DEFINE_multi_string("set", [], "Config overrides key=value.")
  flags.DEFINE_boolean("quick", False, "Quick configs (tests).")
  flags.DEFINE_string("table", None, "Write the markdown table here.")
  flags.DEFINE_string("plot", None, "Write the PNG plot here.")
  flags.DEFINE_string("title", "Layer transfer SynDigits (20k) -> USPS, "
                      "LeNet", "Plot title.")
  flags.mark_flag_as_required("pretrained")
  app.run(main)
