"""Deep CORAL and CMD against direct NumPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tlax import losses


def _data(ns=9, nt=7, d=4, seed=0):
  rng = np.random.default_rng(seed)
  xs = rng.normal(size=(ns, d))
  xt = rng.normal(size=(nt, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
  return xs, xt


def ref_cov(x):
  n, d = x.shape
  m = x.sum(0) / n
  c = np.zeros((d, d))
  for i in range(n):
    c += np.outer(x[i] - m, x[i] - m)
  return c / (n - 1)


def ref_coral(xs, xt):
  d = xs.shape[1]
  return np.sum((ref_cov(xs) - ref_cov(xt)) ** 2) / (4 * d * d)


def ref_cmd(xs, xt, k_max=5, a=0.0, b=1.0):
  ms, mt = xs.mean(0), xt.mean(0)
  out = np.sqrt(np.sum((ms - mt) ** 2)) / (b - a)
  for k in range(2, k_max + 1):
    cs = np.mean((xs - ms) ** k, axis=0)
    ct = np.mean((xt - mt) ** k, axis=0)
    out += np.sqrt(np.sum((cs - ct) ** 2)) / (b - a) ** k
  return out


def test_coral_reference(x64):
  xs, xt = _data()
  np.testing.assert_allclose(losses.coral(xs, xt), ref_coral(xs, xt),
                             rtol=1e-12)
  np.testing.assert_allclose(ref_cov(xs), np.cov(xs, rowvar=False),
                             rtol=1e-12)


def test_coral_known_values(x64):
  xs, xt = _data()
  assert float(losses.coral(xs, xs + 5.0)) < 1e-25  # a shift keeps covariances
  # equal covariances from different samples: x and its reflection.
  assert float(losses.coral(xs, -xs)) < 1e-25
  # hand-checkable: covariances diag(1, 0) vs 0 in d = 2 -> 1 / 16.
  a = np.array([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]]) * np.sqrt(
      0.75)
  np.testing.assert_allclose(losses.coral(a, np.zeros((3, 2))), 1 / 16,
                             rtol=1e-12)


@pytest.mark.parametrize("ns,nt,d", [(5, 6, 3), (3, 4, 12), (7, 7, 14)])
def test_coral_both_products(x64, ns, nt, d):
  """n = ns + nt >= d uses the d x d covariance gap, n < d the n x n Gram;
  both give the reference value and the hand gradient."""
  xs, xt = _data(ns=ns, nt=nt, d=d)
  np.testing.assert_allclose(losses.coral(xs, xt), ref_coral(xs, xt),
                             rtol=1e-12)
  gap = ref_cov(xs) - ref_cov(xt)
  gs, gt = jax.grad(losses.coral, argnums=(0, 1))(xs, xt)
  np.testing.assert_allclose(gs, (xs - xs.mean(0)) @ gap / (d * d * (ns - 1)),
                             rtol=1e-10, atol=1e-14)
  np.testing.assert_allclose(gt, -(xt - xt.mean(0)) @ gap / (d * d * (nt - 1)),
                             rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("k,bounds", [(1, (0.0, 1.0)), (3, (-1.0, 1.0)),
                                      (5, (0.0, 1.0))])
def test_cmd_reference(x64, k, bounds):
  xs, xt = _data()
  np.testing.assert_allclose(losses.cmd(xs, xt, k, bounds),
                             ref_cmd(xs, xt, k, *bounds), rtol=1e-12)


def test_cmd_known_values_and_bound(x64):
  xs, xt = _data()
  assert float(losses.cmd(xs, xs)) == 0.0
  # bounded activations: 0 <= CMD_K <= 2 K sqrt(d) (moments.cmd docstring).
  rng = np.random.default_rng(1)
  a = rng.random((50, 6)) ** 3
  b = 1 - rng.random((40, 6)) ** 0.2
  v = float(losses.cmd(a, b, 5))
  assert 0 < v <= 2 * 5 * np.sqrt(6)
  # the gradient at equal moments is finite (zero subgradient of the norm).
  g = jax.grad(losses.cmd)(xs, xs)
  assert np.all(np.isfinite(g))


def test_grads(x64):
  xs, xt = _data(ns=5, nt=6, d=3)
  check_grads(jax.jit(losses.coral), (xs, xt), order=1, modes=("fwd", "rev"))
  check_grads(jax.jit(losses.cmd), (xs, xt), order=1, modes=("fwd", "rev"))
  # CORAL gradient by hand: dL/dXs = (Xs - mean) (Cs - Ct) / (d^2 (ns - 1)).
  d = xs.shape[1]
  want = (xs - xs.mean(0)) @ (ref_cov(xs) - ref_cov(xt)) / (d * d * (5 - 1))
  np.testing.assert_allclose(jax.grad(losses.coral)(xs, xt),
                             want, rtol=1e-10)
  # second order through the custom rule, against plain autodiff
  def plain(a, b):
    ca, cb = a - a.mean(0), b - b.mean(0)
    diff = ca.T @ ca / (len(a) - 1) - cb.T @ cb / (len(b) - 1)
    return jnp.sum(diff**2) / (4 * d * d)
  np.testing.assert_allclose(jax.hessian(losses.coral)(xs, xt),
                             jax.hessian(plain)(xs, xt), rtol=1e-9,
                             atol=1e-13)


def test_jit_vmap_no_retrace(x64):
  rng = np.random.default_rng(2)
  xs, xt = rng.normal(size=(3, 6, 4)), rng.normal(size=(3, 5, 4))
  for f in (losses.coral, losses.cmd):
    np.testing.assert_allclose(jax.vmap(f)(xs, xt),
                               [f(a, b) for a, b in zip(xs, xt)], rtol=1e-12)
    np.testing.assert_allclose(jax.jit(f)(xs[0], xt[0]), f(xs[0], xt[0]),
                               rtol=1e-12)
  traces = []

  @jax.jit
  def step(a, b):
    traces.append(1)
    return losses.coral(a, b) + losses.cmd(a, b)

  for i in range(3):
    step(xs[i], xt[i])
  assert len(traces) == 1


@pytest.mark.parametrize("dtype,rtol", [(jnp.float32, 1e-4),
                                        (jnp.bfloat16, 1e-3)])
def test_low_precision(dtype, rtol):
  xs, xt = _data(ns=32, nt=24, d=6)
  a, b = jnp.asarray(xs, dtype), jnp.asarray(xt, dtype)
  ra, rb = np.asarray(a, np.float64), np.asarray(b, np.float64)
  for f, ref in ((losses.coral, ref_coral), (losses.cmd, ref_cmd)):
    got = f(a, b)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref(ra, rb), rtol=rtol)
    assert jax.grad(f)(a, b).dtype == dtype


def test_errors():
  x = np.ones((4, 3), np.float32)
  with pytest.raises(ValueError, match="at least 2"):
    losses.coral(x[:1], x)
  with pytest.raises(ValueError, match="empty batch"):
    losses.cmd(x[:0], x)
  with pytest.raises(ValueError, match="same number of features"):
    losses.coral(x, x[:, :2])
  with pytest.raises(ValueError, match="n_moments"):
    losses.cmd(x, x, 0)
  with pytest.raises(ValueError, match="b > a"):
    losses.cmd(x, x, 3, (1.0, 1.0))
  with pytest.raises(ValueError, match="b > a"):
    losses.cmd(x, x, 3, (0.0, float("nan")))
