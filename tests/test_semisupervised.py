"""Semi-supervised tasks, the FixMatch family's factories and configs."""

import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import data
from tlax import losses
from tlax import methods
from tlax import models
from tlax import train
from tlax.methods import contract
from tlax.methods import semisupervised

DOMAIN = "digits/sklearn"


def _task(k, seed=0, **kw):
  return data.make_task(DOMAIN, DOMAIN, image_size=8, channels=1, seed=seed,
                        labels_per_class=k, **kw)


def test_labels_per_class_task():
  task = _task(3)
  full = data.load_domain(DOMAIN, image_size=8, channels=1, seed=0)
  xtr, _ = full.splits["train"]
  assert np.bincount(task.ys, minlength=10).tolist() == [3] * 10
  assert len(task.xs) + len(task.xt) == len(xtr)
  assert len(task.xs_val) == 0
  np.testing.assert_array_equal(task.xt_test, full.splits["test"][0])
  # The labelled examples are not in the unlabelled set.
  lab = {x.tobytes() for x in task.xs}
  assert not any(x.tobytes() in lab for x in task.xt)
  # Chosen by the seed: the same seed gives the same subset, another differs.
  np.testing.assert_array_equal(_task(3).xs, task.xs)
  assert not np.array_equal(_task(3, seed=1).xs, task.xs)
  ceiling = _task(-1)
  assert len(ceiling.xs) == len(xtr) and len(ceiling.xt) == len(xtr)


def test_transductive_domain_gets_a_held_out_split(data_dir):
  del data_dir
  task = data.make_task("mnist_usps/usps", "mnist_usps/usps", image_size=16,
                        channels=1, labels_per_class=1)
  assert len(task.xs) == 10 and 350 <= len(task.xt_test) <= 370
  assert len(task.xs) + len(task.xt) + len(task.xt_test) == 1800
  test = {x.tobytes() for x in task.xt_test}
  assert not any(x.tobytes() in test for x in np.concatenate([task.xs,
                                                               task.xt]))


def test_bad_labels_per_class():
  with pytest.raises(ValueError, match=r"labels_per_class=200 needs at least "
                     r"201.*Use labels_per_class <="):
    _task(200)
  with pytest.raises(ValueError, match="source .* and target .* differ"):
    data.make_task(DOMAIN, "digits/mnistm", image_size=8, channels=1,
                   labels_per_class=2)
  with pytest.raises(ValueError, match="labels_per_class must be"):
    _task(-3)
  with pytest.raises(ValueError, match="cannot both be set"):
    _task(2, target_labeled_per_class=1)


def test_class_without_labelled_example(monkeypatch):
  real = data.domains.load_domain

  def without_class_3(name, **kw):
    dom = real(name, **kw)
    x, y = dom.splits["train"]
    keep = y != 3
    return data.domains.Domain(dom.name, {"train": (x[keep], y[keep]),
                                          "test": dom.splits["test"]},
                               dom.num_classes, dom.kind, dom.class_names,
                               dom.info)
  monkeypatch.setattr(data.domains, "load_domain", without_class_3)
  with pytest.raises(ValueError, match=r"class\(es\) 3 .* no training "
                     "example.*at least one labelled example per class"):
    _task(1)


def _method_and_batch(factory, **options):
  model = models.get_model("mlp", 10, hidden=(16,))
  method = contract.call_factory(factory, options, model=model,
                                 num_classes=10, total_steps=10)
  rng = np.random.default_rng(0)
  batch = {"xs": rng.uniform(size=(4, 8, 8, 1)).astype(np.float32),
           "ys": np.arange(4, dtype=np.int32),
           "ws": np.ones(4, np.float32),
           "xt": rng.uniform(size=(8, 8, 8, 1)).astype(np.float32)}
  return method, batch


