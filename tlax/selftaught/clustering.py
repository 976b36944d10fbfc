r"""Self-taught clustering (STC) and clustering baselines and metrics.

Self-taught clustering (Dai, Yang, Xue & Yu, ICML 2008) clusters a small
target set ``X`` better by co-clustering it together with a large unlabelled
auxiliary set ``Y`` that shares the feature space ``Z``: the target and the
auxiliary data are each clustered (``X~``, ``Y~``) while the features are
clustered once (``Z~``), shared by both, minimising the loss in mutual
information

.. math::
  J = I(X; Z) - I(\tilde X; \tilde Z)
      + \lambda \big[ I(Y; Z) - I(\tilde Y; \tilde Z) \big]
    = \mathrm{KL}(p(X, Z) \Vert q(X, Z))
      + \lambda\, \mathrm{KL}(p(Y, Z) \Vert q(Y, Z)),

with ``q(x, z) = p(x~, z~) p(x | x~) p(z | z~)`` (information-theoretic
co-clustering, Dhillon, Mallela & Modha, KDD 2003). The joint distributions
are the non-negative data matrices normalised to sum to one. Each iteration
reassigns every target example, every auxiliary example and every feature to
the cluster that minimises its term of ``J``; each step does not increase
``J``.

    from tlax.selftaught.clustering import self_taught_clustering
    res = self_taught_clustering(x_target, x_aux, n_clusters=10,
                                 n_feature_clusters=64, seed=0)
    res.labels, res.objectives

Metrics: :func:`clustering_accuracy` (Hungarian-matched) and
:func:`normalized_mutual_info`; baselines: :func:`kmeans` and
:func:`spectral`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_EPS = 1e-12


class ClusteringInputError(ValueError):
  """Bad input to a clustering function (shape, sign, NaNs, sizes)."""


def check_nonnegative(x, *, what: str) -> np.ndarray:
  """A finite, non-negative, non-zero 2-D matrix as float64."""
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2 or 0 in x.shape:
    raise ClusteringInputError(
        f"{what} must be a non-empty 2-D matrix (examples x features), got "
        f"shape {x.shape}.")
  if not np.isfinite(x).all():
    raise ClusteringInputError(f"{what} contains NaN or infinite values.")
  if (x < 0).any():
    raise ClusteringInputError(
        f"{what} has negative entries (min {x.min():.3g}); self-taught "
        "clustering reads the data as a joint distribution p(x, z): use "
        "non-negative features (counts, histograms, pixel intensities), e.g. "
        "the office_caltech10 option preprocess='none'.")
  if not (x.sum(axis=1) > 0).any():
    raise ClusteringInputError(f"{what} is all zeros.")
  return x


def _one_hot(labels, k):
  return jax.nn.one_hot(labels, k, dtype=jnp.float64 if jax.config.x64_enabled
                        else jnp.float32)


def coclustering_objective(p, rows, cols, n_row_clusters: int,
                           n_col_clusters: int):
  r"""``KL(p || q)`` of a co-clustering: the loss in mutual information.

  .. math::
    q(x, z) = p(\tilde x, \tilde z)\, \frac{p(x)}{p(\tilde x)}\,
              \frac{p(z)}{p(\tilde z)}

  Args:
    p: joint distribution ``(N, M)`` (non-negative, sums to 1).
    rows: row cluster of each row ``(N,)``, ints in ``[0, n_row_clusters)``.
    cols: column cluster of each column ``(M,)``.
    n_row_clusters, n_col_clusters: cluster counts.

  Returns:
    Scalar ``I(X; Z) - I(X~; Z~)`` (>= 0).
  """
  r = _one_hot(rows, n_row_clusters).astype(p.dtype)
  c = _one_hot(cols, n_col_clusters).astype(p.dtype)
  pc = r.T @ p @ c                          # p(x~, z~)
  px, pz = p.sum(1), p.sum(0)
  pxc, pzc = pc.sum(1), pc.sum(0)
  q = (pc[rows][:, cols] * (px / jnp.maximum(pxc[rows], _EPS))[:, None]
       * (pz / jnp.maximum(pzc[cols], _EPS))[None, :])
  return jnp.sum(jnp.where(p > 0, p * (jnp.log(jnp.maximum(p, _EPS))
                                       - jnp.log(jnp.maximum(q, _EPS))), 0.0))


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def stc_objective(px, py, x_rows, y_rows, cols, k_x, k_y, k_z, lam):
  """The STC objective ``KL(p_X || q_X) + lam * KL(p_Y || q_Y)``."""
  return (coclustering_objective(px, x_rows, cols, k_x, k_z)
          + lam * coclustering_objective(py, y_rows, cols, k_y, k_z))


def _row_log_q(p, rows, cols, k_r, k_c):
  """``log q(z | x~)`` for every row cluster and column, ``(k_r, M)``."""
  r = _one_hot(rows, k_r).astype(p.dtype)
  c = _one_hot(cols, k_c).astype(p.dtype)
  pc = r.T @ p @ c
  pz = p.sum(0)
  pzc = pc.sum(0)
  p_zc_given_xc = pc / jnp.maximum(pc.sum(1, keepdims=True), _EPS)
  p_z_given_zc = pz / jnp.maximum(pzc[cols], _EPS)
  return jnp.log(jnp.maximum(p_zc_given_xc[:, cols] * p_z_given_zc[None],
                             _EPS))


def _col_log_q(p, rows, cols, k_r, k_c):
  """``log q(x | z~)`` for every row and column cluster, ``(N, k_c)``."""
  return _row_log_q(p.T, cols, rows, k_c, k_r).T


@functools.partial(jax.jit, static_argnames=("k_x", "k_y", "k_z"))
def stc_step(px, py, x_rows, y_rows, cols, lam, *, k_x, k_y, k_z):
  """One STC iteration: target rows, auxiliary rows, then shared columns."""
  cond_x = px / jnp.maximum(px.sum(1, keepdims=True), _EPS)
  x_rows = jnp.argmax(cond_x @ _row_log_q(px, x_rows, cols, k_x, k_z).T, 1)
  cond_y = py / jnp.maximum(py.sum(1, keepdims=True), _EPS)
  y_rows = jnp.argmax(cond_y @ _row_log_q(py, y_rows, cols, k_y, k_z).T, 1)
  # argmin_z~ p_X(z) KL(p(X|z) || q(X|z~)) + lam p_Y(z) KL(p(Y|z) || q(Y|z~))
  score = (px.T @ _col_log_q(px, x_rows, cols, k_x, k_z)
           + lam * (py.T @ _col_log_q(py, y_rows, cols, k_y, k_z)))
  cols = jnp.argmax(score, 1)
  return x_rows, y_rows, cols


class STCResult(NamedTuple):
  labels: np.ndarray          # target clusters (N_x,)
  aux_labels: np.ndarray      # auxiliary clusters (N_y,)
  feature_labels: np.ndarray  # shared feature clusters (M,)
  objectives: np.ndarray      # objective before and after each iteration


def self_taught_clustering(x_target, x_aux, n_clusters: int, *,
                           n_aux_clusters: int | None = None,
                           n_feature_clusters: int = 64, lam: float = 1.0,
                           n_iter: int = 20, n_init: int = 1,
                           seed: int = 0) -> STCResult:
  """Self-taught clustering of ``x_target`` with auxiliary data ``x_aux``.

  Initialisation (label-free): k-means (seeded) on the rows of ``p(Z|x)`` of
  the target and of the auxiliary data, and on the rows of ``p(X, Y | z)``
  (the features described by both data sets). With ``n_init > 1`` the
  algorithm runs from that many initialisations (one random stream, seeded
  by ``seed``) and keeps the run with the lowest final objective, as
  k-means does with its ``n_init``: a label-free choice.

  Args:
    x_target: non-negative ``(N_x, M)``.
    x_aux: non-negative ``(N_y, M)``, same features.
    n_clusters: target clusters.
    n_aux_clusters: auxiliary clusters (default ``n_clusters``).
    n_feature_clusters: shared feature clusters.
    lam: weight ``lambda`` of the auxiliary term.
    n_iter: iterations (stops early when no assignment changes).
    n_init: initialisations; the run with the lowest objective is kept.
    seed: initialisation.

  Returns:
    An :class:`STCResult`.

  Raises:
    ClusteringInputError: negative, NaN or all-zero inputs, mismatched
      feature counts, or more clusters than examples or features.

  References:
    Dai, Yang, Xue & Yu, Self-taught clustering, ICML 2008.
  """
  xt = check_nonnegative(x_target, what="target data")
  xa = check_nonnegative(x_aux, what="auxiliary data")
  if xt.shape[1] != xa.shape[1]:
    raise ClusteringInputError(
        f"Target ({xt.shape[1]}) and auxiliary ({xa.shape[1]}) data must "
        "share the same features.")
  k_x = int(n_clusters)
  k_y = int(n_aux_clusters or n_clusters)
  k_z = int(n_feature_clusters)
  for k, n, what in ((k_x, len(xt), "target examples"),
                     (k_y, len(xa), "auxiliary examples"),
                     (k_z, xt.shape[1], "features")):
    if not 1 <= k <= n:
      raise ClusteringInputError(
          f"{k} clusters of {what} but there are {n}; use between 1 and {n}.")
  if int(n_init) < 1:
    raise ClusteringInputError(
        f"n_init must be at least 1 (the initialisations to run), got "
        f"{n_init!r}.")
  px = xt / xt.sum()
  py = xa / xa.sum()
  rng = np.random.RandomState(seed)
  # Computed once for every start: the rows k-means initialises from and
  # the joint distributions on the device.
  rows = _init_rows(px, py)
  jpx, jpy = jnp.asarray(px, jnp.float32), jnp.asarray(py, jnp.float32)
  best = None
  for _ in range(int(n_init)):
    result = _stc_from_init(rows, jpx, jpy, k_x, k_y, k_z, lam, n_iter, rng)
    if best is None or result.objectives[-1] < best.objectives[-1]:
      best = result
  return best


def _stc_from_init(rows, jpx, jpy, k_x, k_y, k_z, lam, n_iter, rng
                   ) -> STCResult:
  """One STC run from a k-means initialisation drawn with ``rng``.

  ``rows``: ``p(Z|x)``, ``p(Z|y)`` and the features' ``p(X, Y | z)`` (NumPy)
  for k-means; ``jpx``, ``jpy``: the joint distributions as float32 arrays.
  """
  x_rows = _kmeans_labels(rows[0], k_x, rng)
  y_rows = _kmeans_labels(rows[1], k_y, rng)
  cols = _kmeans_labels(rows[2], k_z, rng)
  dtype = jnp.float32
  state = tuple(jnp.asarray(a) for a in (x_rows, y_rows, cols))
  obj = lambda s: float(stc_objective(jpx, jpy, *s, k_x, k_y, k_z, lam))
  objectives = [obj(state)]
  for _ in range(n_iter):
    new = stc_step(jpx, jpy, *state, jnp.asarray(lam, dtype), k_x=k_x,
                   k_y=k_y, k_z=k_z)
    changed = any(bool(jnp.any(a != b)) for a, b in zip(new, state))
    state = new
    objectives.append(obj(state))
    if not changed:
      break
  return STCResult(*(np.asarray(a) for a in state), np.asarray(objectives))


def _init_rows(px, py):
  """``p(Z|x)``, ``p(Z|y)`` and the features' ``p(X, Y | z)``: the rows
  k-means clusters to initialise the target, auxiliary and feature
  clusters."""
  return (_rownorm(px), _rownorm(py),
          np.concatenate([_rownorm(px.T), _rownorm(py.T)], 1))


def _rownorm(p):
  return p / np.maximum(p.sum(1, keepdims=True), _EPS)


def _kmeans_labels(x, k, rng):
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
  return KMeans(k, n_init=1, random_state=rng).fit_predict(x)


# ---------------------------------------------------------------------------
# Baselines and metrics.
# ---------------------------------------------------------------------------
def kmeans(x, n_clusters: int, *, seed: int = 0, n_init: int = 10):
  """k-means cluster labels (scikit-learn, seeded)."""
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
  return KMeans(n_clusters, n_init=n_init, random_state=seed).fit_predict(
      np.asarray(x, np.float64))


def spectral(x, n_clusters: int, *, seed: int = 0, n_neighbors: int = 10):
  """Spectral clustering on a symmetric k-nearest-neighbour graph."""
  from sklearn.cluster import SpectralClustering  # pylint: disable=g-import-not-at-top
  return SpectralClustering(
      n_clusters, affinity="nearest_neighbors", n_neighbors=n_neighbors,
      random_state=seed, assign_labels="kmeans").fit_predict(
          np.asarray(x, np.float64))


def clustering_accuracy(y_true, y_pred) -> float:
  """Accuracy (percent) under the best one-to-one cluster-to-class matching.

  The matching maximises the agreement (Hungarian algorithm on the
  contingency table); clusters left unmatched count as errors.
  """
  from scipy.optimize import linear_sum_assignment  # pylint: disable=g-import-not-at-top
  y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
  if y_true.shape != y_pred.shape or y_true.ndim != 1:
    raise ClusteringInputError(
        f"Labels and clusters must be 1-D of the same length, got "
        f"{y_true.shape} and {y_pred.shape}.")
  _, t = np.unique(y_true, return_inverse=True)
  _, p = np.unique(y_pred, return_inverse=True)
  table = np.zeros((p.max() + 1, t.max() + 1), np.int64)
  np.add.at(table, (p, t), 1)
  rows, cols = linear_sum_assignment(-table)
  return float(100.0 * table[rows, cols].sum() / len(y_true))


def normalized_mutual_info(y_true, y_pred) -> float:
  """NMI (arithmetic normalisation, scikit-learn), in percent."""
  from sklearn.metrics import normalized_mutual_info_score  # pylint: disable=g-import-not-at-top
  return float(100.0 * normalized_mutual_info_score(y_true, y_pred))
