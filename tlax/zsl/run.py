"""The zero-shot family runner: ``config.runner = "tlax.zsl.run:run"``.

One run = one method on one split (``config.source``, ``config.target``,
``config.seed``; see :mod:`tlax.zsl.data`):

1. image features (``config.zsl.features``: ``"raw"``, flattened images or
   feature vectors as stored, ``"hog"``, :func:`tlax.zsl.features.hog` of
   images on a ``config.zsl.hog_cells`` grid, or ``"auto"``: HOG for images,
   vectors as stored) and their preprocessing; class embeddings are scaled
   to unit L2 norm (``config.zsl.normalise_embeddings``) so that no class
   wins by the length of its row (an 8 has every segment of a 1);
   (``config.zsl.preprocess``: ``"center_l2"`` subtracts the training mean
   and scales rows to unit norm, ``"l2"``, ``"zscore"`` or ``"none"``);
2. on validation splits of the seen classes only
   (:func:`tlax.zsl.protocols.validation_split`, ``config.zsl.val_folds``
   folds, each holding out ``config.zsl.val_classes`` seen classes as
   pseudo-unseen ones): the method options of ``config.zsl.grid`` with the
   best ZSL accuracy on the first fold, then the calibrated-stacking
   ``gamma`` with the best mean H over the folds;
3. the method fitted on all training images of the seen classes, evaluated
   by the conventional and generalised protocols; ``result.json`` holds
   ``zsl_accuracy``, ``gzsl_seen``, ``gzsl_unseen``, ``gzsl_h`` (percent,
   calibrated), the uncalibrated ``gzsl_*_uncalibrated``, ``gamma``, the
   split and the chosen options.

With ``config.plots`` set, ``tsne.png`` (test images in the semantic space
with the class embeddings) and ``calibration.png`` (GZSL seen and unseen
accuracy against ``gamma`` on the test images: the trade-off curve, with the
``gamma`` chosen on seen classes marked) are written into the workdir.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import time

import jax
import ml_collections
import numpy as np

from tlax.zsl import data as zsl_data
from tlax.zsl import features as zsl_features
from tlax.zsl import methods as zsl_methods
from tlax.zsl import protocols
from tlax.zsl import semantic

PREPROCESS = ("center_l2", "l2", "zscore", "none")
NON_OPTION_KEYS = ("name",)


def extract_features(split: protocols.ZSLSplit, features: str,
                     preprocess: str, *, hog_cells: int = 4
                     ) -> protocols.ZSLSplit:
  """The split with (n, d) features, preprocessed with training statistics."""
  if features not in ("auto", "raw", "hog"):
    raise ValueError(f"config.zsl.features must be 'auto', 'raw' (images "
                     f"flattened, feature vectors as stored) or 'hog', got "
                     f"{features!r}.")
  if features == "auto":
    features = "hog" if np.ndim(split.x_train) in (3, 4) else "raw"
  if preprocess not in PREPROCESS:
    raise ValueError(f"config.zsl.preprocess must be one of {PREPROCESS}, "
                     f"got {preprocess!r}.")
  xs = (split.x_train, split.x_test_seen, split.x_test_unseen)
  if features == "hog":
    if np.ndim(split.x_train) not in (3, 4):
      raise ValueError(f"{split.name}: features='hog' needs images, but the "
                       f"domain holds feature vectors {split.x_train.shape}; "
                       "use features='raw'.")
    xs = [zsl_features.hog(x, cells=hog_cells) for x in xs]
  xs = [np.asarray(x, np.float32).reshape(len(x), -1) for x in xs]
  mu = xs[0].mean(0)
  if preprocess in ("center_l2", "zscore"):
    xs = [x - mu for x in xs]
  if preprocess == "zscore":
    sd = xs[0].std(0)
    xs = [x / np.where(sd > 1e-6, sd, 1.0) for x in xs]
  if preprocess in ("center_l2", "l2"):
    xs = [x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
          for x in xs]
  return dataclasses.replace(split, x_train=xs[0], x_test_seen=xs[1],
                             x_test_unseen=xs[2]).check()


def _options(config) -> dict:
  return {k: v for k, v in config.method.items() if k not in NON_OPTION_KEYS}


def _grid(config) -> list[dict]:
  grid = dict(config.zsl.get("grid", {}) or {})
  if not grid:
    return [{}]
  keys = sorted(grid)
  values = [list(grid[k]) if isinstance(grid[k], (list, tuple)) else
            [grid[k]] for k in keys]
  return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _to_dict(config) -> dict:
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.config_to_dict(config)


def run(config: ml_collections.ConfigDict, workdir, **kwargs) -> dict:
  """Runs one zero-shot experiment and writes ``<workdir>/result.json``."""
  del kwargs
  # pylint: disable=g-import-not-at-top
  import tlax
  from tlax.train import trainer
  from tlax.train.metrics_log import write_atomic
  # pylint: enable=g-import-not-at-top
  t0 = time.time()
  workdir = os.path.abspath(os.fspath(workdir))
  os.makedirs(workdir, exist_ok=True)
  result_path = os.path.join(workdir, "result.json")
  config_dict = _to_dict(config)
  previous = trainer.stored_result(workdir, config_dict)
  if previous is not None:
    return previous

  z = config.zsl
  name = config.method.name
  zsl_methods.get_method(name, **_options(config))  # unknown names fail early
  unseen = [u for u in str(z.get("unseen", "") or "").split(",") if u]
  split = zsl_data.make_split(
      config.source, config.target, seed=int(config.seed),
      num_unseen=int(z.num_unseen), seen_test_fraction=z.seen_test_fraction,
      semantic_space=z.semantic, data_dir=config.get("data_dir"),
      image_size=int(z.image_size), unseen=unseen)
  split = extract_features(split, z.features, z.preprocess,
                           hog_cells=int(z.get("hog_cells", 4)))
  if z.get("normalise_embeddings", True):
    split = dataclasses.replace(
        split, class_embeddings=semantic.l2_normalise(split.class_embeddings))
  n_val = int(z.val_classes) or max(2, int(round(0.2 * len(split.seen))))
  n_val = max(1, min(n_val, len(split.seen) - 2))
  folds = [protocols.validation_split(split, num_val_classes=n_val,
                                      seed=int(config.seed) * 1000 + k)
           for k in range(max(1, int(z.get("val_folds", 3))))]
  rng = jax.random.PRNGKey(int(config.seed))

  # Options (on the first fold) and calibration (mean H over the folds) from
  # held-out seen classes only.
  best = None
  for extra in _grid(config):
    method = zsl_methods.get_method(name, **{**_options(config), **extra})
    metrics, _, scores = protocols.fit_and_evaluate(method, folds[0], rng)
    if best is None or metrics["zsl_accuracy"] > best[0]["zsl_accuracy"]:
      best = (metrics, extra, scores)
  options = {**_options(config), **best[1]}
  method = zsl_methods.get_method(name, **options)
  c = len(split.class_names)
  gamma, val_h = (0.0, None)
  if z.calibrate:
    fold_scores = [best[2]] + [
        protocols.fit_and_evaluate(method, fold, rng)[2] for fold in folds[1:]]
    gamma, val_h = protocols.choose_gamma([
        (s["seen"], f.y_test_seen, s["unseen"], f.y_test_unseen, f.seen,
         f.unseen, c) for s, f in zip(fold_scores, folds)])

  metrics, params, scores = protocols.fit_and_evaluate(method, split, rng,
                                                       gamma=gamma)
  names = split.class_names
  result = {
      "method": name, "source": config.source, "target": config.target,
      "seed": int(config.seed), **metrics,
      "target_accuracy": metrics["zsl_accuracy"],
      "gamma": gamma, "validation": {
          "zsl_accuracy": best[0]["zsl_accuracy"], "gzsl_h": val_h,
          "unseen": [[names[i] for i in f.unseen] for f in folds]},
      "options": {k: v for k, v in options.items()},
      "split": {"seen": [names[i] for i in split.seen],
                "unseen": [names[i] for i in split.unseen],
                "train_images": int(len(split.y_train)),
                "test_seen_images": int(len(split.y_test_seen)),
                "test_unseen_images": int(len(split.y_test_unseen))},
      "wall_time_s": time.time() - t0, "config": config_dict,
      "tlax_version": getattr(tlax, "__version__", "?"),
      "jax_version": jax.__version__,
      "device": str(jax.devices()[0].device_kind),
  }
  if config.get("plots"):
    from tlax.zsl import plots  # pylint: disable=g-import-not-at-top
    plots.calibration_curve(scores, split, gamma,
                            os.path.join(workdir, "calibration.png"),
                            title=f"{name}: {config.source} → "
                                  f"{config.target}")
    if method.embed is not None:
      plots.tsne(method, params, split,
                 os.path.join(workdir, "tsne.png"), seed=int(config.seed),
                 title=f"{name}: test images and class embeddings")
  write_atomic(result_path, json.dumps(result, indent=1, default=float))
  return result