@pytest.mark.parametrize("name", sorted(semisupervised.METHODS))
def test_factory_loss_runs_and_evaluates_with_the_ema(name):
  method, batch = _method_and_batch(semisupervised.METHODS[name],
                                    num_ops=1) if name.startswith(
                                        ("fix", "flex", "free", "soft")) else (
                                            _method_and_batch(
                                                semisupervised.METHODS[name]))
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  hparams = {k: jnp.float32(v) for k, v in method.hparams.items()}
  (value, (metrics, new_state)), grads = jax.jit(jax.value_and_grad(
      method.loss, has_aux=True))(params, state, batch, jax.random.key(1),
                                  jnp.int32(0), hparams)
  assert np.isfinite(float(value))
  assert jax.tree.structure(new_state) == jax.tree.structure(state)
  if name in ("fixmatch", "flexmatch", "freematch", "softmatch",
              "fixmatch_mmd", "fixmatch_coral", "fixmatch_lmmd",
              "fixmatch_dann"):
    assert 0.0 <= float(metrics["mask_rate"]) <= 1.0
    assert {"threshold", "threshold_min", "threshold_max"} <= set(metrics)
  # predict uses the EMA kept in the state, not the raw parameters.
  zeros = jax.tree.map(jnp.zeros_like, state["ema"])
  logits = jax.jit(method.predict)(params, {**state, "ema": zeros},
                                   batch["xt"])
  np.testing.assert_allclose(np.asarray(logits), 0.0)
  del grads


@pytest.mark.parametrize("name,loss", [
    ("mmd_align", lambda fs, ft: losses.mk_mmd(fs, ft, "mean:5")),
    ("coral_align", losses.coral)])
def test_alignment_only_methods_align_the_embeddings(name, loss):
  # Without augmentation (pad 0, no flip) and with an MLP without dropout,
  # the aligned features are the network's embeddings of xs and xt.
  method, batch = _method_and_batch(semisupervised.METHODS[name], pad=0)
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  _, (metrics, _) = jax.jit(method.loss)(params, state, batch,
                                         jax.random.key(1), jnp.int32(0),
                                         {"lambda": jnp.float32(1.0)})
  feats = contract.apply_classifier(
      models.get_model("mlp", 10, hidden=(16,)), params, state,
      jnp.concatenate([batch["xs"], batch["xt"]]), train=True,
      rng=jax.random.key(2))[1]["embedding"]
  want = loss(feats[:4], feats[4:])
  np.testing.assert_allclose(float(metrics["align_loss"]), float(want),
                             rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["lmmd_align", "fixmatch_lmmd"])
def test_class_conditional_alignment_weights_target_classes_by_softmax(name):
  # DSAN's class-conditional MMD between the embeddings of xs and of the
  # weak view of xt (the identity here: pad 0, no flip), the target's
  # classes weighted by the softmax of its logits.
  options = {"pad": 0} if name == "lmmd_align" else {"pad": 0, "num_ops": 1}
  method, batch = _method_and_batch(semisupervised.METHODS[name], **options)
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  hparams = {k: jnp.float32(v) for k, v in method.hparams.items()}
  _, (metrics, _) = jax.jit(method.loss)(params, state, batch,
                                         jax.random.key(1), jnp.int32(0),
                                         hparams)
  logits, feats = contract.apply_classifier(
      models.get_model("mlp", 10, hidden=(16,)), params, state,
      jnp.concatenate([batch["xs"], batch["xt"]]), train=True,
      rng=jax.random.key(2))[:2]
  emb = feats["embedding"]
  want = losses.class_conditional_mmd(
      emb[:4], emb[4:], batch["ys"], jax.nn.softmax(logits[4:], -1), 10,
      sigmas="mean:5")
  np.testing.assert_allclose(float(metrics["align_loss"]), float(want),
                             rtol=1e-5, atol=1e-7)
  # Not the marginal MMD: the class weights change the value.
  assert abs(float(want) - float(losses.mk_mmd(emb[:4], emb[4:],
                                               "mean:5"))) > 1e-4


