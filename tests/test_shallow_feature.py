"""Tests of TCA, JDA, BDA, CORAL, the baselines and the kernel helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from tlax.shallow import base
from tlax.shallow import baselines
from tlax.shallow import feature
from tlax.shallow import kernels
from tlax.shallow import svm as svm_lib


def _shifted_problem(seed=0, n=60, d=12, num_classes=3, shift=5.0):
  """Gaussian classes; the target is stretched and shifted far away."""
  r = np.random.default_rng(seed)
  means = r.normal(size=(num_classes, d)) * 2.5
  ys = np.repeat(np.arange(num_classes), n)
  yt = ys.copy()
  xs = means[ys] + r.normal(size=(num_classes * n, d))
  r.normal(size=(d, d))  # keeps the stream of the original construction
  xt = means[yt] + r.normal(size=(num_classes * n, d)) + shift * r.normal(
      size=d)
  return xs, ys, xt, yt


def _spd(r, p):
  a = r.normal(size=(p, p))
  return a @ a.T + p * np.eye(p)


def _match_columns(v, ref):
  """Max difference of two eigenvector sets up to the sign of each column."""
  s = np.sign(np.sum(v * ref, axis=0))
  return np.abs(v * s - ref).max()


# ------------------------------------------------------------ eigensolvers --


def test_generalized_eigh_matches_scipy():
  r = np.random.default_rng(0)
  for p in (5, 23):
    a = r.normal(size=(p, p))
    a = a + a.T
    b = _spd(r, p)
    with jax.enable_x64(True):
      w, v = feature.generalized_eigh(jnp.asarray(a), jnp.asarray(b))
      w, v = np.asarray(w), np.asarray(v)
    w_ref, v_ref = scipy.linalg.eigh(a, b)
    np.testing.assert_allclose(w, w_ref, rtol=1e-10, atol=1e-10)
    assert _match_columns(v, v_ref) < 1e-8
    np.testing.assert_allclose(v.T @ b @ v, np.eye(p), atol=1e-10)


def test_lowrank_pencil_top_matches_scipy():
  r = np.random.default_rng(1)
  p, rank, k, lam = 30, 4, 6, 0.7
  x = r.normal(size=(50, p))
  b = np.cov(x, rowvar=False)                     # PSD
  pm = r.normal(size=(p, rank))
  with jax.enable_x64(True):
    s, v = feature.lowrank_pencil_top(jnp.asarray(b), jnp.asarray(pm), lam, k)
    s, v = np.asarray(s), np.asarray(v)
  w_ref, v_ref = scipy.linalg.eigh(b, lam * np.eye(p) + pm @ pm.T)
  v_ref = v_ref[:, ::-1][:, :k]
  v_ref /= np.linalg.norm(v_ref, axis=0)
  np.testing.assert_allclose(s, w_ref[::-1][:k], rtol=1e-10)
  assert _match_columns(v, v_ref) < 1e-8
  np.testing.assert_allclose(np.linalg.norm(v, axis=0), 1.0)


def test_eigh_top_selected_eigenpairs_match_full_eigh():
  r = np.random.default_rng(7)
  x = r.normal(size=(400, 240)) * np.linspace(0.5, 2.0, 240)
  a = np.cov(x, rowvar=False)
  with jax.enable_x64(True):
    w, v = jax.jit(feature.eigh_top, static_argnums=1)(jnp.asarray(a), 12)
    w, v = np.asarray(w), np.asarray(v)
  w_ref, v_ref = np.linalg.eigh(a)
  np.testing.assert_allclose(w, w_ref[::-1][:12], rtol=1e-12)
  assert _match_columns(v, v_ref[:, ::-1][:, :12]) < 1e-9
  np.testing.assert_allclose(v.T @ v, np.eye(12), atol=1e-12)


def test_lowrank_pencil_top_singular_b():
  """B singular (n <= d, as W->D): the top of the pencil is still exact."""
  r = np.random.default_rng(2)
  p, k, lam = 25, 5, 1.0
  x = r.normal(size=(8, p))
  b = x.T @ x                                      # rank 8
  pm = r.normal(size=(p, 3))
  with jax.enable_x64(True):
    s, v = feature.lowrank_pencil_top(jnp.asarray(b), jnp.asarray(pm), lam, k)
  w_ref, v_ref = scipy.linalg.eigh(b, lam * np.eye(p) + pm @ pm.T)
  v_ref = v_ref[:, ::-1][:, :k] / np.linalg.norm(v_ref[:, ::-1][:, :k], axis=0)
  np.testing.assert_allclose(np.asarray(s), w_ref[::-1][:k], rtol=1e-9)
  assert _match_columns(np.asarray(v), v_ref) < 1e-7


# ---------------------------------------------------------------- kernels --


def test_kernels_match_numpy():
  r = np.random.default_rng(3)
  x, y = r.normal(size=(6, 4)), r.normal(size=(5, 4))
  d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
  with jax.enable_x64(True):
    np.testing.assert_allclose(kernels.kernel("linear", x, y), x @ y.T)
    np.testing.assert_allclose(kernels.kernel("rbf", x, y, 0.3),
                               np.exp(-0.3 * d2), rtol=1e-12)
    np.testing.assert_allclose(kernels.kernel("primal", x), x)
    dxx = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(kernels.default_gamma(x), 1 / dxx.mean())
    np.testing.assert_allclose(
        kernels.kernel("rbf", x), np.exp(-dxx / dxx.mean()), rtol=1e-12)
  with pytest.raises(ValueError, match="kernel kind"):
    kernels.kernel("poly", x)


# ------------------------------------------------------- synthetic transfer --


def test_jda_and_tca_beat_nearest_neighbour_on_shifted_domain():
  xs, ys, xt, yt = _shifted_problem()
  nn = base.accuracy(yt, baselines.NearestNeighbor().fit_predict(xs, ys, xt))
  tca = base.accuracy(yt, feature.TCA(k=5).fit_predict(xs, ys, xt))
  jda = feature.JDA(k=5).fit(xs, ys, xt, yt=yt)
  acc = base.accuracy(yt, jda.predict(xt))
  assert nn < 75.0
  assert tca > 95.0 and acc > 95.0
  # yt is only logged; the last iteration's labels are the prediction.
  assert len(jda.history_) == 10
  assert jda.history_[-1]["accuracy"] == pytest.approx(acc)
  np.testing.assert_array_equal(jda.pseudo_labels_, jda.predict(xt))


def test_labels_keep_their_values_and_transform_shapes():
  xs, ys, xt, _ = _shifted_problem(n=20)
  names = np.array(["cat", "dog", "emu"])
  est = feature.JDA(k=4, T=3).fit(xs, names[ys], xt)
  pred = est.predict(xt)
  assert set(pred) <= set(names)
  z = est.transform(xt[:7])
  assert z.shape == (7, 4)
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0)
  assert est.components_.shape == (12, 4)


@pytest.mark.parametrize("n", [20, 60])  # n*3 < d and n*3 > d
def test_primal_and_dual_solvers_agree(n):
  r = np.random.default_rng(4)
  d = 150
  xs, ys, xt, _ = _shifted_problem(n=n, d=d)
  xs = xs + 0.1 * r.normal(size=xs.shape)
  primal = feature.JDA(k=5, T=2, solver="primal").fit(xs, ys, xt)
  dual = feature.JDA(k=5, T=2, solver="dual").fit(xs, ys, xt)
  np.testing.assert_array_equal(primal.predict(xt), dual.predict(xt))
  np.testing.assert_allclose(primal.eigenvalues_, dual.eigenvalues_,
                             rtol=1e-8)
  assert _match_columns(primal.transform(xt), dual.transform(xt)) < 1e-7


def test_linear_kernel_reduced_equals_full_dual():
  xs, ys, xt, _ = _shifted_problem(n=30, d=8)
  full = feature.JDA(k=4, T=2, kernel="linear", solver="dual").fit(xs, ys, xt)
  red = feature.JDA(k=4, T=2, kernel="linear", solver="primal").fit(xs, ys, xt)
  np.testing.assert_array_equal(full.predict(xt), red.predict(xt))
  assert _match_columns(full.components_, red.components_) < 1e-7
  rbf = feature.JDA(k=4, T=2, kernel="rbf").fit(xs, ys, xt)
  assert rbf.components_.shape == (180, 4)
  assert rbf.predict(xt[:5]).shape == (5,)


def test_bda_special_cases():
  xs, ys, xt, yt = _shifted_problem(n=30)
  tca = feature.TCA(k=5).fit(xs, ys, xt)
  bda0 = feature.BDA(k=5, mu=0.0, T=3).fit(xs, ys, xt)
  np.testing.assert_allclose(bda0.components_, tca.components_, atol=1e-9)
  jda = feature.JDA(k=5, T=3).fit(xs, ys, xt)
  joint = feature.BDA(k=5, mu=0.5, balance="joint", T=3).fit(xs, ys, xt)
  np.testing.assert_allclose(joint.components_, jda.components_, atol=1e-9)
  # The default balances unit-size terms: mu = 0.5 is not JDA.
  sep = feature.BDA(k=5, mu=0.5, T=3).fit(xs, ys, xt)
  assert np.abs(sep.components_ - jda.components_).max() > 1e-3
  auto = feature.BDA(k=5, mu="auto", T=3).fit(xs, ys, xt, yt=yt)
  assert 0.0 <= auto.mu_ <= 1.0
  assert [h["mu"] for h in auto.history_][0] == 0.0
  assert base.accuracy(yt, auto.predict(xt)) > 90.0


def test_proxy_a_distance_and_balance_factor():
  r = np.random.default_rng(5)
  a = r.normal(size=(200, 5))
  far = svm_lib.proxy_a_distance(a[:100], a[100:] + 6.0,
                                 loss="squared_hinge")
  near = svm_lib.proxy_a_distance(a[:100], a[100:], loss="squared_hinge")
  assert far > 1.9 and near < 0.8
  # Same marginal, classes swapped: the conditional distance dominates.
  ys = (a[:100, 0] > 0).astype(int)
  xt = a[100:]
  yt = (xt[:, 0] <= 0).astype(int)
  mu = feature.estimate_balance_factor(a[:100], ys, xt, yt)
  assert mu > 0.6


def test_coral_matches_target_covariance():
  r = np.random.default_rng(6)
  xs = r.normal(size=(300, 4)) @ np.diag([3.0, 1.0, 0.5, 2.0])
  ys = (xs[:, 0] > 0).astype(int)
  xt = r.normal(size=(200, 4)) @ r.normal(size=(4, 4))
  est = feature.CORAL().fit(xs, ys, xt)
  cs = np.cov(est.transform(xs), rowvar=False)
  a = est.coral_map_
  np.testing.assert_allclose(a.T @ (np.cov(xs, rowvar=False) + np.eye(4)) @ a,
                             np.cov(xt, rowvar=False) + np.eye(4), atol=1e-8)
  np.testing.assert_allclose(cs, a.T @ np.cov(xs, rowvar=False) @ a,
                             atol=1e-8)
  assert est.predict(xt).shape == (200,)
  nn = feature.CORAL(classifier="nn").fit(xs, ys, xt).predict(xt)
  assert nn.shape == (200,)


def test_linear_svm_baseline():
  xs, ys, xt, yt = _shifted_problem(shift=0.0)
  assert base.accuracy(yt, baselines.LinearSVM().fit_predict(xs, ys, xt)) > 95


# --------------------------------------------------------------- bad input --


_ESTIMATORS = [
    lambda: feature.TCA(k=3), lambda: feature.JDA(k=3, T=2),
    lambda: feature.BDA(k=3, T=2), lambda: feature.CORAL(),
    lambda: baselines.NearestNeighbor(), lambda: baselines.LinearSVM(),
]


@pytest.mark.parametrize("make", _ESTIMATORS)
def test_bad_inputs_raise_clear_errors(make):
  xs, ys, xt, _ = _shifted_problem(n=10)
  with pytest.raises(base.ShallowInputError, match="feature sizes differ"):
    make().fit(xs, ys, xt[:, :5])
  with pytest.raises(base.ShallowInputError, match="empty"):
    make().fit(xs[:0], ys[:0], xt)
  with pytest.raises(base.ShallowInputError, match="1 class"):
    make().fit(xs, np.zeros_like(ys), xt)
  bad = xt.copy()
  bad[3, 2] = np.nan
  with pytest.raises(base.ShallowInputError, match="NaN or infinite"):
    make().fit(xs, ys, bad)
  bad[3, 2] = np.inf
  with pytest.raises(base.ShallowInputError, match="NaN or infinite"):
    make().fit(bad, ys, xt)
  with pytest.raises(base.ShallowInputError, match="labels"):
    make().fit(xs, ys[:-1], xt)
  fitted = make().fit(xs, ys, xt)
  with pytest.raises(base.ShallowInputError, match="shape"):
    fitted.predict(xt[:, :4])


def test_bad_hyperparameters_raise_clear_errors():
  xs, ys, xt, _ = _shifted_problem(n=10)
  with pytest.raises(base.ShallowInputError, match="k=500"):
    feature.JDA(k=500).fit(xs, ys, xt)
  with pytest.raises(base.ShallowInputError, match="kernel must be"):
    feature.TCA(kernel="poly").fit(xs, ys, xt)
  with pytest.raises(base.ShallowInputError, match="lam must be"):
    feature.JDA(lam=0.0).fit(xs, ys, xt)
  with pytest.raises(base.ShallowInputError, match="mu must be"):
    feature.BDA(k=3, mu=1.5).fit(xs, ys, xt)
  with pytest.raises(base.ShallowInputError, match="no primal"):
    feature.TCA(k=3, kernel="rbf", solver="primal").fit(xs, ys, xt)
  with pytest.raises(base.ShallowInputError, match="yt must have"):
    feature.JDA(k=3).fit(xs, ys, xt, yt=ys[:3])
  with pytest.raises(RuntimeError, match="fit"):
    feature.JDA().predict(xt)


# ------------------------------------------------------ real benchmark data --


@pytest.mark.data
def test_surf_d_to_w_reproduces(data_dir):
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  xs, ys = files.load_features("office_caltech10/dslr", data_dir)
  xt, yt = files.load_features("office_caltech10/webcam", data_dir)
  nn = base.accuracy(yt, baselines.NearestNeighbor().fit_predict(xs, ys, xt))
  assert nn == pytest.approx(63.39, abs=0.01)         # published 63.4
  jda = base.accuracy(yt, feature.JDA(k=30, lam=1.0).fit_predict(xs, ys, xt))
  assert jda == pytest.approx(89.83, abs=0.01)        # published 89.2


@pytest.mark.data
def test_digits_jda_reproduces_paper_exactly(data_dir):
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  usps = files.load_features("mnist_usps/usps", data_dir)
  mnist = files.load_features("mnist_usps/mnist", data_dir)
  est = feature.JDA(k=100, lam=0.1, T=10)
  u2m = base.accuracy(mnist[1], est.fit_predict(*usps, mnist[0]))
  m2u = base.accuracy(usps[1], est.fit_predict(*mnist, usps[0]))
  assert u2m == pytest.approx(59.65, abs=0.01)
  assert m2u == pytest.approx(67.28, abs=0.01)


def test_numpy_reference_of_the_benchmark_agrees_with_tlax():
  from experiments import bench_shallow  # pylint: disable=g-import-not-at-top
  xs, ys, xt, _ = _shifted_problem(n=20)
  for kernel in ("primal", "linear"):
    ref = bench_shallow.reference_jda(xs, ys, xt, k=4, lam=1.0, T=3,
                                      kernel=kernel)
    ours = feature.JDA(k=4, lam=1.0, T=3, kernel=kernel).fit_predict(
        xs, ys, xt)
    np.testing.assert_array_equal(ref, ours)


@pytest.mark.data
def test_tables_script_runs(data_dir):
  from experiments import shallow_tables  # pylint: disable=g-import-not-at-top
  res = shallow_tables.run(["nn"], ["coil20"], data_dir, progress=False)
  acc = res["coil20"]["nn"]["COIL1->COIL2"][0]
  assert acc == pytest.approx(83.61, abs=0.01)          # published 83.61
  text = shallow_tables.markdown(res, "cmd")
  assert "| COIL1->COIL2 | 83.61 | 83.61 |" in text
