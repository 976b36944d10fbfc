"""Domain generalisation: losses against NumPy, every algorithm's step,
multi-domain tasks and their errors, the DG configs through the trainer."""

import functools
import json

import jax
import jax.numpy as jnp
from jax.test_util import check_grads
import numpy as np
import optax
import pytest

from tlax import data
from tlax import losses
from tlax import models
from tlax import train
from tlax.methods import generalization as gen


def _softmax(z):
  e = np.exp(z - z.max(1, keepdims=True))
  return e / e.sum(1, keepdims=True)


def _ce(z, y):
  return -np.log(_softmax(z)[np.arange(len(y)), y])


RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(8, 3)).astype(np.float32)
LABELS = np.array([0, 1, 2, 0, 1, 2, 2, 1], np.int32)


def test_irm_penalty_matches_numpy():
  def grad_w(z, y):  # d/dw mean CE(w z, y) at w = 1: mean (p - e_y) . z
    p = _softmax(z)
    p[np.arange(len(y)), y] -= 1.0
    return np.mean(np.sum(p * z, 1))
  want = grad_w(LOGITS[0::2], LABELS[0::2]) * grad_w(LOGITS[1::2],
                                                     LABELS[1::2])
  got = gen.irm_penalty(jnp.asarray(LOGITS), jnp.asarray(LABELS))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  check_grads(lambda z: gen.irm_penalty(z, LABELS), (LOGITS,), order=1,
              modes=["rev"], atol=1e-2, rtol=1e-2)


def test_domain_risks_and_vrex_match_numpy():
  risks = gen.domain_risks(jnp.asarray(LOGITS), jnp.asarray(LABELS), 2)
  ce = _ce(LOGITS.astype(np.float64), LABELS)
  np.testing.assert_allclose(risks, [ce[:4].mean(), ce[4:].mean()], rtol=1e-5)
  r = np.array([0.5, 1.0, 2.0], np.float32)
  np.testing.assert_allclose(gen.vrex_penalty(r), np.var(r), rtol=1e-6)
  check_grads(gen.vrex_penalty, (r,), order=2)


def test_group_dro_weights_match_numpy():
  q = np.array([0.5, 0.25, 0.25], np.float32)
  r = np.array([1.0, 2.0, 0.5], np.float32)
  want = q * np.exp(0.1 * r)
  np.testing.assert_allclose(gen.group_dro_weights(q, r, 0.1),
                             want / want.sum(), rtol=1e-6)


def test_mixup_pairs_match_numpy():
  x = np.arange(12, dtype=np.float32).reshape(6, 2)  # 3 domains of 2 rows
  y = np.array([0, 1, 2, 0, 1, 2], np.int32)
  perm = np.array([2, 0, 1])
  lams = np.array([0.2, 0.5, 0.9], np.float32)
  xm, yi, yj, _ = gen.mixup_pairs(x, y, 3, perm, lams)
  xd, yd = x.reshape(3, 2, 2), y.reshape(3, 2)
  for k in range(3):
    i, j = perm[k], perm[(k + 1) % 3]
    np.testing.assert_allclose(xm[k], lams[k] * xd[i] + (1 - lams[k]) * xd[j],
                               rtol=1e-6)
    np.testing.assert_array_equal(yi[k], yd[i])
    np.testing.assert_array_equal(yj[k], yd[j])


