"""Methods that own their update: MCD's three phases, ADDA's two stages."""

import functools

import jax
from jax import test_util as jtu
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tlax.methods import adda
from tlax.methods import mcd
from tlax.models import get_model

K = 3


def _batch(seed=0):
  r = np.random.RandomState(seed)
  return {"xs": r.randn(8, 5).astype(np.float32),
          "ys": np.arange(8, dtype=np.int32) % K,
          "ws": np.ones(8, np.float32),
          "xt": (r.randn(8, 5) + 1.0).astype(np.float32)}


def _same(a, b):
  return all(np.array_equal(x, y)
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_classifier_discrepancy_numpy_reference_and_grads():
  r = np.random.RandomState(0)
  l1, l2 = r.randn(6, 4).astype(np.float32), r.randn(6, 4).astype(np.float32)
  p1 = np.exp(l1) / np.exp(l1).sum(1, keepdims=True)
  p2 = np.exp(l2) / np.exp(l2).sum(1, keepdims=True)
  want = np.mean(np.abs(p1 - p2))
  np.testing.assert_allclose(jax.jit(mcd.classifier_discrepancy)(l1, l2),
                             want, rtol=1e-6)
  assert float(mcd.classifier_discrepancy(l1, l1)) == 0.0
  jtu.check_grads(mcd.classifier_discrepancy, (l1, l2), order=1,
                            modes=["rev"], atol=1e-2, rtol=1e-2)


def _run(method, params, state, opt_state, batch, step, tx):
  hp = {k: jnp.float32(v) for k, v in method.hparams.items()}
  fn = jax.jit(lambda p, s, o, st: method.update(
      p, s, o, batch, jax.random.key(1), st, hp, tx=tx, lr=jnp.float32(0.1)))
  return fn(params, state, opt_state, jnp.int32(step))


def test_mcd_update_trains_generator_and_both_classifiers():
  model = get_model("mlp", K, hidden=(16,))
  m = mcd.mcd(model, K, total_steps=10, n_gen=2)
  batch = _batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  assert set(params) == {"model", "classifier2"}
  tx = optax.sgd(1.0)
  opt = m.init_opt(tx, params)
  assert set(opt) == {"generator", "classifiers"}
  new, _, _, metrics = _run(m, params, state, opt, batch, 0, tx)
  for key in ("head", "fc1"):  # F1 and the generator
    assert not _same(new["model"][key], params["model"][key]), key
  assert not _same(new["classifier2"], params["classifier2"])
  for k in ("discrepancy_b", "discrepancy"):
    assert 0.0 <= float(metrics[k]) <= 2.0 / K
  assert np.isfinite(float(metrics["loss"]))


def test_mcd_generator_phase_lowers_the_discrepancy():
  """Phase C alone (lambda large, source risk held by phases A and B) makes
  the two classifiers agree more on the target than before the step."""
  model = get_model("mlp", K, hidden=(16,))
  m = mcd.mcd(model, K, total_steps=10, n_gen=8)
  batch = _batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  tx = optax.sgd(1.0)
  opt = m.init_opt(tx, params)
  _, _, _, metrics = _run(m, params, state, opt, batch, 0, tx)
  assert float(metrics["discrepancy"]) < float(metrics["discrepancy_b"])


def test_adda_stages():
  model = get_model("mlp", K, hidden=(16,))
  m = adda.adda(model, K, total_steps=4, disc_hidden=(8,))
  batch = _batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  tx = optax.adam(1.0)
  opt = m.init_opt(tx, params)
  # Source stage: M_s and C learn, M_t follows, D does not move.
  p1, s1, o1, met = _run(m, params, state, opt, batch, 0, tx)
  assert float(met["adapting"]) == 0.0
  assert not _same(p1["model"], params["model"])
  # (to float32 rounding: XLA may compute the one update in two fusions)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6),
               p1["target_encoder"], p1["model"])
  assert _same(p1["discriminator"], params["discriminator"])
  x = batch["xt"]
  src_logits, _ = model.apply({"params": p1["model"]}, x)
  np.testing.assert_allclose(m.predict(p1, s1, x), src_logits, rtol=1e-6,
                             atol=1e-6)
  # Adaptation stage: M_s and C frozen, M_t and D learn.
  p2, s2, _, met = _run(m, p1, s1, o1, batch, 2, tx)
  assert float(met["adapting"]) == 1.0
  assert _same(p2["model"], p1["model"])
  assert not _same(p2["target_encoder"], p1["target_encoder"])
  assert not _same(p2["discriminator"], p1["discriminator"])
  # Predictions: C (kept from the source stage) on M_t's features.
  enc = {**p2["target_encoder"], "head": p2["model"]["head"]}
  want, _ = model.apply({"params": enc}, x)
  np.testing.assert_allclose(m.predict(p2, s2, x), want, rtol=1e-6)
  for k in ("d_loss", "g_loss"):
    assert np.isfinite(float(met[k])) and float(met[k]) > 0


def test_adda_rejects_bad_fraction():
  with pytest.raises(ValueError, match="source_fraction"):
    adda.adda(get_model("mlp", K, hidden=(4,)), K, total_steps=4,
              source_fraction=1.0)
