r"""Kernel matrices and bandwidth heuristics, all from one Gram product.

Squared distances are computed as

.. math:: D_{ij} = \|x_i\|^2 + \|y_j\|^2 - 2\, x_i^\top y_j,

clamped at 0, so a whole family of Gaussian kernels

.. math:: k_\sigma(x, y) = \exp\!\left(-\frac{\|x - y\|^2}{2\sigma^2}\right)

costs one :math:`n \times m \times d` matrix product plus an elementwise
``exp`` per kernel (XLA fuses the exponentials, the weighting and the
reductions). For a set against itself the derivative of :math:`x x^\top` is
a ``jax.custom_jvp`` with tangent :math:`T + T^\top`, :math:`T = \dot x\,
x^\top`, so reverse mode costs one more :math:`n \times n \times d` product
(:math:`(G + G^\top) x`) instead of two; forward mode and higher derivatives
keep working. The MMD losses go further (``tlax.losses._fused``).

Bandwidths (``sigmas``) are given either as numbers or as a string spec
computed from the data:

* a float, or a sequence / 1-D array of floats: the :math:`\sigma_k`
  themselves (a traced array is fine, e.g. under ``vmap``).
* ``"<stat>[:<num>[:<base>]]"`` with ``stat`` in ``{"mean", "median"}``:
  :math:`2\sigma_k^2 = \mathrm{stat}_{i \ne j} \|z_i - z_j\|^2 \cdot
  \mathrm{base}^k` for :math:`k = -\lfloor num/2 \rfloor, \dots,
  num - 1 - \lfloor num/2 \rfloor`, where :math:`z` pools both inputs.
  ``num`` defaults to 1, ``base`` to 2. ``"mean:5"`` is exactly the DAN /
  transfer-learning-library scheme (bandwidth = mean squared distance times
  ``2**k``, :math:`k = -2..2`, kernel ``exp(-D / bandwidth)``); ``"median"``
  is the median heuristic with :math:`\exp(-D / \mathrm{median}(D))`
  (Gretton et al.'s :math:`\sigma = ` median distance is
  ``sqrt(2) * gaussian_sigmas("median", x, y)``, passed as numbers). Data
  bandwidths are wrapped in ``jax.lax.stop_gradient`` (as in DAN). ``"mean"``
  costs :math:`O(nd)` (closed form of the mean pairwise distance), ``"median"``
  sorts the :math:`n(n-1)/2` pairwise distances (:math:`O(n^2 \log n)`).

Note: on GPUs with TF32 matmuls, distances of nearby points lose precision;
wrap the call in ``jax.default_matmul_precision("highest")`` if that matters.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from tlax.losses import _validation as val

SigmaSpec = Union[float, Sequence[float], str, jax.Array, np.ndarray]


# ---------------------------------------------------------------------------
# Gram products with a one-product reverse rule.
# ---------------------------------------------------------------------------


def _is_zero(t) -> bool:
  return isinstance(t, SymbolicZero)


@jax.custom_jvp
def sym_gram(x: jax.Array) -> jax.Array:
  """``x @ x.T`` whose reverse-mode derivative is one matrix product."""
  return x @ x.T


@functools.partial(sym_gram.defjvp, symbolic_zeros=True)
def _sym_gram_jvp(primals, tangents):
  (x,), (dx,) = primals, tangents
  out = sym_gram(x)
  if _is_zero(dx):
    return out, jnp.zeros_like(out)
  t = dx @ x.T
  return out, t + t.T


@jax.custom_jvp
def block_gram(xs: jax.Array, xt: jax.Array):
  """The three distinct blocks of the Gram matrix of ``[xs; xt]``.

  Returns ``(xs xs^T, xs xt^T, xt xt^T)``: three products that together cost
  ``(ns^2 + ns nt + nt^2) d`` multiply-adds, 3/4 of the full pooled Gram for
  equal batches (three square products measured faster on CPU than
  ``xs [xs; xt]^T`` plus ``xt xt^T``). The reverse rule costs ``(ns + nt)^2
  d``, as one pooled product would, split into four block products (no
  n x n concatenation): ``(G_ss + G_ss^T) xs + G_st xt`` and ``G_st^T xs +
  (G_tt + G_tt^T) xt``.
  """
  return xs @ xs.T, xs @ xt.T, xt @ xt.T


@functools.partial(block_gram.defjvp, symbolic_zeros=True)
def _block_gram_jvp(primals, tangents):
  xs, xt = primals
  dxs, dxt = tangents
  out = block_gram(xs, xt)
  zs, zt = _is_zero(dxs), _is_zero(dxt)
  if zs and zt:
    return out, tuple(jnp.zeros_like(o) for o in out)
  if zs:
    dss = jnp.zeros_like(out[0])
    dst = xs @ dxt.T
  else:
    t = dxs @ xs.T
    dss = t + t.T
    dst = dxs @ xt.T if zt else dxs @ xt.T + xs @ dxt.T
  if zt:
    dtt = jnp.zeros_like(out[2])
  else:
    t = dxt @ xt.T
    dtt = t + t.T
  return out, (dss, dst, dtt)


def _sq_norms(x: jax.Array) -> jax.Array:
  return jnp.sum(x * x, axis=-1)


def _clamp(d: jax.Array) -> jax.Array:
  """Negative rounding errors to 0; NaN stays NaN (never a plausible 0)."""
  return jnp.where(d < 0, jnp.zeros_like(d), d)


def center_pooled(xs: jax.Array, xt: Optional[jax.Array] = None):
  """Subtracts the mean of the pooled batch ``[xs; xt]`` (not differentiated).

  Squared distances are shift-invariant, but ``|x|^2 + |y|^2 - 2 x.y``
  loses ``log10(|offset|^2 / |x - y|^2)`` digits when the features share a
  large offset; centring first keeps float32 distances (and everything
  built on them) accurate. The mean is a constant for differentiation, which
  leaves every derivative of a distance unchanged.
  """
  z = xs if xt is None else jnp.concatenate([xs, xt], axis=0)
  c = jax.lax.stop_gradient(column_mean(z))
  return (xs - c) if xt is None else (xs - c, xt - c)


def _zero_diagonal(d: jax.Array) -> jax.Array:
  n = d.shape[0]
  eye = jax.lax.broadcasted_iota(jnp.int32, (n, n), 0) == (
      jax.lax.broadcasted_iota(jnp.int32, (n, n), 1))
  return jnp.where(eye, jnp.zeros_like(d), d)


def block_sq_distances(xs: jax.Array, xt: jax.Array):
  """Squared distances ``(D_ss, D_st, D_tt)`` of the pooled batch (no checks).

  Diagonals of ``D_ss`` and ``D_tt`` are exactly 0; entries are clamped at 0.
  """
  gss, gst, gtt = block_gram(xs, xt)
  ns2, nt2 = _sq_norms(xs), _sq_norms(xt)
  dss = _zero_diagonal(_clamp(ns2[:, None] + ns2[None, :] - 2 * gss))
  dst = _clamp(ns2[:, None] + nt2[None, :] - 2 * gst)
  dtt = _zero_diagonal(_clamp(nt2[:, None] + nt2[None, :] - 2 * gtt))
  return dss, dst, dtt


def pairwise_sq_distances(x: Any, y: Optional[Any] = None) -> jax.Array:
  r"""Matrix of squared Euclidean distances :math:`\|x_i - y_j\|^2`.

  Computed from one Gram product, :math:`\|x_i\|^2 + \|y_j\|^2 - 2 x_i^\top
  y_j`, clamped at 0. With ``y=None`` the distances of ``x`` to itself (exact
  zeros on the diagonal, symmetric reverse rule: one extra product).

  Args:
    x: (n, d) array.
    y: optional (m, d) array.

  Returns:
    (n, m) array (n, n if ``y`` is None) in float32 for half-precision inputs,
    else in the input dtype.
  """
  fn = "pairwise_sq_distances"
  x = val.as_features(x, "x", fn)
  if y is None:
    x = center_pooled(x.astype(val.compute_dtype(x)))
    n2 = _sq_norms(x)
    return _zero_diagonal(_clamp(n2[:, None] + n2[None, :] - 2 * sym_gram(x)))
  y = val.as_features(y, "y", fn)
  val.check_same_features(x, y, fn, ("x", "y"))
  dt = val.compute_dtype(x, y)
  x, y = center_pooled(x.astype(dt), y.astype(dt))
  return _clamp(_sq_norms(x)[:, None] + _sq_norms(y)[None, :] - 2 * x @ y.T)


# ---------------------------------------------------------------------------
# Bandwidth specs.
# ---------------------------------------------------------------------------

_SPEC_RE = re.compile(
    r"^(mean|median)(?::(\d+))?(?::([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?))?$")


@dataclasses.dataclass(frozen=True)
class DataSigmas:
  """A parsed data-driven bandwidth spec (hashable, static under jit)."""
  stat: str  # "mean" or "median"
  num: int
  base: float

  @property
  def exponents(self) -> tuple[int, ...]:
    k0 = -(self.num // 2)
    return tuple(range(k0, k0 + self.num))


def parse_sigmas(sigmas: SigmaSpec, fn: str):
  """Returns a ``DataSigmas`` or a 1-D array of fixed sigmas (validated)."""
  if isinstance(sigmas, str):
    m = _SPEC_RE.match(sigmas.strip())
    if not m:
      raise ValueError(
          f"{fn}: cannot parse sigmas spec {sigmas!r}; expected a float, a "
          "sequence of floats, or '<mean|median>[:<num_kernels>[:<base>]]' "
          "such as 'mean:5' (DAN) or 'median'.")
    num = int(m.group(2)) if m.group(2) else 1
    base = float(m.group(3)) if m.group(3) else 2.0
    if num < 1:
      raise ValueError(f"{fn}: sigmas spec {sigmas!r} asks for 0 kernels.")
    if not (base > 0 and np.isfinite(base)):
      raise ValueError(f"{fn}: sigmas spec {sigmas!r} needs a base > 0.")
    return DataSigmas(m.group(1), num, base)
  if isinstance(sigmas, (list, tuple)) and len(sigmas) == 0:
    raise ValueError(f"{fn}: sigmas is empty; give at least one bandwidth.")
  if isinstance(sigmas, (list, tuple)) and any(
      isinstance(s, str) for s in sigmas):
    raise ValueError(
        f"{fn}: sigmas must be one string spec or numbers, got {sigmas!r}.")
  val.check_finite_positive(sigmas, "sigmas", fn)
  arr = jnp.asarray(sigmas)
  if arr.ndim > 1:
    raise ValueError(
        f"{fn}: sigmas must be a scalar or a 1-D sequence; got shape "
        f"{tuple(arr.shape)}.")
  if arr.ndim == 1 and arr.shape[0] == 0:
    raise ValueError(f"{fn}: sigmas is empty; give at least one bandwidth.")
  return jnp.atleast_1d(arr)


def num_kernels(spec) -> int:
  return spec.num if isinstance(spec, DataSigmas) else spec.shape[0]


def column_mean(x: jax.Array) -> jax.Array:
  """Mean over rows (axis 0) as a (1, n) x (n, d) product.

  XLA:CPU's reductions over the leading axis run several times slower than
  its matrix-vector product (measured: 3.1 vs 0.4 ms for 1024 x 2048).
  ``HIGHEST`` precision keeps the sum exact-f32 on TF32 GPUs too.
  """
  w = jnp.full((1, x.shape[0]), 1.0 / x.shape[0], x.dtype)
  return jnp.dot(w, x, precision=jax.lax.Precision.HIGHEST)[0]


def mean_sq_distance(z: jax.Array) -> jax.Array:
  r"""Mean of :math:`\|z_i - z_j\|^2` over :math:`i \ne j` in O(nd).

  Uses :math:`\frac{1}{n(n-1)}\sum_{i\ne j}\|z_i-z_j\|^2 = \frac{2n}{n-1}
  \cdot \frac{1}{n}\sum_i \|z_i - \bar z\|^2` (centred, so no cancellation).
  """
  n = z.shape[0]
  zc = z - column_mean(z)
  return 2.0 * jnp.sum(zc * zc) / max(n - 1, 1)


def _median_of_blocks(dss, dst, dtt) -> jax.Array:
  """Median of the off-diagonal pooled distances (upper triangles + cross)."""
  def upper(d):
    n = d.shape[0]
    r = jax.lax.broadcasted_iota(jnp.int32, (n, n), 0)
    c = jax.lax.broadcasted_iota(jnp.int32, (n, n), 1)
    return jnp.where(c > r, d, jnp.inf).reshape(-1)
  ns, nt = dss.shape[0], dtt.shape[0]
  m = ns * (ns - 1) // 2 + ns * nt + nt * (nt - 1) // 2
  flat = jnp.sort(jnp.concatenate([upper(dss), dst.reshape(-1), upper(dtt)]))
  return 0.5 * (flat[(m - 1) // 2] + flat[m // 2])


def _stat_to_inv_bandwidths(spec: DataSigmas, stat: jax.Array) -> jax.Array:
  """1 / (2 sigma_k^2) for a data spec, ordered by increasing bandwidth."""
  stat = jax.lax.stop_gradient(stat)
  mult = jnp.asarray([spec.base ** k for k in spec.exponents], stat.dtype)
  # Collapsed features (all distances ~0) would give a bandwidth of ~0 and
  # kernels that amplify rounding noise without bound: the bandwidth is at
  # least the dtype's epsilon (NaN stays NaN).
  floor = jnp.asarray(jnp.finfo(stat.dtype).eps, stat.dtype)
  bw = jnp.where(stat * mult < floor, floor, stat * mult)
  return 1.0 / bw


def fixed_inv_bandwidths(sigmas: jax.Array, dtype) -> jax.Array:
  s = sigmas.astype(dtype)
  return 1.0 / (2.0 * s * s)


@jax.custom_jvp
def gaussian_sum(d: jax.Array, inv_bw: jax.Array, weights: jax.Array
                 ) -> jax.Array:
  r""":math:`\sum_k w_k \exp(-D \cdot \mathrm{inv\_bw}_k)` (elementwise).

  A ``custom_jvp`` whose rule computes the value and the derivative
  :math:`\sum_k -w_k\,\mathrm{inv\_bw}_k\,e_k` from the same exponentials,
  so reverse mode keeps one (n, m) residual instead of one per kernel.
  """
  out = weights[0] * jnp.exp(-d * inv_bw[0])
  for k in range(1, inv_bw.shape[0]):
    out = out + weights[k] * jnp.exp(-d * inv_bw[k])
  return out


@functools.partial(gaussian_sum.defjvp, symbolic_zeros=True)
def _gaussian_sum_jvp(primals, tangents):
  d, inv_bw, weights = primals
  dd, dinv, dw = tangents
  num = inv_bw.shape[0]
  es = [jnp.exp(-d * inv_bw[k]) for k in range(num)]
  out = weights[0] * es[0]
  for k in range(1, num):
    out = out + weights[k] * es[k]
  tan = None

  def add(t, x):
    return x if t is None else t + x

  if not _is_zero(dd):
    deriv = -weights[0] * inv_bw[0] * es[0]
    for k in range(1, num):
      deriv = deriv - weights[k] * inv_bw[k] * es[k]
    tan = add(tan, deriv * dd)
  if not _is_zero(dw):
    for k in range(num):
      tan = add(tan, dw[k] * es[k])
  if not _is_zero(dinv):
    for k in range(num):
      tan = add(tan, -weights[k] * dinv[k] * d * es[k])
  return out, jnp.zeros_like(out) if tan is None else tan


def _inv_bandwidths_for(spec, xs, xt, blocks=None):
  """Inverse bandwidths of ``spec`` for the pooled batch ``[xs; xt]``."""
  dt = xs.dtype
  if not isinstance(spec, DataSigmas):
    return fixed_inv_bandwidths(spec, dt)
  if spec.stat == "mean":
    stat = mean_sq_distance(jnp.concatenate([xs, xt], axis=0))
  else:
    if blocks is None:
      blocks = block_sq_distances(*center_pooled(xs, xt))
    stat = _median_of_blocks(*blocks)
  return _stat_to_inv_bandwidths(spec, stat)


def gaussian_sigmas(sigmas: SigmaSpec, x: Any, y: Optional[Any] = None
                    ) -> jax.Array:
  """The bandwidths :math:`\\sigma_k` a spec resolves to on ``[x; y]``.

  Args:
    sigmas: numbers or a string spec (see the module docstring).
    x: (n, d) features.
    y: optional (m, d) features pooled with ``x``.

  Returns:
    1-D array of sigmas, ordered by increasing bandwidth for string specs.
  """
  fn = "gaussian_sigmas"
  spec = parse_sigmas(sigmas, fn)
  x = val.as_features(x, "x", fn)
  if y is None:
    y = x[:0]
  else:
    y = val.as_features(y, "y", fn)
    val.check_same_features(x, y, fn, ("x", "y"))
  dt = val.compute_dtype(x, y)
  x, y = x.astype(dt), y.astype(dt)
  if x.shape[0] + y.shape[0] < 2 and isinstance(spec, DataSigmas):
    raise ValueError(f"{fn}: a data bandwidth needs at least 2 points.")
  inv = _inv_bandwidths_for(spec, x, y)
  return jnp.sqrt(0.5 / inv)


# ---------------------------------------------------------------------------
# Public kernel matrices.
# ---------------------------------------------------------------------------


def gaussian_kernel_matrices(x: Any, y: Optional[Any] = None,
                             sigmas: SigmaSpec = "mean:5") -> jax.Array:
  r"""Stack of Gaussian kernel matrices :math:`\exp(-D / (2\sigma_k^2))`.

  All kernels share one squared-distance matrix; data bandwidths are
  computed on the pooled ``[x; y]`` (on ``x`` when ``y`` is None).

  Args:
    x: (n, d) array.
    y: optional (m, d) array.
    sigmas: bandwidth spec (module docstring).

  Returns:
    (num_kernels, n, m) array.
  """
  fn = "gaussian_kernel_matrices"
  spec = parse_sigmas(sigmas, fn)
  x = val.as_features(x, "x", fn)
  if y is not None:
    y = val.as_features(y, "y", fn)
    val.check_same_features(x, y, fn, ("x", "y"))
  dt = val.compute_dtype(x) if y is None else val.compute_dtype(x, y)
  x = x.astype(dt)
  yy = x[:0] if y is None else y.astype(dt)
  d = pairwise_sq_distances(x, None if y is None else yy)
  if isinstance(spec, DataSigmas) and x.shape[0] + yy.shape[0] < 2:
    raise ValueError(f"{fn}: a data bandwidth needs at least 2 points.")
  inv = _inv_bandwidths_for(spec, x, yy)
  return jnp.exp(-d[None] * inv[:, None, None])


def gaussian_kernel(x: Any, y: Optional[Any] = None,
                    sigma: Union[float, str, jax.Array] = 1.0) -> jax.Array:
  r"""Gaussian kernel matrix :math:`\exp(-\|x_i - y_j\|^2 / (2\sigma^2))`."""
  spec = sigma
  if isinstance(sigma, str):
    parsed = parse_sigmas(sigma, "gaussian_kernel")
    if parsed.num != 1:
      raise ValueError(
          f"gaussian_kernel: sigma spec {sigma!r} gives {parsed.num} kernels; "
          "use gaussian_kernel_matrices for several.")
  elif jnp.ndim(sigma) != 0:
    raise ValueError("gaussian_kernel: sigma must be a scalar; use "
                     "gaussian_kernel_matrices for several bandwidths.")
  return gaussian_kernel_matrices(x, y, spec)[0]


def linear_kernel(x: Any, y: Optional[Any] = None) -> jax.Array:
  r"""Linear kernel :math:`k(x, y) = x^\top y`; (n, m) matrix."""
  fn = "linear_kernel"
  x = val.as_features(x, "x", fn)
  if y is None:
    x = x.astype(val.compute_dtype(x))
    return sym_gram(x)
  y = val.as_features(y, "y", fn)
  val.check_same_features(x, y, fn, ("x", "y"))
  dt = val.compute_dtype(x, y)
  return x.astype(dt) @ y.astype(dt).T


def polynomial_kernel(x: Any, y: Optional[Any] = None, degree: int = 2,
                      gamma: Optional[float] = None, coef0: float = 1.0
                      ) -> jax.Array:
  r"""Polynomial kernel :math:`k(x, y) = (\gamma\, x^\top y + c_0)^p`.

  Args:
    x: (n, d) array.
    y: optional (m, d) array.
    degree: integer power :math:`p \ge 1`.
    gamma: scale, default ``1 / d``.
    coef0: offset :math:`c_0`.
  """
  if not isinstance(degree, (int, np.integer)) or degree < 1:
    raise ValueError(f"polynomial_kernel: degree must be an int >= 1; got "
                     f"{degree!r}.")
  g = linear_kernel(x, y)
  if gamma is None:
    gamma = 1.0 / jnp.shape(x)[1]
  return jax.lax.integer_pow(gamma * g + coef0, int(degree))
