"""Threshold rules and semi-supervised losses against NumPy references."""

import jax
from jax import test_util as jtu
import jax.numpy as jnp
import numpy as np
import pytest

from tlax.losses import semisupervised as ssl_losses
from tlax.methods import thresholds

C = 4


def _probs(seed, n=12, temperature=0.3):
  rng = np.random.default_rng(seed)
  z = rng.normal(size=(n, C)) / temperature
  e = np.exp(z - z.max(1, keepdims=True))
  return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _run(rule, batches):
  state = rule.init()
  out = []
  for p in batches:
    w, q, state, info = jax.jit(rule.apply)(state, jnp.asarray(p))
    out.append((np.asarray(w), np.asarray(q), np.asarray(info["threshold"])))
  return out, state


def test_fixed_reference():
  batches = [_probs(s) for s in range(3)]
  out, _ = _run(thresholds.fixed(0.7), batches)
  for p, (w, q, thr) in zip(batches, out):
    np.testing.assert_array_equal(w, (p.max(1) >= 0.7).astype(np.float32))
    np.testing.assert_array_equal(q, p)
    np.testing.assert_allclose(thr, [0.7] * C)


def _flexmatch_reference(batches, tau, memory, warmup):
  mem = -np.ones(memory, np.int64)
  pos, out = 0, []
  for p in batches:
    counts = np.array([(mem == c).sum() for c in range(C)], np.float64)
    unused = (mem == -1).sum()
    denom = max(counts.max(), unused) if warmup else counts.max()
    beta = counts / denom if denom > 0 else np.zeros(C)
    thr = beta / (2 - beta) * tau
    conf, pred = p.max(1), p.argmax(1)
    out.append(((conf >= thr[pred]).astype(np.float32), thr))
    for i in range(len(p)):
      mem[(pos + i) % memory] = pred[i] if conf[i] > tau else -1
    pos = (pos + len(p)) % memory
  return out


@pytest.mark.parametrize("warmup", [True, False])
def test_flexmatch_reference(warmup):
  batches = [_probs(s) for s in range(5)]
  out, state = _run(thresholds.flexmatch(C, 0.8, memory=20, warmup=warmup),
                    batches)
  ref = _flexmatch_reference(batches, 0.8, 20, warmup)
  for (w, _, thr), (rw, rthr) in zip(out, ref):
    np.testing.assert_allclose(thr, rthr, rtol=1e-6)
    np.testing.assert_array_equal(w, rw)
  assert int(state["pos"]) == (5 * 12) % 20
  # Nothing learnt yet: every threshold starts at 0.
  np.testing.assert_array_equal(out[0][2], np.zeros(C))


def test_freematch_reference():
  batches = [_probs(s) for s in range(4)]
  m = 0.9
  out, state = _run(thresholds.freematch(C, momentum=m), batches)
  tau, pm, hist = 1 / C, np.full(C, 1 / C), np.full(C, 1 / C)
  for p, (w, _, thr) in zip(batches, out):
    tau = m * tau + (1 - m) * p.max(1).mean()
    pm = m * pm + (1 - m) * p.mean(0)
    hist = m * hist + (1 - m) * np.bincount(p.argmax(1), minlength=C) / len(p)
    rthr = pm / pm.max() * tau
    np.testing.assert_allclose(thr, rthr, rtol=1e-5)
    np.testing.assert_array_equal(
        w, (p.max(1) >= rthr[p.argmax(1)]).astype(np.float32))
  np.testing.assert_allclose(state["label_hist"], hist, rtol=1e-5)
  np.testing.assert_allclose(state["p_model"], pm, rtol=1e-5)


@pytest.mark.parametrize("ua", [True, False])
def test_softmatch_reference(ua):
  batches = [_probs(s) for s in range(4)]
  m, ns = 0.9, 2.0
  out, _ = _run(thresholds.softmatch(C, momentum=m, n_sigma=ns,
                                     uniform_alignment=ua), batches)
  mu, var, pm = 1 / C, 1.0, np.full(C, 1 / C)
  for p, (w, q, thr) in zip(batches, out):
    p = p.astype(np.float64)
    pm = m * pm + (1 - m) * p.mean(0)
    if ua:
      p = p * (1 / C) / pm
      p = p / p.sum(1, keepdims=True)
    conf = p.max(1)
    mu = m * mu + (1 - m) * conf.mean()
    var = m * var + (1 - m) * conf.var(ddof=1)
    rw = np.where(conf < mu, np.exp(-(conf - mu) ** 2 / (2 * var / ns ** 2)),
                  1.0)
    np.testing.assert_allclose(w, rw, rtol=1e-5)
    np.testing.assert_allclose(q, p, rtol=1e-5)
    np.testing.assert_allclose(thr, [mu] * C, rtol=1e-5)


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.5, -0.1])
def test_threshold_outside_unit_interval_is_an_error(tau):
  with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
    thresholds.fixed(tau)
  with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
    thresholds.flexmatch(C, tau)


def test_rule_options_are_checked():
  with pytest.raises(ValueError, match="momentum"):
    thresholds.freematch(C, momentum=1.0)
  with pytest.raises(ValueError, match="mapping"):
    thresholds.flexmatch(C, 0.9, mapping="cubic")
  with pytest.raises(ValueError, match="num_classes"):
    thresholds.softmatch(1)


# ---------------------------------------------------------------------------
# Losses.
# ---------------------------------------------------------------------------
def _log_softmax(z):
  z = z - z.max(1, keepdims=True)
  return z - np.log(np.exp(z).sum(1, keepdims=True))


