"""Tests of tlax.train: optimiser, schedules, step, evaluation, trainer.

Everything runs the quick source-only config (a ten-step MLP on the embedded
digits task) or hand-made arrays; no benchmark files are needed.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments.configs import common
from experiments.configs import source_only
from tlax import data
from tlax import methods
from tests.quick import quick_config  # pylint: disable=g-bad-import-order
from tlax import train
from tlax.train import trainer


def _opt_config(**kw):
  c = quick_config()
  for k, v in kw.items():
    c.optimizer[k] = v
  return c


# ---------------------------------------------------------------------------
# Optimiser and schedules
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name,reference", [
    ("sgd", lambda lr: optax.sgd(lr, momentum=0.9)),
    ("adam", lambda lr: optax.adam(lr)),
    ("adamw", lambda lr: optax.adamw(lr, weight_decay=0.01)),
    ("lamb", lambda lr: optax.lamb(lr, weight_decay=0.01)),
])
def test_optimizer_matches_optax_times_lr(name, reference):
  config = _opt_config(name=name, weight_decay=0.01 if name in ("adamw", "lamb")
                       else 0.0)
  params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}
  tx, ref = train.make_optimizer(config, params), reference(0.05)
  s, r = tx.init(params), ref.init(params)
  p_ours, p_ref = params, params
  for i in range(3):
    g = jax.tree.map(lambda x: jnp.sin(x + i), p_ours)
    u, s = tx.update(g, s, p_ours)
    p_ours = optax.apply_updates(p_ours, jax.tree.map(lambda x: 0.05 * x, u))
    u, r = ref.update(g, r, p_ref)
    p_ref = optax.apply_updates(p_ref, u)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               p_ours, p_ref)


def test_schedules():
  config = _opt_config(schedule="dann")
  config.steps = 100
  f = train.make_schedule(config)
  np.testing.assert_allclose(f(0), 1.0)
  np.testing.assert_allclose(f(50), (1 + 10 * 0.5) ** -0.75, rtol=1e-6)
  config.optimizer.schedule = "cosine"
  f = train.make_schedule(config)
  np.testing.assert_allclose([f(0), f(50), f(100)], [1.0, 0.5, 0.0],
                             atol=1e-6)
  config.optimizer.schedule = "constant"
  config.optimizer.warmup_steps = 10
  f = train.make_schedule(config)
  np.testing.assert_allclose([f(0), f(9), f(50)], [0.1, 1.0, 1.0], rtol=1e-6)


@pytest.mark.parametrize("field,value,match", [
    ("name", "rmsprop", "sgd, adam, adamw"),
    ("schedule", "step", "constant, cosine, dann"),
    ("momentum", 1.5, "momentum"),
])
def test_bad_optimizer_settings_name_valid_values(field, value, match):
  config = _opt_config(**{field: value})
  with pytest.raises(ValueError, match=match):
    train.make_optimizer(config)
    train.make_schedule(config)


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------
def test_classification_metrics_by_hand():
  m = train.classification_metrics([0, 1, 1, 2, 0], [0, 1, 0, 2, 2],
                                   num_classes=4)
  assert m["accuracy"] == pytest.approx(60.0)
  assert m["per_class_accuracy"][:3] == pytest.approx([50.0, 100.0, 50.0])
  assert m["per_class_accuracy"][3] is None  # absent class
  assert m["mean_class_accuracy"] == pytest.approx(200.0 / 3)


class _CountingLinear:
  """Counts how often a linear classifier's functions are traced."""
  traces = {"loss": 0, "predict": 0}


def _counting_method(num_classes=3):
  from tlax import models  # pylint: disable=g-import-not-at-top
  model = models.get_model("mlp", num_classes, hidden=())
  base = methods.METHODS["source_only"](model, num_classes, total_steps=10)
  _CountingLinear.traces = {"loss": 0, "predict": 0}

  def loss(*args):
    _CountingLinear.traces["loss"] += 1
    return base.loss(*args)

  def predict(*args):
    _CountingLinear.traces["predict"] += 1
    return base.predict(*args)
  return base._replace(loss=loss, predict=predict)


