"""2-D embeddings of source and target features, before and after adaptation.

The picture of the DANN paper (Ganin et al., JMLR 2016, Fig. 2): t-SNE of the
features of source and target examples, coloured by domain, for a network
trained without and with adaptation. Here each of the two models gets two
panels: coloured by domain (source blue, target red) and by class (source
dots, target crosses); the target labels are used only for the colours.

* :func:`embed_2d`: t-SNE (``sklearn.manifold.TSNE``) or PCA of a feature
  matrix;
* :func:`plot_embeddings`: the figure for any number of named feature sets;
* :func:`run_features`: source and target features of a trained method;
* :func:`save_run_plots`: the embedding figure and the learning curves of a
  finished run, written as PNG into its workdir (what the runner calls with
  ``config.plots = True``);
* :func:`load_run`: a method and its final state from a run's workdir, so the
  figures can also be made afterwards::

    python -m tlax.viz.embedding --workdir=runs/dann/... \
        --reference=runs/source_only/...

"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from tlax.utils import subsample
from tlax.viz.curves import _pyplot

Array = Any

SOURCE_COLOR = "tab:blue"
TARGET_COLOR = "tab:red"




def embed_2d(x: Array, method: str = "tsne", seed: int = 0,
             perplexity: float = 30.0) -> np.ndarray:
  """(n, 2) coordinates of the rows of ``x`` by t-SNE or PCA.

  Features are flattened and standardised (per column) first. t-SNE uses a
  PCA initialisation and ``min(perplexity, (n - 1) / 3)``.
  """
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  x = x - x.mean(0)
  sd = x.std(0)
  x = x / np.where(sd > 1e-8, sd, 1.0)
  if method == "pca":
    from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
    return PCA(n_components=2, random_state=seed).fit_transform(x)
  if method == "tsne":
    from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top
    perp = float(min(perplexity, max((len(x) - 1) / 3.0, 1.0)))
    return TSNE(n_components=2, init="pca", random_state=seed,
                perplexity=perp).fit_transform(x)
  raise ValueError(f"Unknown embedding method {method!r}: 'tsne' or 'pca'.")


def plot_embeddings(panels: Mapping[str, Sequence[Array]], path: str, *,
                    method: str = "tsne", seed: int = 0,
                    title: str | None = None) -> str:
  """Saves a figure with one row per entry of ``panels``.

  Args:
    panels: ``{name: (features_s, labels_s, features_t, labels_t)}``, e.g.
      ``{"source only": ..., "DANN": ...}`` (before / after adaptation).
    path: the PNG file.
    method: ``"tsne"`` or ``"pca"``.
    seed: the embedding's seed.
    title: figure title.

  Returns:
    ``path``.
  """
  plt = _pyplot()
  fig, axes = plt.subplots(len(panels), 2, figsize=(10, 4.6 * len(panels)),
                           squeeze=False)
  for row, (name, (fs, ys, ft, yt)) in enumerate(panels.items()):
    fs = np.asarray(fs).reshape(len(fs), -1)
    ft = np.asarray(ft).reshape(len(ft), -1)
    z = embed_2d(np.concatenate([fs, ft]), method, seed)
    zs, zt = z[:len(fs)], z[len(fs):]
    ax = axes[row, 0]
    ax.scatter(zs[:, 0], zs[:, 1], s=6, c=SOURCE_COLOR, label="source",
               alpha=0.6)
    ax.scatter(zt[:, 0], zt[:, 1], s=6, c=TARGET_COLOR, label="target",
               alpha=0.6)
    ax.set_title(f"{name}: by domain")
    ax.legend(loc="best", markerscale=3)
    ax = axes[row, 1]
    cmap = plt.get_cmap("tab10" if max(np.max(ys), np.max(yt)) < 10
                        else "tab20")
    ax.scatter(zs[:, 0], zs[:, 1], s=8, c=np.asarray(ys) % cmap.N, cmap=cmap,
               vmin=0, vmax=cmap.N - 1, marker="o", alpha=0.6,
               label="source")
    ax.scatter(zt[:, 0], zt[:, 1], s=14, c=np.asarray(yt) % cmap.N,
               cmap=cmap, vmin=0, vmax=cmap.N - 1, marker="x", alpha=0.6,
               label="target")
    ax.set_title(f"{name}: by class (o source, x target)")
    for a in axes[row]:
      a.set_xticks([])
      a.set_yticks([])
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def run_features(method, params, state, task, *, layer: str = "embedding",
                 max_points: int = 500, seed: int = 0,
                 batch_size: int = 256):
  """``(features_s, ys, features_t, yt)`` of a trained method.

  Source: the source training inputs; target: the target test split (its
  labels only colour the plot). At most ``max_points`` of each.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from tlax.train.evaluate import batched_apply  # pylint: disable=g-import-not-at-top
  from tlax.train.xla import compiler_options as cpu_compiler_options  # pylint: disable=g-import-not-at-top
  feats = jax.jit(lambda x: method.features(params, state, x)[layer],
                  compiler_options=cpu_compiler_options())

  def run(x):
    return batched_apply(feats, x, batch_size).reshape(len(x), -1)

  i_s = subsample(len(task.xs), max_points, seed)
  i_t = subsample(len(task.xt_test), max_points, seed + 1)
  return (run(np.asarray(task.xs)[i_s]), np.asarray(task.ys)[i_s],
          run(np.asarray(task.xt_test)[i_t]), np.asarray(task.yt_test)[i_t])


