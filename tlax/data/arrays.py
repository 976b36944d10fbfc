"""Tasks from the user's own arrays.

    task = tlax.data.task_from_arrays(xs, ys, xt)          # unlabelled target
    task = tlax.data.task_from_arrays(xs, ys, xt, yt)      # with test labels
    result = tlax.train.train_and_evaluate(config, workdir, task=task)

Inputs are feature vectors ``(N, D)`` or images ``(N, H, W, C)`` (NumPy or
JAX arrays, any float or integer dtype; images are used as given, so scale
them as the model expects). Labels are integers ``0..C-1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tlax.data.domains import Domain
from tlax.data.tasks import Task
from tlax.data.tasks import task_from_domains


def _inputs(name: str, x: Any) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim not in (2, 4):
    raise ValueError(
        f"{name} must be feature vectors (N, D) or images (N, H, W, C); got "
        f"shape {x.shape}. Reshape it, e.g. {name}.reshape(len({name}), -1) "
        "for flat features, or add a channel axis to (N, H, W) images.")
  if len(x) == 0:
    raise ValueError(f"{name} is empty.")
  if not (np.issubdtype(x.dtype, np.floating)
          or np.issubdtype(x.dtype, np.integer)
          or x.dtype == np.bool_):
    raise ValueError(f"{name} must be numeric, got dtype {x.dtype}.")
  x = x.astype(np.float32)
  bad = ~np.isfinite(x)
  if bad.any():
    row = int(np.argwhere(bad)[0][0])
    raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values "
                     f"(first in row {row}); clean or impute them first.")
  return x


def _labels(name: str, y: Any, n: int) -> np.ndarray:
  y = np.asarray(y)
  if y.ndim == 2 and y.shape[1] == 1:
    y = y[:, 0]
  if y.ndim != 1 or len(y) != n:
    raise ValueError(f"{name} must be a vector of {n} labels (one per row of "
                     f"the inputs); got shape {y.shape}.")
  if np.issubdtype(y.dtype, np.floating):
    if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
      raise ValueError(
          f"{name} must hold integer class labels 0..C-1; got non-integer "
          f"values such as {y[np.flatnonzero(y != np.round(y))[:3]]}. For "
          "regression targets tlax has no task; for string classes map them "
          "to integers first (e.g. np.unique(y, return_inverse=True)).")
  elif not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class labels, got dtype "
                     f"{y.dtype}; map classes to 0..C-1 first "
                     "(np.unique(y, return_inverse=True)).")
  y = y.astype(np.int64)
  if y.min() < 0:
    raise ValueError(f"{name} has negative labels ({int(y.min())}); labels "
                     "must be 0..C-1.")
  return y.astype(np.int32)


def task_from_arrays(xs, ys, xt, yt=None, *, num_classes: int | None = None,
                     seed: int = 0, source_val_fraction: float = 0.1,
                     xt_test=None, yt_test=None, class_names=None,
                     source_name: str = "arrays/source",
                     target_name: str = "arrays/target") -> Task:
  """A transfer task from labelled source arrays and target arrays.

  Args:
    xs: source inputs, ``(Ns, D)`` features or ``(Ns, H, W, C)`` images.
    ys: source labels ``(Ns,)``, integers in ``0..C-1``.
    xt: target inputs of the same shape per example as ``xs``: the
      unlabelled data the method adapts to.
    yt: optional target labels of ``xt``. When given, ``xt`` is also the test
      set (the transductive protocol of the domain-adaptation benchmarks) and
      the result reports target accuracy; when None, the result has no
      target accuracy but still records the label-free selections.
    num_classes: ``C``; default ``max(label) + 1`` over the given labels.
    seed: seeds the stratified source-validation split.
    source_val_fraction: fraction of the source held out for validation.
    xt_test, yt_test: a separate labelled target test set (then ``xt`` is
      only the unlabelled training data).
    class_names: optional names of the ``C`` classes.
    source_name, target_name: names shown in logs and ``result.json``.

  Returns:
    A :class:`tlax.data.Task` for :func:`tlax.train.train_and_evaluate`
    (``task=``).

  Raises:
    ValueError: shapes that do not pair, non-integer or out-of-range labels,
      NaN or infinite inputs; the message names the argument.
  """
  xs = _inputs("xs", xs)
  ys = _labels("ys", ys, len(xs))
  xt = _inputs("xt", xt)
  if xs.shape[1:] != xt.shape[1:]:
    raise ValueError(f"xs has examples of shape {xs.shape[1:]} but xt has "
                     f"{xt.shape[1:]}: source and target inputs must have the "
                     "same shape per example.")
  labelled = [ys]
  if yt is not None:
    yt = _labels("yt", yt, len(xt))
    labelled.append(yt)
  if (xt_test is None) != (yt_test is None):
    raise ValueError("Give both xt_test and yt_test, or neither.")
  if xt_test is not None:
    xt_test = _inputs("xt_test", xt_test)
    if xt_test.shape[1:] != xs.shape[1:]:
      raise ValueError(f"xt_test has examples of shape {xt_test.shape[1:]}, "
                       f"xs {xs.shape[1:]}.")
    yt_test = _labels("yt_test", yt_test, len(xt_test))
    labelled.append(yt_test)
  top = int(max(y.max() for y in labelled)) + 1
  if num_classes is None:
    num_classes = top
  elif int(num_classes) < top:
    raise ValueError(f"num_classes={num_classes} but the labels go up to "
                     f"{top - 1}.")
  num_classes = int(num_classes)
  if num_classes < 2:
    raise ValueError("A classification task needs at least 2 classes; the "
                     f"labels hold {num_classes}.")
  names = tuple(class_names) if class_names is not None else tuple(
      str(c) for c in range(num_classes))
  if len(names) != num_classes:
    raise ValueError(f"class_names has {len(names)} names for {num_classes} "
                     "classes.")
  kind = "features" if xs.ndim == 2 else "image"
  source = Domain(source_name, {"train": (xs, ys), "test": (xs, ys)},
                  num_classes, kind, names, {"origin": "arrays"})
  has_labels = yt is not None or yt_test is not None
  if xt_test is not None:
    target_splits = {"train": (xt, yt if yt is not None else
                               np.zeros(len(xt), np.int32)),
                     "test": (xt_test, yt_test)}
    transductive = False
  else:
    y = yt if yt is not None else np.zeros(len(xt), np.int32)
    target_splits = {"train": (xt, y), "test": (xt, y)}
    transductive = True
  target = Domain(target_name, target_splits, num_classes, kind, names,
                  {"origin": "arrays", "transductive": transductive})
  return task_from_domains(
      source, target, seed=seed, source_val_fraction=source_val_fraction,
      info={"target_labels": has_labels, "origin": "arrays"})
