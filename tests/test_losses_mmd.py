"""Kernels and the MMD family against direct NumPy references.

float64 checks run inside ``jax.enable_x64(True)`` (a fixture), so x64 does
not leak into other test files of the same pytest process.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import losses
from tlax.losses import kernels as kern

from tests.mmd_reference import _data  # pylint: disable=g-bad-import-order
from tests.mmd_reference import ref_conditional
from tests.mmd_reference import ref_jmmd
from tests.mmd_reference import ref_k
from tests.mmd_reference import ref_mmd_from_kernel
from tests.mmd_reference import ref_mk_mmd
from tests.mmd_reference import ref_sigmas
from tests.mmd_reference import ref_sqdist


# ---------------------------------------------------------------------------
# Values against the references (float64).
# ---------------------------------------------------------------------------


def test_pairwise_sq_distances(x64):
  xs, xt = _data()
  np.testing.assert_allclose(losses.pairwise_sq_distances(xs, xt),
                             ref_sqdist(xs, xt), rtol=1e-12, atol=1e-12)
  d = losses.pairwise_sq_distances(xs)
  np.testing.assert_allclose(d, ref_sqdist(xs, xs), rtol=1e-12, atol=1e-12)
  assert np.all(np.diag(d) == 0)
  dss, dst, dtt = kern.block_sq_distances(jnp.asarray(xs), jnp.asarray(xt))
  np.testing.assert_allclose(dst, ref_sqdist(xs, xt), rtol=1e-12)
  np.testing.assert_allclose(dtt, ref_sqdist(xt, xt), atol=1e-12)


@pytest.mark.parametrize("spec", ["mean", "mean:5", "median", "median:3:3",
                                  "mean:4:1.5", (0.5, 2.0)])
def test_gaussian_sigmas_and_matrices(x64, spec):
  xs, xt = _data()
  np.testing.assert_allclose(losses.gaussian_sigmas(spec, xs, xt),
                             ref_sigmas(spec, xs, xt), rtol=1e-12)
  km = losses.gaussian_kernel_matrices(xs, xt, spec)
  sig = ref_sigmas(spec, xs, xt)
  want = np.stack([np.exp(-ref_sqdist(xs, xt) / (2 * s * s)) for s in sig])
  np.testing.assert_allclose(km, want, rtol=1e-12, atol=1e-15)


def test_linear_polynomial_gaussian_kernel(x64):
  xs, xt = _data()
  np.testing.assert_allclose(losses.linear_kernel(xs, xt), xs @ xt.T,
                             rtol=1e-12)
  want = np.array([[(0.3 * (a @ b) + 0.5) ** 3 for b in xt] for a in xs])
  np.testing.assert_allclose(
      losses.polynomial_kernel(xs, xt, 3, gamma=0.3, coef0=0.5), want,
      rtol=1e-12)
  want = np.exp(-ref_sqdist(xs, xt) / (2 * 1.7**2))
  np.testing.assert_allclose(losses.gaussian_kernel(xs, xt, 1.7), want,
                             rtol=1e-12)


CASES = list(itertools.product(
    ["biased", "unbiased", "linear"], ["mean:5", (0.7, 1.5, 3.0)])) + [
        ("biased", "median"), ("unbiased", "median:3"), ("linear", "median"),
        ("biased", 2.0)]


@pytest.mark.parametrize("estimator,spec", CASES)
def test_mk_mmd_matches_reference(x64, estimator, spec):
  xs, xt = _data()
  got = losses.mk_mmd(xs, xt, spec, estimator=estimator)
  if estimator == "linear" and spec == "median":
    # median over the pair distances the linear statistic evaluates.
    pairs = []
    for i in range(3):
      x1, x2, y1, y2 = xs[2 * i], xs[2 * i + 1], xt[2 * i], xt[2 * i + 1]
      pairs += [np.sum((a - b) ** 2) for a, b in
                [(x1, x2), (y1, y2), (x1, y2), (x2, y1)]]
    sig = np.sqrt(np.median(pairs) / 2)
    want = ref_mmd_from_kernel(lambda a, b: ref_k(a, b, sig), xs, xt, "linear")
  else:
    want = ref_mk_mmd(xs, xt, spec, estimator=estimator)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_mk_mmd_weights(x64):
  xs, xt = _data()
  w = np.array([0.1, 0.5, 0.2, 0.15, 0.05])
  for est in ("biased", "unbiased", "linear"):
    np.testing.assert_allclose(
        losses.mk_mmd(xs, xt, "mean:5", w, est),
        ref_mk_mmd(xs, xt, "mean:5", w, est), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "polynomial", "callable"])
@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
def test_mmd_other_kernels(x64, kernel, estimator):
  xs, xt = _data()
  if kernel == "linear":
    k = lambda a, b: float(a @ b)
    got = losses.mmd(xs, xt, "linear", estimator)
  elif kernel == "polynomial":
    k = lambda a, b: (a @ b / 5 + 1.0) ** 2
    got = losses.mmd(xs, xt, "polynomial", estimator)
  else:
    k = lambda a, b: np.exp(-np.sum(np.abs(a - b)))  # Laplacian
    lap = lambda a, b: jnp.exp(-jnp.sum(jnp.abs(a[:, None] - b[None]), -1))
    got = losses.mmd(xs, xt, lap, estimator)
  np.testing.assert_allclose(got, ref_mmd_from_kernel(k, xs, xt, estimator),
                             rtol=1e-10, atol=1e-12)


def test_mmd_gaussian_single_kernel(x64):
  xs, xt = _data()
  for est in ("biased", "unbiased"):
    np.testing.assert_allclose(losses.mmd(xs, xt, sigma=1.3, estimator=est),
                               ref_mk_mmd(xs, xt, 1.3, estimator=est),
                               rtol=1e-10)
  np.testing.assert_allclose(losses.mmd(xs, xt),
                             ref_mk_mmd(xs, xt, "median"), rtol=1e-10)


@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
def test_jmmd_matches_reference(x64, estimator):
  xs, xt = _data(ns=6, nt=8)
  rng = np.random.default_rng(3)
  ps, pt = rng.dirichlet(np.ones(3), 6), rng.dirichlet(np.ones(3), 8)
  specs = ["mean:5", 0.9165]
  got = losses.jmmd([xs, ps], [xt, pt], specs, estimator=estimator)
  np.testing.assert_allclose(got, ref_jmmd([xs, ps], [xt, pt], specs,
                                           estimator), rtol=1e-10, atol=1e-12)
  # one layer: JMMD is MK-MMD
  np.testing.assert_allclose(
      losses.jmmd([xs], [xt], "mean:5", estimator=estimator),
      losses.mk_mmd(xs, xt, "mean:5", estimator=estimator), rtol=1e-12)


@pytest.mark.parametrize("kernel", ["gaussian", "linear"])
@pytest.mark.parametrize("soft", [False, True])
def test_class_conditional_mmd(x64, kernel, soft):
  xs, xt = _data(ns=8, nt=9)
  rng = np.random.default_rng(1)
  ys = np.array([0, 1, 1, 2, 0, 1, 2, 2])  # class 3 absent in source
  if soft:
    pt = rng.dirichlet(np.ones(4) * 0.7, 9)
    labels_t = pt
  else:
    yt = np.array([0, 0, 1, 1, 3, 3, 0, 1, 3])  # class 2 absent in target
    pt = np.eye(4)[yt]
    labels_t = yt
  got = losses.class_conditional_mmd(xs, xt, ys, labels_t, 4, kernel=kernel)
  want = ref_conditional(xs, xt, ys, pt, "mean:5", kernel)
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
  got_sum = losses.class_conditional_mmd(xs, xt, ys, labels_t, 4,
                                         kernel=kernel, reduction="sum")
  np.testing.assert_allclose(
      got_sum, ref_conditional(xs, xt, ys, pt, "mean:5", kernel, "sum"),
      rtol=1e-10, atol=1e-12)


def test_jda_style_conditional_is_class_mean_gap(x64):
  xs, xt = _data(ns=6, nt=6)
  ys = np.array([0, 0, 0, 1, 1, 1])
  yt = np.array([1, 0, 1, 0, 1, 0])
  want = sum(np.sum((xs[ys == c].mean(0) - xt[yt == c].mean(0)) ** 2)
             for c in (0, 1))
  got = losses.class_conditional_mmd(xs, xt, ys, yt, 2, kernel="linear",
                                     reduction="sum")
  np.testing.assert_allclose(got, want, rtol=1e-12)


# ---------------------------------------------------------------------------
# Known values.
# ---------------------------------------------------------------------------


def test_known_values(x64):
  xs, xt = _data()
  for spec in ("mean:5", "median", [0.5, 1.0]):
    assert abs(float(losses.mk_mmd(xs, xs, spec))) < 1e-13
  gap = xs.mean(0) - xt.mean(0)
  np.testing.assert_allclose(losses.linear_mmd(xs, xt), gap @ gap, rtol=1e-12)
  np.testing.assert_allclose(losses.mmd(xs, xt, "linear"), gap @ gap,
                             rtol=1e-10)
  assert float(losses.linear_mmd(np.zeros((4, 3)), np.ones((2, 3)))) == 3.0
  # biased MMD is a squared norm: >= 0; larger shift, larger MMD.
  a = losses.mk_mmd(xs, xt, "mean:5")
  b = losses.mk_mmd(xs, xt + 3.0, "mean:5")
  assert 0 < a < b
  # one kernel of weight 1 equals the single-kernel MMD.
  np.testing.assert_allclose(losses.mk_mmd(xs, xt, [1.0, 2.0], [0.0, 1.0]),
                             losses.mmd(xs, xt, sigma=2.0), rtol=1e-12)


def test_mean_spec_is_dan_bandwidth(x64):
  """'mean:5' is the transfer-learning-library kernel sum exactly."""
  xs, xt = _data()
  z = np.concatenate([xs, xt])
  n = len(z)
  l2 = ref_sqdist(z, z)
  bw = l2.sum() / (n * n - n) / 2 ** 2
  k = sum(np.exp(-l2 / (bw * 2**i)) for i in range(5))
  ns = len(xs)
  want = (k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()) / 5
  np.testing.assert_allclose(losses.mk_mmd(xs, xt, "mean:5"), want,
                             rtol=1e-12)


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------


def test_errors():
  x = np.ones((4, 3), np.float32)
  with pytest.raises(ValueError, match="empty batch"):
    losses.mk_mmd(np.ones((0, 3), np.float32), x, "mean:5")
  with pytest.raises(ValueError, match="same number of features"):
    losses.mk_mmd(x, np.ones((4, 2), np.float32), "mean:5")
  with pytest.raises(ValueError, match="contains NaN"):
    losses.mk_mmd(x, x, [1.0, float("nan")])
  with pytest.raises(ValueError, match="contains NaN"):
    losses.mmd(x, x, sigma=float("nan"))
  with pytest.raises(ValueError, match="finite and > 0"):
    losses.mk_mmd(x, x, [1.0, -2.0])
  with pytest.raises(ValueError, match="cannot parse sigmas"):
    losses.mk_mmd(x, x, "average:5")
  with pytest.raises(ValueError, match="2-D array"):
    losses.mk_mmd(np.ones(3, np.float32), x, "mean")
  with pytest.raises(TypeError, match="floating dtype"):
    losses.linear_mmd(np.ones((4, 3), np.int32), x)
  with pytest.raises(ValueError, match="at least 2"):
    losses.mk_mmd(x[:1], x, "mean", estimator="unbiased")
  with pytest.raises(ValueError, match="estimator must be"):
    losses.mk_mmd(x, x, "mean", estimator="quadratic")
  with pytest.raises(ValueError, match=r"shape \(5,\)"):
    losses.mk_mmd(x, x, "mean:5", weights=[1.0, 2.0])
  with pytest.raises(ValueError, match="one spec per layer"):
    losses.jmmd([x, x], [x, x], [1.0, 2.0, 3.0])
  with pytest.raises(ValueError, match="same batch sizes"):
    losses.jmmd([x, x[:3]], [x, x], 1.0)
  with pytest.raises(ValueError, match="num_classes"):
    losses.class_conditional_mmd(x, x, np.zeros(4, int), np.zeros(4, int))
  with pytest.raises(ValueError, match="xs_layers\\[1\\] and xt_layers\\[1\\]"):
    losses.jmmd([x, x], [x, x[:, :2]], 1.0)
  # traced NaN bandwidths are not checked (documented); no crash either.
  jax.jit(lambda s: losses.mk_mmd(x, x, s))(jnp.array([1.0]))
