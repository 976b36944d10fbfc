"""A small deterministic linear SVM (hinge loss, L2 ridge) in JAX.

The problem is the standard soft-margin SVM with an UNPENALISED bias,

.. math::

   \\min_{w, b}\\; \\tfrac12 \\lVert w \\rVert^2
       + C \\sum_i c_i \\max(0,\\, 1 - y_i (w^\\top x_i + b)),
   \\qquad y_i \\in \\{-1, +1\\},

with optional per-sample weights ``c_i >= 0`` (a 0/1 weight selects a subset).
Many such problems on one data matrix (MEDA's per-class A-distances) are
solved together by :func:`newton_fit_segments`: every row belongs to one
problem, and one vectorised Newton iteration advances all of them. ``C = 1`` is MATLAB's ``fitclinear(..., 'Learner', 'svm')``
default (ridge ``Lambda = 1/n`` on the mean hinge loss) and the exact problem
that scikit-learn's ``SVC(kernel="linear", C=1)`` solves.

Solver: Newton's method on the Huber-smoothed hinge (Chapelle, "Training a
support vector machine in the primal", Neural Computation 2007) with a
continuation in the smoothing width ``h`` from 2 down to ``2e-6``; each Newton
step is followed by a vectorised, nearly exact line search (monotone,
deterministic). The smoothed optimum is within ``O(h)`` of the hinge optimum:
objective values agree with libsvm to about ``1e-6`` relative. Everything is
pure JAX (``lax.while_loop`` inside ``lax.scan``), so a batch of fits is one
jitted XLA call.

Cost per Newton step: ``O(n d)`` plus ``O(d^2)`` per sample inside the
smoothing zone (few at small ``h``); intended for ``d`` up to a few hundred.
:class:`LinearSVM` reduces wide data (``d > n``) to the ``rank <= n``
row space first (exact: the optimal ``w`` lies in the span of the samples).

Use ``jax.enable_x64(True)`` around calls for float64 (``LinearSVM`` does).

References:
  Chapelle, O. Training a support vector machine in the primal. Neural
  Computation 19(5), 2007.
  Ben-David, S. et al. Analysis of representations for domain adaptation.
  NIPS 2006 (the proxy A-distance ``2 (1 - 2 err)``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tlax.losses.distance import a_distance_from_error

from tlax.shallow import base

# Smoothing widths of the continuation (2 -> 2e-6, factor 10).
DEFAULT_H_LEVELS = tuple(2.0 / 10.0 ** k for k in range(7))
_N_LOG = 48   # line search: steps t_max * 2^-j, j < _N_LOG, bracket the root
_T_MAX = 4.0  # largest step along the Newton direction
_ZONE_CHUNK = 256  # curvature rows gathered per chunk (see newton_fit_segments)
_FEW = 32  # at most this many zone changes: update the curvature in place


def _huber_hinge(m, h):
  """Huber-smoothed hinge of the margins ``m``, width ``h``."""
  z = 1.0 + h - m
  return jnp.where(m >= 1.0 + h, 0.0,
                   jnp.where(m <= 1.0 - h, 1.0 - m, z * z / (4.0 * h)))


def _huber_hinge_d1(m, h):
  return jnp.where(m >= 1.0 + h, 0.0,
                   jnp.where(m <= 1.0 - h, -1.0, -(1.0 + h - m) / (2.0 * h)))


def _huber_hinge_d2(m, h):
  return jnp.where((m > 1.0 - h) & (m < 1.0 + h), 1.0 / (2.0 * h), 0.0)


def newton_fit_segments(xa, y, cw, seg, theta0, first_level=0, *,
                        h_levels=DEFAULT_H_LEVELS, max_steps=30, tol=1e-12,
                        zone_chunk=_ZONE_CHUNK, level_tol=None):
  """Independent SVMs on the segments of one row set, solved together.

  Row ``i`` belongs to problem ``seg[i]``; problem ``s`` minimises
  ``0.5 |w_s|^2 + sum_{seg[i] = s} cw_i l_h(y_i (x_i w_s + b_s))`` for the
  Huber-smoothed hinge ``l_h``, with a continuation over ``h_levels``. All
  problems take their Newton steps in lockstep (vectorised over rows and
  segments); a problem stops moving once converged, the loop stops when all
  have. Each step costs ``O(rows * d)`` plus ``O(d^2)`` per row in the
  quadratic zone of ``l_h`` (gathered in chunks: few rows at small ``h``).

  Args:
    xa: ``(M, d + 1)`` features with a trailing column of ones.
    y: ``(M,)`` labels in {-1, +1}.
    cw: ``(M,)`` weights times C (0 removes a row).
    seg: ``(M,)`` int problem index in ``[0, S)``.
    theta0: ``(S, d + 1)`` starts ``[w, b]``.
    first_level: (traced) index of the first smoothing level to run; a warm
      start near the solution can skip the wide levels.
    h_levels: static tuple of smoothing widths, decreasing.
    max_steps: static, Newton steps at most per level.
    tol: static; a problem's level ends when its Newton decrement is below
      ``tol * (1 + objective)`` or no step decreases the objective.
    level_tol: static; if set, the tolerance of every level but the last
      (the continuation only needs a start near the next level's optimum;
      the last level is solved to ``tol``).
    zone_chunk: static, rows per chunk of the curvature accumulation.

  Returns:
    ``(theta (S, d + 1), n_steps)``: solutions and Newton steps taken.
  """
  xa = jnp.asarray(xa)
  dt = xa.dtype
  y, cw, theta0 = (jnp.asarray(v, dt) for v in (y, cw, theta0))
  seg = jnp.asarray(seg, jnp.int32)
  n_rows, dim = xa.shape
  n_seg = theta0.shape[0]
  reg = jnp.ones((dim,), dt).at[-1].set(0.0)
  # A tiny ridge on the bias keeps each Newton system definite when no row
  # lies in the smoothing zone; the line search keeps every step monotone.
  bias_ridge = 1e-10 * (1.0 + jax.ops.segment_sum(cw, seg, n_seg))
  eye_b = jnp.zeros((dim, dim), dt).at[-1, -1].set(1.0)
  ridge = jnp.diag(reg)[None] + bias_ridge[:, None, None] * eye_b[None]
  chunk = min(zone_chunk, n_rows)
  few_rows = min(_FEW, n_rows)
  n_chunks_max = -(-n_rows // chunk)
  log_ts = _T_MAX * 0.5 ** jnp.arange(_N_LOG - 1, -1, -1, dtype=dt)

  def segsum(v):
    return jax.ops.segment_sum(v, seg, n_seg)

  def per_row(v):
    return v[seg]

  def margins(theta):
    return y * jnp.sum(xa * per_row(theta), axis=1)

  def objective(theta, m, h):
    w = theta[:, :-1]
    return 0.5 * jnp.sum(w * w, axis=1) + segsum(cw * _huber_hinge(m, h))

  def curvature(s):
    """Per-problem ``sum_i s_i xa_i xa_i'`` over the rows with ``s_i != 0``."""
    zone = s != 0
    count = jnp.sum(zone)
    rows = jnp.nonzero(zone, size=n_chunks_max * chunk, fill_value=0)[0]

    def body(c, acc):
      r = jax.lax.dynamic_slice(rows, (c * chunk,), (chunk,))
      sv = jnp.where(c * chunk + jnp.arange(chunk) < count, s[r], 0.0)
      xz = xa[r]
      outer = xz[:, :, None] * (xz * sv[:, None])[:, None, :]
      return acc + jax.ops.segment_sum(outer, seg[r], n_seg)

    n_chunks = (count + chunk - 1) // chunk
    return jax.lax.fori_loop(0, n_chunks, body,
                             jnp.zeros((n_seg, dim, dim), dt))

  def update_curvature(hess, s_new, s_old):
    """The curvature after a step: few rows enter or leave the quadratic
    zone, so add their change (recompute when more than ``_FEW`` change)."""
    diff = s_new - s_old
    changed = diff != 0
    count = jnp.sum(changed)

    def few(_):
      r = jnp.nonzero(changed, size=few_rows, fill_value=0)[0]
      dv = jnp.where(jnp.arange(few_rows) < count, diff[r], 0.0)
      xz = xa[r]
      outer = xz[:, :, None] * (xz * dv[:, None])[:, None, :]
      return hess + jax.ops.segment_sum(outer, seg[r], n_seg)

    return jax.lax.cond(count <= few_rows, few,
                        lambda _: curvature(s_new), None)

  def dphi_rows(m, dm, t_rows, h):
    """Per-row terms of phi'(t): cw_i dm_i l_h'(m_i + t dm_i); t (M, G)."""
    return (cw * dm)[:, None] * _huber_hinge_d1(
        m[:, None] + t_rows * dm[:, None], h)

  def line_search(m, dm, a1, a2, h):
    """Per-problem minimiser along the Newton direction.

    ``phi'(t) = a1 + t a2 + sum_i cw_i dm_i l_h'(m_i + t dm_i)`` increases
    with ``t``; the geometric grid ``t_max 2^-j`` brackets its root within a
    factor 2 and a linear interpolation of ``phi'`` inside the bracket gives
    the step (exact where ``phi'`` is linear there). Vectorised, no loop.
    Also returns the bracket's lower end, where ``phi' < 0``: a step there
    always decreases the objective (the fallback).
    """
    def bracket(ts, ds, lo, d_lo):
      pos = ds > 0
      k = jnp.argmax(pos, axis=1)
      km = jnp.maximum(k - 1, 0)
      take = lambda v, i: jnp.take_along_axis(v, i[:, None], axis=1)[:, 0]
      has_prev = k > 0
      return (jnp.where(has_prev, take(ts, km), lo), take(ts, k),
              jnp.where(has_prev, take(ds, km), d_lo), take(ds, k),
              jnp.any(pos, axis=1))

    zero = jnp.zeros((n_seg,), dt)
    d0 = a1 + segsum(dphi_rows(m, dm, jnp.zeros((n_rows, 1), dt), h)[:, 0])

    ts1 = jnp.broadcast_to(log_ts, (n_seg, _N_LOG))
    ds1 = (a1[:, None] + ts1 * a2[:, None]
           + segsum(dphi_rows(m, dm, jnp.broadcast_to(log_ts, (n_rows, _N_LOG)),
                              h)))
    lo, hi, dlo, dhi, found = bracket(ts1, ds1, zero, d0)
    span = dhi - dlo
    t = lo + (hi - lo) * jnp.where(
        span > 0, -dlo / jnp.where(span > 0, span, 1.0), 0.5)
    return (jnp.where(found, jnp.clip(t, lo, hi), _T_MAX),
            jnp.where(found, lo, _T_MAX))

  def newton_level(carry, level_h):
    theta, total = carry
    level, h = level_h

    def cond(state):
      _, k, done, _, _ = state
      return (k < max_steps) & ~jnp.all(done)

    def body(state):
      theta, k, done, hess_zone, s_old = state
      m = margins(theta)
      j0 = objective(theta, m, h)
      g = reg * theta + segsum(xa * (cw * y * _huber_hinge_d1(m, h))[:, None])
      s_cur = cw * _huber_hinge_d2(m, h)
      hess_zone = update_curvature(hess_zone, s_cur, s_old)
      chol = jnp.linalg.cholesky(hess_zone + ridge)
      delta = -jax.scipy.linalg.cho_solve((chol, True), g[..., None])[..., 0]
      decrement = -jnp.sum(g * delta, axis=1)
      dm = y * jnp.sum(xa * per_row(delta), axis=1)
      w, dw = theta[:, :-1], delta[:, :-1]
      t, t_safe = line_search(m, dm, jnp.sum(w * dw, 1), jnp.sum(dw * dw, 1),
                              h)
      j1 = objective(theta + t[:, None] * delta,
                     m + per_row(t[:, None])[:, 0] * dm, h)
      j_safe = objective(theta + t_safe[:, None] * delta,
                         m + per_row(t_safe[:, None])[:, 0] * dm, h)
      t = jnp.where(j1 <= j_safe, t, t_safe)
      j1 = jnp.minimum(j1, j_safe)
      theta_try = theta + t[:, None] * delta
      improved = (j1 < j0) & ~done
      theta_new = jnp.where(improved[:, None], theta_try, theta)
      done = done | ~improved | (decrement <= tol_l * (1.0 + jnp.abs(j0)))
      return theta_new, k + 1, done, hess_zone, s_cur

    tol_l = tol if level_tol is None else jnp.where(
        level == len(h_levels) - 1, tol, level_tol)
    skip = jnp.broadcast_to(level < first_level, (n_seg,))
    s0 = cw * _huber_hinge_d2(margins(theta), h)
    theta, k, _, _, _ = jax.lax.while_loop(
        cond, body, (theta, jnp.asarray(0, jnp.int32), skip, curvature(s0),
                     s0))
    return (theta, total + k), None

  (theta, total), _ = jax.lax.scan(
      newton_level, (theta0, jnp.asarray(0, jnp.int32)),
      (jnp.arange(len(h_levels)), jnp.asarray(h_levels, dt)))
  return theta, total