def test_mixstyle_matches_numpy():
  x = RNG.normal(size=(4, 3, 3, 2)).astype(np.float32)
  perm = np.array([2, 3, 0, 1])
  lam = np.array([0.1, 0.5, 0.7, 1.0], np.float32)
  mu = x.mean((1, 2), keepdims=True)
  sig = np.sqrt(x.var((1, 2), keepdims=True) + 1e-6)
  l4 = lam[:, None, None, None]
  want = ((x - mu) / sig * (l4 * sig + (1 - l4) * sig[perm])
          + l4 * mu + (1 - l4) * mu[perm])
  np.testing.assert_allclose(gen.mixstyle(x, perm, lam), want, rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(gen.mixstyle(x, perm, np.ones(4, np.float32)),
                             x, atol=1e-5)  # lam = 1: unchanged
  with pytest.raises(ValueError, match="image"):
    gen.mixstyle(x.reshape(4, -1), perm, lam)


def test_coral_and_mmd_reuse_tlax_losses():
  a = RNG.normal(size=(6, 3)).astype(np.float32)
  b = RNG.normal(size=(6, 3)).astype(np.float32) + 1.0
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  want = np.mean((a.mean(0) - b.mean(0)) ** 2) + np.mean((ca - cb) ** 2)
  np.testing.assert_allclose(gen.mean_covariance_gap(a, b), want, rtol=1e-4)
  def k(u, v):
    d = ((u[:, None] - v[None]) ** 2).sum(-1)
    return sum(np.exp(-g * d) for g in gen.MMD_GAMMAS)
  want = k(a, a).mean() + k(b, b).mean() - 2 * k(a, b).mean()
  np.testing.assert_allclose(gen.gaussian_mmd(a, b), want, rtol=1e-4)
  check_grads(lambda u: gen.mean_covariance_gap(u, b), (a,), order=1,
              modes=["rev"], atol=1e-2, rtol=1e-2)


def test_head_gradients_and_fishr_match_autodiff():
  f = RNG.normal(size=(4, 5)).astype(np.float32)
  w = RNG.normal(size=(5, 3)).astype(np.float32)
  b = RNG.normal(size=(3,)).astype(np.float32)
  y = np.array([0, 2, 1, 1], np.int32)
  per_ex = jax.vmap(jax.grad(
      lambda p, fi, yi: optax.softmax_cross_entropy_with_integer_labels(
          fi @ p[0] + p[1], yi)), in_axes=(None, 0, 0))((w, b), f, y)
  want = np.concatenate([per_ex[0].reshape(4, -1), per_ex[1]], 1)
  np.testing.assert_allclose(gen.head_gradients(f, f @ w + b, y), want,
                             rtol=1e-5, atol=1e-6)
  v = RNG.random((3, 4)).astype(np.float32)
  np.testing.assert_allclose(
      gen.fishr_penalty(v), np.mean(((v - v.mean(0)) ** 2).sum(1)), rtol=1e-5)


def test_same_class_permutation_keeps_classes():
  y = jnp.array([0, 1, 0, 2, 1, 0, 2, 2])
  p = gen.same_class_permutation(y, jax.random.key(3))
  assert sorted(np.asarray(p).tolist()) == list(range(8))
  np.testing.assert_array_equal(y[p], y)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(gen.DG_METHODS))
def test_every_algorithm_takes_a_step(name):
  model = models.get_model("lenet", 3, conv_impl="xla")
  method = gen.DG_METHODS[name](model, 3, total_steps=10, num_domains=3)
  x = RNG.random((12, 8, 8, 1)).astype(np.float32)
  batch = {"xs": x, "ys": np.tile([0, 1, 2], 4).astype(np.int32),
           "ds": np.repeat(np.arange(3), 4).astype(np.int32),
           "ws": np.ones(12, np.float32), "xt": x[:1]}
  # Jitted as in the trainer's step (one compile, not one per operation).
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  hp = {k: jnp.float32(v) for k, v in method.hparams.items()}
  hp["lr"] = jnp.float32(0.01)
  if method.update is not None:
    tx = optax.sgd(1.0)
    update = jax.jit(functools.partial(method.update, tx=tx))
    new, _, _, metrics = update(
        params, state, method.init_opt(tx, params), batch, jax.random.key(1),
        jnp.int32(0), hp, lr=jnp.float32(0.01))
    assert np.isfinite(metrics["loss"])
    diff = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new, params)
    assert max(jax.tree.leaves(diff)) > 0
    return
  (value, (metrics, _)), grads = jax.jit(jax.value_and_grad(
      method.loss, has_aux=True))(params, state, batch, jax.random.key(1),
                                  jnp.int32(0), hp)
  assert np.isfinite(value)
  norms = [float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)]
  assert np.all(np.isfinite(norms)) and max(norms) > 0


def test_algorithms_need_several_domains():
  model = models.get_model("mlp", 2, hidden=(4,))
  with pytest.raises(ValueError, match="at least 2 training domains"):
    gen.irm(model, 2, total_steps=1, num_domains=None)


@pytest.mark.parametrize("factory,option,value,match", [
    (gen.irm, "lambda_", float("nan"), r"irm: lambda must be a finite "
     r"number in \[0, inf\), got nan"),
    (gen.vrex, "lambda_", -1.0, r"vrex: lambda .*got -1.0"),
    (gen.group_dro, "eta", -1.0, r"group_dro: eta .*got -1.0"),
    (gen.mixup, "alpha", -0.2, r"mixup: alpha must be a finite number in "
     r"\(0, inf\)"),
    (gen.mixstyle_method, "alpha", 0.0, r"mixstyle: alpha"),
    (gen.mixstyle_method, "p", 1.5, r"mixstyle: p must be a finite number "
     r"in \[0, 1\]"),
])
def test_bad_hyper_parameters_are_refused_by_name(factory, option, value,
                                                  match):
  model = models.get_model("mlp", 2, hidden=(4,))
  with pytest.raises(ValueError, match=match):
    factory(model, 2, total_steps=1, num_domains=2, **{option: value})


