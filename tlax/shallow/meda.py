"""MEDA: manifold embedded distribution alignment (Wang et al., ACM MM 2018).

Steps (the paper's Algorithm 1 as its MATLAB demo runs it; the details that
decide the published numbers are listed in ``docs/reproducing_shallow.md``):

1. Manifold features: ``z = X sqrtm(G)`` with the geodesic flow kernel of the
   ``dim``-dimensional PCA subspaces (:mod:`tlax.shallow.gfk`); rows are then
   scaled to unit norm (the RBF width of MEDA's formula is then 1).
2. A graph Laplacian ``L = I - D^-1/2 W D^-1/2`` of the cosine ``p + 1``
   nearest neighbours of every sample (itself included, self loops kept,
   ``W = max(W, W')``).
3. First target pseudo-labels from 1-NN on the normalised features.
4. ``T`` times: the adaptive factor ``mu`` from proxy A-distances of a linear
   hinge SVM (:mod:`tlax.shallow.svm`; ridge ``1/n``, bias unpenalised) fitted
   on the UN-normalised manifold features, one global and one per class:
   ``dist = 2 (1 - 2 err)``, ``mu = mean_c dist_c / (mean_c dist_c +
   dist_global)`` clipped to [0, 1] (values <= 1e-3 -> 0); the MMD matrix
   ``M = ((1 - mu) C M0 + mu sum_c Mc) / ||.||_F``; the structural-risk
   solution

   .. math::  ((E + \\lambda M + \\rho L) K + \\eta I)\\, \\beta = E Y

   and new pseudo-labels ``argmax_c (K beta)``.

How the JAX code solves it (same mathematics, fewer flops):

- GFK is computed in factored form and MEDA works in the ``2 dim`` reduced
  coordinates that have exactly the inner products of ``X sqrtm(G)``
  (kernel, cosines, SVM margins are unchanged).
- ``A0 = (E + rho L) K + eta I`` does not change over the iterations and is
  LU-factored once; ``lambda M K`` has rank ``<= C + 1``, so each iteration
  solves the system by the Woodbury identity with ``C + 1`` right-hand sides
  (``solver="dense"`` solves the full system every iteration instead; the
  tests check both agree). The Laplacian is applied through the neighbour
  lists (``O(n^2 p)``), never as a dense matrix product.
- The ``C + 1`` SVM fits of an iteration (global + one per class) are the
  segments of one row set, solved by one vectorised Newton loop
  (:func:`tlax.shallow.svm.newton_fit_segments`), from scratch every
  iteration (a warm start from the previous solution converges more slowly
  at the final smoothing width than the continuation does).
- The whole loop is one jitted call; the sample axis is padded to a bucket
  (a multiple of ``bucket``) with decoupled dummy rows, so tasks of similar
  size share one compiled program. Padding does not change the result.
- ``kernel="primal"`` is the linear kernel solved in the ``2 dim``-dimensional
  primal: ``(eta I + Z' P Z) w = Z' E Y``, ``F = Z w`` (the same predictions as
  ``kernel="linear"``, no ``n x n`` system).

Reference:
  Wang, Feng, Chen, Yu, Huang and Yu. Visual domain adaptation with manifold
  embedded distribution alignment. ACM Multimedia 2018.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from tlax.losses.dynamic import mu_from_a_distances
from tlax.shallow import base
from tlax.shallow import gfk as gfk_lib
from tlax.shallow import svm as svm_lib

KERNELS = ("rbf", "linear", "primal")
# Newton tolerance of the SVM continuation's intermediate smoothing levels
# (the last level is solved to svm.newton_fit_segments' 1e-12): on
# Office-Caltech10 it takes 16% fewer Newton steps and leaves every label
# unchanged (mu within 5e-4 of the float64 run at full tolerance).
SVM_LEVEL_TOL = 1e-3
MU_SNAP = 1e-3  # MEDA's estimate_mu: mu <= 1e-3 becomes 0


# --------------------------------------------------------------------------
# Graph Laplacian through neighbour lists.


def knn_cosine_graph(xn, valid, p: int):
  """MEDA's cosine kNN graph as neighbour lists.

  ``W = max(Wd, Wd')`` where ``Wd[i, j] = cos(x_i, x_j)`` for the ``p + 1``
  most similar ``j`` of ``i`` (``i`` itself included). Returned as
  ``(idx, a)``, ``(n, p + 1)`` each, with ``W = A + A'`` for
  ``A[i, idx[i, k]] = a[i, k]``: an edge found from both ends (and every
  self loop) carries half its cosine in each direction, an edge found from
  one end only carries ``max(cos, 0)`` (the ``max`` with the absent 0).

  Args:
    xn: ``(n, r)`` unit-norm rows (cosine = inner product).
    valid: ``(n,)`` bool, False for padding rows (never neighbours).
    p: neighbours besides the sample itself.
  """
  sim = xn @ xn.T
  sim = jnp.where(valid[None, :], sim, -jnp.inf)
  if sim.dtype == jnp.float32:
    # lax.top_k keeps the lower index first on ties, as MATLAB's sort. On
    # XLA:CPU (jax 0.10) it is about 4x faster than the passes below in
    # float32 but about 10x slower in float64 (n = 2176).
    vals, idx = jax.lax.top_k(sim, p + 1)
    return _mutual_weights(idx.astype(jnp.int32), vals, valid)
  rows = jnp.arange(xn.shape[0])
  # p + 1 passes of a row-wise argmax (the first, lowest index on ties).
  cols = jnp.arange(xn.shape[0], dtype=jnp.int32)[None, :]

  def pick(sim_vals_idx, j):
    sim, vals, idx = sim_vals_idx
    top = jnp.max(sim, axis=1)
    best = jnp.min(jnp.where(sim == top[:, None], cols, xn.shape[0]), axis=1)
    vals = vals.at[:, j].set(top)
    idx = idx.at[:, j].set(best.astype(jnp.int32))
    return (sim.at[rows, best].set(-jnp.inf), vals, idx), None

  init = (sim, jnp.zeros((xn.shape[0], p + 1), xn.dtype),
          jnp.zeros((xn.shape[0], p + 1), jnp.int32))
  (_, vals, idx), _ = jax.lax.scan(pick, init, jnp.arange(p + 1))
  return _mutual_weights(idx, vals, valid)


def _mutual_weights(idx, vals, valid):
  """Edge weights ``a`` of :func:`knn_cosine_graph` from the neighbour lists."""
  mutual = jnp.any(idx[idx] == jnp.arange(idx.shape[0])[:, None, None],
                   axis=-1)
  a = jnp.where(mutual, 0.5 * vals, jnp.maximum(vals, 0.0))
  a = jnp.where(valid[:, None], a, 0.0)
  return idx, a


def _graph_apply(idx, a, b):
  """``W @ b`` for ``W = A + A'`` given as neighbour lists."""
  out = jnp.einsum("nk,nkc->nc", a, b[idx])
  contrib = a[:, :, None] * b[:, None, :]                    # (n, k, c)
  return out + jax.ops.segment_sum(
      contrib.reshape(-1, b.shape[1]), idx.reshape(-1),
      num_segments=b.shape[0])


def _graph_apply_chunked(idx, a, b, chunk: int = 64):
  """``W @ b`` column block by column block (bounded memory for wide ``b``)."""
  n, c = b.shape
  if c <= chunk:
    return _graph_apply(idx, a, b)
  pad = (-c) % chunk
  bp = jnp.pad(b, ((0, 0), (0, pad)))
  blocks = bp.reshape(n, -1, chunk).transpose(1, 0, 2)
  out = jax.lax.map(lambda blk: _graph_apply(idx, a, blk), blocks)
  return out.transpose(1, 0, 2).reshape(n, -1)[:, :c]


def laplacian_apply(idx, a, dinv, b):
  """``L @ b`` with ``L = I - D^-1/2 W D^-1/2``."""
  return b - dinv[:, None] * _graph_apply_chunked(idx, a, dinv[:, None] * b)


def laplacian_dense(idx, a, valid):
  """The dense Laplacian ``I - D^-1/2 (A + A') D^-1/2`` (for tests)."""
  n = idx.shape[0]
  amat = jnp.zeros((n, n), a.dtype).at[
      jnp.arange(n)[:, None], idx].add(a)
  w = amat + amat.T
  deg = jnp.sum(w, axis=1)
  dinv = jnp.where(valid, 1.0 / jnp.sqrt(jnp.where(deg > 0, deg, 1.0)), 0.0)
  return jnp.eye(n, dtype=a.dtype) - dinv[:, None] * w * dinv[None, :]


# --------------------------------------------------------------------------
# The adaptive factor.


def mu_from_distances(adist_global, adist_class):
  """MEDA's ``estimate_mu``: ``mean(d_c) / (mean(d_c) + d_global)``.

  :func:`tlax.losses.mu_from_a_distances` with MEDA's rounding: values above
  1 become 1, values ``<= 1e-3`` (and negative ones) become 0; 0.5 where the
  denominator is not positive.
  """
  return mu_from_a_distances(adist_global, adist_class, snap=MU_SNAP)


# --------------------------------------------------------------------------
# The jitted core.


def _mmd_factors(labels, is_src, is_tgt, n_cls: int, mu):
  """``M = U diag(s) U'`` (unnormalised) and ``||M||_F``.

  ``U[:, 0] = e0`` (1/n on the source, -1/m on the target), ``U[:, c + 1]``
  the class-``c`` vector (1/n_c on source class c, -1/m_c on target
  pseudo-class c, 0 when the class is empty there);
  ``s = [(1 - mu) C, mu, ..., mu]``.
  """
  dt = mu.dtype
  src = is_src.astype(dt)
  tgt = is_tgt.astype(dt)
  e0 = src / jnp.sum(src) - tgt / jnp.sum(tgt)
  onehot = (labels[:, None] == jnp.arange(n_cls)[None, :]).astype(dt)
  s_cnt = jnp.sum(onehot * src[:, None], axis=0)
  t_cnt = jnp.sum(onehot * tgt[:, None], axis=0)
  s_inv = jnp.where(s_cnt > 0, 1.0 / jnp.where(s_cnt > 0, s_cnt, 1.0), 0.0)
  t_inv = jnp.where(t_cnt > 0, 1.0 / jnp.where(t_cnt > 0, t_cnt, 1.0), 0.0)
  ec = onehot * (src[:, None] * s_inv[None, :] - tgt[:, None] * t_inv[None, :])
  u = jnp.concatenate([e0[:, None], ec], axis=1)
  s = jnp.concatenate([jnp.asarray([(1.0 - mu) * n_cls], dt),
                       jnp.full((n_cls,), mu, dt)])
  gram = u.T @ u
  fro = jnp.sqrt(jnp.sum((s[:, None] * s[None, :]) * gram ** 2))
  return u, s, fro


@functools.partial(
    jax.jit,
    static_argnames=("n_cls", "p", "n_iter", "kernel", "adaptive_mu",
                     "solver", "h_levels", "early_stop"))
def _meda_core(z, n_src, n_tgt, ys_pad, lam, eta, rho, mu_fixed, *, n_cls,
               p, n_iter, kernel, adaptive_mu, solver,
               h_levels=svm_lib.DEFAULT_H_LEVELS, early_stop=True):
  """MEDA on padded reduced GFK features.

  Args:
    z: ``(N, r)``: source rows, then target rows, then zero padding rows.
    n_src, n_tgt: traced sizes.
    ys_pad: ``(N,)`` source labels in ``0..C-1`` (anything elsewhere).
    lam, eta, rho: MEDA's lambda, eta, rho.
    mu_fixed: used when not ``adaptive_mu``.

  Returns:
    dict with ``coef`` (``beta`` ``(N, C)``, or ``w`` ``(r, C)`` for primal),
    ``xn`` (normalised features), ``labels`` (``(T, N)`` labels after each
    iteration), ``mu`` (``(T,)``), ``adist`` (``(T, C + 1)``: global, then
    per class), ``first_labels`` (1-NN), ``svm_steps`` (``(T,)``) and
    ``n_iter_run`` (iterations computed before the fixed point).
  """
  n_all, _ = z.shape
  dt = z.dtype
  pos = jnp.arange(n_all)
  is_src = pos < n_src
  is_tgt = (pos >= n_src) & (pos < n_src + n_tgt)
  valid = is_src | is_tgt

  norms = jnp.sqrt(jnp.sum(z * z, axis=1))
  xn = z / jnp.where(norms > 0, norms, 1.0)[:, None]
  xn = jnp.where(valid[:, None], xn, 0.0)

  # Graph Laplacian (neighbour lists) and degrees.
  idx, a = knn_cosine_graph(xn, valid, p)
  deg = _graph_apply(idx, a, jnp.ones((n_all, 1), dt))[:, 0]
  dinv = jnp.where(valid, 1.0 / jnp.sqrt(jnp.where(deg > 0, deg, 1.0)), 0.0)

  yy = jnp.where(is_src[:, None],
                 (ys_pad[:, None] == jnp.arange(n_cls)[None, :]).astype(dt),
                 0.0)

  # First pseudo-labels: 1-NN (Euclidean, normalised features) from source.
  d2 = jnp.sum(xn * xn, 1)[None, :] - 2.0 * xn @ xn.T
  d2 = jnp.where(is_src[None, :], d2, jnp.inf)
  first = ys_pad[jnp.argmin(d2, axis=1)]
  labels0 = jnp.where(is_src, ys_pad, jnp.where(is_tgt, first, -1))

  # SVM set-up for the A-distances: source -1, target +1; un-normalised z.
  y_dom = jnp.where(is_tgt, 1.0, -1.0).astype(dt)
  n_fit = n_cls + 1

  # The C + 1 fits of an iteration: the C per-class problems are the segments
  # of the rows (segment = label), solved by one vectorised Newton loop. The
  # global problem (all sources vs all targets) never changes: it is solved
  # once, in the first iteration, by a first pass of the same loop (every row
  # in segment 0), and its A-distance is reused.
  xa = jnp.concatenate([z, jnp.ones((n_all, 1), dt)], axis=1)
  cw = valid.astype(dt)

  def a_distances(labels, adist_global, first):
    class_seg = jnp.maximum(labels, 0).astype(jnp.int32)

    def fit(i, carry):
      adist, steps = carry
      is_global = first & (i == 0)
      seg = jnp.where(is_global, 0, class_seg)
      theta, k = svm_lib.newton_fit_segments(
          xa, y_dom, cw, seg, jnp.zeros((n_cls, xa.shape[1]), dt),
          h_levels=h_levels, level_tol=SVM_LEVEL_TOL)
      masks = ((seg[None, :] == jnp.arange(n_cls)[:, None])
               & valid[None, :]).astype(dt)
      dist = svm_lib.a_distance_from_error(svm_lib.training_error(
          z, y_dom, theta[:, :-1], theta[:, -1], masks))
      adist = jnp.where(is_global, adist.at[0].set(dist[0]),
                        adist.at[1:].set(dist))
      return adist, steps + k

    adist0 = jnp.zeros((n_fit,), dt).at[0].set(adist_global)
    return jax.lax.fori_loop(0, jnp.where(first, 2, 1), fit,
                             (adist0, jnp.asarray(0, jnp.int32)))

  feats = xn
  if kernel != "primal":
    if kernel == "rbf":
      mean_norm = jnp.sum(jnp.where(valid, jnp.sqrt(jnp.sum(xn * xn, 1)), 0.0)
                          ) / (n_src + n_tgt)
      gamma = 1.0 / (2.0 * mean_norm)
      sq = jnp.sum(xn * xn, 1)
      kmat = jnp.exp(-gamma * jnp.maximum(
          sq[:, None] + sq[None, :] - 2.0 * xn @ xn.T, 0.0))
    else:
      kmat = xn @ xn.T
    kmat = jnp.where(valid[:, None] & valid[None, :], kmat, 0.0)
    lk = laplacian_apply(idx, a, dinv, kmat)
    a0 = jnp.where(is_src[:, None], kmat, 0.0) + rho * lk + eta * jnp.eye(
        n_all, dtype=dt)
    if solver == "woodbury":
      lu = jax.scipy.linalg.lu_factor(a0)
      z0 = jax.scipy.linalg.lu_solve(lu, yy)

  def solve(labels, mu):
    u, s, fro = _mmd_factors(labels, is_src, is_tgt, n_cls, mu)
    sc = lam * s / fro
    if kernel == "primal":
      # (eta I + Z'(E + lam M + rho L) Z) w = Z' E Y ; F = Z w.
      zs = jnp.where(is_src[:, None], feats, 0.0)
      lz = laplacian_apply(idx, a, dinv, feats)
      zu = feats.T @ u
      lhs = (zs.T @ feats + rho * feats.T @ lz + (zu * sc[None, :]) @ zu.T
             + eta * jnp.eye(feats.shape[1], dtype=dt))
      w = jnp.linalg.solve(lhs, feats.T @ yy)
      return w, feats @ w
    v = kmat @ u
    if solver == "woodbury":
      au = jax.scipy.linalg.lu_solve(lu, u)
      cap = jnp.eye(u.shape[1], dtype=dt) + sc[:, None] * (v.T @ au)
      beta = z0 - au @ jnp.linalg.solve(cap, sc[:, None] * (v.T @ z0))
    else:
      beta = jnp.linalg.solve(a0 + (u * sc[None, :]) @ v.T, yy)
    return beta, kmat @ beta

  def iterate(labels, adist_global, first):
    if adaptive_mu:
      adist, steps = a_distances(labels, adist_global, first)
      mu = mu_from_distances(adist[0], adist[1:])
    else:
      adist = jnp.zeros((n_fit,), dt)
      steps = jnp.asarray(0, jnp.int32)
      mu = jnp.asarray(mu_fixed, dt)
    coef, f = solve(labels, mu)
    pred = jnp.argmax(f, axis=1).astype(labels.dtype)
    return jnp.where(is_tgt, pred, labels), mu, adist, steps, coef

  # T iterations, stopping early at a fixed point of the pseudo-labels: the
  # next iteration would see the same labels, fit the same SVMs, so every
  # remaining iteration repeats the last one.
  coef_shape = (feats.shape[1], n_cls) if kernel == "primal" else (n_all,
                                                                    n_cls)
  hist0 = (jnp.zeros((n_iter, n_all), labels0.dtype), jnp.zeros((n_iter,), dt),
           jnp.zeros((n_iter, n_fit), dt), jnp.zeros((n_iter,), jnp.int32))
  state0 = (jnp.asarray(0, jnp.int32), labels0, jnp.zeros(coef_shape, dt),
            jnp.asarray(False), hist0)

  def cond(state):
    t, _, _, fixed, _ = state
    return (t < n_iter) & ~(fixed & early_stop)

  def body(state):
    t, labels, _, _, hist = state
    adist_global = hist[2][jnp.maximum(t - 1, 0), 0]
    new_labels, mu, adist, steps, coef = iterate(labels, adist_global, t == 0)
    fixed = jnp.all(new_labels == labels)
    hist = tuple(h.at[t].set(v) for h, v in zip(
        hist, (new_labels, mu, adist, steps)))
    return (t + 1, new_labels, coef, fixed, hist)

  t_done, _, coef, _, hist = jax.lax.while_loop(cond, body, state0)
  # Repeat the fixed point into the skipped iterations.
  rows = jnp.minimum(jnp.arange(n_iter), t_done - 1)
  labels, mus, adists, steps = (h[rows] for h in hist)
  steps = jnp.where(jnp.arange(n_iter) < t_done, steps, 0)
  return dict(coef=coef, xn=xn, labels=labels, mu=mus, adist=adists,
              first_labels=labels0, svm_steps=steps, n_iter_run=t_done)


def bucket_size(n: int, bucket: int) -> int:
  """``n`` rounded up to a multiple of ``bucket`` (``bucket <= 0``: ``n``)."""
  if bucket <= 0:
    return n
  return -(-n // bucket) * bucket


class MEDA:
  """Manifold Embedded Distribution Alignment (Wang et al., ACM MM 2018).

  ``MEDA(dim=20, p=10, lam=10.0, eta=0.1, rho=1.0, T=10, kernel="rbf")``:
  the settings of the paper's Office-Caltech10 demo (MEDA's own code
  defaults to ``lam=1``).

  Args:
    dim: GFK subspace dimension ``d``.
    p: Laplacian neighbours ``p`` (plus the sample itself).
    lam: MMD weight ``lambda``.
    eta: ridge ``eta`` on ``beta``.
    rho: Laplacian weight ``rho`` (0 removes the manifold term).
    T: iterations.
    kernel: ``"rbf"`` (MEDA), ``"linear"`` or ``"primal"`` (linear kernel
      solved in the ``2 dim`` primal).
    mu: None for MEDA's dynamic (A-distance) factor, or a fixed value in
      [0, 1].
    solver: ``"woodbury"`` (fast, default) or ``"dense"`` (the full
      ``n x n`` system every iteration, as the reference code).
    bucket: pad the sample axis to a multiple of this to share compiled
      programs between tasks (0: no padding). Does not change results.
      Larger buckets mean fewer compilations but larger ``n x n`` systems
      (the LU costs ``n^3``): 128 pads Office-Caltech10's largest task from
      2081 to 2176 samples (512 padded it to 2560).
    dtype: ``"float32"`` (default) or ``"float64"`` for the jitted loop.
      float32 gives the same target labels as float64 on every task of the
      reproduced tables (12 Office-Caltech10, 2 MNIST-USPS, 2 COIL20; on
      Office-Caltech10 the A-distance ``mu``, with :data:`SVM_LEVEL_TOL`,
      is within 5e-4 of float64 at full tolerance) in about 0.6x the time;
      float64 is what the NumPy-reference tests compare to 1e-9.

  Attributes after fit: ``classes_``, ``gfk_`` (the fitted :class:`GFK`),
  ``mu_`` (``(T,)``), ``adist_`` (``(T, C + 1)``: global then per-class
  A-distances used at each iteration), ``target_labels_`` (final),
  ``labels_history_`` (``(T, nt)``), ``first_labels_`` (1-NN),
  ``svm_steps_`` (Newton steps of the SVM fits per iteration),
  ``n_iter_run_`` (iterations computed: the loop stops at a fixed point of
  the pseudo-labels, which every later iteration would repeat; the histories
  are filled with it).
  """

  def __init__(self, dim: int = 20, p: int = 10, lam: float = 10.0,
               eta: float = 0.1, rho: float = 1.0, T: int = 10,
               kernel: str = "rbf", mu=None, solver: str = "woodbury",
               bucket: int = 128, dtype: str = "float32"):
    if kernel not in KERNELS:
      raise ValueError(f"MEDA: kernel must be one of {KERNELS}, got "
                       f"{kernel!r}.")
    if solver not in ("woodbury", "dense"):
      raise ValueError(f"MEDA: solver must be 'woodbury' or 'dense', got "
                       f"{solver!r}.")
    base.real(mu, "fixed mu", "MEDA", low=0.0, high=1.0, none_ok=True)
    self.dim, self.p, self.T = (base.integer(dim, "dim", "MEDA"),
                                base.integer(p, "p", "MEDA"),
                                base.integer(T, "T", "MEDA"))
    self.lam, self.eta, self.rho = (
        base.real(lam, "lam", "MEDA", low=0.0),
        base.real(eta, "eta", "MEDA", low=0.0),
        base.real(rho, "rho", "MEDA", low=0.0))
    base.integer(bucket, "bucket", "MEDA", low=0)
    self.kernel, self.mu, self.solver, self.bucket = kernel, mu, solver, int(
        bucket)
    if dtype not in ("float64", "float32"):
      raise ValueError(f"MEDA: dtype must be 'float64' or 'float32', got "
                       f"{dtype!r}.")
    self.dtype = dtype

  def fit(self, xs, ys, xt):
    xs, ys, xt, self.classes_ = base.check_inputs(xs, ys, xt, name="MEDA")
    gfk_lib.check_dim(self.dim, xs, xt, "MEDA")
    ns, nt = len(xs), len(xt)
    if self.p + 1 > ns + nt:
      raise base.ShallowInputError(
          f"MEDA: p={self.p} neighbours need more than {ns + nt} samples.")
    n_cls = len(self.classes_)
    self.gfk_ = gfk_lib.GFK(self.dim).fit(xs, ys, xt)
    z = np.concatenate([self.gfk_.transform(xs, reduced=True),
                        self.gfk_.transform(xt, reduced=True)])
    n_all = bucket_size(ns + nt, self.bucket)
    z = np.pad(z, ((0, n_all - ns - nt), (0, 0)))
    ys_pad = np.pad(ys, (0, n_all - ns))
    with jax.enable_x64(True):
      out = _meda_core(
          jnp.asarray(z, self.dtype), jnp.asarray(ns, jnp.int32),
          jnp.asarray(nt, jnp.int32), jnp.asarray(ys_pad, jnp.int32),
          self.lam, self.eta, self.rho,
          0.0 if self.mu is None else float(self.mu),
          n_cls=n_cls, p=self.p, n_iter=self.T, kernel=self.kernel,
          adaptive_mu=self.mu is None, solver=self.solver)
      out = jax.tree.map(np.asarray, out)
    self.ns_, self.nt_ = ns, nt
    self.xn_ = out["xn"][:ns + nt]
    self.coef_ = out["coef"] if self.kernel == "primal" else out["coef"][
        :ns + nt]
    self.mu_ = out["mu"]
    self.adist_ = out["adist"]
    self.svm_steps_ = out["svm_steps"]
    self.n_iter_run_ = int(out["n_iter_run"])
    self.labels_history_ = self.classes_[out["labels"][:, ns:ns + nt]]
    self.first_labels_ = self.classes_[out["first_labels"][ns:ns + nt]]
    self.target_labels_ = self.labels_history_[-1]
    self.n_features_ = xs.shape[1]
    return self

  def transform(self, x):
    """Unit-norm manifold features (``2 dim`` reduced GFK coordinates)."""
    z = self.gfk_.transform(x, reduced=True)
    n = np.linalg.norm(z, axis=1, keepdims=True)
    return z / np.where(n > 0, n, 1.0)

  def decision_function(self, x):
    """``(n, C)`` scores ``sum_i beta_i k(x_i, x)`` (primal: ``x w``)."""
    zn = self.transform(x)
    if self.kernel == "primal":
      return zn @ self.coef_
    if self.kernel == "linear":
      k = zn @ self.xn_.T
    else:
      gamma = 1.0 / (2.0 * np.mean(np.linalg.norm(self.xn_, axis=1)))
      d2 = ((zn ** 2).sum(1)[:, None] + (self.xn_ ** 2).sum(1)[None, :]
            - 2.0 * zn @ self.xn_.T)
      k = np.exp(-gamma * np.maximum(d2, 0.0))
    return k @ self.coef_

  def predict(self, x):
    return self.classes_[np.argmax(self.decision_function(x), axis=1)]

  def fit_predict(self, xs, ys, xt):
    """Fits and returns the final target pseudo-labels."""
    return self.fit(xs, ys, xt).target_labels_
