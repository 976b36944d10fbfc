"""Gradient reversal, DANN / CDAN / MDD losses and the proxy A-distance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tlax import losses
from tlax.losses import distance


# ---------------------------------------------------------------------------
# Gradient reversal.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_reversal_gradient_is_exactly_minus_lambda(dtype):
  x = jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)
  for lam in (0.0, 0.37, 1.0, 2.5):
    y = losses.gradient_reversal(x, lam)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y, x)
    g = jax.grad(lambda x: jnp.sum(losses.gradient_reversal(x, lam)))(x)
    assert g.dtype == dtype
    np.testing.assert_array_equal(g, jnp.full_like(x, -lam))
  # a general upstream cotangent is scaled by -lam
  ct = jnp.arange(6.0).reshape(2, 3).astype(dtype)
  _, vjp = jax.vjp(lambda x: losses.gradient_reversal(x, 0.5), x)
  np.testing.assert_array_equal(vjp(ct)[0], -jnp.asarray(0.5, dtype) * ct)


def test_reversal_traced_lambda_schedule_and_pytrees():
  x = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}

  @jax.jit
  def grads(x, step):
    lam = losses.grl_lambda_schedule(step / 100.0)
    f = lambda x: sum(jnp.sum(v) for v in jax.tree_util.tree_leaves(
        losses.gradient_reversal(x, lam)))
    return jax.grad(f)(x), lam

  for step in (0, 10, 100):
    g, lam = grads(x, step)
    want = 2.0 / (1.0 + np.exp(-10 * step / 100.0)) - 1.0
    np.testing.assert_allclose(lam, want, rtol=1e-6)
    np.testing.assert_array_equal(g["a"], -lam * jnp.ones(3))
    np.testing.assert_array_equal(g["b"], -lam * jnp.ones((2, 2)))
  assert grads._cache_size() == 1
  # lam gets a zero gradient
  dlam = jax.grad(lambda l: jnp.sum(losses.gradient_reversal(
      jnp.ones(3), l) * 2.0))(0.3)
  assert float(dlam) == 0.0
  # vmap over x and over lam
  xs = jnp.ones((4, 3))
  lams = jnp.linspace(0, 1, 4)
  g = jax.vmap(jax.grad(lambda x, l: jnp.sum(losses.gradient_reversal(x, l))))(
      xs, lams)
  np.testing.assert_allclose(g, -lams[:, None] * jnp.ones((4, 3)))


def test_schedule_values():
  np.testing.assert_allclose(losses.grl_lambda_schedule(0.0), 0.0)
  np.testing.assert_allclose(losses.grl_lambda_schedule(1.0),
                             2 / (1 + np.exp(-10)) - 1, rtol=1e-6)
  np.testing.assert_allclose(losses.grl_lambda_schedule(0.5, 10.0, 0.1),
                             0.1 * (2 / (1 + np.exp(-5)) - 1), rtol=1e-6)
  with pytest.raises(ValueError, match="scalar"):
    losses.gradient_reversal(jnp.ones(3), jnp.ones(2))


# ---------------------------------------------------------------------------
# DANN / CDAN.
# ---------------------------------------------------------------------------


def ref_bce(logit, label):
  p = 1 / (1 + np.exp(-logit))
  return -(label * np.log(p) + (1 - label) * np.log(1 - p))


def test_dann_domain_loss_reference(x64):
  rng = np.random.default_rng(0)
  ls, lt = rng.normal(size=7), rng.normal(size=5)
  want = 0.5 * (np.mean([ref_bce(l, 1) for l in ls])
                + np.mean([ref_bce(l, 0) for l in lt]))
  np.testing.assert_allclose(losses.dann_domain_loss(ls, lt), want,
                             rtol=1e-12)
  np.testing.assert_allclose(losses.dann_domain_loss(ls[:, None], lt[:, None]),
                             want, rtol=1e-12)
  # equal batches: the pooled BCE mean
  pooled = np.mean([ref_bce(l, 1) for l in ls[:5]]
                   + [ref_bce(l, 0) for l in lt])
  np.testing.assert_allclose(losses.dann_domain_loss(ls[:5], lt), pooled,
                             rtol=1e-12)
  np.testing.assert_allclose(losses.dann_domain_loss(np.zeros(3), np.zeros(4)),
                             np.log(2), rtol=1e-12)
  # CDAN+E weights, normalised per domain
  ws, wt = rng.random(7) + 0.5, rng.random(5) + 0.5
  want = 0.5 * (sum(w * ref_bce(l, 1) for w, l in zip(ws, ls)) / ws.sum()
                + sum(w * ref_bce(l, 0) for w, l in zip(wt, lt)) / wt.sum())
  np.testing.assert_allclose(losses.dann_domain_loss(ls, lt, (ws, wt)), want,
                             rtol=1e-12)
  check_grads(jax.jit(losses.dann_domain_loss), (ls, lt), order=2)


def test_entropy_and_cdan(x64):
  rng = np.random.default_rng(1)
  p = rng.dirichlet(np.ones(4), 5)
  h = np.array([-sum(q * np.log(q) for q in row) for row in p])
  np.testing.assert_allclose(losses.entropy(p), h, rtol=1e-12)
  np.testing.assert_allclose(losses.entropy_weights(p), 1 + np.exp(-h),
                             rtol=1e-12)
  np.testing.assert_allclose(losses.entropy(np.eye(3)), 0.0, atol=0)
  f = rng.normal(size=(5, 3))
  out = losses.cdan_multilinear(f, p)
  assert out.shape == (5, 12)
  for b in range(5):
    for c in range(4):
      for i in range(3):
        assert abs(out[b, c * 3 + i] - p[b, c] * f[b, i]) < 1e-14
  rf, rg = losses.cdan_random_projection(jax.random.key(0), 3, 4, 64)
  rf, rg = np.asarray(rf, np.float64), np.asarray(rg, np.float64)
  got = losses.cdan_multilinear(f, p, (rf, rg))
  np.testing.assert_allclose(got, (f @ rf) * (p @ rg) / 8.0, rtol=1e-12)
  check_grads(jax.jit(lambda f, p: jnp.sum(losses.cdan_multilinear(f, p)**2)),
              (f, p), order=1)
  check_grads(jax.jit(lambda p: jnp.sum(losses.entropy_weights(p))), (p,),
              order=1)
  with pytest.raises(ValueError, match="same batch"):
    losses.cdan_multilinear(f, p[:3])
  with pytest.raises(ValueError, match="projection shapes"):
    losses.cdan_multilinear(f, p, (rf[:2], rg))


def test_dann_errors_and_jit():
  with pytest.raises(ValueError, match="empty batch"):
    losses.dann_domain_loss(jnp.zeros(0), jnp.zeros(3))
  with pytest.raises(ValueError, match=r"\(batch,\) or"):
    losses.dann_domain_loss(jnp.zeros((3, 2)), jnp.zeros(3))
  with pytest.raises(ValueError, match="pair"):
    losses.dann_domain_loss(jnp.zeros(3), jnp.zeros(3), jnp.ones(6))
  ls = jnp.linspace(-2, 2, 6)
  lt = jnp.linspace(-1, 3, 6)
  np.testing.assert_allclose(jax.jit(losses.dann_domain_loss)(ls, lt),
                             losses.dann_domain_loss(ls, lt), rtol=1e-6)
  v = jax.vmap(losses.dann_domain_loss)(jnp.stack([ls, lt]),
                                        jnp.stack([lt, ls]))
  np.testing.assert_allclose(v[0], losses.dann_domain_loss(ls, lt), rtol=1e-6)
  out = losses.dann_domain_loss(ls.astype(jnp.bfloat16),
                                lt.astype(jnp.bfloat16))
  assert out.dtype == jnp.float32


# ---------------------------------------------------------------------------
# MDD.
# ---------------------------------------------------------------------------


def ref_mdd(ls, zs, lt, zt, margin, shift=1e-6):
  """D_gamma written out example by example (NumPy, float64)."""
  def softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()
  src = [np.log(softmax(z)[np.argmax(l)]) for l, z in zip(ls, zs)]
  tgt = [np.log(min(1.0 - softmax(z)[np.argmax(l)] + shift, 1.0))
         for l, z in zip(lt, zt)]
  return margin * np.mean(src) + np.mean(tgt)


def test_margin_disparity_discrepancy_reference(x64):
  rng = np.random.default_rng(2)
  ls, zs = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
  lt, zt = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
  for margin in (1.0, 2.0, 4.0):
    for shift in (0.0, 1e-6, 0.1):
      np.testing.assert_allclose(
          losses.margin_disparity_discrepancy(ls, zs, lt, zt, margin,
                                              shift=shift),
          ref_mdd(ls, zs, lt, zt, margin, shift), rtol=1e-12)
  # Hand-checked: f' uniform over 2 classes -> gamma log(1/2) + log(1/2).
  z0 = np.zeros((3, 2))
  np.testing.assert_allclose(
      losses.margin_disparity_discrepancy(np.eye(3, 2), z0, np.eye(3, 2), z0,
                                          4.0, shift=0.0), 5 * np.log(0.5),
      rtol=1e-12)
  # f' = f on both domains: unshifted, log(1 - p') of a confident f' is very
  # negative but finite (the logsumexp form); shifted, it stops at
  # log(shift), where its gradient vanishes.
  big = 60.0 * np.eye(4)
  value = losses.margin_disparity_discrepancy(big, big, big, big, 4.0,
                                              shift=0.0)
  np.testing.assert_allclose(value, -60.0 + np.log(3.0), rtol=1e-9)
  value = losses.margin_disparity_discrepancy(big, big, big, big, 4.0)
  np.testing.assert_allclose(value, np.log(1e-6), rtol=1e-6)
  g = jax.grad(losses.margin_disparity_discrepancy, argnums=3)(
      big, big, big, big, 0.0)
  assert float(jnp.abs(g).max()) < 1e-12
  with pytest.raises(ValueError, match="shift must be >= 0"):
    losses.margin_disparity_discrepancy(big, big, big, big, 4.0, shift=-1.0)


def test_margin_disparity_discrepancy_gradients(x64):
  rng = np.random.default_rng(3)
  ls, zs = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
  lt, zt = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  for shift in (0.0, 1e-6, 0.1):
    fn = jax.jit(lambda zs, zt, m, shift=shift:
                 losses.margin_disparity_discrepancy(ls, zs, lt, zt, m,
                                                     shift=shift))
    check_grads(fn, (zs, zt, 4.0), order=2)
  # The main classifier's logits enter through argmax only: no gradient.
  g = jax.grad(losses.margin_disparity_discrepancy, argnums=(0, 2))(
      ls, zs, lt, zt, 4.0)
  assert all(float(jnp.abs(x).max()) == 0.0 for x in g)
  # Unshifted: d D / d z'_s = gamma/ns (onehot(h) - p');
  # d D / d z'_t = (p' renormalised without h - p') / nt.
  gs, gt = jax.grad(losses.margin_disparity_discrepancy, argnums=(1, 3))(
      ls, zs, lt, zt, 4.0, 0.0)
  ps = jax.nn.softmax(zs, -1)
  hs = np.eye(3)[np.argmax(ls, -1)]
  np.testing.assert_allclose(gs, 4.0 / 6 * (hs - ps), rtol=1e-10)
  pt = np.asarray(jax.nn.softmax(zt, -1))
  ht = np.eye(3)[np.argmax(lt, -1)]
  rest = pt * (1 - ht)
  rest = rest / rest.sum(-1, keepdims=True)
  np.testing.assert_allclose(gt, (rest - pt) / 5, rtol=1e-10, atol=1e-14)


def test_margin_disparity_discrepancy_errors_jit_vmap():
  l = jnp.ones((4, 3))
  with pytest.raises(ValueError, match="adv_logits_t.*classes >= 2"):
    losses.margin_disparity_discrepancy(l, l, l, jnp.ones((4, 1)))
  with pytest.raises(ValueError, match="equal shapes"):
    losses.margin_disparity_discrepancy(l, l, l, jnp.ones((3, 3)))
  with pytest.raises(TypeError, match="logits_s must be floating"):
    losses.margin_disparity_discrepancy(jnp.ones((4, 3), jnp.int32), l, l, l)
  rng = np.random.default_rng(4)
  a, b, c, d = (jnp.asarray(rng.normal(size=(2, 5, 3)), jnp.float32)
                for _ in range(4))
  margins = jnp.asarray([2.0, 4.0])
  v = jax.jit(jax.vmap(losses.margin_disparity_discrepancy))(a, b, c, d,
                                                             margins)
  for i in range(2):
    np.testing.assert_allclose(
        v[i], losses.margin_disparity_discrepancy(a[i], b[i], c[i], d[i],
                                                  margins[i]), rtol=1e-6)
  out = losses.margin_disparity_discrepancy(*(x[0].astype(jnp.bfloat16)
                                              for x in (a, b, c, d)))
  assert out.dtype == jnp.float32


# ---------------------------------------------------------------------------
# Proxy A-distance.
# ---------------------------------------------------------------------------


def ref_pad(xs, xt, perm_s, perm_t, l2=1e-3, num_steps=300):
  """Same algorithm as distance.proxy_a_distance, in NumPy float64."""
  hs, ht = len(xs) // 2, len(xt) // 2
  trs, tes = xs[perm_s[:hs]], xs[perm_s[hs:]]
  trt, tet = xt[perm_t[:ht]], xt[perm_t[ht:]]
  tr = np.concatenate([trs, trt])
  mu = tr.mean(0)
  sd = np.sqrt(tr.var(0) + 1e-12)
  sd[sd <= 1e-6] = 1.0
  trs, tes, trt, tet = [(x - mu) / sd for x in (trs, tes, trt, tet)]
  a = np.hstack([trs, np.ones((hs, 1))])
  c = np.hstack([trt, np.ones((ht, 1))])
  m = 0.5 * a.T @ a / hs + 0.5 * c.T @ c / ht
  v = np.ones(m.shape[0]) / np.sqrt(m.shape[0])
  for _ in range(30):
    v = m @ v
    v /= np.linalg.norm(v)
  step = 1 / (1.1 * 0.25 * (v @ m @ v) + l2)
  sig = lambda z: 1 / (1 + np.exp(-z))
  w = w_prev = np.zeros(xs.shape[1])
  b = b_prev = 0.0
  for k in range(num_steps):
    beta = k / (k + 3.0)
    yw, yb = w + beta * (w - w_prev), b + beta * (b - b_prev)
    gs = -sig(-(trs @ yw + yb)) * 0.5 / hs  # d softplus(-f)/df = -sig(-f)
    gt = sig(trt @ yw + yb) * 0.5 / ht
    gw = trs.T @ gs + trt.T @ gt + l2 * yw
    gb = gs.sum() + gt.sum()
    w_prev, b_prev = w, b
    w, b = yw - step * gw, yb - step * gb
  err = 0.5 * (np.mean(tes @ w + b <= 0) + np.mean(tet @ w + b > 0))
  return 2 * (1 - 2 * err)


def test_proxy_a_distance_reference(x64):
  rng = np.random.default_rng(0)
  xs = rng.normal(size=(40, 5))
  xt = rng.normal(size=(30, 5)) + np.array([0.6, 0, 0, 0, 0])
  key = jax.random.key(3)
  ps, pt = (np.asarray(p) for p in distance.split_halves(key, 40, 30))
  got = losses.proxy_a_distance(xs, xt, key)
  np.testing.assert_allclose(got, ref_pad(xs, xt, ps, pt), rtol=1e-12)
  assert 0.0 < float(got) < 2.0


def test_proxy_a_distance_known_values():
  rng = np.random.default_rng(1)
  xs = rng.normal(size=(200, 8)).astype(np.float32)
  far = rng.normal(size=(200, 8)).astype(np.float32) + 10.0
  same = rng.normal(size=(200, 8)).astype(np.float32)
  key = jax.random.key(0)
  assert float(losses.proxy_a_distance(xs, far, key)) == 2.0
  assert abs(float(losses.proxy_a_distance(xs, same, key))) < 0.4
  # jit / vmap over keys, grad is zero
  keys = jax.random.split(key, 3)
  v = jax.vmap(lambda k: losses.proxy_a_distance(xs, far, k))(keys)
  np.testing.assert_array_equal(v, 2.0)
  g = jax.grad(lambda a: losses.proxy_a_distance(a, far, key))(xs)
  assert float(jnp.abs(g).max()) == 0.0
  bf = losses.proxy_a_distance(xs.astype(jnp.bfloat16),
                               far.astype(jnp.bfloat16), key)
  assert bf.dtype == jnp.float32 and float(bf) == 2.0
  with pytest.raises(ValueError, match="at least 2"):
    losses.proxy_a_distance(xs[:1], far, key)
  with pytest.raises(ValueError, match="same number of features"):
    losses.proxy_a_distance(xs, far[:, :3], key)
  with pytest.raises(ValueError, match="l2"):
    losses.proxy_a_distance(xs, far, key, l2=float("nan"))
