"""Static (trace-time) input checks shared by the losses.

Everything here looks only at shapes, dtypes and Python / NumPy constants, so
it runs unchanged under ``jax.jit`` and ``jax.vmap`` (where it sees the
per-example shapes). Values that are traced (for example bandwidths computed
inside a jitted function) are not checked.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def as_features(x: Any, name: str, fn: str, *, min_batch: int = 1) -> jax.Array:
  """Returns ``x`` as a floating (batch, features) array or raises."""
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(
        f"{fn}: {name} must be a 2-D array of shape (batch, features); "
        f"got shape {tuple(x.shape)}.")
  if x.shape[0] == 0:
    raise ValueError(
        f"{fn}: {name} is an empty batch (shape {tuple(x.shape)}); "
        "need at least 1 example.")
  if x.shape[1] == 0:
    raise ValueError(
        f"{fn}: {name} has no features (shape {tuple(x.shape)}).")
  if x.shape[0] < min_batch:
    raise ValueError(
        f"{fn}: {name} has {x.shape[0]} example(s); this estimator needs at "
        f"least {min_batch} per domain.")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(
        f"{fn}: {name} must have a floating dtype (float32, bfloat16, "
        f"float64, ...); got {x.dtype}.")
  return x


def check_same_features(xs: jax.Array, xt: jax.Array, fn: str,
                        names: tuple[str, str] = ("xs", "xt")) -> None:
  if xs.shape[1] != xt.shape[1]:
    raise ValueError(
        f"{fn}: {names[0]} and {names[1]} must have the same number of "
        f"features; got {xs.shape[1]} and {xt.shape[1]} (shapes "
        f"{tuple(xs.shape)} and {tuple(xt.shape)}).")


def compute_dtype(*xs: jax.Array) -> jnp.dtype:
  """float32 for half-precision inputs, else the promoted input dtype."""
  dt = jnp.result_type(*xs)
  return jnp.promote_types(dt, jnp.float32)


def is_concrete(x: Any) -> bool:
  """True if ``x`` is a Python/NumPy value or a non-traced jax array."""
  if isinstance(x, jax.core.Tracer):
    return False
  return True


def check_finite_positive(values: Any, what: str, fn: str) -> None:
  """Eagerly checks concrete values are finite and > 0 (no-op if traced)."""
  if not is_concrete(values):
    return
  arr = np.asarray(values, dtype=np.float64).reshape(-1)
  if np.isnan(arr).any():
    raise ValueError(f"{fn}: {what} contains NaN: {arr.tolist()}.")
  if not np.isfinite(arr).all() or (arr <= 0).any():
    raise ValueError(
        f"{fn}: {what} must be finite and > 0; got {arr.tolist()}.")


def check_finite(values: Any, what: str, fn: str) -> None:
  if not is_concrete(values):
    return
  arr = np.asarray(values, dtype=np.float64).reshape(-1)
  if not np.isfinite(arr).all():
    raise ValueError(f"{fn}: {what} must be finite; got {arr.tolist()}.")


def check_in_range(value: Any, what: str, fn: str, low: float,
                   high: float) -> None:
  """Eagerly checks a concrete scalar is finite and in [low, high]."""
  if not is_concrete(value):
    return
  v = float(np.asarray(value, dtype=np.float64))
  if not (np.isfinite(v) and low <= v <= high):
    raise ValueError(f"{fn}: {what} must be finite and in [{low:g}, "
                     f"{high:g}]; got {v!r}.")


def nan_unless(ok: Any, value: jax.Array) -> jax.Array:
  """``value`` where ``ok`` holds, else NaN: how a jitted loss reports a
  traced input it cannot check at trace time (a NaN hyper-parameter,
  negative kernel weights), so that no plausible number comes out."""
  return jnp.where(ok, value, jnp.asarray(jnp.nan, value.dtype))


def all_finite(*xs: Any) -> jax.Array:
  """One scalar: every entry of every array is finite."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in xs]))


def check_estimator(estimator: str, fn: str) -> None:
  if estimator not in ("biased", "unbiased", "linear"):
    raise ValueError(
        f"{fn}: estimator must be one of 'biased', 'unbiased', 'linear'; got "
        f"{estimator!r}.")


def prod(xs) -> int:
  return math.prod(xs)
