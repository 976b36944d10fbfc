"""Zero-shot ranking losses: NumPy references, jit/vmap, gradient checks."""

import jax
import jax.numpy as jnp
from jax import test_util as jtu
import numpy as np
import pytest

from tlax.zsl import losses


def np_structured_hinge(scores, labels, margin):
  out = []
  for s, y in zip(scores, labels):
    wrong = max(s[j] for j in range(len(s)) if j != y)
    out.append(max(0.0, margin - s[y] + wrong))
  return np.array(out)


def np_weighted_rank(scores, labels, margin):
  out = []
  for s, y in zip(scores, labels):
    hinges = [max(0.0, margin + s[j] - s[y]) for j in range(len(s)) if j != y]
    r = sum(h > 0 for h in hinges)
    weight = sum(1.0 / i for i in range(1, r + 1)) / r if r else 0.0
    out.append(weight * sum(hinges))
  return np.array(out)


def np_hinge_rank(scores, labels, margin):
  return np.array([sum(max(0.0, margin - s[y] + s[j])
                       for j in range(len(s)) if j != y)
                   for s, y in zip(scores, labels)])


REFS = {"sje": (losses.structured_hinge_loss, np_structured_hinge),
        "ale": (losses.weighted_rank_loss, np_weighted_rank),
        "devise": (losses.hinge_rank_loss, np_hinge_rank)}


def _data(n=6, c=5, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(n, c)).astype(np.float32),
          rng.integers(0, c, size=n).astype(np.int32))


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("margin", [0.1, 1.0])
def test_loss_matches_numpy(name, margin):
  fn, ref = REFS[name]
  scores, labels = _data()
  got = jax.jit(fn)(scores, labels, margin)
  np.testing.assert_allclose(got, ref(scores.astype(np.float64), labels,
                                      margin), rtol=1e-5, atol=1e-6)
  # vmap over examples gives the same per-example values.
  vm = jax.vmap(fn, in_axes=(0, 0, None))(scores, labels, margin)
  np.testing.assert_allclose(vm, got, rtol=1e-6)


def test_hand_checked_values():
  scores = np.array([[3.0, 1.0, 2.5], [0.0, 0.0, 0.0]], np.float32)
  labels = np.array([0, 1], np.int32)
  # Row 0: best wrong 2.5, 1 - 3 + 2.5 = 0.5; row 1: 1 - 0 + 0 = 1.
  np.testing.assert_allclose(losses.structured_hinge_loss(scores, labels),
                             [0.5, 1.0])
  # DeViSE, margin 0.1: row 0: max(0, .1-3+1) + max(0, .1-3+2.5) = 0;
  # row 1: two hinges of 0.1.
  np.testing.assert_allclose(losses.hinge_rank_loss(scores, labels),
                             [0.0, 0.2], atol=1e-7)
  # ALE, margin 1: row 0: hinges 0 and 0.5, rank 1, weight 1 -> 0.5;
  # row 1: hinges 1 and 1, rank 2, weight (1 + 1/2) / 2 -> 1.5.
  np.testing.assert_allclose(losses.weighted_rank_loss(scores, labels),
                             [0.5, 1.5])
  np.testing.assert_allclose(losses.rank_weights(3),
                             [0.0, 1.0, 0.75, (1 + 0.5 + 1 / 3) / 3],
                             rtol=1e-6)


@pytest.mark.parametrize("name", sorted(REFS))
def test_gradients(name, x64):
  del x64
  fn, _ = REFS[name]
  rng = np.random.default_rng(1)
  x = rng.normal(size=(4, 6))
  w = rng.normal(size=(6, 3)) * 0.3
  s = rng.normal(size=(5, 3))
  labels = jnp.array([0, 2, 4, 1])

  def objective(w):
    return jnp.sum(fn(losses.compatibility_scores(x, w, s), labels, 0.5))
  jtu.check_grads(objective, (w,), order=1, modes=["rev"], atol=1e-4,
                  rtol=1e-4)


def test_margin_satisfied_gives_zero_loss_and_gradient():
  scores = jnp.array([[5.0, 0.0, 1.0]])
  labels = jnp.array([0])
  for name, (fn, _) in REFS.items():
    value, grad = jax.value_and_grad(lambda s: jnp.sum(fn(s, labels)))(scores)
    assert float(value) == 0.0, name
    np.testing.assert_array_equal(grad, 0.0)
