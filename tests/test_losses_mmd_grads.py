"""MMD family: gradients (check_grads, hand-derived, second order), jit /
vmap agreement, retracing, low precision.

float64 checks run inside ``jax.enable_x64(True)`` (a fixture), so x64 does
not leak into other test files of the same pytest process.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tlax import losses
from tlax.losses import kernels as kern
from tlax.losses import mmd_losses


from tests.mmd_reference import _data  # pylint: disable=g-bad-import-order
from tests.mmd_reference import ref_mk_mmd


# ---------------------------------------------------------------------------
# Gradients, jit, vmap, retracing.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
def test_check_grads(x64, estimator):
  xs, xt = _data(ns=5, nt=6, d=3)
  f = lambda a, b: losses.mk_mmd(a, b, [0.8, 2.0], [0.3, 0.7], estimator)
  check_grads(jax.jit(f), (xs, xt), order=1, modes=("fwd", "rev"))
  if estimator != "biased":
    return
  g = lambda a, b: losses.jmmd([a, a[:, :2] ** 2], [b, b[:, :2] ** 2],
                               [[1.0, 2.0], 1.5], estimator=estimator)
  check_grads(jax.jit(g), (xs, xt), order=1, modes=("rev",))


def test_grads_wrt_kernel_weights_sigmas_and_mu(x64):
  """Learned MK-MMD weights (DAN's beta), bandwidths and the DDA mu."""
  xs, xt = _data(ns=5, nt=6, d=3)
  check_grads(jax.jit(lambda s, w: losses.mk_mmd(xs, xt, s, w, "unbiased")),
              (np.array([1.0, 2.0]), np.array([0.3, 0.7])), order=1,
              modes=("rev",))
  ys, yt = np.array([0, 1, 0, 1, 1]), np.array([0, 1, 1, 0, 0, 1])
  check_grads(jax.jit(lambda m: losses.dynamic_mmd(xs, xt, ys, yt, m, 2,
                                                   sigmas=[1.0, 2.0])),
              (0.3,), order=1, modes=("rev",))


def test_second_order_matches_plain_autodiff(x64):
  xs, xt = _data(ns=4, nt=5, d=2)

  def plain(a, b):
    z = jnp.concatenate([a, b])
    d = jnp.sum((z[:, None] - z[None]) ** 2, -1)
    k = (jnp.exp(-d / 2.0) + jnp.exp(-d / 8.0)) / 2
    ns = a.shape[0]
    return (k[:ns, :ns].mean() + k[ns:, ns:].mean()
            - 2 * k[:ns, ns:].mean())

  h1 = jax.hessian(lambda a: losses.mk_mmd(a, xt, [1.0, 2.0]))(xs)
  h2 = jax.hessian(lambda a: plain(a, xt))(xs)
  np.testing.assert_allclose(h1, h2, rtol=1e-9, atol=1e-13)


def test_check_grads_kernels_and_conditional(x64):
  xs, xt = _data(ns=5, nt=6, d=3)
  # the custom_jvp Gram rule (second order: see the Hessian test)
  f = lambda a, b: sum(jnp.sum(g**2) for g in kern.block_gram(a, b))
  check_grads(jax.jit(f), (xs, xt), order=1)
  check_grads(jax.jit(losses.pairwise_sq_distances), (xs,), order=1)
  check_grads(jax.jit(losses.linear_mmd), (xs, xt), order=1, modes=("rev",))
  check_grads(jax.jit(lambda a, b: losses.mmd(a, b, "polynomial")),
              (xs, xt), order=1, modes=("rev",))
  ys, yt = np.array([0, 1, 0, 1, 1]), np.array([1, 1, 0, 0, 1, 0])
  check_grads(jax.jit(lambda a, b: losses.class_conditional_mmd(
      a, b, ys, yt, 2, sigmas=[1.0, 3.0])), (xs, xt), order=1, modes=("rev",))


def test_data_bandwidths_are_stop_gradient(x64):
  xs, xt = _data()
  for spec in ("mean:5",):
    sig = losses.gaussian_sigmas(spec, xs, xt)
    g1 = jax.grad(losses.mk_mmd, argnums=(0, 1))(xs, xt, spec)
    g2 = jax.grad(losses.mk_mmd, argnums=(0, 1))(xs, xt, sig)
    np.testing.assert_allclose(g1[0], g2[0], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(g1[1], g2[1], rtol=1e-10, atol=1e-14)
  # JMMD (two layers, the first with the power-ladder kernels)
  f = lambda a, b, s: losses.jmmd([a, a[:, :2]], [b, b[:, :2]], [s, 1.3])
  sig = losses.gaussian_sigmas("mean:5", xs, xt)
  g1 = jax.grad(f, argnums=(0, 1))(xs, xt, "mean:5")
  g2 = jax.grad(f, argnums=(0, 1))(xs, xt, sig)
  np.testing.assert_allclose(g1[0], g2[0], rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(g1[1], g2[1], rtol=1e-10, atol=1e-14)


def test_gradient_against_numpy_formula(x64):
  """d/dx of the biased MK-MMD with fixed sigmas, by hand."""
  xs, xt = _data()
  sig = np.array([0.9, 2.5])
  z = np.concatenate([xs, xt])
  ns, n = len(xs), len(z)
  c = np.zeros((n, n))
  c[:ns, :ns] = 1 / ns**2
  c[ns:, ns:] = 1 / len(xt) ** 2
  c[:ns, ns:] = c[ns:, :ns] = -1 / (ns * len(xt))
  grad = np.zeros_like(z)
  for i in range(n):
    for j in range(n):
      diff = z[i] - z[j]
      for s in sig:
        kij = 0.5 * np.exp(-diff @ diff / (2 * s * s))
        grad[i] += 2 * c[i, j] * kij * (-diff / (s * s))
  got = jnp.concatenate(jax.grad(losses.mk_mmd, argnums=(0, 1))(xs, xt, sig))
  np.testing.assert_allclose(got, grad, rtol=1e-10, atol=1e-14)


def test_jit_and_vmap_agree(x64):
  rng = np.random.default_rng(5)
  xs = rng.normal(size=(4, 6, 3))
  xt = rng.normal(size=(4, 7, 3)) + 0.5
  f = functools.partial(losses.mk_mmd, sigmas="mean:5")
  plain = np.array([f(a, b) for a, b in zip(xs, xt)])
  np.testing.assert_allclose(jax.jit(f)(xs[0], xt[0]), plain[0], rtol=1e-12)
  np.testing.assert_allclose(jax.vmap(f)(xs, xt), plain, rtol=1e-12)
  # vmap over bandwidths (a traced sigma array)
  sig = np.array([[0.5, 1.0], [1.0, 2.0], [2.0, 4.0]])
  got = jax.vmap(lambda s: losses.mk_mmd(xs[0], xt[0], s))(sig)
  want = [losses.mk_mmd(xs[0], xt[0], s) for s in sig]
  np.testing.assert_allclose(got, want, rtol=1e-12)
  # jit and vmap of the others
  for g in (lambda a, b: losses.jmmd([a, a * 2], [b, b * 2], 1.0),
            lambda a, b: losses.class_conditional_mmd(
                a, b, jnp.arange(6) % 2, jnp.arange(7) % 2, 2)):
    np.testing.assert_allclose(jax.vmap(g)(xs, xt),
                               [g(a, b) for a, b in zip(xs, xt)], rtol=1e-12)
    np.testing.assert_allclose(jax.jit(g)(xs[1], xt[1]), g(xs[1], xt[1]),
                               rtol=1e-12)


def test_no_retrace_for_same_shapes():
  traces = []

  @jax.jit
  def step(a, b, w):
    traces.append(1)
    return losses.mk_mmd(a, b, "mean:5", w, "unbiased") + losses.jmmd(
        [a], [b], [[1.0, 2.0]])

  rng = np.random.default_rng(0)
  for _ in range(4):
    a = rng.normal(size=(8, 4)).astype(np.float32)
    b = rng.normal(size=(8, 4)).astype(np.float32)
    step(a, b, rng.random(5).astype(np.float32)).block_until_ready()
  assert len(traces) == 1
  # eager calls with new Python-float bandwidths reuse one compiled kernel.
  core = mmd_losses._mk_mmd_core
  losses.mk_mmd(a, b, [1.0, 2.0])
  before = core._cache_size()
  for s in ([0.5, 3.0], [2.0, 7.0], (1.5, 0.25)):
    losses.mk_mmd(a, b, s)
  assert core._cache_size() == before


# ---------------------------------------------------------------------------
# Low precision.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-4),
                                        (jnp.bfloat16, 2e-3)])
def test_low_precision(dtype, rtol):
  xs, xt = _data(ns=16, nt=12, d=8)
  a, b = jnp.asarray(xs, dtype), jnp.asarray(xt, dtype)
  # reference on the rounded inputs, in float64 NumPy.
  ra, rb = np.asarray(a, np.float64), np.asarray(b, np.float64)
  for est in ("biased", "unbiased"):
    got = losses.mk_mmd(a, b, "mean:5", estimator=est)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref_mk_mmd(ra, rb, "mean:5", estimator=est),
                               rtol=rtol, atol=1e-5)
  got = losses.jmmd([a], [b], [[1.0, 2.0]])
  np.testing.assert_allclose(got, ref_mk_mmd(ra, rb, [1.0, 2.0]), rtol=rtol,
                             atol=1e-5)
  g = jax.grad(losses.mk_mmd)(a, b, "mean:5")
  assert g.dtype == dtype and bool(jnp.all(jnp.isfinite(g.astype(float))))
  assert abs(float(losses.mk_mmd(a, a, "mean:5"))) < 1e-5


