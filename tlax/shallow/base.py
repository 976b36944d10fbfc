"""Shared pieces of the closed-form (shallow) transfer methods.

Every shallow method is an estimator with the same API::

    est = tlax.shallow.JDA(k=100, lam=0.1)
    yt_pred = est.fit_predict(Xs, ys, Xt)      # or fit(...); predict(Xt)
    Zs, Zt = est.transform(Xs), est.transform(Xt)

Inputs are validated here once, with messages that say what is wrong.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


class ShallowInputError(ValueError):
  """Bad input to a shallow method (shapes, labels, NaNs)."""


def integer(value, what: str, name: str, *, low: int = 1) -> int:
  """``value`` as an int ``>= low``; a whole float (2.0, as config files
  give) is accepted, a fractional one (2.5), NaN, a bool or a string is
  refused rather than truncated."""
  if isinstance(value, numbers.Real) and not isinstance(
      value, (bool, numbers.Integral)):
    if math.isfinite(float(value)) and float(value).is_integer():
      value = int(value)
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise ShallowInputError(
        f"{name}: {what} must be an integer >= {low}, got {value!r}.")
  if value < low:
    raise ShallowInputError(
        f"{name}: {what} must be an integer >= {low}, got {value}.")
  return int(value)


def real(value, what: str, name: str, *, low: float | None = None,
         high: float | None = None, low_open: bool = False,
         none_ok: bool = False) -> float | None:
  """``value`` as a finite float in the range (``low_open``: ``> low``);
  NaN, inf, non-numbers and values out of range are refused."""
  if value is None and none_ok:
    return None
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise ShallowInputError(f"{name}: {what} must be a number, got "
                            f"{value!r}.")
  v = float(value)
  bad = not math.isfinite(v)
  if low is not None:
    bad = bad or (v <= low if low_open else v < low)
  if high is not None:
    bad = bad or v > high
  if bad:
    rng = []
    if low is not None:
      rng.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
      rng.append(f"<= {high:g}")
    raise ShallowInputError(
        f"{name}: {what} must be a finite number"
        f"{' ' + ' and '.join(rng) if rng else ''}, got {value!r}.")
  return v


def check_labels(ys, name: str, what: str = "source labels ys"):
  """Class labels: integers, strings or booleans; floats only when every
  value is a whole number (continuous targets are refused: they would make
  one class per sample)."""
  ys = np.asarray(ys)
  if ys.dtype.kind == "f":
    if not np.isfinite(ys).all():
      raise ShallowInputError(f"{name}: {what} contain NaN or inf.")
    if not np.all(ys == np.round(ys)):
      frac = ys[ys != np.round(ys)][:3].tolist()
      raise ShallowInputError(
          f"{name}: {what} must be class ids; got non-integer values such "
          f"as {frac} (continuous targets are regression, not "
          "classification). Pass integer or string labels.")
  elif ys.dtype.kind not in "iubUSO":
    raise ShallowInputError(f"{name}: {what} must be class ids (integers or "
                            f"strings), got dtype {ys.dtype}.")
  return ys


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
  check_labels(ys, name)
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