def input_features(task, *, max_points: int = 500, seed: int = 0):
  """The raw inputs, flattened, as ``(xs, ys, xt, yt)`` (a "before" panel
  when no source-only reference run is given)."""
  i_s = subsample(len(task.xs), max_points, seed)
  i_t = subsample(len(task.xt_test), max_points, seed + 1)
  xs = np.asarray(task.xs)[i_s]
  xt = np.asarray(task.xt_test)[i_t]
  return (xs.reshape(len(xs), -1), np.asarray(task.ys)[i_s],
          xt.reshape(len(xt), -1), np.asarray(task.yt_test)[i_t])


def save_run_plots(workdir: str, method, params, state, task, *,
                   reference: tuple | None = None,
                   embedding: str = "tsne", layer: str = "embedding",
                   max_points: int = 500, seed: int = 0) -> list[str]:
  """Writes ``embedding_<tsne|pca>.png`` and ``curves.png`` into ``workdir``.

  Args:
    workdir: the run's folder (with ``metrics.jsonl``).
    method, params, state: the trained method and its final parameters and
      state.
    task: the run's :class:`tlax.data.Task`.
    reference: optional ``(name, method, params, state)`` of a model trained
      without adaptation (e.g. from :func:`load_run` on a source-only
      workdir) for the "before" row; default the raw inputs.
    embedding: ``"tsne"`` or ``"pca"``.
    layer: the feature to embed (``"embedding"``: the head input).
    max_points: examples per domain.
    seed: subsampling and embedding seed.

  Returns:
    The paths written.
  """
  from tlax.viz import curves  # pylint: disable=g-import-not-at-top
  if reference is None:
    before = ("inputs", input_features(task, max_points=max_points,
                                       seed=seed))
  else:
    name, m0, p0, s0 = reference
    before = (name, run_features(m0, p0, s0, task, layer=layer,
                                 max_points=max_points, seed=seed))
  after = (method.name, run_features(method, params, state, task,
                                     layer=layer, max_points=max_points,
                                     seed=seed))
  paths = [plot_embeddings(
      dict([before, after]),
      os.path.join(workdir, f"embedding_{embedding}.png"), method=embedding,
      seed=seed, title=f"{task.name}: {layer} features")]
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics):
    paths.append(curves.plot_learning_curves(
        metrics, os.path.join(workdir, "curves.png"),
        title=f"{method.name} {task.name}"))
  return paths


def load_run(workdir: str):
  """``(config, task, method, state)`` of a run, at its latest checkpoint."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  from tlax.train.state import create_train_state  # pylint: disable=g-import-not-at-top
  with open(os.path.join(workdir, "result.json")) as f:
    config = ml_collections.ConfigDict(json.load(f)["config"])
  task = trainer.load_task(config)
  method = trainer.build_method(config, task)
  batches = trainer.make_batches(config, task)
  state, _ = create_train_state(config, method, batches.batch(0))
  manager = train.checkpoint_manager(os.path.join(workdir, "checkpoints"))
  state = ckpt_lib.restore_checkpoint(manager, state)
  return config, task, method, state


def plot_run(workdir: str, *, embedding: str = "tsne",
             max_points: int = 500) -> list[str]:
  """:func:`save_run_plots` for a finished run's workdir (its latest
  checkpoint); what ``config.plots`` asks ``experiments/run.py`` for."""
  _, task, method, st = load_run(workdir)
  return save_run_plots(workdir, method, st.params, st.state, task,
                        embedding=embedding, max_points=max_points)


def main(argv=None) -> None:
  import argparse  # pylint: disable=g-import-not-at-top
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--reference", default=None,
                 help="workdir of a source-only run (the 'before' row)")
  p.add_argument("--embedding", default="tsne", choices=("tsne", "pca"))
  p.add_argument("--max_points", type=int, default=500)
  args = p.parse_args(argv)
  _, task, method, st = load_run(args.workdir)
  reference = None
  if args.reference:
    _, _, m0, s0 = load_run(args.reference)
    reference = (m0.name, m0, s0.params, s0.state)
  for path in save_run_plots(args.workdir, method, st.params, st.state, task,
                             reference=reference, embedding=args.embedding,
                             max_points=args.max_points):
    print(path)


if __name__ == "__main__":
  main()
