"""Self-taught clustering (STC), its objective, baselines and metrics."""

import jax.numpy as jnp
import numpy as np
import pytest

from tlax.selftaught import clustering as C


def _mi(p):
  px, pz = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
  m = p > 0
  return float(np.sum(p[m] * np.log(p[m] / (px @ pz)[m])))


def _np_loss_in_mi(p, rows, cols, kr, kc):
  r = np.eye(kr)[rows]
  c = np.eye(kc)[cols]
  return _mi(p) - _mi(r.T @ p @ c)


def test_coclustering_objective_is_the_loss_in_mutual_information():
  rng = np.random.default_rng(0)
  p = rng.random((9, 7))
  p /= p.sum()
  rows, cols = rng.integers(0, 3, 9), rng.integers(0, 2, 7)
  got = C.coclustering_objective(jnp.asarray(p, jnp.float32), rows, cols, 3, 2)
  np.testing.assert_allclose(got, _np_loss_in_mi(p, rows, cols, 3, 2),
                             rtol=1e-4, atol=1e-6)
  # One cluster per row and column loses nothing.
  assert float(C.coclustering_objective(jnp.asarray(p, jnp.float32),
                                        np.arange(9), np.arange(7), 9,
                                        7)) == pytest.approx(0, abs=1e-5)


def _planted(rng, n, k, m, kz, noise=0.2):
  """Rows of k classes whose mass sits on their own block of features."""
  rows = np.repeat(np.arange(k), n // k)
  feat = np.repeat(np.arange(kz), m // kz)
  x = noise * rng.random((len(rows), m))
  x += (rows[:, None] % kz == feat[None, :]) * rng.random((len(rows), m))
  return x, rows


def test_stc_objective_never_increases_and_recovers_planted_clusters():
  rng = np.random.default_rng(1)
  xt, yt = _planted(rng, 30, 3, 12, 3)
  xa, _ = _planted(rng, 90, 3, 12, 3)
  res = C.self_taught_clustering(xt, xa, 3, n_feature_clusters=3, lam=1.0,
                                 n_iter=10, seed=0)
  assert np.all(np.diff(res.objectives) <= 1e-5)
  assert C.clustering_accuracy(yt, res.labels) == 100.0
  assert res.feature_labels.shape == (12,) and res.aux_labels.shape == (90,)


def test_stc_restarts_keep_the_run_with_the_lowest_objective():
  rng = np.random.default_rng(4)
  xt = rng.random((40, 16)) ** 3
  xa = rng.random((60, 16)) ** 3
  kwargs = dict(n_feature_clusters=4, lam=1.0, n_iter=5)
  one = C.self_taught_clustering(xt, xa, 4, seed=7, **kwargs)
  five = C.self_taught_clustering(xt, xa, 4, n_init=5, seed=7, **kwargs)
  # The five starts, drawn one after another from the seed's stream (the
  # first is the single start's).
  stream = np.random.RandomState(7)
  px, py = xt / xt.sum(), xa / xa.sum()
  rows = C._init_rows(px, py)  # pylint: disable=protected-access
  jpx, jpy = jnp.asarray(px, jnp.float32), jnp.asarray(py, jnp.float32)
  finals = [
      C._stc_from_init(  # pylint: disable=protected-access
          rows, jpx, jpy, 4, 4, 4, 1.0, 5, stream).objectives[-1]
      for _ in range(5)]
  assert finals[0] == pytest.approx(one.objectives[-1])
  assert len(set(np.round(finals, 7))) > 1  # the starts differ
  assert five.objectives[-1] == pytest.approx(min(finals))
  with pytest.raises(C.ClusteringInputError, match="n_init must be at least"):
    C.self_taught_clustering(xt, xa, 4, n_init=0, **kwargs)


def test_stc_objective_matches_sum_of_coclustering_losses():
  rng = np.random.default_rng(2)
  px, py = rng.random((5, 4)), rng.random((6, 4))
  px, py = px / px.sum(), py / py.sum()
  xr, yr, cols = np.array([0, 1, 0, 1, 1]), np.array([0, 0, 1, 1, 0, 1]), \
      np.array([0, 1, 1, 0])
  got = C.stc_objective(jnp.asarray(px, jnp.float32),
                        jnp.asarray(py, jnp.float32), xr, yr, cols, 2, 2, 2,
                        0.5)
  ref = (_np_loss_in_mi(px, xr, cols, 2, 2)
         + 0.5 * _np_loss_in_mi(py, yr, cols, 2, 2))
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


def test_metrics_hand_checked():
  y = np.array([0, 0, 1, 1, 2, 2])
  assert C.clustering_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 100.0
  assert C.clustering_accuracy(y, np.array([0, 0, 0, 1, 1, 1])) == \
      pytest.approx(100 * 4 / 6)
  assert C.normalized_mutual_info(y, np.array([5, 5, 3, 3, 4, 4])) == \
      pytest.approx(100.0)
  assert C.normalized_mutual_info(y, np.zeros(6, int)) == pytest.approx(0.0)


def test_baselines_find_separated_blobs():
  rng = np.random.default_rng(3)
  y = np.repeat(np.arange(3), 20)
  x = rng.normal(size=(60, 2)) * 0.1 + np.array([[0, 0], [5, 0], [0, 5]])[y]
  assert C.clustering_accuracy(y, C.kmeans(x, 3, seed=0)) == 100.0
  assert C.clustering_accuracy(y, C.spectral(x, 3, seed=0)) == 100.0


def test_bad_input_errors():
  ok = np.ones((5, 4))
  with pytest.raises(C.ClusteringInputError, match="negative entries"):
    C.self_taught_clustering(-ok, ok, 2)
  with pytest.raises(C.ClusteringInputError, match="all zeros"):
    C.self_taught_clustering(np.zeros((5, 4)), ok, 2)
  bad = ok.copy()
  bad[0, 0] = np.nan
  with pytest.raises(C.ClusteringInputError, match="NaN"):
    C.self_taught_clustering(ok, bad, 2)
  with pytest.raises(C.ClusteringInputError, match="share the same features"):
    C.self_taught_clustering(ok, np.ones((5, 3)), 2)
  with pytest.raises(C.ClusteringInputError, match="6 clusters of target"):
    C.self_taught_clustering(ok, ok, 6)
  with pytest.raises(C.ClusteringInputError, match="same length"):
    C.clustering_accuracy([0, 1], [0])
