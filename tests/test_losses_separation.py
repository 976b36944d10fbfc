"""DSN and SDT losses (tlax.losses.separation) against NumPy references."""

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import pytest

from tlax import losses


def ref_si_mse(x, xh):
  r = (x - xh).reshape(len(x), -1)
  k = r.shape[1]
  return np.mean([np.sum(ri**2) / k - np.sum(ri)**2 / k**2 for ri in r])


def ref_difference(hc, hp, eps=1e-12):
  def prep(h):
    h = h - h.mean(0)
    return h / np.sqrt((h**2).sum(1, keepdims=True) + eps)
  a, b = prep(hc), prep(hp)
  total = 0.0
  for i in range(a.shape[1]):
    for j in range(b.shape[1]):
      total += np.dot(a[:, i], b[:, j]) ** 2
  return total / (a.shape[1] * b.shape[1])


def ref_log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_scale_invariant_mse(x64):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(5, 3, 4, 2))
  xh = rng.normal(size=x.shape)
  np.testing.assert_allclose(losses.scale_invariant_mse(x, xh),
                             ref_si_mse(x, xh), rtol=1e-12)
  # a constant offset per example costs nothing; a scaled residual does.
  off = rng.normal(size=(5, 1, 1, 1))
  assert abs(float(losses.scale_invariant_mse(x, x + off))) < 1e-14
  check_grads(lambda a: losses.scale_invariant_mse(a, xh), (x,), order=1)


def test_difference_loss(x64):
  rng = np.random.default_rng(1)
  hc, hp = rng.normal(size=(12, 5)), rng.normal(size=(12, 3))
  np.testing.assert_allclose(losses.difference_loss(hc, hp),
                             ref_difference(hc, hp), rtol=1e-12)
  # invariant to scaling either code (centred rows are scaled to unit norm)
  # and non-negative.
  v = float(losses.difference_loss(hc, hp))
  np.testing.assert_allclose(losses.difference_loss(3.0 * hc, 0.5 * hp), v,
                             rtol=1e-10)
  assert v > 0.0
  check_grads(losses.difference_loss, (hc, hp), order=1)


def test_domain_confusion_loss(x64):
  rng = np.random.default_rng(2)
  z = rng.normal(size=(7, 2))
  want = -np.mean(ref_log_softmax(z).mean(-1))
  np.testing.assert_allclose(losses.domain_confusion_loss(z), want,
                             rtol=1e-12)
  # minimal, log D, at the uniform prediction.
  np.testing.assert_allclose(losses.domain_confusion_loss(np.zeros((4, 3))),
                             np.log(3), rtol=1e-12)
  assert float(losses.domain_confusion_loss(z)) > np.log(2)
  check_grads(losses.domain_confusion_loss, (z,), order=1)


def test_soft_label_loss(x64):
  rng = np.random.default_rng(3)
  z = rng.normal(size=(6, 4))
  y = np.array([0, 1, 3, 3, 2, 0])
  soft = rng.random((4, 4))
  soft /= soft.sum(1, keepdims=True)
  tau = 2.0
  ce = -np.sum(soft[y] * ref_log_softmax(z / tau), -1)
  np.testing.assert_allclose(losses.soft_label_loss(z, y, soft, tau),
                             ce.mean(), rtol=1e-12)
  mask = np.array([1, 0, 1, 0, 0, 1.0])
  np.testing.assert_allclose(losses.soft_label_loss(z, y, soft, tau, mask),
                             ce[mask > 0].mean(), rtol=1e-12)
  assert float(losses.soft_label_loss(z, y, soft, tau, 0 * mask)) == 0.0
  check_grads(lambda a: losses.soft_label_loss(a, y, soft, tau), (z,),
              order=1)


def test_jit_vmap_agree():
  rng = np.random.default_rng(4)
  hc = jnp.asarray(rng.normal(size=(3, 8, 4)), jnp.float32)
  hp = jnp.asarray(rng.normal(size=(3, 8, 2)), jnp.float32)
  v = jax.vmap(losses.difference_loss)(hc, hp)
  loop = jnp.stack([jax.jit(losses.difference_loss)(a, b)
                    for a, b in zip(hc, hp)])
  np.testing.assert_allclose(v, loop, rtol=1e-5)
  x = jnp.asarray(rng.normal(size=(4, 5, 6)), jnp.bfloat16)
  out = losses.scale_invariant_mse(x, x * 0)
  assert out.dtype == jnp.float32


def test_errors():
  with pytest.raises(ValueError, match="same shape"):
    losses.scale_invariant_mse(np.zeros((2, 3)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match="same examples"):
    losses.difference_loss(np.ones((4, 3)), np.ones((5, 3)))
  with pytest.raises(ValueError, match=">= 2 domains"):
    losses.domain_confusion_loss(np.ones((4, 1)))
  with pytest.raises(ValueError, match=r"\(3, 3\)"):
    losses.soft_label_loss(np.ones((2, 3)), np.zeros(2, int), np.ones((2, 2)))
  with pytest.raises(ValueError, match="temperature"):
    losses.soft_label_loss(np.ones((2, 3)), np.zeros(2, int),
                           np.ones((3, 3)) / 3, temperature=0.0)