def _prepare(x, y, weights, C):
  x = jnp.asarray(x)
  dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
  x = x.astype(dtype)
  n = x.shape[0]
  cw = (jnp.ones((n,), dtype) if weights is None else
        jnp.asarray(weights).astype(dtype)) * jnp.asarray(C, dtype)
  xa = jnp.concatenate([x, jnp.ones((n, 1), dtype)], axis=1)
  return xa, jnp.asarray(y).astype(dtype), cw


@functools.partial(jax.jit, static_argnames=("n_seg", "h_levels",
                                             "max_steps", "tol"))
def hinge_svm_fit_segments(x, y, seg, n_seg, weights=None, C=1.0,
                           theta0=None, *, h_levels=DEFAULT_H_LEVELS,
                           max_steps=30, tol=1e-12):
  """``n_seg`` SVMs, problem ``s`` on the rows with ``seg == s``, one call.

  Args:
    x: ``(n, d)``; y: ``(n,)`` in {-1, +1}; seg: ``(n,)`` ints in
    ``[0, n_seg)``; weights: optional ``(n,)`` per-row weights; C: hinge
    weight; theta0: optional ``(n_seg, d + 1)`` warm starts.

  Returns:
    ``(w (n_seg, d), b (n_seg,), n_newton_steps)``.
  """
  xa, y, cw = _prepare(x, y, weights, C)
  if theta0 is None:
    theta0 = jnp.zeros((n_seg, xa.shape[1]), xa.dtype)
  theta, steps = newton_fit_segments(
      xa, y, cw, jnp.asarray(seg, jnp.int32), jnp.asarray(theta0, xa.dtype),
      h_levels=h_levels, max_steps=max_steps, tol=tol)
  return theta[:, :-1], theta[:, -1], steps


