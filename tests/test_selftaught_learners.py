"""Feature learners of tlax.selftaught: numpy references, gradients, errors."""

import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from tlax.selftaught import learners as L


def _rng(seed=0):
  return np.random.default_rng(seed)


def _np_objective(x, a, d, alpha):
  r = x - a @ d
  return (0.5 * np.sum(r * r) + alpha * np.abs(a).sum()) / len(x)


def test_soft_threshold_matches_hand_values():
  x = jnp.array([-2.0, -0.5, 0.0, 0.3, 1.5])
  np.testing.assert_allclose(L.soft_threshold(x, 0.5),
                             [-1.5, 0.0, 0.0, 0.0, 1.0], atol=1e-7)


def test_sparse_coding_objective_matches_numpy():
  r = _rng()
  x, a, d = r.normal(size=(7, 5)), r.normal(size=(7, 3)), r.normal(size=(3, 5))
  got = L.sparse_coding_objective(jnp.asarray(x, jnp.float32),
                                  jnp.asarray(a, jnp.float32),
                                  jnp.asarray(d, jnp.float32), 0.3)
  np.testing.assert_allclose(got, _np_objective(x, a, d, 0.3), rtol=1e-5)


def test_sparse_coding_objective_gradient_in_dictionary():
  r = _rng(1)
  x, a, d = (jnp.asarray(r.normal(size=s), jnp.float32)
             for s in ((6, 4), (6, 3), (3, 4)))
  jtu.check_grads(lambda d: L.sparse_coding_objective(x, a, d, 0.1), (d,),
                  order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_fista_codes_satisfy_lasso_optimality():
  r = _rng(2)
  d = r.normal(size=(6, 10))
  d /= np.linalg.norm(d, axis=1, keepdims=True)
  x = r.normal(size=(5, 10))
  alpha = 0.2
  a = np.asarray(L.fista_codes(jnp.asarray(x, jnp.float32),
                               jnp.asarray(d, jnp.float32), alpha,
                               jnp.zeros((5, 6), jnp.float32), 500),
                 np.float64)
  g = a @ d @ d.T - x @ d.T               # gradient of the smooth part
  nz = np.abs(a) > 1e-5
  assert nz.any() and (~nz).any()
  np.testing.assert_allclose(g[nz], -alpha * np.sign(a[nz]), atol=2e-3)
  assert np.all(np.abs(g[~nz]) <= alpha + 2e-3)


def test_fista_matches_sklearn_lasso():
  from sklearn.linear_model import Lasso
  r = _rng(3)
  d = r.normal(size=(4, 12))
  d /= np.linalg.norm(d, axis=1, keepdims=True)
  x = r.normal(size=(1, 12))
  a = np.asarray(L.fista_codes(jnp.asarray(x, jnp.float32),
                               jnp.asarray(d, jnp.float32), 0.1,
                               jnp.zeros((1, 4), jnp.float32), 1000))
  # sklearn's Lasso scales the squared error by 1 / n_samples (= 12 here).
  ref = Lasso(alpha=0.1 / 12, fit_intercept=False, tol=1e-10,
              max_iter=100000).fit(d.T, x[0]).coef_
  np.testing.assert_allclose(a[0], ref, atol=1e-3)


def _np_dictionary_sweep(d, gram, cross):
  d = d.copy()
  for j in range(len(d)):
    if gram[j, j] <= 1e-12:
      continue
    u = d[j] + (cross[j] - gram[j] @ d) / gram[j, j]
    d[j] = u / max(np.linalg.norm(u), 1.0)
  return d


def test_dictionary_update_matches_numpy_and_lowers_objective():
  r = _rng(4)
  x = r.normal(size=(20, 8))
  a = r.normal(size=(20, 5)) * (r.random((20, 5)) < 0.5)
  a[:, 4] = 0.0                             # an unused atom stays put
  d = r.normal(size=(5, 8))
  d /= np.linalg.norm(d, axis=1, keepdims=True)
  got = np.asarray(L.dictionary_update(jnp.asarray(d, jnp.float32),
                                       jnp.asarray(a.T @ a, jnp.float32),
                                       jnp.asarray(a.T @ x, jnp.float32)))
  ref = _np_dictionary_sweep(d, a.T @ a, a.T @ x)
  np.testing.assert_allclose(got, ref, atol=1e-4)
  np.testing.assert_allclose(got[4], d[4], atol=1e-6)
  assert np.all(np.linalg.norm(got, axis=1) <= 1 + 1e-5)
  assert _np_objective(x, a, got, 0.1) < _np_objective(x, a, d, 0.1)


def test_sparse_coding_fit_lowers_objective_and_gives_sparse_codes():
  r = _rng(5)
  atoms = r.normal(size=(6, 16))
  codes = r.normal(size=(200, 6)) * (r.random((200, 6)) < 0.3)
  x = codes @ atoms + 0.01 * r.normal(size=(200, 16))
  sc = L.SparseCoding(6, alpha=0.05, n_iter=15, code_steps=10,
                      transform_steps=50, center=False, seed=0).fit(x)
  obj = sc.objectives_
  assert obj[-1] < obj[0] and np.all(np.diff(obj) < 1e-4)
  z = sc.transform(x[:10])
  assert z.shape == (10, 6) and (z == 0).mean() > 0.2
  assert np.all(np.linalg.norm(sc.atoms, axis=1) <= 1 + 1e-5)


def _np_sae_loss(p, x, rho, beta, lam):
  sig = lambda v: 1 / (1 + np.exp(-v))
  h = sig(x @ p["w1"] + p["b1"])
  out = sig(h @ p["w2"] + p["b2"])
  rh = h.mean(0)
  kl = np.sum(rho * np.log(rho / rh) + (1 - rho) * np.log((1 - rho) / (1 - rh)))
  return (0.5 * np.sum((out - x) ** 2) / len(x)
          + 0.5 * lam * (np.sum(p["w1"] ** 2) + np.sum(p["w2"] ** 2))
          + beta * kl)


def _params(seed, d=5, h=3):
  r = _rng(seed)
  return {"w1": r.normal(size=(d, h)) * 0.5, "b1": r.normal(size=h) * 0.1,
          "w2": r.normal(size=(h, d)) * 0.5, "b2": r.normal(size=d) * 0.1}


def test_sparse_autoencoder_loss_matches_numpy_and_gradients():
  p = _params(6)
  x = _rng(7).random((8, 5))
  jp = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), p)
  jx = jnp.asarray(x, jnp.float32)
  got = L.sparse_autoencoder_loss(jp, jx, 0.1, 3.0, 1e-3)
  np.testing.assert_allclose(got, _np_sae_loss(p, x, 0.1, 3.0, 1e-3),
                             rtol=1e-5)
  jtu.check_grads(lambda q: L.sparse_autoencoder_loss(q, jx, 0.1, 3.0, 1e-3),
                  (jp,), order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_kl_sparsity_matches_numpy_and_is_zero_at_target():
  rh = np.array([0.05, 0.1, 0.5])
  ref = np.sum(0.1 * np.log(0.1 / rh) + 0.9 * np.log(0.9 / (1 - rh)))
  np.testing.assert_allclose(L.kl_sparsity(0.1, jnp.asarray(rh, jnp.float32)),
                             ref, rtol=1e-5)
  assert float(L.kl_sparsity(0.1, jnp.full(4, 0.1))) == pytest.approx(0, abs=1e-6)
  jtu.check_grads(lambda r: L.kl_sparsity(0.1, r),
                  (jnp.asarray(rh, jnp.float32),), order=1, modes=["rev"],
                  atol=1e-2, rtol=1e-2)


def test_denoising_loss_matches_numpy_and_gradients():
  p = _params(8)
  r = _rng(9)
  x, mask = r.normal(size=(6, 5)), (r.random((6, 5)) > 0.3).astype(float)
  h = np.maximum((x * mask) @ p["w1"] + p["b1"], 0)
  ref = 0.5 * np.sum((h @ p["w2"] + p["b2"] - x) ** 2) / 6
  jp = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), p)
  args = (jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32))
  np.testing.assert_allclose(L.denoising_autoencoder_loss(jp, *args), ref,
                             rtol=1e-5)
  jtu.check_grads(lambda q: L.denoising_autoencoder_loss(q, *args), (jp,),
                  order=1, modes=["rev"], atol=1e-2, rtol=1e-2)