@pytest.mark.parametrize("name", ["dann_align", "fixmatch_dann"])
def test_dann_alignment_reverses_the_domain_gradient(name):
  # The domain classifier gets the gradient of DANN's domain loss on the
  # embeddings of xs and of the weak view of xt (the identity: pad 0); the
  # network gets it reversed and scaled by lambda (at the end of the ramp).
  options = {"pad": 0} if name == "dann_align" else {"pad": 0, "num_ops": 1}
  method, batch = _method_and_batch(semisupervised.METHODS[name], **options)
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  assert set(params) == {"model", "discriminator"}
  assert set(state["ema"]) == set(params["model"])  # no EMA of the classifier
  model = models.get_model("mlp", 10, hidden=(16,))
  rng, step = jax.random.key(1), jnp.int32(10)

  @jax.jit
  def grads(lam):
    hparams = {k: jnp.float32(v) for k, v in method.hparams.items()}
    hparams["lambda"] = jnp.float32(lam)
    return jax.grad(lambda p: method.loss(p, state, batch, rng, step,
                                          hparams)[0])(params)

  def domain_loss(p):
    emb = contract.apply_classifier(
        model, p, state, jnp.concatenate([batch["xs"], batch["xt"]]),
        train=True, rng=jax.random.key(2))[1]["embedding"]
    d = semisupervised.DANN_DISCRIMINATOR.apply(
        {"params": p["discriminator"]}, emb, train=True,
        rngs={"dropout": jax.random.fold_in(rng, 1)})
    return losses.dann_domain_loss(d[:4], d[4:])

  if name == "dann_align":
    _, (metrics, _) = jax.jit(method.loss)(params, state, batch, rng, step,
                                           {"lambda": jnp.float32(1.0)})
    np.testing.assert_allclose(float(metrics["align_loss"]),
                               float(jax.jit(domain_loss)(params)), rtol=1e-5)
  g_dom = jax.jit(jax.grad(domain_loss))(params)
  g0, g2 = grads(0.0), grads(2.0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-6),
               g2["discriminator"], g_dom["discriminator"])
  jax.tree.map(lambda a, b, c: np.testing.assert_allclose(
      a - b, -2.0 * c, rtol=1e-3, atol=1e-5),
               g2["model"], g0["model"], g_dom["model"])


def test_ema_update_and_threshold_state_carried():
  method, batch = _method_and_batch(semisupervised.freematch, num_ops=1)
  params, state = jax.jit(method.init)(jax.random.key(0), batch)
  hparams = {k: jnp.float32(v) for k, v in method.hparams.items()}
  _, (_, new_state) = jax.jit(method.loss)(params, state, batch,
                                           jax.random.key(1), jnp.int32(0),
                                           hparams)
  assert float(new_state["threshold"]["tau"]) != float(
      state["threshold"]["tau"])
  # EMA of identical parameters stays put.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7),
               new_state["ema"], params["model"])


def test_bad_method_options():
  model = models.get_model("mlp", 10, hidden=(16,))
  kw = dict(model=model, num_classes=10, total_steps=10)
  with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
    semisupervised.fixmatch(**kw, tau=1.5)
  with pytest.raises(ValueError, match=r"must lie in \(0, 1\)"):
    semisupervised.pseudo_label(**kw, tau=0.0)
  with pytest.raises(ValueError, match="Unknown threshold"):
    semisupervised.fixmatch(**kw, threshold="adaptive")
  with pytest.raises(ValueError, match="Unknown align"):
    semisupervised.fixmatch(**kw, align="mmmd")
  with pytest.raises(ValueError, match="ema_decay"):
    semisupervised.supervised(**kw, ema_decay=1.0)
  with pytest.raises(ValueError, match=r"align_rampup must lie in \[0, 1\].*1.5"):
    semisupervised.mmd_align(**kw, align_rampup=1.5)
  with pytest.raises(ValueError, match="Unknown align 'none'"):
    semisupervised.mmd_align(**kw, align="none")


def test_alignment_weight_ramps_up():
  ramp = semisupervised._align_ramp  # pylint: disable=protected-access
  values = [float(ramp(jnp.int32(s), 100, 0.2)) for s in (0, 10, 20, 50)]
  np.testing.assert_allclose(values, [np.exp(-5.0), np.exp(-1.25), 1.0, 1.0],
                             rtol=1e-6)
  assert ramp(jnp.int32(0), 100, 0.0) == 1.0


_CONFIGS = ["supervised", "fully_supervised", "label_spreading",
            "pseudo_label", "mean_teacher", "ssda_supervised", "ssda_mmd", "ssda_coral",
            "ssda_lmmd", "ssda_dann"]
_STRONG = ["fixmatch", "flexmatch", "freematch", "softmatch",
           "ssda_fixmatch", "ssda_fixmatch_mmd", "ssda_fixmatch_coral",
           "ssda_fixmatch_lmmd", "ssda_fixmatch_dann"]


@pytest.mark.parametrize("name", _CONFIGS + [
    pytest.param(n, marks=pytest.mark.slow) for n in _STRONG])