@functools.partial(jax.jit, static_argnames=("h_levels", "max_steps", "tol"))
def hinge_svm_fit(x, y, weights=None, C=1.0, theta0=None, *,
                  h_levels=DEFAULT_H_LEVELS, max_steps=30, tol=1e-12):
  """Fits one linear hinge-loss SVM with unpenalised bias.

  Args:
    x: ``(n, d)`` features.
    y: ``(n,)`` labels in {-1, +1} (float or int).
    weights: ``(n,)`` non-negative per-sample weights (default all 1); a 0
      weight removes a sample.
    C: hinge-loss weight (MATLAB ``fitclinear`` default ``Lambda = 1/n``
      is ``C = 1``).
    theta0: ``(d + 1,)`` warm start ``[w, b]`` (default 0).

  Returns:
    ``(w, b, n_newton_steps)``.
  """
  xa, y, cw = _prepare(x, y, weights, C)
  th0 = (jnp.zeros((1, xa.shape[1]), xa.dtype) if theta0 is None else
         jnp.asarray(theta0, xa.dtype)[None])
  theta, steps = newton_fit_segments(
      xa, y, cw, jnp.zeros((xa.shape[0],), jnp.int32), th0,
      h_levels=h_levels, max_steps=max_steps, tol=tol)
  return theta[0, :-1], theta[0, -1], steps