def test_block_gram_derivative_path(x64, monkeypatch):
  """Large batches build the distances from Gram blocks; same gradients."""
  from tlax.losses import _fused  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(_fused, "BLOCK_GRAM_MIN_ELEMENTS", 0)
  xs, xt = _data(ns=6, nt=4, d=3, seed=7)  # shapes used by no other test

  def plain(a, b, c):
    z = jnp.concatenate([a, b])
    d = jnp.sum((z[:, None] - z[None]) ** 2, -1)
    k = (jnp.exp(-d / 2.0) + jnp.exp(-d / 8.0)) / 2
    return jnp.sum(c * k)

  ns, nt = 6, 4
  u = np.concatenate([np.full(ns, 1 / ns), np.full(nt, -1 / nt)])
  got = jax.grad(losses.mk_mmd, argnums=(0, 1))(xs, xt, [1.0, 2.0])
  want = jax.grad(plain, argnums=(0, 1))(xs, xt, np.outer(u, u))
  np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(got[1], want[1], rtol=1e-10, atol=1e-14)
  ys, yt = np.array([0, 1, 0, 1, 1, 0]), np.array([1, 0, 0, 1])
  f = lambda a, b: losses.class_conditional_mmd(a, b, ys, yt, 2,
                                                sigmas=[1.0, 2.0])
  check_grads(f, (xs, xt), order=1, modes=("rev",))