def test_evaluate_pads_last_batch_and_compiles_once():
  method = _counting_method()
  rng = np.random.default_rng(0)
  x = rng.normal(size=(23, 4)).astype(np.float32)
  params, state = method.init(jax.random.key(0), {"xs": x[:2]})
  logits = np.asarray(method.predict(params, state, x))
  y = logits.argmax(-1)
  y[:3] = (y[:3] + 1) % 3  # three wrong
  _CountingLinear.traces["predict"] = 0
  for n in (23, 7, 16):  # several sizes, one batch size: one compilation
    res = train.evaluate(method, params, state, x[:n], y[:n], batch_size=8)
    assert res["num_examples"] == n
    assert res["accuracy"] == pytest.approx(100.0 * (n - 3) / n)
  assert _CountingLinear.traces["predict"] == 1
  empty = train.evaluate(method, params, state, x[:0], y[:0], batch_size=8)
  assert empty["accuracy"] is None


# ---------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------
def _tiny_batches(n=8, d=4, steps=12, seed=0):
  rng = np.random.default_rng(seed)
  return [{"xs": rng.normal(size=(n, d)).astype(np.float32),
           "ys": rng.integers(0, 3, n).astype(np.int32),
           "ws": np.ones(n, np.float32),
           "xt": rng.normal(size=(n, d)).astype(np.float32)}
          for _ in range(steps)]


def test_train_step_compiles_once_and_learns():
  method = _counting_method()
  batches = _tiny_batches()
  config = quick_config()
  config.optimizer.lr = 0.1
  state, tx = train.create_train_state(config, method, batches[0])
  assert state.step.dtype == jnp.int32 and state.rng.dtype == jnp.uint32
  assert set(state.hparams) == {"lr"}
  step_fn = train.make_train_step(method, tx, train.make_schedule(config))
  _CountingLinear.traces["loss"] = 0
  losses = []
  for _ in range(5):  # over and over the same batches: the loss must fall
    for b in batches:
      state, metrics = step_fn(state, b)
      losses.append(float(metrics["loss"]))
  assert _CountingLinear.traces["loss"] == 1, "the train step retraced"
  assert int(state.step) == 5 * len(batches)
  n = len(batches)
  assert np.mean(losses[-n:]) < np.mean(losses[:n])
  assert {"loss", "lr", "grad_norm", "source_acc"} <= set(metrics)


