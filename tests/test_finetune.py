"""Fine-tuning: strict loading, rules over paths, LoRA, L2-SP, output-KL."""

import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from tlax.methods import conservative
from tlax.train import finetune
from tlax.transfer import lora


def _tree():
  return {"conv1": {"kernel": np.ones((3, 3, 1, 2), np.float32),
                    "bias": np.zeros(2, np.float32)},
          "fc1": {"kernel": np.ones((8, 4), np.float32),
                  "bias": np.zeros(4, np.float32)},
          "head": {"kernel": np.ones((4, 10), np.float32),
                   "bias": np.zeros(10, np.float32)}}


def _like(tree, value):
  return jax.tree.map(lambda x: np.full(x.shape, value, x.dtype), tree)


# --------------------------------------------------------------------------
# Strict merge.
# --------------------------------------------------------------------------
def test_merge_copies_everything_and_reinits_by_rule(caplog):
  init, loaded = _like(_tree(), 0.0), _like(_tree(), 7.0)
  with caplog.at_level(logging.INFO, logger="tlax.transfer"):
    out = finetune.merge_params(loaded, init, prefix="model",
                                reinit=("^model/head/",))
  assert float(out["conv1"]["kernel"].sum()) == 7.0 * 18
  assert float(out["fc1"]["bias"].sum()) == 7.0 * 4
  np.testing.assert_array_equal(out["head"]["kernel"], 0.0)
  np.testing.assert_array_equal(out["head"]["bias"], 0.0)
  assert "re-initialised params model/head/kernel (4, 10)" in caplog.text
  assert "re-initialised params model/head/bias" in caplog.text
  assert "conv1" not in caplog.text  # copied leaves are not logged


def test_merge_lists_every_mismatch():
  init = _tree()
  loaded = _tree()
  loaded["head"]["kernel"] = np.ones((4, 5), np.float32)  # other #classes
  loaded["head"]["bias"] = np.ones(5, np.float32)
  del loaded["fc1"]["bias"]
  loaded["extra"] = {"w": np.ones(3, np.float32)}
  with pytest.raises(finetune.CheckpointMismatchError) as e:
    finetune.merge_params(loaded, init, prefix="model")
  msg = str(e.value)
  assert "4 mismatches" in msg
  assert "shape mismatch: params model/head/kernel: checkpoint (4, 5) vs " \
         "target (4, 10)" in msg
  assert "shape mismatch: params model/head/bias" in msg
  assert "missing in checkpoint: params model/fc1/bias" in msg
  assert "unexpected in checkpoint: params model/extra/w" in msg


def test_merge_allow_rules(caplog):
  init, loaded = _tree(), _tree()
  del loaded["fc1"]["bias"]
  loaded["aux"] = {"w": np.ones(3, np.float32)}
  loaded["head"]["kernel"] = np.ones((4, 5), np.float32)
  loaded["head"]["bias"] = np.ones(5, np.float32)
  with caplog.at_level(logging.INFO, logger="tlax.transfer"):
    out = finetune.merge_params(
        loaded, init, prefix="model", reinit=(r"^model/head/",),
        allow_missing=(r"^model/fc1/bias$",),
        allow_unexpected=(r"^model/aux/",))
  assert out["head"]["kernel"].shape == (4, 10)
  assert "not in checkpoint, kept initialisation: params model/fc1/bias" \
      in caplog.text
  assert "skipped checkpoint params model/aux/w" in caplog.text


def test_state_paths_drop_the_collection():
  assert finetune.state_match_path(
      "model/batch_stats/stem_bn/mean") == "model/stem_bn/mean"
  init = {"batch_stats": {"head_bn": {"mean": np.zeros(3, np.float32)},
                          "bn1": {"mean": np.zeros(3, np.float32)}}}
  loaded = {"batch_stats": {"head_bn": {"mean": np.ones(3)},
                            "bn1": {"mean": np.ones(3)}}}
  out = finetune.merge_params(loaded, init, prefix="model",
                              reinit=("^model/head_bn/",),
                              match_path=finetune.state_match_path)
  np.testing.assert_array_equal(out["batch_stats"]["bn1"]["mean"], 1.0)
  np.testing.assert_array_equal(out["batch_stats"]["head_bn"]["mean"], 0.0)


# --------------------------------------------------------------------------
# Rules.
# --------------------------------------------------------------------------
def test_layer_transfer_rules():
  layers = ["conv1", "conv2", "fc1", "fc2", "head"]
  reinit, mults = finetune.layer_transfer_rules(layers, 2, freeze_copied=True)
  assert reinit == ["^model/fc1/", "^model/fc2/", "^model/head/"]
  assert mults == [("^model/conv1/", 0.0), ("^model/conv2/", 0.0)]
  reinit, mults = finetune.layer_transfer_rules(layers, 0)
  assert len(reinit) == 5 and mults == []
  with pytest.raises(ValueError, match="copy_layers=6"):
    finetune.layer_transfer_rules(layers, 6)


def test_resolve_rules_uses_model_layer_order():
  c = ml_collections.ConfigDict({"finetune": {
      "reinit": ("^model/head/",), "copy_layers": 1, "layers": (),
      "freeze_copied": True, "lr_mults": (("^model/head/", 10.0),)}})
  params = {"conv1": {}, "fc1": {}, "head": {}}
  reinit, mults = finetune.resolve_rules(c, params)
  assert reinit == ["^model/fc1/", "^model/head/", "^model/head/"]
  assert mults == [("^model/conv1/", 0.0), ("^model/head/", 10.0)]


