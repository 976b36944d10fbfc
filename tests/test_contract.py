"""The method contract: factories of pure functions run by the one trainer."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.configs import source_only
from tlax import methods
from tlax import train
from tlax.methods import contract


def v2_source_only(model, num_classes, *, total_steps, label_smoothing=0.0):
  """Source-only training written against the contract (test factory)."""
  del num_classes, total_steps

  def init(rng, batch):
    rng_model, _ = jax.random.split(rng)  # the key split of the class methods
    return contract.init_classifier(model, rng_model, batch["xs"])

  def loss(params, state, batch, rng, step, hparams):
    del step, hparams
    logits, _, state = contract.apply_classifier(model, params, state,
                                                 batch["xs"], train=True,
                                                 rng=rng)
    value = contract.weighted_cross_entropy(logits, batch["ys"], batch["ws"])
    value = value + label_smoothing * 0.0
    return value, ({"source_acc": contract.accuracy(logits, batch["ys"])},
                   state)

  predict, features = contract.eval_fns(model)
  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, name="v2_source_only")


def v2_owned_update(model, num_classes, *, total_steps, lambda_=0.5):
  """A method that owns its update: two half-steps with one optimiser."""
  base = v2_source_only(model, num_classes, total_steps=total_steps)

  def update(params, state, opt_state, batch, rng, step, hparams, *, tx, lr):
    grad_fn = jax.value_and_grad(base.loss, has_aux=True)
    for _ in range(2):
      (value, (metrics, state)), grads = grad_fn(params, state, batch, rng,
                                                 step, hparams)
      metrics = {**metrics, "loss": value}
      updates, opt_state = tx.update(grads, opt_state, params)
      updates = jax.tree.map(lambda u: lr * hparams["lambda"] * u, updates)
      params = optax.apply_updates(params, updates)
    return params, state, opt_state, metrics

  return base._replace(update=update, hparams={"lambda": lambda_},
                       name="v2_owned_update")


@pytest.fixture
def registered(monkeypatch):
  monkeypatch.setitem(methods.METHODS, "v2_source_only", v2_source_only)
  monkeypatch.setitem(methods.METHODS, "v2_owned_update", v2_owned_update)


def _config(name, **method):
  config = source_only.get_config("quick")
  config.method.name = name
  for k, v in method.items():
    config.method[k] = v
  return config


def test_factory_method_matches_class_method(registered, tmp_path):
  del registered
  ref = train.train_and_evaluate(source_only.get_config("quick"),
                                 tmp_path / "ref")
  new = train.train_and_evaluate(_config("v2_source_only"), tmp_path / "new")
  assert new["target_accuracy"] == ref["target_accuracy"]
  assert new["source_val_accuracy"] == ref["source_val_accuracy"]


def test_unknown_option_names_valid_ones(registered, tmp_path):
  del registered
  with pytest.raises(TypeError, match="label_smoothing"):
    train.train_and_evaluate(_config("v2_source_only", smoothing=0.1),
                             tmp_path)


def test_owned_update_and_keyword_hparam(registered, tmp_path):
  del registered
  config = _config("v2_owned_update")
  config.method["lambda"] = 0.25
  result = train.train_and_evaluate(config, tmp_path)
  assert np.isfinite(result["target_accuracy"])
  assert result["config"]["method"]["lambda"] == 0.25


def test_method_by_import_path(tmp_path):
  config = _config("tests.test_contract:v2_source_only")
  result = train.run_experiment(config, tmp_path)
  assert json.loads((tmp_path / "result.json").read_text())["method"] == (
      "tests.test_contract:v2_source_only")
  assert 0 <= result["target_accuracy"] <= 100


def test_runner_by_import_path(tmp_path):
  config = source_only.get_config("quick")
  with config.unlocked():
    config.runner = "tests.test_contract:fake_runner"
  assert train.run_experiment(config, tmp_path) == {"ran": str(tmp_path)}


def fake_runner(config, workdir):
  del config
  return {"ran": str(workdir)}


def test_call_factory_keyword_mapping():
  got = contract.call_factory(lambda *, lambda_=1.0, layers=(): (lambda_,
                                                                  layers),
                              {"lambda": 0.1, "layers": ["a", "b"]})
  assert got == (0.1, ("a", "b"))
  assert jnp.isclose(contract.weighted_cross_entropy(
      jnp.zeros((2, 3)), jnp.array([0, 1])), jnp.log(3.0))


def test_unknown_option_of_a_partial_factory_names_it_and_its_dict():
  with pytest.raises(TypeError, match=r"Method 'discrepancy' has no "
                     r"option\(s\) 'n_moments'.*'n_moments' is set inside "
                     r"loss_kwargs \(--config.method.loss_kwargs.n_moments"):
    contract.call_factory(methods.get_method("cmd"), {"n_moments": 3},
                          model=None, num_classes=3, total_steps=10)


@pytest.mark.slow
def test_methods_do_not_import_the_training_package():
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = ("import sys, tlax.methods, tlax.transfer; "
          "print(sorted(m for m in sys.modules if m.startswith('tlax.train')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, check=True, timeout=300).stdout
  assert out.strip() == "[]", out


def test_every_registered_method_is_a_factory_with_keyword_options():
  import inspect  # pylint: disable=g-import-not-at-top
  for name, factory in methods.METHODS.items():
    params = inspect.signature(factory).parameters
    assert list(params)[:2] == ["model", "num_classes"], name
    assert params["total_steps"].kind == inspect.Parameter.KEYWORD_ONLY, name
    options = [p for p in list(params.values())[3:]]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in options), name


def test_config_diff_treats_an_absent_option_as_its_default():
  old = {"method": {"name": "cdan_e", "lambda": 1.0}}
  same = {"method": {"name": "cdan_e", "lambda": 1.0,
                     "entropy_conditioning": True,
                     "max_multilinear_dim": 4096}}
  assert train.config_diff(same, old) == []
  other = {"method": {"name": "cdan_e", "lambda": 1.0,
                      "max_multilinear_dim": 10}}
  assert train.config_diff(other, old) == [
      "  method.max_multilinear_dim: requested 10, workdir has '<absent>'"]


def test_negative_swept_hparam_is_refused(registered, tmp_path):
  del registered
  config = _config("v2_owned_update")
  config.method["lambda"] = -1.0
  with pytest.raises(ValueError, match="'lambda' must be >= 0"):
    train.train_and_evaluate(config, tmp_path)