@functools.partial(jax.jit, static_argnames=("h_levels", "max_steps", "tol"))
def hinge_svm_fit_batch(x, y, weights, C=1.0, theta0=None, *,
                        h_levels=DEFAULT_H_LEVELS, max_steps=30, tol=1e-12):
  """Many SVM fits on one data matrix in one jitted call.

  The ``B`` weightings (0/1 masks select subsets) become ``B`` segments of
  the stacked rows (:func:`newton_fit_segments`).

  Args:
    x: ``(n, d)`` shared features.
    y: ``(n,)`` shared labels or ``(B, n)`` one label vector per fit.
    weights: ``(B, n)`` per-fit sample weights.
    C: hinge-loss weight.
    theta0: optional ``(B, d + 1)`` warm starts.

  Returns:
    ``(w (B, d), b (B,), n_newton_steps)``.
  """
  weights = jnp.asarray(weights)
  n_fit, n = weights.shape
  x = jnp.asarray(x)
  y = jnp.broadcast_to(jnp.asarray(y), (n_fit, n))
  xa, yb, cw = _prepare(jnp.tile(x, (n_fit, 1)), y.reshape(-1),
                        weights.reshape(-1), C)
  seg = jnp.repeat(jnp.arange(n_fit, dtype=jnp.int32), n)
  if theta0 is None:
    theta0 = jnp.zeros((n_fit, xa.shape[1]), xa.dtype)
  theta, steps = newton_fit_segments(
      xa, yb, cw, seg, jnp.asarray(theta0, xa.dtype), h_levels=h_levels,
      max_steps=max_steps, tol=tol)
  return theta[:, :-1], theta[:, -1], steps


