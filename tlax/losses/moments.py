r"""Moment-matching discrepancies: Deep CORAL and central moment discrepancy.

References:
  Sun and Saenko, Deep CORAL: Correlation Alignment for Deep Domain
  Adaptation, ECCV 2016 workshops.
  Zellinger et al., Central Moment Discrepancy (CMD) for Domain-Invariant
  Representation Learning, ICLR 2017.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tlax.losses import _validation as val
from tlax.losses import kernels as kern

Array = jax.Array


def _centered_stack(xs, xt):
  """P = [xs - mean(xs); xt - mean(xt)] and the row signs s (1/(ns-1) on
  source rows, -1/(nt-1) on target rows), so that C_s - C_t = (s P)^T P."""
  ns, nt = xs.shape[0], xt.shape[0]
  p = jnp.concatenate([xs - kern.column_mean(xs), xt - kern.column_mean(xt)])
  sign = jnp.concatenate([jnp.full((ns,), 1.0 / (ns - 1), xs.dtype),
                          jnp.full((nt,), -1.0 / (nt - 1), xs.dtype)])
  return p, sign


def _coral_parts(xs, xt):
  """The loss and ``M``, with ``dL/dP = M P``-style reuse (see ``_coral``).

  With ``n = ns + nt`` rows and ``d`` features the loss needs one of two
  products: the d x d difference ``C_s - C_t = (S P)^T P`` (cost n d^2), or,
  when ``n < d``, the n x n Gram ``G = P P^T`` (cost n^2 d), since
  ``||(S P)^T P||_F^2 = sum_ij s_i s_j G_ij^2``.
  """
  p, sign = _centered_stack(xs, xt)
  d = xs.shape[1]
  sp = sign[:, None] * p
  if p.shape[0] < d:
    gram = p @ p.T
    m = sign[:, None] * gram * sign[None, :]  # S G S
    value = jnp.sum(m * gram) / (4.0 * d * d)
    return value, lambda: m @ p / (d * d)
  diff = sp.T @ p  # C_s - C_t in one (d, d, n) product
  value = jnp.sum(diff * diff) / (4.0 * d * d)
  return value, lambda: sp @ diff / (d * d)


@jax.custom_jvp
def _coral(xs, xt):
  return _coral_parts(xs, xt)[0]


@_coral.defjvp
def _coral_jvp(primals, tangents):
  """dL/dP = S P (C_s - C_t) / d^2 = (S G S) P / d^2: one more product.

  Its rows sum to zero within each domain, so the centring drops out and
  the tangent is <dL/dP, [dxs; dxt]>.
  """
  xs, xt = primals
  dxs, dxt = tangents
  ns = xs.shape[0]
  value, grad_p = _coral_parts(xs, xt)
  g = grad_p()
  return value, jnp.sum(g[:ns] * dxs) + jnp.sum(g[ns:] * dxt)


def coral(xs: Any, xt: Any) -> Array:
  r"""Deep CORAL loss :math:`\frac{1}{4d^2}\|C_s - C_t\|_F^2`.

  :math:`C_s = \frac{1}{n_s - 1}(X_s - \bar X_s)^\top (X_s - \bar X_s)` and
  likewise :math:`C_t` are the unbiased feature covariances, :math:`d` the
  feature size. Zero iff the covariances are equal (means are ignored).
  Cost: one :math:`d \times d \times n` product forward, :math:`n = n_s +
  n_t` (:math:`C_s - C_t = (S P)^\top P` with :math:`P` the stacked
  centred batches, :math:`S` = diag(1/(n_s-1), ..., -1/(n_t-1), ...)), or,
  when :math:`n < d`, one :math:`n \times n \times d` Gram product
  (:math:`\|C_s - C_t\|_F^2 = \sum_{ij} s_i s_j (PP^\top)_{ij}^2`); one
  more product of the same size for the gradient (a ``custom_jvp``;
  forward mode and Hessians work).

  Args:
    xs: (ns, d) source features, ``ns >= 2``.
    xt: (nt, d) target features, ``nt >= 2``.

  Returns:
    Scalar (float32 for half-precision inputs).

  Example:
    >>> import jax
    >>> x = jax.random.normal(jax.random.key(0), (16, 4))
    >>> round(float(coral(x, x + 3.0)), 8)  # a shift keeps covariances
    0.0

  References:
    Sun and Saenko, Deep CORAL, ECCV 2016 workshops.
  """
  fn = "coral"
  xs = val.as_features(xs, "xs", fn, min_batch=2)
  xt = val.as_features(xt, "xt", fn, min_batch=2)
  val.check_same_features(xs, xt, fn)
  dt = val.compute_dtype(xs, xt)
  return _coral(xs.astype(dt), xt.astype(dt))


def _safe_norm(v: Array) -> Array:
  """Euclidean norm with gradient 0 (not NaN) at v = 0."""
  s = jnp.sum(v * v)
  pos = ~(s <= 0)  # NaN counts as positive: a NaN gap gives a NaN norm
  return jnp.where(pos, jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


def cmd(xs: Any, xt: Any, n_moments: int = 5,
        bounds: tuple[float, float] = (0.0, 1.0)) -> Array:
  r"""Central moment discrepancy of order ``n_moments``.

  .. math:: \mathrm{CMD}_K = \frac{1}{|b-a|}\|\mathbb E(X_s) -
     \mathbb E(X_t)\|_2 + \sum_{k=2}^{K} \frac{1}{|b-a|^k}
     \|c_k(X_s) - c_k(X_t)\|_2,

  with :math:`c_k(X) = \mathbb E\big((X - \mathbb E X)^k\big)` taken
  coordinate-wise (sample means over the batch).

  Bounds: Zellinger et al. define CMD for distributions on the box
  :math:`[a, b]^d` (e.g. sigmoid activations, :math:`[0, 1]`; tanh,
  :math:`[-1, 1]`); there it is a metric on distributions with that
  support and, for each :math:`k`, :math:`\|c_k(X_s) - c_k(X_t)\|_2 /
  |b-a|^k \le 2\sqrt{d}`, so :math:`0 \le \mathrm{CMD}_K \le 2K\sqrt d`.
  ``bounds`` only rescales the terms; unbounded features (e.g. ReLU) are
  accepted, the bound then does not hold. Their released code uses
  ``bounds=(0, 1)`` (no scaling), the default here. The norms use a
  zero subgradient at 0, so the loss is differentiable at equal moments.

  Args:
    xs: (ns, d) source activations.
    xt: (nt, d) target activations.
    n_moments: K >= 1, the highest central moment matched.
    bounds: (a, b) with b > a, the activations' range.

  Returns:
    Scalar.

  References:
    Zellinger et al., Central Moment Discrepancy (CMD) for
    Domain-Invariant Representation Learning, ICLR 2017.
  """
  fn = "cmd"
  if not isinstance(n_moments, (int, np.integer)) or n_moments < 1:
    raise ValueError(f"{fn}: n_moments must be an int >= 1; got "
                     f"{n_moments!r}.")
  try:
    a, b = (float(bounds[0]), float(bounds[1]))
  except (TypeError, IndexError, ValueError) as e:
    raise ValueError(f"{fn}: bounds must be a pair of floats (a, b); got "
                     f"{bounds!r}.") from e
  if not (np.isfinite(a) and np.isfinite(b) and b > a):
    raise ValueError(f"{fn}: bounds must be finite with b > a; got {bounds!r}.")
  xs = val.as_features(xs, "xs", fn)
  xt = val.as_features(xt, "xt", fn)
  val.check_same_features(xs, xt, fn)
  dt = val.compute_dtype(xs, xt)
  return _cmd(xs.astype(dt), xt.astype(dt), n_moments, b - a)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _power_means(c, n_moments):
  """Column means of c^2, ..., c^K in one pass (a variadic reduction: the
  powers are computed inside it and never stored)."""
  powers, p = [], c
  for _ in range(2, n_moments + 1):
    p = p * c
    powers.append(p)
  zero = jnp.zeros((), c.dtype)
  sums = jax.lax.reduce(tuple(powers), (zero,) * len(powers),
                        lambda a, b: tuple(u + v for u, v in zip(a, b)), (0,))
  return tuple(v / c.shape[0] for v in sums)


@_power_means.defjvp
def _power_means_jvp(n_moments, primals, tangents):
  (c,), (dc,) = primals, tangents
  out = _power_means(c, n_moments)
  tan = tuple(kern.column_mean(k * jax.lax.integer_pow(c, k - 1) * dc)
              for k in range(2, n_moments + 1))
  return out, tan


def _moments(x, n_moments):
  """Mean and central moments c_2..c_K of the columns of x."""
  m = kern.column_mean(x)
  if n_moments == 1:
    return m, []
  return m, list(_power_means(x - m, n_moments))


def _unit(v):
  """v / ||v|| (0 at v = 0): the (sub)gradient of the norm."""
  s = jnp.sum(v * v)
  pos = ~(s <= 0)  # NaN propagates
  return jnp.where(pos, v / jnp.sqrt(jnp.where(pos, s, 1.0)), 0.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _cmd(xs, xt, n_moments, span):
  ms, cs = _moments(xs, n_moments)
  mt, ct = _moments(xt, n_moments)
  total = _safe_norm(ms - mt) / span
  for k in range(2, n_moments + 1):
    total = total + _safe_norm(cs[k - 2] - ct[k - 2]) / (span ** k)
  return total


@_cmd.defjvp
def _cmd_jvp(n_moments, span, primals, tangents):
  """Closed-form gradient, one elementwise pass per domain.

  With u_k the unit vector of the k-th moment gap over span^k,
  d/dx_i = (1/n) [u_1 + sum_{k>=2} k u_k (c_i^{k-1} - c_{k-1})] (minus for
  the target), a polynomial in c_i = x_i - mean evaluated by Horner.
  """
  xs, xt = primals
  dxs, dxt = tangents
  ms, cs = _moments(xs, n_moments)
  mt, ct = _moments(xt, n_moments)
  total = _safe_norm(ms - mt) / span
  u = [_unit(ms - mt) / span]
  for k in range(2, n_moments + 1):
    gap = cs[k - 2] - ct[k - 2]
    total = total + _safe_norm(gap) / (span ** k)
    u.append(_unit(gap) / (span ** k))

  def grad(x, m, mom, n, sign):
    # coefficients of c^j, j = 0..K-1 (mom[k-2] = c_k; c_1 = 0)
    a0 = u[0]
    for k in range(3, n_moments + 1):
      a0 = a0 - k * u[k - 1] * mom[k - 3]
    coeffs = [a0] + [(j + 1) * u[j] for j in range(1, n_moments)]
    c = x - m
    poly = coeffs[-1]
    for a in coeffs[-2::-1]:
      poly = poly * c + a
    return (sign / n) * poly

  gs = grad(xs, ms, cs, xs.shape[0], 1.0)
  gt = grad(xt, mt, ct, xt.shape[0], -1.0)
  return total, jnp.sum(gs * dxs) + jnp.sum(gt * dxt)