# ---------------------------------------------------------------------------
# Multi-domain tasks (need the MNIST-USPS file).
# ---------------------------------------------------------------------------
def test_colored_mnist_environments(data_dir):
  rates = {}
  for env in ("plus90", "plus80", "minus90"):
    dom = data.load_domain(f"colored_mnist/{env}", data_dir=data_dir)
    x, y = dom.splits["train"]
    assert x.shape[1:] == (16, 16, 2) and set(np.unique(y)) == {0, 1}
    green = x[..., 1].reshape(len(x), -1).max(1) > 0
    red = x[..., 0].reshape(len(x), -1).max(1) > 0
    assert not np.any(green & red)  # one colour per image
    rates[env] = np.mean(green == y)
  assert 0.86 < rates["plus90"] < 0.94 and 0.76 < rates["plus80"] < 0.84
  assert 0.06 < rates["minus90"] < 0.14


def test_dg_task_balanced_batches_and_splits(data_dir):
  task = data.make_task("rotated_mnist/0+rotated_mnist/15+rotated_mnist/30",
                        "rotated_mnist/75", data_dir=data_dir, seed=0,
                        source_val_fraction=0.2)
  assert task.domain_names == ("rotated_mnist/0", "rotated_mnist/15",
                               "rotated_mnist/30")
  assert set(np.unique(task.ds)) == {0, 1, 2} and len(task.ds_val) == len(
      task.xs_val)
  for d in range(3):  # about 20% of each training domain for validation
    n_val, n = np.sum(task.ds_val == d), np.sum(task.ds == d)
    assert 0.18 < n_val / (n + n_val) < 0.22
  # The test domain is never in what the batches draw from.
  test_rows = {x.tobytes() for x in task.xt_test[:50]}
  assert not test_rows & {x.tobytes() for x in task.xs}
  assert not test_rows & {x.tobytes() for x in task.xt}
  batches = data.PairedBatches(task, 12, seed=0)
  b = batches.batch(5)
  np.testing.assert_array_equal(b["ds"], np.repeat([0, 1, 2], 4))
  np.testing.assert_array_equal(b["ds"], task.ds[batches.indices(5)["xs"]])
  np.testing.assert_array_equal(b["xs"], batches.batch(5)["xs"])
  with pytest.raises(ValueError, match="multiple of the 3 training domains"):
    data.PairedBatches(task, 10, seed=0)


def test_dg_task_errors(data_dir):
  with pytest.raises(ValueError, match="at least two training domains"):
    data.make_dg_task("rotated_mnist/0", "rotated_mnist/15",
                      data_dir=data_dir)
  with pytest.raises(ValueError, match="also a training domain"):
    data.make_dg_task("rotated_mnist/0+rotated_mnist/15", "rotated_mnist/15",
                      data_dir=data_dir)
  with pytest.raises(ValueError, match="validation domain"):
    data.make_dg_task("rotated_mnist/0+rotated_mnist/15", "rotated_mnist/30",
                      data_dir=data_dir, validation_domain="rotated_mnist/0")


def test_differing_class_sets_are_refused():
  from tlax.data import domains, multidomain
  x, y = np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1])
  mk = lambda name, classes: domains.make_domain(
      name, (x, y), (x, y), num_classes=2, kind="features",
      class_names=classes, info={})
  a, b, c = mk("t/a", ("cat", "dog")), mk("t/b", ("cat", "dog")), mk(
      "t/c", ("cat", "horse"))
  multidomain.check_domains([a, b], mk("t/d", ("cat", "dog")))
  with pytest.raises(ValueError, match="t/a and t/c have different class sets"):
    multidomain.check_domains([a, c], b)


