"""Multitask learning: shared trunk, one head per task, weighted joint loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax.methods import multitask
from tlax.models import get_model


def test_joint_loss_is_the_weighted_sum():
  got = multitask.joint_loss({"a": jnp.asarray(2.0), "b": jnp.asarray(3.0)},
                             {"a": 0.5, "b": 2.0})
  np.testing.assert_allclose(got, 7.0)
  with pytest.raises(KeyError, match="No weight"):
    multitask.joint_loss({"a": 1.0, "c": 1.0}, {"a": 1.0})


def _method():
  model = get_model("mlp", 3, hidden=(8,))
  return multitask.multitask(model, 3, total_steps=10)


def _batch(rng):
  return {"xs": rng.random((6, 5), np.float32),
          "ys": rng.integers(0, 3, 6).astype(np.int32),
          "ws": np.ones(6, np.float32),
          "xt": rng.random((6, 5), np.float32),
          "xtl": rng.random((4, 5), np.float32),
          "ytl": rng.integers(0, 3, 4).astype(np.int32)}


def test_loss_heads_and_gradients():
  m = _method()
  batch = _batch(np.random.default_rng(0))
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  assert set(params) == {"model", "task_heads"}
  assert params["task_heads"]["source"]["head"]["kernel"].shape == (8, 3)

  def loss(p, ws, wt):
    return m.loss(p, state, batch, jax.random.key(1), 0,
                  {"source_weight": ws, "target_weight": wt})

  (total, (metrics, _)) = loss(params, 1.0, 1.0)
  np.testing.assert_allclose(total, metrics["source_loss"]
                             + metrics["cls_loss"], rtol=1e-6)
  # Source weight 0: the target task alone; the source head gets no gradient
  # and the target head's gradient is unchanged.
  g0 = jax.jit(jax.grad(lambda p: loss(p, 0.0, 1.0)[0]))(params)
  assert float(jnp.abs(g0["task_heads"]["source"]["head"]["kernel"]).max()) \
      == 0.0
  g1 = jax.jit(jax.grad(lambda p: loss(p, 1.0, 1.0)[0]))(params)
  np.testing.assert_allclose(g0["model"]["head"]["kernel"],
                             g1["model"]["head"]["kernel"], rtol=1e-5)
  # The shared trunk gets gradient from both tasks.
  trunk = [k for k in params["model"] if k != "head"]
  assert trunk
  for k in trunk:
    assert not np.allclose(g0["model"][k]["kernel"], g1["model"][k]["kernel"])
  # Evaluation uses the target head (the model's own).
  assert m.predict(params, state, batch["xtl"]).shape == (4, 3)


def test_needs_labelled_target_examples():
  m = _method()
  batch = _batch(np.random.default_rng(0))
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  del batch["xtl"], batch["ytl"]
  with pytest.raises(ValueError, match="target_labeled_per_class"):
    m.loss(params, state, batch, jax.random.key(1), 0,
           {"source_weight": 1.0, "target_weight": 1.0})


def test_multitask_experiment_config_runs(tmp_path):
  """A few steps of experiments/multitask.py's config through the trainer."""
  from experiments import multitask as mt_exp
  from tlax.train import train_and_evaluate
  kw = dict(k=2, seed=0, steps=3, sets=[], quick=True)
  alone = mt_exp.multitask_config("digits/syndigits", "digits/syndigits",
                                  shared=False, **kw)
  assert alone.method.source_weight == 0.0
  c = mt_exp.multitask_config("digits/syndigits", "digits/syndigits",
                              shared=True, **kw)
  r = train_and_evaluate(c, str(tmp_path / "shared"))
  assert r["method"] == "multitask"
  assert r["config"]["method"]["source_weight"] == 1.0
  assert 0.0 <= r["target_accuracy"] <= 100.0
