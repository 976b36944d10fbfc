"""MDD: the auxiliary classifier ascends the margin disparity discrepancy,
the features descend it through the reversal layer, the main head gets only
the source risk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import losses
from tlax.methods import mdd
from tlax.models import get_model

K = 3


def _setup(**options):
  model = get_model("mlp", K, hidden=(16,))
  m = mdd.mdd(model, K, total_steps=10, adv_dropout=0.0, ramp_steps=4,
              **options)
  r = np.random.RandomState(0)
  batch = {"xs": r.randn(8, 5).astype(np.float32),
           "ys": np.arange(8, dtype=np.int32) % K,
           "ws": np.zeros(8, np.float32),  # the discrepancy term only
           "xt": (r.randn(8, 5) + 1.0).astype(np.float32)}
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  return m, params, state, batch


def _hp(m, **override):
  return {k: jnp.float32(override.get(k, v)) for k, v in m.hparams.items()}


@pytest.mark.parametrize("adv_hidden", [(), (8,)])
def test_reversal_splits_the_minimax(adv_hidden):
  m, params, state, batch = _setup(adv_hidden=adv_hidden)
  f = jax.jit(jax.value_and_grad(m.loss, has_aux=True))
  key, step = jax.random.key(0), jnp.int32(10)  # end of the ramp
  (_, (met, _)), g1 = f(params, state, batch, key, step,
                        _hp(m, **{"lambda": 1.0}))
  (_, _), g2 = f(params, state, batch, key, step, _hp(m, **{"lambda": 2.0}))
  assert float(met["align_weight"]) == pytest.approx(
      float(losses.grl_lambda_schedule(10 / 4, gamma=1.0)))
  # The features' gradient is linear in lambda; f' does not see lambda.
  body = lambda g: {k: v for k, v in g["model"].items() if k != "head"}
  for a, b in zip(jax.tree.leaves(body(g1)), jax.tree.leaves(body(g2))):
    np.testing.assert_allclose(2 * a, b, rtol=1e-4, atol=1e-7)
  assert sum(float(jnp.abs(a).sum()) for a in jax.tree.leaves(body(g1))) > 0
  for a, b in zip(jax.tree.leaves(g1[mdd.ADV]), jax.tree.leaves(g2[mdd.ADV])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  # f enters D_gamma through argmax only: with zero source weights its head
  # gets no gradient at all.
  assert all(float(jnp.abs(a).max()) == 0.0
             for a in jax.tree.leaves(g1["model"]["head"]))

  # align_loss = -D_gamma: f' lowers it (maximises D), the features raise it.
  def align(p):
    return float(f(p, state, batch, key, step,
                   _hp(m, **{"lambda": 1.0}))[0][1][0]["align_loss"])
  eps = 1e-2
  step_adv = {**params, mdd.ADV: jax.tree.map(
      lambda p, g: p - eps * g, params[mdd.ADV], g1[mdd.ADV])}
  step_feat = {**params, "model": jax.tree.map(
      lambda p, g: p - eps * g, params["model"], g1["model"])}
  assert align(step_adv) < float(met["align_loss"])
  assert align(step_feat) > float(met["align_loss"])


def test_loss_is_source_risk_minus_the_library_discrepancy():
  m, params, state, batch = _setup(adv_hidden=())
  batch = {**batch, "ws": np.ones(8, np.float32)}
  hp = _hp(m, margin=2.0)
  value, (met, _) = m.loss(params, state, batch, jax.random.key(0),
                           jnp.int32(3), hp)
  ls = m.predict(params, state, batch["xs"])
  lt = m.predict(params, state, batch["xt"])
  fs = m.features(params, state, batch["xs"])["embedding"]
  ft = m.features(params, state, batch["xt"])["embedding"]
  adv = lambda h: h @ params[mdd.ADV]["out"]["kernel"] + params[mdd.ADV][
      "out"]["bias"]
  want = losses.margin_disparity_discrepancy(ls, adv(fs), lt, adv(ft), 2.0)
  assert float(met["align_loss"]) == pytest.approx(-float(want), rel=1e-5)
  assert float(value) == pytest.approx(
      float(met["cls_loss"]) - float(want), rel=1e-5)
  assert m.hparams == {"lambda": 0.1, "margin": 4.0}


def test_bad_options_are_named():
  model = get_model("mlp", 1, hidden=(4,))
  with pytest.raises(ValueError, match="at least 2 classes"):
    mdd.mdd(model, 1, total_steps=10)
  with pytest.raises(ValueError, match="align_start"):
    mdd.mdd(get_model("mlp", K), K, total_steps=10, align_start=20)
  with pytest.raises(ValueError, match="ramp_steps must be > 0"):
    mdd.mdd(get_model("mlp", K), K, total_steps=10, ramp_steps=0)
