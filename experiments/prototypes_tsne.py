r"""t-SNE of embeddings with class prototypes, source and target.

One panel per finished run of the semantic-bias family
(``experiments/configs/prototypes/``): source validation digits (dots),
target digits (crosses) and the class prototypes (stars), coloured by class.
The prototypes are the method's own (``state["prototypes"]`` or learned
``params["prototypes"]``), or the source class means for the linear head;
for the cosine methods (``supcon``, ``prototype_head``) all points are L2
normalised. Panels are named by the run's method folder.

COMMAND (the picture of docs/prototypes.md, after the sweep there):
  python -m experiments.prototypes_tsne --out=docs/img/prototypes_tsne.png \
    --runs=runs/prototypes/source_only/colourdigits_source--colourdigits_target/0,runs/prototypes/protonet/colourdigits_source--colourdigits_target/0,runs/prototypes/supcon/colourdigits_source--colourdigits_target/0
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
import jax
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_list("runs", [], "Run folders (holding result.json and train/).")
flags.DEFINE_string("out", "prototypes_tsne.png", "The PNG file.")
flags.DEFINE_integer("max_points", 300, "Points per domain and run.")


def run_embeddings(workdir: str, max_points: int = 300):
  """(source emb, source y, target emb, target y, prototypes, name)."""
  from tlax import losses  # pylint: disable=g-import-not-at-top
  from tlax.prototypes import runner  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  from tlax.viz import embedding  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  with open(os.path.join(workdir, "result.json")) as f:
    result = json.load(f)
  config = ml_collections.ConfigDict(result["config"])
  task = trainer.load_task(config)
  method = trainer.build_method(config, task)
  params, state = runner._restore(os.path.join(workdir, "train"))  # pylint: disable=protected-access
  embed = jax.jit(lambda x: method.features(params, state, x)["embedding"])
  i = embedding.subsample(len(task.ys_val), max_points)
  j = embedding.subsample(len(task.yt_test), max_points, seed=1)
  fs, ft = np.asarray(embed(task.xs_val[i])), np.asarray(embed(task.xt_test[j]))
  if "prototypes" in params:
    protos = np.asarray(params["prototypes"])
  elif "prototypes" in state:
    protos = np.asarray(state["prototypes"])
  else:
    protos = np.asarray(losses.class_prototypes(
        np.asarray(embed(task.xs_val)), task.ys_val, task.num_classes)[0])
  if config.method.name in ("supcon", "prototype_head"):  # cosine methods
    fs, ft, protos = (np.asarray(losses.l2_normalize(a))
                      for a in (fs, ft, protos))
  name = os.path.basename(os.path.dirname(os.path.dirname(
      os.path.abspath(workdir))))
  return fs, task.ys_val[i], ft, task.yt_test[j], protos, name


def plot(runs, path: str, max_points: int = 300) -> str:
  """Saves the figure of the module docstring; returns ``path``."""
  from tlax.viz import embedding  # pylint: disable=g-import-not-at-top
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 4.2),
                           squeeze=False)
  cmap = plt.get_cmap("tab10")
  for ax, run in zip(axes[0], runs):
    fs, ys, ft, yt, protos, name = run_embeddings(run, max_points)
    z = embedding.embed_2d(np.concatenate([fs, ft, protos]))
    zs, zt, zp = z[:len(fs)], z[len(fs):len(fs) + len(ft)], z[len(fs) + len(ft):]
    kw = dict(cmap=cmap, vmin=0, vmax=9)
    ax.scatter(zs[:, 0], zs[:, 1], c=ys % 10, s=6, marker="o", alpha=0.5, **kw)
    ax.scatter(zt[:, 0], zt[:, 1], c=yt % 10, s=12, marker="x", alpha=0.6,
               **kw)
    ax.scatter(zp[:, 0], zp[:, 1], c=np.arange(len(zp)) % 10, s=220,
               marker="*", edgecolors="k", linewidths=1.0, **kw)
    ax.set_title(f"{name} (o source, x target, * prototypes)", fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path


def main(argv):
  del argv
  print(plot(FLAGS.runs, FLAGS.out, FLAGS.max_points))


if __name__ == "__main__":
  app.run(main)