def test_quick_config_runs(name, tmp_path):
  module = importlib.import_module(
      f"experiments.configs.semisupervised.{name}")
  config = module.get_config("quick")
  config.steps = 2
  config.log_every = config.eval_every = config.checkpoint_every = 2
  result = train.run_experiment(config, tmp_path)
  assert 0.0 <= result["target_accuracy"] <= 100.0
  assert result["labels_per_class"] == (-1 if name == "fully_supervised"
                                        else 2)
  with open(tmp_path / "result.json") as f:
    stored = json.load(f)
  assert stored["target_accuracy"] == result["target_accuracy"]
  if name != "label_spreading":
    records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
    train_keys = set().union(*(r for r in records if r["type"] == "train"))
    if name in _STRONG:
      assert {"mask_rate", "threshold"} <= train_keys
  # The same config again returns the stored result.
  assert train.run_experiment(config, tmp_path) == stored


def test_config_arguments():
  fixmatch = importlib.import_module(
      "experiments.configs.semisupervised.fixmatch")
  c = fixmatch.get_config("labels=10+mu=7+tau=0.9")
  assert c.labels_per_class == 10 and c.target_batch_size == 7 * c.batch_size
  assert c.method.tau == pytest.approx(0.9)
  ssda = importlib.import_module(
      "experiments.configs.semisupervised.ssda_fixmatch_mmd").get_config(
          "labels=1")
  assert ssda.target_labeled_per_class == 1
  # The alignment weight, for every semi-supervised DA method that aligns.
  model = models.get_model("mlp", 10, hidden=(16,))
  for name in ("ssda_fixmatch_coral", "ssda_coral", "ssda_mmd", "ssda_lmmd",
               "ssda_dann", "ssda_fixmatch_dann"):
    c = importlib.import_module(
        f"experiments.configs.semisupervised.{name}").get_config(
            "labels=4+lambda=0.3")
    method = contract.call_factory(
        methods.get_method(c.method.name),
        {k: v for k, v in c.method.items() if k != "name"},
        model=model, num_classes=10, total_steps=10)
    assert float(method.hparams["lambda"]) == pytest.approx(0.3), name
  with pytest.raises(ValueError, match="unknown option 'tua'"):
    fixmatch.get_config("tua=0.9")
  with pytest.raises(ValueError, match="expected 'quick'"):
    fixmatch.get_config("fast")


def test_confidence_threshold_is_a_hyper_parameter():
  model = models.get_model("mlp", 10, hidden=(16,))
  kw = dict(model=model, num_classes=10, total_steps=10)
  assert semisupervised.fixmatch(**kw, tau=0.9).hparams["tau"] == 0.9
  assert semisupervised.flexmatch(**kw, tau=0.8).hparams["tau"] == 0.8
  assert semisupervised.pseudo_label(**kw, tau=0.7).hparams["tau"] == 0.7
  assert "tau" not in semisupervised.freematch(**kw).hparams
  assert "tau" not in semisupervised.softmatch(**kw).hparams


@pytest.mark.slow
def test_runs_differing_in_the_threshold_train_as_one_program(tmp_path):
  """Two pseudo-labelling runs with other thresholds, trained as one vmapped
  program, end where each run trained alone ends."""
  from tlax.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  from tlax.train import many_runs  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(
      "experiments.configs.semisupervised.pseudo_label")
  configs = []
  for tau in (0.95, 0.05):  # 0.05 < 1/C: every pseudo-label counts
    c = module.get_config("quick")
    c.steps = c.eval_every = c.checkpoint_every = 3
    c.log_every = 1
    c.method.tau = tau
    c.method.rampup = 0.0  # the pseudo-label loss counts from the first step
    configs.append(c)
  alone = [train.run_experiment(c, tmp_path / "alone" / str(i))
           for i, c in enumerate(configs)]
  group = many_runs.train_many(
      configs, [tmp_path / "group" / str(i) for i in range(2)])
  masks = []
  for i in range(2):
    states = []
    for kind in ("alone", "group"):
      m = ckpt_lib.read_only_manager(str(tmp_path / kind / str(i) /
                                         "checkpoints"))
      states.append(ckpt_lib.restore_state_numpy(m, m.latest_step()))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(
        a, b, rtol=1e-5, atol=1e-6), states[0]["params"], states[1]["params"])
    np.testing.assert_allclose(alone[i]["target_accuracy"],
                               group[i]["target_accuracy"], atol=1.0)
    records = [json.loads(l) for l in open(tmp_path / "group" / str(i) /
                                           "metrics.jsonl")]
    masks.append([r["mask_rate"] for r in records if r["type"] == "train"])
  # The thresholds did act differently in the two runs.
  assert masks[0] == [0.0] * 3 and masks[1] == [1.0] * 3