def test_lr_rules_freeze_and_scale():
  params = {"model": {"body": {"w": jnp.ones(3)}, "head": {"w": jnp.ones(2)}},
            "extra": {"w": jnp.ones(4)}}
  rules = (("^model/head/", 10.0), ("^model/", 0.0))
  mults = finetune.lr_multipliers(params, rules)
  assert mults == {"model": {"body": {"w": 0.0}, "head": {"w": 10.0}},
                   "extra": {"w": 1.0}}
  # Adam: frozen leaves keep no moments; scaled leaves move 10x.
  tx = finetune.apply_lr_rules(optax.adam(0.1), params, rules)
  opt_state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, opt_state, params)
  np.testing.assert_array_equal(updates["model"]["body"]["w"], 0.0)
  np.testing.assert_allclose(updates["extra"]["w"], -0.1, rtol=1e-5)
  np.testing.assert_allclose(updates["model"]["head"]["w"], -1.0, rtol=1e-5)
  n_moments = sum(x.size for x in jax.tree.leaves(opt_state))
  assert n_moments == 2 * (2 + 4) + 2  # mu, nu of 6 values + 2 counts
  assert finetune.apply_lr_rules(optax.sgd(1.0), params, ()) is not None
  with pytest.raises(ValueError, match=">= 0"):
    finetune.apply_lr_rules(optax.sgd(1.0), params, (("x", -1.0),))


def test_trainer_optimizer_applies_the_rules():
  from experiments.configs import finetune as ft_config
  from tlax.train import optim
  c = ft_config.get_config("linear_probe,quick")
  params = {"model": {"conv1": {"kernel": jnp.ones(3)},
                      "head": {"kernel": jnp.ones(2)}}}
  tx = optim.make_optimizer(c, params)
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params),
                         tx.init(params), params)
  np.testing.assert_array_equal(updates["model"]["conv1"]["kernel"], 0.0)
  assert float(jnp.abs(updates["model"]["head"]["kernel"]).min()) > 0


# --------------------------------------------------------------------------
# LoRA.
# --------------------------------------------------------------------------
def test_lora_shapes_rank_and_identity_at_init():
  params = {"conv1": {"kernel": jax.random.normal(jax.random.key(0),
                                                  (3, 3, 2, 5)),
                      "bias": jnp.zeros(5)},
            "fc1": {"kernel": jnp.ones((6, 4)), "bias": jnp.zeros(4)},
            "head": {"kernel": jnp.ones((4, 3)), "bias": jnp.zeros(3)}}
  targets = lora.lora_targets(params)
  assert targets == ["conv1/kernel", "fc1/kernel"]  # head excluded
  factors = lora.init_lora(jax.random.key(1), params, targets, rank=2)
  assert factors["conv1"]["kernel"]["a"].shape == (18, 2)
  assert factors["conv1"]["kernel"]["b"].shape == (2, 5)
  assert lora.num_lora_params(factors) == 18 * 2 + 2 * 5 + 6 * 2 + 2 * 4
  merged = lora.merge_lora(params, factors, alpha=2.0, rank=2)
  chex_equal = jax.tree.map(np.testing.assert_array_equal, merged, params)
  del chex_equal
  # A non-zero B gives a change of rank <= r in the (fan_in, fan_out) view.
  factors["conv1"]["kernel"]["b"] = jax.random.normal(jax.random.key(2),
                                                      (2, 5))
  merged = lora.merge_lora(params, factors, alpha=2.0, rank=2)
  delta = (merged["conv1"]["kernel"] - params["conv1"]["kernel"]).reshape(
      18, 5)
  assert np.linalg.matrix_rank(np.asarray(delta), tol=1e-5) == 2
  np.testing.assert_allclose(
      delta, factors["conv1"]["kernel"]["a"] @ factors["conv1"]["kernel"]["b"],
      rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# Losses.
# --------------------------------------------------------------------------
def test_l2_sp_penalty_matches_numpy():
  rng = np.random.default_rng(0)
  params = {"a": rng.normal(size=(3, 2)), "head": rng.normal(size=(2,))}
  anchor = {"a": rng.normal(size=(3, 2)), "head": rng.normal(size=(2,))}
  mask = {"a": True, "head": False}
  got = conservative.l2_sp_penalty(params, anchor, mask, 0.3, 0.05)
  want = (0.15 * np.sum((params["a"] - anchor["a"]) ** 2)
          + 0.025 * np.sum(params["head"] ** 2))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  g = jax.grad(lambda p: conservative.l2_sp_penalty(p, anchor, mask, 0.3,
                                                    0.05))(params)
  np.testing.assert_allclose(g["a"], 0.3 * (params["a"] - anchor["a"]),
                             rtol=1e-5)


def test_output_kl_matches_numpy():
  rng = np.random.default_rng(1)
  s = rng.normal(size=(4, 5)).astype(np.float32)
  z = rng.normal(size=(4, 5)).astype(np.float32)
  t = 2.0
  p = np.exp(s / t) / np.exp(s / t).sum(-1, keepdims=True)
  q = np.exp(z / t) / np.exp(z / t).sum(-1, keepdims=True)
  want = t * t * np.sum(p * (np.log(p) - np.log(q)), -1)
  got = jax.jit(conservative.output_kl_divergence)(s, z, t)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(conservative.output_kl_divergence(s, s, t), 0.0, atol=1e-6)
  assert got.shape == (4,)
