"""Prototype and contrastive losses: NumPy references, gradients, edge cases."""

import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from tlax import losses

jax.config.update("jax_enable_x64", False)


def _np_normalize(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def np_supcon(z, y, tau):
  """Loop-by-loop SupCon ("out" form); NaN-free: no positive -> None."""
  z = _np_normalize(z.astype(np.float64))
  n = len(y)
  out = []
  for i in range(n):
    others = [a for a in range(n) if a != i]
    den = np.log(np.sum([np.exp(z[i] @ z[a] / tau) for a in others]))
    pos = [p for p in others if y[p] == y[i]]
    if not pos:
      out.append(None)
      continue
    out.append(-np.mean([z[i] @ z[p] / tau - den for p in pos]))
  return out


def np_protonet(e, y, support, num_classes):
  e = e.astype(np.float64)
  protos = {}
  for k in range(num_classes):
    idx = [i for i in range(len(y)) if support[i] and y[i] == k]
    if idx:
      protos[k] = e[idx].mean(0)
  out = []
  for i in range(len(y)):
    if support[i] or y[i] not in protos:
      out.append(None)
      continue
    ks = sorted(protos)
    s = np.array([-np.sum((e[i] - protos[k]) ** 2) for k in ks])
    out.append(-(s[ks.index(y[i])] - np.log(np.sum(np.exp(s)))))
  return out


def _compare(got, mask, ref):
  got, mask = np.asarray(got), np.asarray(mask)
  for g, m, r in zip(got, mask, ref):
    if r is None:
      assert not m and g == 0.0
    else:
      assert m
      np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


def test_supcon_matches_numpy_with_singleton_class():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(7, 5)).astype(np.float32)
  y = np.array([0, 1, 0, 2, 1, 1, 3])  # classes 2 and 3 appear once
  got, mask = jax.jit(losses.supervised_contrastive)(z, y, 0.5)
  _compare(got, mask, np_supcon(z, y, 0.5))


def test_supcon_all_singletons_is_zero_and_gradient_finite():
  z = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)), jnp.float32)
  y = jnp.arange(4)

  def f(z):
    loss, mask = losses.supervised_contrastive(z, y)
    return losses.masked_mean(loss, mask)
  value, grad = jax.value_and_grad(f)(z)
  assert float(value) == 0.0
  assert np.all(np.isfinite(np.asarray(grad)))


def test_supcon_invalid_examples_are_ignored():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(6, 4)).astype(np.float32)
  y = np.array([0, 0, 1, 1, 0, 2])
  valid = np.array([1, 1, 1, 1, 0, 0], bool)
  got, mask = losses.supervised_contrastive(z, y, 0.3, valid=valid)
  ref = np_supcon(z[:4], y[:4], 0.3)
  _compare(np.asarray(got)[:4], np.asarray(mask)[:4], ref)
  assert not np.any(np.asarray(mask)[4:])


def test_supcon_gradient_check():
  z = jnp.asarray(np.random.default_rng(3).normal(size=(6, 3)), jnp.float32)
  y = jnp.array([0, 0, 1, 1, 2, 1])
  jtu.check_grads(lambda z: jnp.sum(losses.supervised_contrastive(z, y, 0.5)[0]),
                  (z,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)


def test_nt_xent_is_supcon_over_views():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(3, 4)).astype(np.float32)
  b = rng.normal(size=(3, 4)).astype(np.float32)
  got, mask = losses.nt_xent(a, b, 0.2)
  ref = np_supcon(np.concatenate([a, b]), np.array([0, 1, 2, 0, 1, 2]), 0.2)
  _compare(got, mask, ref)
  assert np.all(np.asarray(mask))


def test_prototypes_and_logits():
  e = np.array([[0., 0.], [2., 0.], [0., 4.], [1., 1.]], np.float32)
  y = np.array([0, 0, 2, 0])
  protos, counts = losses.class_prototypes(e, y, 3)
  np.testing.assert_allclose(protos, [[1., 1. / 3], [0., 0.], [0., 4.]],
                             rtol=1e-6)
  np.testing.assert_allclose(counts, [3, 0, 1])
  q = np.array([[1., 0.]], np.float32)
  np.testing.assert_allclose(
      losses.prototype_logits(q, np.asarray(protos)[[0, 2]]),
      [[-(1. / 9), -(1 + 16.)]], rtol=1e-5)
  cos = losses.prototype_logits(q, np.array([[0., 3.], [2., 0.]]), "cosine",
                                0.5)
  np.testing.assert_allclose(cos, [[0., 2.]], atol=1e-6)
  with pytest.raises(ValueError, match="metric"):
    losses.prototype_logits(q, protos, "manhattan")


def test_prototypical_loss_matches_numpy():
  rng = np.random.default_rng(5)
  e = rng.normal(size=(10, 3)).astype(np.float32)
  y = np.array([0, 1, 2, 0, 1, 0, 1, 2, 3, 3])
  support = np.array([1, 1, 1, 0, 0, 1, 0, 0, 0, 0], bool)  # no class 3
  got, mask = jax.jit(losses.prototypical_loss, static_argnums=3)(
      e, y, support, 4)
  _compare(got, mask, np_protonet(e, y, support, 4))
  assert not np.asarray(mask)[-1]  # class 3 has no prototype


def test_prototypical_loss_class_mask_and_grad():
  rng = np.random.default_rng(6)
  e = jnp.asarray(rng.normal(size=(8, 3)), jnp.float32)
  y = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])
  support = jnp.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
  cm = jnp.array([True, True, False])
  got, mask = losses.prototypical_loss(e, y, support, 3, class_mask=cm)
  keep = np.array([0, 1, 3, 4, 6, 7])
  ref = np_protonet(np.asarray(e)[keep], np.asarray(y)[keep],
                    np.asarray(support)[keep], 2)
  _compare(np.asarray(got)[keep], np.asarray(mask)[keep], ref)
  assert not np.asarray(mask)[5]
  jtu.check_grads(
      lambda e: losses.masked_mean(*losses.prototypical_loss(e, y, support, 3)),
      (e,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)


def test_vmap_over_batches():
  z = jnp.asarray(np.random.default_rng(7).normal(size=(2, 5, 3)), jnp.float32)
  y = jnp.array([0, 0, 1, 1, 2])
  out, _ = jax.vmap(lambda z: losses.supervised_contrastive(z, y))(z)
  one, _ = losses.supervised_contrastive(z[1], y)
  np.testing.assert_allclose(out[1], one, rtol=1e-5)