def test_autoencoders_train_and_encode():
  x = _rng(10).random((64, 9)).astype(np.float32)
  sae = L.SparseAutoencoder(4, steps=10, seed=0).fit(x)
  assert sae.losses_[-1] < sae.losses_[0]
  z = sae.transform(x)
  assert z.shape == (64, 4) and np.all((z > 0) & (z < 1))
  dae = L.DenoisingAutoencoder(4, steps=30, batch_size=16, lr=1e-2).fit(x)
  assert dae.losses_[-5:].mean() < dae.losses_[:5].mean()
  assert dae.transform(x).shape == (64, 4) and dae.atoms.shape == (4, 9)


def test_pca_matches_numpy_svd():
  x = _rng(11).normal(size=(30, 6)) @ np.diag([5, 3, 1, 0.5, 0.1, 0.01])
  z = L.PCA(2).fit(x).transform(x)
  xc = x - x.mean(0)
  _, _, vt = np.linalg.svd(xc, full_matrices=False)
  ref = xc @ vt[:2].T
  np.testing.assert_allclose(np.abs(z), np.abs(ref), rtol=1e-3, atol=1e-3)


def test_plot_atoms_writes_png(tmp_path):
  L.plot_atoms(_rng(12).normal(size=(9, 16)), (4, 4), tmp_path / "a.png")
  assert (tmp_path / "a.png").stat().st_size > 0
  with pytest.raises(ValueError, match="not rows of 5x5"):
    L.plot_atoms(np.zeros((3, 16)), (5, 5))


