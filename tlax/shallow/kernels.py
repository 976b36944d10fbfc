"""Kernel helpers shared by the closed-form (shallow) transfer methods.

Samples are ROWS (``X`` has shape ``(n, d)``), as everywhere in tlax; the
MATLAB reference code of TCA/JDA/BDA/MEDA stores samples as columns, so its
``X' * X`` is our ``X @ X.T``.

Kinds (the names the papers' code uses):

- ``"primal"``: no kernel; methods solve the ``d x d`` problem on the features
  themselves. :func:`kernel` returns ``X`` (and ignores ``Y``) so a caller can
  write one code path ``K = kernel(kind, X)`` for the data matrix.
- ``"linear"``: ``K = X Y^T``.
- ``"rbf"``: ``K = exp(-gamma ||x - y||^2)``.

Every function is pure JAX, works under ``jit`` (``kind`` static) and keeps the
input dtype, so float64 inputs under ``jax.enable_x64(True)`` give
float64 kernels.

API (stable, used by ``feature.py`` and ``meda.py``)::

    kernel(kind, X, Y=None, gamma=None) -> K  (n, m)  [primal: X]
    sq_dists(X, Y=None)                 -> D  (n, m)  squared Euclidean
    default_gamma(X)                    -> 1 / mean pairwise squared distance
    meda_gamma(X)                       -> MEDA's width: 1 / (2 sigma^2),
                                           sigma^2 = mean row norm
"""

from __future__ import annotations

import jax.numpy as jnp

KINDS = ("primal", "linear", "rbf")


def _check_kind(kind: str) -> None:
  if kind not in KINDS:
    raise ValueError(f"kernel kind must be one of {KINDS}, got {kind!r}.")


def sq_dists(x, y=None):
  """Squared Euclidean distances between the rows of ``x`` and ``y``.

  Computed as ``||a||^2 + ||b||^2 - 2 a.b`` (one matrix product) and clipped
  at 0 against round-off.

  Args:
    x: ``(n, d)``.
    y: ``(m, d)``; ``x`` when None.

  Returns:
    ``(n, m)`` array.
  """
  x = jnp.asarray(x)
  y = x if y is None else jnp.asarray(y)
  xx = jnp.sum(x * x, axis=1)
  yy = xx if y is x else jnp.sum(y * y, axis=1)
  d = xx[:, None] + yy[None, :] - 2.0 * (x @ y.T)
  return jnp.maximum(d, 0.0)


def default_gamma(x):
  """RBF ``gamma`` = 1 / (mean squared distance between rows of ``x``).

  The mean over all ordered pairs (including i = j) equals
  ``2 (mean ||x_i||^2 - ||mean x||^2)``, so this is O(n d), no n x n matrix.
  """
  x = jnp.asarray(x)
  mean_sq = 2.0 * (jnp.mean(jnp.sum(x * x, axis=1))
                   - jnp.sum(jnp.mean(x, axis=0) ** 2))
  return 1.0 / jnp.maximum(mean_sq, jnp.finfo(x.dtype).tiny)


def meda_gamma(x):
  """The RBF width of the MEDA reference code, as ``gamma = 1 / (2 sigma^2)``.

  MEDA (Wang et al., ACM MM 2018) uses ``exp(-||a - b||^2 / (2 sigma^2))``
  with ``sigma = sqrt(mean_i ||x_i||)`` over all source and target rows; for
  unit-norm rows sigma = 1 and gamma = 0.5.
  """
  x = jnp.asarray(x)
  sigma2 = jnp.mean(jnp.sqrt(jnp.sum(x * x, axis=1)))
  return 1.0 / (2.0 * jnp.maximum(sigma2, jnp.finfo(x.dtype).tiny))


def kernel(kind: str, x, y=None, gamma=None):
  """Kernel matrix between the rows of ``x`` and ``y``.

  Args:
    kind: ``"primal"``, ``"linear"`` or ``"rbf"`` (static under jit).
    x: ``(n, d)``.
    y: ``(m, d)``; ``x`` when None. Ignored for ``"primal"``.
    gamma: RBF inverse width in ``exp(-gamma ||a - b||^2)``; when None,
      :func:`default_gamma` of ``x``. Ignored for the other kinds.

  Returns:
    ``(n, m)`` kernel matrix; for ``"primal"`` the data matrix ``x`` itself.
  """
  _check_kind(kind)
  x = jnp.asarray(x)
  if kind == "primal":
    return x
  yy = x if y is None else jnp.asarray(y)
  if kind == "linear":
    return x @ yy.T
  if gamma is None:
    gamma = default_gamma(x)
  return jnp.exp(-gamma * sq_dists(x, None if y is None else yy))
