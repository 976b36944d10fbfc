"""The semantic-bias family: domains, episodes, methods, runner."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import data
from tlax import methods
from tlax import models
from tlax import train
from tlax.data import semantic_bias
from tlax.prototypes import bias
from tlax.prototypes import episodes


def test_source_colour_follows_class_with_the_correlation():
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(10), 200)
  c = semantic_bias.colour_indices(y, "aligned", rng, 0.8)
  # P(colour == class) = 0.8 + 0.2 / 10.
  assert abs(np.mean(c == y) - 0.82) < 0.03
  np.testing.assert_array_equal(
      semantic_bias.colour_indices(y, "reversed", rng), (y + 5) % 10)
  c = semantic_bias.colour_indices(y, "random", rng)
  assert abs(np.mean(c == y) - 0.1) < 0.03
  with pytest.raises(ValueError, match="pairing"):
    semantic_bias.colour_indices(y, "swapped", rng)
  with pytest.raises(ValueError, match="correlation"):
    semantic_bias.colour_indices(y, "aligned", rng, 1.5)


def test_colour_digit_domains():
  src = data.load_domain("colourdigits/source", correlation=1.0)
  x, y = src.splits["train"]
  assert x.shape[1:] == (16, 16, 3) and src.num_classes == 10
  # Every digit is drawn in its class colour: the brightest pixel's colour.
  flat = x.reshape(len(x), -1, 3)
  top = flat[np.arange(len(x)), np.argmax(flat.sum(-1), 1)]
  ref = semantic_bias.PALETTE[y]
  cos = np.sum(top * ref, 1) / (np.linalg.norm(top, axis=1)
                                * np.linalg.norm(ref, axis=1))
  assert np.all(cos > 0.999)
  tgt = data.load_domain("colourdigits/target", pairing="reversed")
  assert tgt.transductive
  xr, yr = semantic_bias.recoloured("reversed")
  np.testing.assert_array_equal(tgt.splits["test"][0], xr)
  # Same digits, other colours: equal grey shape.
  xa, ya = semantic_bias.recoloured("aligned")
  np.testing.assert_array_equal(ya, yr)
  np.testing.assert_allclose(xa.max(-1) > 0, xr.max(-1) > 0)
  with pytest.raises(TypeError, match="pairing is a target option"):
    data.load_domain("colourdigits/source", pairing="random")


def test_bias_measures_of_a_colour_reader_and_a_shape_reader():
  def by_colour(x):  # predicts the class whose colour is the brightest pixel
    flat = x.reshape(len(x), -1, 3)
    top = flat[np.arange(len(x)), np.argmax(flat.sum(-1), 1)]
    top = top / np.linalg.norm(top, axis=1, keepdims=True)
    pal = semantic_bias.PALETTE / np.linalg.norm(semantic_bias.PALETTE, axis=1,
                                                 keepdims=True)
    return np.argmax(top @ pal.T, 1)
  m = bias.bias_measures(by_colour)
  assert m["accuracy_aligned"] == 100.0 and m["accuracy_reversed"] == 0.0
  assert m["bias_gap"] == 100.0 and m["counterfactual_consistency"] < 30.0
  _, y = semantic_bias.recoloured("random", stream=1)
  shape = lambda x: np.asarray(y)[:len(x)]  # a colour-blind oracle
  m = bias.bias_measures(shape)
  assert m["bias_gap"] == 0.0 and m["counterfactual_consistency"] == 100.0


def test_episodes_are_disjoint_and_class_major():
  y = np.repeat(np.arange(8), 6)
  sup, qry, cls = episodes.sample_episodes(y, n_way=3, k_shot=2, n_query=4,
                                           n_episodes=5, seed=1)
  assert sup.shape == (5, 6) and qry.shape == (5, 12) and cls.shape == (5, 3)
  for s, q, c in zip(sup, qry, cls):
    assert not set(s) & set(q)
    np.testing.assert_array_equal(y[s], np.repeat(c, 2))
    np.testing.assert_array_equal(y[q], np.repeat(c, 4))


def test_too_many_shots_is_a_clear_error():
  y = np.repeat(np.arange(5), 4)
  with pytest.raises(ValueError, match=r"needs 6 examples.*0 of 5 classes.*"
                     "largest 4.*fewer shots"):
    episodes.sample_episodes(y, n_way=5, k_shot=5, n_query=1, n_episodes=1)
  with pytest.raises(ValueError, match="k_shot must be at least 1"):
    episodes.sample_episodes(y, n_way=5, k_shot=0, n_query=1, n_episodes=1)


def test_empty_class_prototype_is_a_clear_error():
  from tlax import losses
  _, counts = losses.class_prototypes(np.ones((3, 2)), np.array([0, 0, 2]), 4)
  with pytest.raises(ValueError, match="class.es. b, d have none"):
    episodes.check_prototypes(counts, ["a", "b", "c", "d"])
  episodes.check_prototypes(np.array([1, 2]))


def test_few_shot_accuracy_on_separated_and_on_random_features():
  rng = np.random.default_rng(0)
  y = np.repeat(np.arange(10), 30)
  centres = 10.0 * rng.normal(size=(10, 8))
  feats = centres[y] + 0.1 * rng.normal(size=(300, 8))
  out = episodes.few_shot_accuracy(feats, y, k_shot=1, n_episodes=50)
  assert out["prototype"] == 100.0 and out["linear_probe"] == 100.0
  assert out["prototype_ci95"] == 0.0 and out["episodes"] == 50
  noise = rng.normal(size=(300, 8))
  out = episodes.few_shot_accuracy(noise, y, k_shot=5, n_episodes=200)
  assert abs(out["prototype"] - 20.0) < 4 and out["prototype_ci95"] > 0


def _model_and_batch(n=12):
  model = models.get_model("mlp", 4, hidden=(8,))
  rng = np.random.default_rng(0)
  batch = {"xs": jnp.asarray(rng.normal(size=(n, 6)), jnp.float32),
           "ys": jnp.asarray(np.arange(n) % 4, jnp.int32),
           "ws": jnp.ones((n,)),
           "xt": jnp.asarray(rng.normal(size=(n, 6)), jnp.float32)}
  return model, batch


@pytest.mark.parametrize("name,options", [
    ("protonet", {"n_way": 2}), ("supcon", {"align": "coral"}),
    ("prototype_head", {"ssl_weight": 0.5, "align": "mmd"})])
def test_method_loss_is_finite_and_predict_uses_prototypes(name, options):
  model, batch = _model_and_batch()
  method = methods.METHODS[name](model, 4, total_steps=10, **options)
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  hp = {k: jnp.float32(v) for k, v in method.hparams.items()}
  grad_fn = jax.jit(jax.grad(method.loss, has_aux=True))
  grads, (metrics, state) = grad_fn(params, state, batch, jax.random.key(1),
                                    jnp.int32(0), hp)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert all(np.isfinite(float(v)) for v in metrics.values())
  logits = method.predict(params, state, batch["xs"])
  assert logits.shape == (12, 4)
  if name != "prototype_head":  # predicts with the source class means
    np.testing.assert_array_equal(np.asarray(state["seen"]), [1, 1, 1, 1])


def test_supcon_batch_of_singletons_gives_no_nan():
  model, batch = _model_and_batch(4)  # four classes, once each
  method = methods.METHODS["supcon"](model, 4, total_steps=1)
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  value, _ = method.loss(params, state, batch, jax.random.key(1),
                         jnp.int32(0), {"lambda": jnp.float32(1.0)})
  assert float(value) == 0.0


def test_bad_method_options():
  model, _ = _model_and_batch()
  with pytest.raises(ValueError, match="align"):
    methods.METHODS["supcon"](model, 4, total_steps=1, align="dann")
  with pytest.raises(ValueError, match="n_way"):
    methods.METHODS["protonet"](model, 4, total_steps=1, n_way=5)
  with pytest.raises(ValueError, match="support_fraction"):
    methods.METHODS["protonet"](model, 4, total_steps=1, support_fraction=1.0)
  with pytest.raises(ValueError, match="temperature must be a finite number "
                     "> 0.*got 0.0"):
    methods.METHODS["supcon"](model, 4, total_steps=1, temperature=0.0)
  with pytest.raises(ValueError, match="ssl_temperature"):
    methods.METHODS["prototype_head"](model, 4, total_steps=1,
                                      ssl_temperature=-1.0)


def _quick(name, steps=4):
  config = importlib.import_module(
      f"experiments.configs.prototypes.{name}").get_config("quick")
  config.steps = steps
  config.log_every = config.eval_every = config.checkpoint_every = steps
  return config


@pytest.mark.slow
def test_runner_adds_bias_and_few_shot_fields(tmp_path):
  config = _quick("protonet")
  result = train.run_experiment(config, tmp_path)
  for key in ("bias_gap", "counterfactual_consistency", "accuracy_aligned",
              "fs_fonts_1shot_proto", "fs_fonts_5shot_probe"):
    assert np.isfinite(result[key]), key
  assert [(e["domain"], e["k_shot"]) for e in result["few_shot"]] == [
      ("fonts/letters", 1), ("fonts/letters", 5)]
  assert json.loads((tmp_path / "result.json").read_text()) == result
  assert train.run_experiment(config, tmp_path) == result
  config.method.n_way = 3
  with pytest.raises(train.ConfigMismatchError, match="n_way"):
    train.run_experiment(config, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear", "prototype_head", "supcon"])
def test_other_quick_configs_run(name, tmp_path):
  result = train.run_experiment(_quick(name), tmp_path)
  assert 0.0 <= result["target_accuracy"] <= 100.0
  assert -100.0 <= result["bias_gap"] <= 100.0


def test_views_distort_colour_but_keep_grey_images_grey():
  from tlax.methods import prototypes
  x = jnp.asarray(np.random.default_rng(0).random((5, 4, 4, 1)), jnp.float32)
  rgb = jnp.repeat(x, 3, -1)
  v = prototypes._views(rgb, jax.random.key(0), 0, 0.0)  # pylint: disable=protected-access
  # Each image is scaled per channel by a gain in [0.3, 1].
  ratio = np.asarray(v) / np.maximum(np.asarray(rgb), 1e-6)
  gains = ratio[:, 0, 0, :]
  assert np.all((gains >= 0.3 - 1e-5) & (gains <= 1.0 + 1e-5))
  np.testing.assert_allclose(ratio, np.broadcast_to(gains[:, None, None],
                                                    ratio.shape), rtol=1e-4)
  same = prototypes._views(rgb, jax.random.key(0), 0, 0.0, False)  # pylint: disable=protected-access
  np.testing.assert_array_equal(same, rgb)
  shifted = prototypes._views(x, jax.random.key(1), 1, 0.0)  # pylint: disable=protected-access
  assert shifted.shape == x.shape
