"""Shared pieces of the closed-form (shallow) transfer methods.

Every shallow method is an estimator with the same API::

    est = tlax.shallow.JDA(k=100, lam=0.1)
    yt_pred = est.fit_predict(Xs, ys, Xt)      # or fit(...); predict(Xt)
    Zs, Zt = est.transform(Xs), est.transform(Xt)

Inputs are validated here once, with messages that say what is wrong.
"""

from __future__ import annotations

import numpy as np


class ShallowInputError(ValueError):
  """Bad input to a shallow method (shapes, labels, NaNs)."""


def check_inputs(xs, ys, xt, *, min_classes: int = 2, name: str = "method"):
  """Validates and converts source features, labels and target features.

  Returns:
    ``(xs, ys, xt, classes)``: float64 arrays, int labels re-indexed to
    ``0..C-1`` and the original class values.

  Raises:
    ShallowInputError: on empty inputs, non-2D features, mismatched feature
      sizes or label counts, NaN or infinite values, fewer than
      ``min_classes`` source classes.
  """
  xs = np.asarray(xs, dtype=np.float64)
  xt = np.asarray(xt, dtype=np.float64)
  ys = np.asarray(ys)
  for arr, what in ((xs, "source features Xs"), (xt, "target features Xt")):
    if arr.ndim != 2:
      raise ShallowInputError(
          f"{name}: {what} must be 2-D (n_samples, n_features), got shape "
          f"{arr.shape}.")
    if arr.shape[0] == 0:
      raise ShallowInputError(f"{name}: {what} is empty (0 samples).")
    if not np.isfinite(arr).all():
      bad = int((~np.isfinite(arr)).any(axis=1).sum())
      raise ShallowInputError(
          f"{name}: {what} contains NaN or infinite values in {bad} rows.")
  if xs.shape[1] != xt.shape[1]:
    raise ShallowInputError(
        f"{name}: source and target feature sizes differ ({xs.shape[1]} vs "
        f"{xt.shape[1]}); both domains must live in the same feature space.")
  if ys.ndim != 1 or ys.shape[0] != xs.shape[0]:
    raise ShallowInputError(
        f"{name}: source labels ys must have shape ({xs.shape[0]},), got "
        f"{ys.shape}.")
  classes, ys_idx = np.unique(ys, return_inverse=True)
  if len(classes) < min_classes:
    raise ShallowInputError(
        f"{name}: the source has {len(classes)} class(es); at least "
        f"{min_classes} are needed.")
  return xs, ys_idx.astype(np.int64), xt, classes


def check_features(x, n_features: int, *, name: str = "method",
                   what: str = "X"):
  """Validates features passed to ``transform``/``predict`` after ``fit``."""
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2 or x.shape[1] != n_features:
    raise ShallowInputError(
        f"{name}: {what} must have shape (n, {n_features}) as in fit, got "
        f"{x.shape}.")
  if not np.isfinite(x).all():
    raise ShallowInputError(f"{name}: {what} contains NaN or infinite values.")
  return x


def nearest_neighbor_predict(z_train, y_train, z_query):
  """1-NN (Euclidean) labels of ``z_query`` from ``(z_train, y_train)``.

  Uses ``argmin ||a||^2 - 2 a.b`` over one matrix product.
  """
  z_train = np.asarray(z_train, dtype=np.float64)
  z_query = np.asarray(z_query, dtype=np.float64)
  d = (z_train ** 2).sum(1)[None, :] - 2.0 * z_query @ z_train.T
  return np.asarray(y_train)[np.argmin(d, axis=1)]


def accuracy(y_true, y_pred) -> float:
  """Accuracy in percent."""
  return 100.0 * float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