@pytest.mark.slow
@pytest.mark.parametrize("config_name", ["colored_mnist", "office_caltech10"])
def test_dg_config_runs_through_the_trainer(config_name, data_dir, tmp_path):
  import importlib
  module = importlib.import_module(f"experiments.configs.dg.{config_name}")
  config = module.get_config("irm,quick")
  config.data_dir = data_dir
  config.steps = 2
  config.log_every = config.eval_every = config.checkpoint_every = 1
  if config_name == "colored_mnist":
    config.domain_options = {"validation_domain": None}
  result = train.run_experiment(config, str(tmp_path))
  assert result["method"] == "irm" and len(result["training_domains"]) >= 2
  sel = result["selections"]
  assert sel["test_domain_oracle"]["oracle"] is True
  assert sel["test_domain_oracle"]["test_domain_accuracy"] == result[
      "test_domain_accuracy"]
  assert sel["training_domain_validation"]["step"] in (1, 2)
  with open(tmp_path / "metrics.jsonl") as f:
    evals = [json.loads(l) for l in f if '"eval"' in l]
  assert set(evals[-1]["domain_val_accuracy"]) == set(
      result["training_domains"])


@pytest.mark.slow
def test_leave_one_domain_out_validation_is_recorded(data_dir, tmp_path):
  from experiments.configs.dg import office_caltech10
  config = office_caltech10.get_config("erm,quick")
  config.data_dir = data_dir
  config.source = "office_caltech10/amazon+office_caltech10/caltech"
  config.domain_options = {"validation_domain": "office_caltech10/dslr"}
  config.steps = 2
  config.log_every = config.eval_every = config.checkpoint_every = 1
  result = train.train_and_evaluate(config, str(tmp_path))
  lodo = result["selections"]["leave_one_domain_out"]
  assert lodo is not None and 0 <= lodo["lodo_val_accuracy"] <= 100


def test_config_argument_errors():
  from experiments.configs.dg import colored_mnist
  assert colored_mnist.get_config("vrex,lambda=3").method["lambda"] == 3.0
  with pytest.raises(ValueError, match="Unknown config argument 'foo'"):
    colored_mnist.get_config("foo")


@pytest.mark.parametrize("name", ["irm", "vrex", "fishr"])
def test_optimizer_reset_restarts_adam_at_the_anneal_step(name):
  from tlax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  from tlax.train.state import TrainState  # pylint: disable=g-import-not-at-top
  model = models.get_model("mlp", 3, hidden=(8,))
  plain = gen.DG_METHODS[name](model, 3, total_steps=10, num_domains=3,
                               anneal_steps=2)
  reset = gen.DG_METHODS[name](model, 3, total_steps=10, num_domains=3,
                               anneal_steps=2, reset_optimizer=True)
  assert plain.update is None and reset.update is not None
  x = RNG.random((12, 5)).astype(np.float32)
  batch = {"xs": x, "ys": np.tile([0, 1, 2], 4).astype(np.int32),
           "ds": np.repeat(np.arange(3), 4).astype(np.int32),
           "ws": np.ones(12, np.float32), "xt": x[:1]}
  tx = optax.adam(1.0)
  params, state = jax.jit(plain.init)(jax.random.key(0), batch)
  hp = {k: jnp.float32(v) for k, v in plain.hparams.items()}
  hp["lr"] = jnp.float32(0.01)
  # Adam's moments after a few updates, far from a fresh state.
  opt_state = tx.init(params)
  for _ in range(3):
    g = jax.tree.map(lambda p: jnp.ones_like(p) * 5.0, params)
    _, opt_state = tx.update(g, opt_state, params)
  rng, lr = jax.random.key(1), jnp.float32(0.01)

  def generic(step, opt):  # the trainer's own update of the plain method
    s = TrainState(step=jnp.int32(step), params=params, state=state,
                   opt_state=opt, rng=jax.random.key_data(rng), hparams=hp)
    key = jax.random.wrap_key_data(s.rng)
    _, step_key = jax.random.split(key)
    new, metrics = step_lib.train_step(s, batch, method=plain, tx=tx,
                                       schedule=lambda t: 1.0)
    return new, metrics, step_key

  for step, expected_opt in ((1, opt_state), (2, tx.init(params))):
    new, metrics, step_key = generic(step, expected_opt)
    p, _, o, m = reset.update(params, state, opt_state, batch, step_key,
                              jnp.int32(step), hp, tx=tx, lr=lr)
    # Away from the anneal step the optimiser state is carried; at it the
    # update is the one from a fresh optimiser state.
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(new.params)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for a, b in zip(jax.tree.leaves(o), jax.tree.leaves(new.opt_state)):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m["loss"], metrics["loss"], rtol=1e-6)
    np.testing.assert_allclose(m["grad_norm"], metrics["grad_norm"],
                               rtol=1e-5)
  with pytest.raises(ValueError, match="reset_optimizer must be True or "
                     "False"):
    gen.DG_METHODS[name](model, 3, total_steps=10, num_domains=3,
                         reset_optimizer="yes")