def training_error(x, y, w, b, weights=None):
  """Weighted training error of ``sign(x w + b)`` against ``y`` in {-1, +1}.

  Batched when ``w`` is ``(B, d)``, ``b`` ``(B,)`` and ``weights`` ``(B, n)``.
  A sample on the decision boundary counts as an error.
  """
  f = jnp.einsum("nd,...d->...n", x, w) + jnp.asarray(b)[..., None]
  wrong = (jnp.asarray(y) * f <= 0).astype(f.dtype)
  if weights is None:
    return jnp.mean(wrong, axis=-1)
  weights = jnp.asarray(weights).astype(f.dtype)
  return jnp.sum(weights * wrong, axis=-1) / jnp.maximum(
      jnp.sum(weights, axis=-1), jnp.finfo(f.dtype).tiny)


def clipped_a_distance(err):
  """Proxy A-distance ``2 (1 - 2 err)`` clipped to ``[0, 2]``."""
  return jnp.clip(a_distance_from_error(err), 0.0, 2.0)


def squared_hinge_group_errors(x, y, g, num_groups: int, steps: int):
  """Training error of one linear squared-hinge L2-SVM per group of samples.

  For every group ``j`` it minimises ``mean_{i in j} max(0, 1 - y_i f(x_i))^2
  + ||w_j||^2 / (2 n_j)`` with ``f(x) = w_j.x + b_j`` (bias unpenalised, the
  ridge of a C = 1 SVM) by ``steps`` of Nesterov-accelerated full-batch
  gradient descent from zero (deterministic). All groups train at once at
  O(n d) per step (each sample belongs to one group).

  Args:
    x: ``(n, d)``.
    y: ``(n,)`` in ``{-1, +1}``.
    g: ``(n,)`` int group of each sample in ``[0, num_groups)``.
    num_groups: static.
    steps: static.

  Returns:
    ``(err, count)``: ``(num_groups,)`` training error rates and sizes.
  """
  n, d = x.shape
  cnt = jax.ops.segment_sum(jnp.ones((n,), x.dtype), g, num_groups)
  inv = 1.0 / jnp.maximum(cnt, 1.0)
  reg = inv                                       # ridge 1 / n_j
  r2 = jnp.max(jnp.sum(x * x, axis=1)) + 1.0      # bias as a feature of 1
  lip = 2.0 * r2 + reg                            # Hessian bound per group
  lr = 1.0 / lip
  w_i = inv[g]                                    # per-sample weight 1/n_j

  def grads(w, b):
    f = jnp.sum(x * w[g], axis=1) + b[g]
    h = jnp.maximum(0.0, 1.0 - y * f)
    coef = -2.0 * y * h * w_i                     # d loss / d f_i
    gw = jax.ops.segment_sum(coef[:, None] * x, g, num_groups)
    gb = jax.ops.segment_sum(coef, g, num_groups)
    return gw + reg[:, None] * w, gb

  def body(_, carry):
    w, b, zw, zb, t = carry
    gw, gb = grads(zw, zb)
    w_new = zw - lr[:, None] * gw
    b_new = zb - lr * gb
    t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
    m = (t - 1.0) / t_new
    return (w_new, b_new, w_new + m * (w_new - w), b_new + m * (b_new - b),
            t_new)

  w0 = jnp.zeros((num_groups, d), x.dtype)
  b0 = jnp.zeros((num_groups,), x.dtype)
  w, b, _, _, _ = jax.lax.fori_loop(
      0, steps, body, (w0, b0, w0, b0, jnp.asarray(1.0, x.dtype)))
  f = jnp.sum(x * w[g], axis=1) + b[g]
  wrong = (y * f <= 0).astype(x.dtype)
  return jax.ops.segment_sum(wrong, g, num_groups) * inv, cnt