@pytest.mark.parametrize("name", sorted(L.LEARNERS))
def test_bad_input_errors(name):
  learner = L.get_learner(name)
  with pytest.raises(L.FeatureLearnerInputError, match="all zeros"):
    learner.fit(np.zeros((10, 4)))
  x = _rng(13).random((10, 4))
  x[3, 1] = np.nan
  with pytest.raises(L.FeatureLearnerInputError, match="NaN.*1 of 10 rows"):
    learner.fit(x)
  with pytest.raises(L.FeatureLearnerInputError, match="2-D"):
    learner.fit(np.ones((3, 2, 2)))
  with pytest.raises(RuntimeError, match="call fit"):
    L.get_learner(name).transform(np.ones((2, 4)))


def test_dictionary_larger_than_data_allows():
  with pytest.raises(L.FeatureLearnerInputError,
                     match="n_atoms=20 is larger than the 10 non-zero"):
    L.SparseCoding(20).fit(_rng(14).random((10, 4)))
  with pytest.raises(L.FeatureLearnerInputError, match="at most 4"):
    L.PCA(5).fit(_rng(14).random((10, 4)))


def test_transform_width_and_unknown_learner():
  sc = L.PCA(2).fit(_rng(15).random((10, 4)))
  with pytest.raises(L.FeatureLearnerInputError, match=r"\(n, 4\)"):
    sc.transform(np.ones((3, 5)))
  with pytest.raises(KeyError, match="valid: raw, pca"):
    L.get_learner("ica")


# ---------------------------------------------------------------------------
# Convolutional sparse coding.
# ---------------------------------------------------------------------------
def _np_windows(images, p):
  n, h, w = images.shape
  return np.stack([np.stack([np.stack([images[i, r:r + p, c:c + p].ravel()
                                       for c in range(w - p + 1)])
                             for r in range(h - p + 1)]) for i in range(n)])


def test_image_patches_are_row_major_windows():
  images = _rng(20).random((2, 5, 7)).astype(np.float32)
  got = np.asarray(L.image_patches(jnp.asarray(images), 3))
  assert got.shape == (2, 3, 5, 9)
  np.testing.assert_allclose(got, _np_windows(images, 3), rtol=1e-6)


def test_normalise_patches_and_pool_grid_match_numpy():
  p = _rng(21).random((3, 4, 9)).astype(np.float32)
  c = p - p.mean(-1, keepdims=True)
  ref = c / np.sqrt(c.var(-1, keepdims=True) + 0.01)
  np.testing.assert_allclose(L.normalise_patches(jnp.asarray(p), 0.01), ref,
                             rtol=1e-5, atol=1e-6)
  maps = _rng(22).random((2, 5, 4, 3)).astype(np.float32)
  got = np.asarray(L.pool_grid(jnp.asarray(maps), 2))
  ref = np.concatenate([maps[:, :2, :2].sum((1, 2)),
                        maps[:, :2, 2:].sum((1, 2)),
                        maps[:, 2:4, :2].sum((1, 2)),
                        maps[:, 2:4, 2:].sum((1, 2))], -1)
  np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_zca_whitening_gives_identity_covariance():
  x = _rng(23).normal(size=(2000, 4)) @ np.array(
      [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, .5, 0], [0, 0, .2, .1]])
  mean, w = L.zca_whitening(x, 1e-8)
  np.testing.assert_allclose(np.cov((x - mean) @ w, rowvar=False), np.eye(4),
                             atol=1e-3)
  np.testing.assert_allclose(w, w.T, atol=1e-5)  # ZCA: symmetric