def test_train_step_is_vmappable_over_hparams():
  """Several learning rates in one program: the step is vmappable."""
  method = _counting_method()
  batch = _tiny_batches(steps=1)[0]
  config = quick_config()
  state, tx = train.create_train_state(config, method, batch)
  lrs = jnp.array([0.0, 0.1, 0.5], jnp.float32)
  states = jax.tree.map(lambda x: jnp.stack([x] * 3), state)
  states = states.replace(hparams={"lr": lrs})
  step = jax.jit(jax.vmap(lambda s: train.train_step(
      s, batch, method=method, tx=tx,
      schedule=train.make_schedule(config))))
  new, _ = step(states)
  w0 = state.params["model"]["head"]["kernel"]
  w = new.params["model"]["head"]["kernel"]
  np.testing.assert_array_equal(w[0], w0)  # lr 0: unchanged
  single, _ = jax.jit(lambda s: train.train_step(
      s, batch, method=method, tx=tx, schedule=train.make_schedule(config)))(
          state.replace(hparams={"lr": lrs[2]}))
  np.testing.assert_allclose(w[2], single.params["model"]["head"]["kernel"],
                             rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------
# train_and_evaluate
# ---------------------------------------------------------------------------
RESULT_KEYS = {"method", "source", "target", "seed", "steps",
               "target_accuracy", "per_class_accuracy", "source_val_accuracy",
               "selected", "wall_time_s", "config", "tlax_version",
               "jax_version", "device", "target_mean_class_accuracy",
               "selected_dev"}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A finished quick run: ``(workdir, result)``; tests copy, never modify."""
  workdir = tmp_path_factory.mktemp("quick_run")
  return workdir, train.train_and_evaluate(quick_config(), workdir)


def test_quick_run_writes_result_metrics_and_checkpoints(finished_run):
  workdir, result = finished_run
  assert RESULT_KEYS <= set(result)
  with open(workdir / "result.json") as f:
    assert json.load(f) == result
  assert result["method"] == "source_only" and result["steps"] == 10
  assert result["source"] == common.DEFAULT_SOURCE
  assert 0.0 <= result["target_accuracy"] <= 100.0
  assert len(result["per_class_accuracy"]) == 10
  assert result["selected"]["criterion"] == "source_val_accuracy"
  assert result["selected"]["step"] in (5, 10)
  # importance-weighted (DEV) validation recorded at every evaluation.
  assert result["selected_dev"]["criterion"] == "dev_risk"
  assert result["selected_dev"]["step"] in (5, 10)
  evals = [r for r in train.read_metrics(workdir / "metrics.jsonl")
           if r["type"] == "eval"]
  assert all(np.isfinite(r["dev_risk"]) and 0 <= r["iw_error"]
             for r in evals)
  best = min(evals, key=lambda r: (r["dev_risk"], -r["step"]))
  assert result["selected_dev"]["step"] == best["step"]
  assert result["config"]["channels"] == 3  # resolved from config.auto
  records = train.read_metrics(workdir / "metrics.jsonl")
  assert [(r["type"], r["step"]) for r in records] == [
      ("train", 5), ("eval", 5), ("train", 10), ("eval", 10)]
  assert {"loss", "lr", "elapsed"} <= set(records[0])
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "5"]
  # A rerun with the same config returns the stored result (resumable
  # sweeps); progress settings do not count as a different config.
  again = train.train_and_evaluate(quick_config(progress=True), workdir)
  assert again == result


def test_config_mismatch_on_resume_lists_the_keys(finished_run, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(finished_run[0], workdir)
  with pytest.raises(train.ConfigMismatchError, match="optimizer.lr"):
    train.train_and_evaluate(quick_config(**{"optimizer.lr": 0.5}), workdir)
  os.remove(workdir / "result.json")  # now only the checkpoints are left
  with pytest.raises(train.ConfigMismatchError,
                     match=r"(?s)checkpoint.*batch_size: requested 4"):
    train.train_and_evaluate(quick_config(batch_size=4), workdir)
  # Editing the defaults table is no mismatch unless a resolved value changes.
  edited = quick_config()
  edited.auto.office_caltech10.steps = 12345
  train.train_and_evaluate(edited, workdir)
  edited.auto.digits.channels = 1  # what this run resolved to: a mismatch
  with pytest.raises(train.ConfigMismatchError, match="channels"):
    train.train_and_evaluate(edited, workdir)
  # The matching config resumes from the final checkpoint and re-evaluates
  # to the same result.
  result = train.train_and_evaluate(quick_config(), workdir)
  for key in ("target_accuracy", "per_class_accuracy", "selected"):
    assert result[key] == finished_run[1][key]


def test_config_diff_accepts_keys_added_later_at_their_neutral_value():
  old = {"method": {"name": "dann", "lambda": 1.0}}  # made before align_start
  new = {"method": {"name": "dann", "lambda": 1.0, "align_start": 0}}
  assert train.config_diff(new, old) == []
  assert train.config_diff(old, new) == []
  delayed = {"method": {"name": "dann", "lambda": 1.0, "align_start": 600}}
  assert train.config_diff(delayed, old) == [
      "  method.align_start: requested 600, workdir has '<absent>'"]
  # Other absent keys still count.
  assert train.config_diff({"method": {"name": "dann", "extra": 0}}, old)


def nan_after_7(model, num_classes, *, total_steps):
  """Test method: the loss becomes NaN from the eighth update on."""
  base = methods.METHODS["source_only"](model, num_classes,
                                        total_steps=total_steps)

  def loss(params, state, batch, rng, step, hparams):
    value, aux = base.loss(params, state, batch, rng, step, hparams)
    return jnp.where(step >= 7, jnp.nan, value), aux
  return base._replace(loss=loss)


def test_nan_loss_stops_with_the_step_and_keeps_good_checkpoint(tmp_path):
  config = quick_config(**{"method.name": "tests.test_train:nan_after_7"})
  with pytest.raises(train.NonFiniteLossError,
                     match=r"nan at step 8 .*last good checkpoint is step 5"):
    train.train_and_evaluate(config, tmp_path)
  assert os.listdir(tmp_path / "checkpoints") == ["5"]
  assert not (tmp_path / "result.json").exists()


def test_nan_loss_before_any_checkpoint_says_so(tmp_path):
  config = quick_config(**{"method.name": "tests.test_train:nan_after_7",
                           "checkpoint_every": 100})
  with pytest.raises(train.NonFiniteLossError,
                     match=r"nan at step 8 .*No checkpoint was saved before "
                     r"it\. .*clip_norm=10"):
    train.train_and_evaluate(config, tmp_path)
  assert not (tmp_path / "result.json").exists()


def test_unknown_method_names_the_valid_ones(tmp_path):
  with pytest.raises(KeyError, match="Unknown method 'nope'.*source_only"):
    train.train_and_evaluate(quick_config(**{"method.name": "nope"}), tmp_path)


def test_unknown_domain_and_model_name_the_valid_ones(tmp_path):
  with pytest.raises(KeyError, match="Unknown domain 'digits/nope'.*mnistm"):
    train.train_and_evaluate(quick_config(target="digits/nope"), tmp_path)
  with pytest.raises(KeyError, match="Unknown model 'vgg'.*lenet"):
    train.train_and_evaluate(
        quick_config(**{"model.name": "vgg", "model.kwargs":
                        ml_collections.ConfigDict()}), tmp_path / "m")


@pytest.mark.parametrize("field,value,match", [
    ("steps", 0, "config.steps must be a positive integer"),
    ("log_every", -1, "config.log_every"),
    ("optimizer.lr", float("nan"), "config.optimizer.lr"),
    ("optimizer.name", "rmsprop", "valid values: sgd, adam, adamw"),
])
def test_bad_config_values_are_named(tmp_path, field, value, match):
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(quick_config(**{field: value}), tmp_path)


def test_mismatched_domain_shapes_reach_the_user_unchanged(tmp_path):
  config = quick_config()
  config.source, config.target = "digits/sklearn", "digits/mnistm"
  config.auto.digits.channels = None  # grey sklearn digits vs RGB mnistm
  with pytest.raises(data.DomainShapeError) as err:
    train.train_and_evaluate(config, tmp_path)
  with pytest.raises(data.DomainShapeError) as direct:
    data.make_task("digits/sklearn", "digits/mnistm", image_size=16)
  assert str(err.value) == str(direct.value)


def test_resolve_config_picks_model_by_domain_kind():
  config = source_only.get_config()
  config.source, config.target = "office_caltech10/amazon", "office_caltech10/dslr"
  resolved = trainer.resolve_config(config)
  assert resolved.model.name == "mlp" and resolved.optimizer.name == "adam"
  assert resolved.eval_every == resolved.steps // 10
  config = source_only.get_config()
  config.auto = ml_collections.ConfigDict({"default": config.auto.default})

  class _Task:  # only what resolve_config reads
    input_shape = (16, 16, 3)
  assert trainer.resolve_config(config, _Task()).model.name == "lenet"
  _Task.input_shape = (800,)
  assert trainer.resolve_config(config, _Task()).model.name == "mlp"
  config.steps = 7  # an explicit value wins over the table
  assert trainer.resolve_config(config).steps == 7


def test_plots_of_a_finished_run_are_written_into_the_workdir(tmp_path):
  # What experiments/run.py does for config.plots after the run.
  from tlax.viz import embedding
  result = train.train_and_evaluate(quick_config(plots="pca"), tmp_path)
  assert result["steps"] == 10
  embedding.plot_run(str(tmp_path), embedding="pca")
  pngs = sorted(p.name for p in tmp_path.glob("*.png"))
  assert pngs == ["curves.png", "embedding_pca.png"], pngs
  for name in pngs:
    assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("parallel", ["none", "sharded"])
def test_train_step_traces_once_per_run(tmp_path, monkeypatch, parallel):
  # A retrace (a changed dtype, shape or static argument between steps)
  # would recompile the step; evaluation and checkpoints must not cause one.
  import chex
  from tlax.train import step as step_lib
  chex.clear_trace_counter()
  monkeypatch.setattr(step_lib, "train_step",
                      chex.assert_max_traces(step_lib.train_step, n=1))
  result = train.train_and_evaluate(quick_config(parallel=parallel),
                                    tmp_path)
  assert result["steps"] == 10 and result["parallel"] == parallel