@functools.partial(jax.jit, static_argnames=("ns", "steps"))
def _squared_hinge_a_distance(x, ns, steps):
  n = x.shape[0]
  y = jnp.where(jnp.arange(n) < ns, 1.0, -1.0).astype(x.dtype)
  err, _ = squared_hinge_group_errors(x, y, jnp.zeros((n,), jnp.int32), 1,
                                      steps)
  return clipped_a_distance(err[0])


def proxy_a_distance(xs, xt, *, loss="hinge", C=1.0, steps=300):
  """Proxy A-distance between two samples from a linear SVM's training error.

  A linear SVM separates source (-1) from target (+1); its TRAINING error
  ``err`` gives ``d_A = 2 (1 - 2 err)`` (Ben-David et al., NIPS 2006), the
  estimator of the closed-form methods' code:

  - ``loss="hinge"``: the soft-margin SVM of this module with weight ``C``
    (MEDA's ``estimate_mu``); a value in ``[-2, 2]``.
  - ``loss="squared_hinge"``: squared hinge, ridge ``1/n``, unpenalised bias,
    ``steps`` of deterministic Nesterov gradient descent
    (:func:`squared_hinge_group_errors`; BDA's balance factor), clipped to
    ``[0, 2]``.

  :func:`tlax.losses.proxy_a_distance` is the held-out estimator for learned
  features (a logistic classifier scored on a held-out half; jittable and
  vmappable).

  Args:
    xs: ``(ns, d)`` source samples.
    xt: ``(nt, d)`` target samples.
    loss: ``"hinge"`` or ``"squared_hinge"``.
    C: hinge weight (``loss="hinge"``).
    steps: gradient steps (``loss="squared_hinge"``).

  Returns:
    A Python float.
  """
  xs = np.asarray(xs, np.float64)
  xt = np.asarray(xt, np.float64)
  if xs.ndim != 2 or xt.ndim != 2 or xs.shape[1] != xt.shape[1]:
    raise ValueError(f"proxy_a_distance needs two 2-D arrays with the same "
                     f"number of columns, got {xs.shape} and {xt.shape}.")
  x = np.concatenate([xs, xt])
  if loss == "squared_hinge":
    with jax.enable_x64(True):
      return float(_squared_hinge_a_distance(jnp.asarray(x), xs.shape[0],
                                             int(steps)))
  if loss != "hinge":
    raise ValueError(f"proxy_a_distance: loss must be 'hinge' or "
                     f"'squared_hinge', got {loss!r}.")
  y = np.concatenate([-np.ones(len(xs)), np.ones(len(xt))])
  with jax.enable_x64(True):
    x = _row_space(x)
    w, b, _ = hinge_svm_fit(x, y, None, C)
    return float(a_distance_from_error(training_error(x, y, w, b)))