def test_conv_sparse_features_match_numpy():
  rng = _rng(24)
  images = rng.random((3, 6, 6)).astype(np.float32)
  mean = rng.normal(size=9).astype(np.float32) * 0.1
  wh = np.eye(9, dtype=np.float32) + 0.1 * rng.normal(size=(9, 9)).astype(
      np.float32)
  d = rng.normal(size=(4, 9)).astype(np.float32)
  got = np.asarray(L.conv_sparse_features(
      jnp.asarray(images), jnp.asarray(mean), jnp.asarray(wh), jnp.asarray(d),
      0.3, 0.01, patch=3, grid=2))
  win = _np_windows(images, 3)
  win = win - win.mean(-1, keepdims=True)
  win = win / np.sqrt(win.var(-1, keepdims=True) + 0.01)
  z = ((win - mean) @ wh) @ d.T                   # (3, 4, 4, 4)
  pos, neg = np.maximum(z - 0.3, 0), np.maximum(-z - 0.3, 0)
  def pool(m):
    return np.concatenate([m[:, r:r + 2, c:c + 2].sum((1, 2))
                           for r in (0, 2) for c in (0, 2)], -1)
  ref = np.concatenate([pool(pos), pool(neg)], -1)
  assert got.shape == (3, 2 * 2 * 2 * 4)
  np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_conv_sparse_coding_fits_and_encodes():
  x = _rng(25).random((40, 64)).astype(np.float32)
  learner = L.ConvSparseCoding(patch=3, n_atoms=8, n_patches=500, n_iter=5,
                               pool=2, seed=0).fit(x)
  assert learner.objectives_[-1] < learner.objectives_[0]
  assert learner.atoms.shape == (8, 9) and learner.atom_shape == (3, 3)
  z = learner.transform(x[:5])
  assert z.shape == (5, 2 * 2 * 2 * 8) and np.all(z >= 0) and z.any()
  # Batched encoding equals one call.
  learner.batch_size = 2
  np.testing.assert_allclose(learner.transform(x[:5]), z, rtol=1e-5)
  # Non-square images with their shape.
  xr = _rng(26).random((30, 4 * 8)).astype(np.float32)
  zr = L.ConvSparseCoding((4, 8), patch=3, n_atoms=4, n_patches=200,
                          n_iter=2).fit(xr).transform(xr)
  assert zr.shape == (30, 2 * 2 * 2 * 4)


def test_conv_sparse_coding_bad_input():
  x = _rng(27).random((20, 16)).astype(np.float32)
  with pytest.raises(L.FeatureLearnerInputError, match="patch=5 is larger "
                     "than the 4x4 images; use patch <= 4"):
    L.ConvSparseCoding(patch=5).fit(x)
  with pytest.raises(L.FeatureLearnerInputError, match="pool=3 is larger "
                     "than the 2x2 window positions"):
    L.ConvSparseCoding(patch=3, pool=3).fit(x)
  with pytest.raises(L.FeatureLearnerInputError, match="15 values are not "
                     "square.*image_shape"):
    L.ConvSparseCoding(patch=2).fit(x[:, :15])
  with pytest.raises(L.FeatureLearnerInputError, match=r"image_shape=\(3, 3\) "
                     "has 9 pixels but the rows have 16"):
    L.ConvSparseCoding((3, 3), patch=2).fit(x)
  with pytest.raises(L.FeatureLearnerInputError, match="n_atoms=50 is larger "
                     "than the 40 non-zero"):
    L.ConvSparseCoding(patch=2, n_atoms=50, n_patches=40).fit(x)
  for field in ("patch", "pool", "n_patches"):
    with pytest.raises(L.FeatureLearnerInputError, match=f"{field} must be"):
      L.ConvSparseCoding(**{field: 0})
  with pytest.raises(L.FeatureLearnerInputError, match="alpha must be > 0"):
    L.ConvSparseCoding(alpha=0.0)