def test_pseudo_label_cross_entropy_reference_and_grads():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, C)).astype(np.float32)
  probs = _probs(1, n=6)
  w = (rng.uniform(size=6) > 0.4).astype(np.float32)
  got = ssl_losses.pseudo_label_cross_entropy(jnp.asarray(logits),
                                              jnp.asarray(probs),
                                              jnp.asarray(w))
  ref = -w * _log_softmax(logits)[np.arange(6), probs.argmax(1)]
  np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-5, atol=1e-6)
  jtu.check_grads(lambda z: jnp.sum(ssl_losses.pseudo_label_cross_entropy(
      z, jnp.asarray(probs), jnp.asarray(w))), (jnp.asarray(logits),),
                  order=1, modes=["rev"], atol=1e-2, rtol=1e-2)
  # No gradient into the pseudo-labels or the weights.
  g = jax.grad(lambda p, ww: jnp.sum(ssl_losses.pseudo_label_cross_entropy(
      jnp.asarray(logits), p, ww)), argnums=(0, 1))(jnp.asarray(probs),
                                                    jnp.asarray(w))
  assert float(jnp.abs(g[0]).sum()) == 0 and float(jnp.abs(g[1]).sum()) == 0


def _fairness_reference(ps, mask, pm, hist):
  keep = mask > 0
  if not keep.any():
    return 0.0
  p = ps[keep]
  mean = p.mean(0)
  h = np.bincount(p.argmax(1), minlength=C) / keep.sum()
  inv = lambda v: np.where(v > 0, 1 / np.where(v > 0, v, 1), 0)
  a = pm * inv(hist)
  a = a / a.sum()
  b = mean * inv(h)
  b = b / b.sum()
  return float(np.sum(a * np.log(b + 1e-12)))


def test_self_adaptive_fairness_reference_and_grads():
  ps = _probs(3, n=10, temperature=1.0)
  mask = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1, 1], np.float32)
  pm = np.array([0.3, 0.2, 0.4, 0.1], np.float32)
  hist = np.array([0.25, 0.25, 0.5, 0.0], np.float32)
  got = ssl_losses.self_adaptive_fairness(jnp.asarray(ps), jnp.asarray(mask),
                                          jnp.asarray(pm), jnp.asarray(hist))
  np.testing.assert_allclose(float(got),
                             _fairness_reference(ps, mask, pm, hist),
                             rtol=1e-5)
  assert float(ssl_losses.self_adaptive_fairness(
      jnp.asarray(ps), jnp.zeros(10), jnp.asarray(pm),
      jnp.asarray(hist))) == 0.0
  jtu.check_grads(lambda p: ssl_losses.self_adaptive_fairness(
      p, jnp.asarray(mask), jnp.asarray(pm), jnp.asarray(hist)),
                  (jnp.asarray(ps),), order=1, modes=["rev"], atol=1e-2,
                  rtol=1e-2)


def test_softmax_mse_reference_and_grads():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(5, C)).astype(np.float32)
  b = rng.normal(size=(5, C)).astype(np.float32)
  sm = lambda z: np.exp(_log_softmax(z))
  np.testing.assert_allclose(
      np.asarray(ssl_losses.softmax_mse(jnp.asarray(a), jnp.asarray(b))),
      ((sm(a) - sm(b)) ** 2).sum(1), rtol=1e-5)
  jtu.check_grads(lambda z: jnp.sum(ssl_losses.softmax_mse(
      z, jnp.asarray(b))), (jnp.asarray(a),), order=2, atol=1e-2, rtol=1e-2)
  assert float(jnp.abs(jax.grad(lambda t: jnp.sum(ssl_losses.softmax_mse(
      jnp.asarray(a), t)))(jnp.asarray(b))).sum()) == 0


def test_losses_vmap():
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(3, 6, C)),
                       jnp.float32)
  probs = jax.nn.softmax(logits, -1)
  out = jax.vmap(ssl_losses.pseudo_label_cross_entropy)(logits, probs)
  assert out.shape == (3, 6)


@pytest.mark.parametrize("make", [
    lambda tau: thresholds.fixed(tau),
    lambda tau: thresholds.flexmatch(C, tau, memory=16)])
def test_tau_given_as_array_equals_the_factory_value(make):
  """A rule called with ``tau`` as a (traced, vmapped) array gives what the
  rule built with that value gives, so runs that differ only in the
  threshold can share one program."""
  batches = [_probs(s) for s in range(3)]
  taus = np.array([0.6, 0.8, 0.95], np.float32)
  generic = make(0.5)
  assert generic.tau == 0.5
  vmapped = jax.jit(jax.vmap(generic.apply, in_axes=(0, None, 0)))
  states = jax.vmap(lambda _: generic.init())(taus)
  singles = [(make(float(t)), make(float(t)).init()) for t in taus]
  for p in batches:
    w, _, states, info = vmapped(states, jnp.asarray(p), jnp.asarray(taus))
    for r, (rule, state) in enumerate(singles):
      w_r, _, state, info_r = jax.jit(rule.apply)(state, jnp.asarray(p))
      singles[r] = (rule, state)
      np.testing.assert_array_equal(w[r], w_r)
      np.testing.assert_array_equal(info["threshold"][r], info_r["threshold"])
  # The thresholds differ between the runs (the test can fail).
  assert len({float(np.mean(t)) for t in info["threshold"]}) == 3


def test_rules_without_a_threshold_have_no_tau():
  assert thresholds.freematch(C).tau is None
  assert thresholds.softmatch(C).tau is None