def _row_space(x):
  """Coordinates of the rows of ``x`` in an orthonormal basis of their span.

  Inner products between rows are preserved, so a linear SVM with an
  unpenalised bias has the same margins on the result. Returns ``x`` itself
  when it is already narrow (``d <= n``).
  """
  n, d = x.shape
  if d <= n:
    return x
  u, s, _ = np.linalg.svd(x, full_matrices=False)
  keep = s > s[0] * max(n, d) * np.finfo(np.float64).eps if s.size else s
  return u[:, keep] * s[keep]


class LinearSVM:
  """Linear hinge-loss SVM (one-vs-rest for more than two classes).

  ``LinearSVM(C=1.0).fit(X, y)`` then ``predict(X)`` /
  ``decision_function(X)``. Binary problems fit one SVM; with ``K > 2``
  classes the ``K`` one-vs-rest problems are fitted in one vmapped call.

  Attributes after fit:
    coef_: ``(K, d)`` (``(1, d)`` for binary), intercept_: ``(K,)`` or
    ``(1,)``, classes_: the sorted class values.
  """

  def __init__(self, C: float = 1.0):
    self.C = base.real(C, "C", "LinearSVM", low=0.0, low_open=True)

  def fit(self, x, y, sample_weight=None):
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] == 0:
      raise base.ShallowInputError(
          f"LinearSVM: X must be a non-empty 2-D array, got {x.shape}.")
    if not np.isfinite(x).all():
      raise base.ShallowInputError("LinearSVM: X contains NaN or inf.")
    if y.shape != (x.shape[0],):
      raise base.ShallowInputError(
          f"LinearSVM: y must have shape ({x.shape[0]},), got {y.shape}.")
    self.classes_, yi = np.unique(y, return_inverse=True)
    if len(self.classes_) < 2:
      raise base.ShallowInputError("LinearSVM: y has a single class.")
    n, d = x.shape
    sw = np.ones(n) if sample_weight is None else np.asarray(
        sample_weight, np.float64)
    # Fit in the row space when wide, map w back: w = V^T w_r.
    if d > n:
      _, s, vt = np.linalg.svd(x, full_matrices=False)
      keep = s > s[0] * d * np.finfo(np.float64).eps
      basis = vt[keep]                      # (r, d) orthonormal rows
      xr = x @ basis.T
    else:
      basis, xr = None, x
    if len(self.classes_) == 2:
      ys = np.where(yi == 1, 1.0, -1.0)[None]
    else:
      ys = np.where(yi[None, :] == np.arange(len(self.classes_))[:, None],
                    1.0, -1.0)
    with jax.enable_x64(True):
      w, b, _ = hinge_svm_fit_batch(xr, ys, np.broadcast_to(sw, ys.shape),
                                    self.C)
      w, b = np.asarray(w), np.asarray(b)
    self.coef_ = w if basis is None else w @ basis
    self.intercept_ = b
    return self

  def decision_function(self, x):
    f = np.asarray(x, np.float64) @ self.coef_.T + self.intercept_
    return f[:, 0] if f.shape[1] == 1 else f

  def predict(self, x):
    f = self.decision_function(x)
    if f.ndim == 1:
      return self.classes_[(f > 0).astype(int)]
    return self.classes_[np.argmax(f, axis=1)]
