"""Deep domain-adaptation methods: a few steps of every method on tiny data,
instance weights, gradient reversal, method state, configs.

Tiny random batches and tiny networks, every loss under ``jax.jit``; the
image-specific networks (DSN's encoders/decoder, PixelDA's generator and
critic) also run once on 8x8 images.
"""

import importlib
import inspect

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax import losses
from tlax import methods
from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks
from tlax.methods import pixelda
from tlax.models import get_model

DEEP_METHODS = ("ddc", "dan", "jan", "coral", "cmd", "ddan", "dann", "cdan",
                "cdan_e", "mdd", "sdt", "dsn", "pixelda")
NUM_CLASSES = 3
# Small extra networks so that the tests compile fast.
SMALL = {"disc_hidden": (16,), "gen_features": 4, "gen_blocks": 1,
         "critic_features": (4, 4), "critic_hidden": (8,),
         "private_hidden": (8,), "decoder_hidden": (8,)}


def make_method(name, model=None, total_steps=10, **options):
  model = model or get_model("mlp", NUM_CLASSES, hidden=(16,))
  factory = methods.get_method(name)
  takes = inspect.signature(factory).parameters
  small = {k: v for k, v in SMALL.items() if k in takes}
  return contract.call_factory(factory, {**small, **options}, model=model,
                               num_classes=NUM_CLASSES,
                               total_steps=total_steps)


def make_batch(shape=(8, 5), seed=0, labelled=0):
  r = np.random.RandomState(seed)
  n = shape[0]
  batch = {"xs": r.randn(*shape).astype(np.float32),
           "ys": np.arange(n, dtype=np.int32) % NUM_CLASSES,
           "ws": np.ones(n, np.float32),
           "xt": (r.randn(*shape) + 1.0).astype(np.float32)}
  if labelled:
    batch["xtl"] = r.randn(labelled, *shape[1:]).astype(np.float32)
    batch["ytl"] = np.arange(labelled, dtype=np.int32) % NUM_CLASSES
  return batch


def hparams_of(method, **override):
  hp = {k: jnp.float32(v) for k, v in method.hparams.items()}
  hp.update({k: jnp.float32(v) for k, v in override.items()})
  return hp


def loss_and_grad(method):
  """The jitted value-and-grad of ``method.loss``."""
  return jax.jit(jax.value_and_grad(method.loss, has_aux=True))


def tree_norm(t):
  return float(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(t)))


@pytest.fixture(scope="module")
def mlp_setups():
  """(method, params, state, batch) per method, on a tiny MLP."""
  out = {}
  for name in DEEP_METHODS:
    m = make_method(name)
    batch = make_batch()
    params, state = jax.jit(m.init)(jax.random.key(0), batch)
    out[name] = (m, params, state, batch)
  return out


def test_all_methods_registered():
  assert set(DEEP_METHODS) <= set(methods.METHODS)


@pytest.mark.parametrize("name", DEEP_METHODS)
def test_few_steps_reduce_loss_and_keep_state_structure(name, mlp_setups):
  m, params, state, batch = mlp_setups[name]
  hp = hparams_of(m)
  f = loss_and_grad(m)
  first = None
  for step in range(5):
    (loss, (metrics, new_state)), grads = f(params, state, batch,
                                            jax.random.key(step),
                                            jnp.int32(step + 5), hp)
    assert np.isfinite(float(loss)), (name, metrics)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    for k in ("loss", "cls_loss", "source_acc"):
      assert k in metrics and np.isfinite(float(metrics[k])), (name, k)
    # Every trainable network gets a gradient.
    for part, g in grads.items():
      assert tree_norm(g) > 0, (name, part)
    first = float(metrics["cls_loss"]) if first is None else first
    params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
    state = new_state
  assert float(metrics["cls_loss"]) < first, name


@pytest.mark.parametrize("name", DEEP_METHODS)
def test_instance_weights_enter_the_classification_loss(name, mlp_setups):
  """v_i scale the source risk; v = 0 (and no alignment) gives no gradient."""
  m, params, state, batch = mlp_setups[name]
  f = loss_and_grad(m)
  key, step = jax.random.key(0), jnp.int32(5)
  hp = hparams_of(m)
  cls = lambda b: float(f(params, state, b, key, step, hp)[0][1][0][
      "cls_loss"])
  base = cls(batch)
  assert cls({**batch, "ws": 2 * batch["ws"]}) == pytest.approx(2 * base,
                                                                rel=1e-5)
  assert cls({**batch, "ws": 0 * batch["ws"]}) == pytest.approx(0, abs=1e-7)
  # All alignment weights 0: the classifier's gradient is the source risk's.
  hp0 = {k: (jnp.float32(1.0) if k == "temperature" else jnp.float32(0.0))
         for k in m.hparams}
  zero = {**batch, "ws": np.zeros_like(batch["ws"])}
  (_, _), g0 = f(params, state, zero, key, step, hp0)
  (_, _), g1 = f(params, state, batch, key, step, hp0)
  assert tree_norm(g0["model"]) < 1e-12, name
  assert tree_norm(g1["model"]) > 1e-6, name


def test_labelled_target_examples_add_a_supervised_term():
  m = make_method("dan")
  batch = make_batch(labelled=3)
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  f = loss_and_grad(m)
  hp = hparams_of(m)
  with_tl = f(params, state, batch, jax.random.key(0), jnp.int32(1), hp)
  no_tl = f(params, state, {k: v for k, v in batch.items()
                            if k not in ("xtl", "ytl")},
            jax.random.key(0), jnp.int32(1), hp)
  assert float(with_tl[0][1][0]["cls_loss"]) > float(
      no_tl[0][1][0]["cls_loss"])


@pytest.mark.parametrize("name", ("dann", "cdan_e"))
def test_gradient_reversal_features_ascend_discriminator_descends(name):
  """The domain loss goes up along the classifier's gradient step and down
  along the discriminator's, and the reversed gradient scales with lambda."""
  m = make_method(name, disc_dropout=0.0)
  batch = {**make_batch(), "ws": np.zeros(8, np.float32)}  # domain loss only
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  f = loss_and_grad(m)
  key, step = jax.random.key(0), jnp.int32(10)  # end of the ramp
  hp1, hp2 = hparams_of(m, **{"lambda": 1.0}), hparams_of(m, **{"lambda": 2.0})
  (l0, (met, _)), g1 = f(params, state, batch, key, step, hp1)
  (_, _), g2 = f(params, state, batch, key, step, hp2)
  # Linear in lambda for the features, independent of it for D.
  for a, b in zip(jax.tree.leaves(g1["model"]), jax.tree.leaves(g2["model"])):
    np.testing.assert_allclose(2 * a, b, rtol=1e-4, atol=1e-7)
  for a, b in zip(jax.tree.leaves(g1["discriminator"]),
                  jax.tree.leaves(g2["discriminator"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)
  assert float(met["align_weight"]) == pytest.approx(
      float(common.dann_ramp(10, 10)))

  def dom_loss(p):
    return float(f(p, state, batch, key, step, hp1)[0][1][0]["align_loss"])

  eps = 1e-2
  step_model = {**params, "model": jax.tree.map(lambda p, g: p - eps * g,
                                                params["model"], g1["model"])}
  step_disc = {**params, "discriminator": jax.tree.map(
      lambda p, g: p - eps * g, params["discriminator"],
      g1["discriminator"])}
  assert dom_loss(step_model) > float(met["align_loss"])
  assert dom_loss(step_disc) < float(met["align_loss"])


def test_cdan_randomized_map_state():
  big = get_model("mlp", NUM_CLASSES, hidden=(2048,))
  m = make_method("cdan", model=big)
  params, state = m.init(jax.random.key(0), make_batch())
  assert state["cdan_projection"]["features"].shape == (2048, 1024)
  small = make_method("cdan")
  _, state = small.init(jax.random.key(0), make_batch())
  assert "cdan_projection" not in state


def test_ddan_carries_the_mu_estimator():
  m, = [make_method("ddan")]
  batch = make_batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  f = loss_and_grad(m)
  (_, (metrics, new_state)), _ = f(params, state, batch, jax.random.key(0),
                                   jnp.int32(3), hparams_of(m))
  assert 0.0 <= float(metrics["mu"]) <= 1.0
  before = state["mu_estimator"]["w_global"]
  after = new_state["mu_estimator"]["w_global"]
  assert float(jnp.sum(jnp.abs(after - before))) > 0


def test_sdt_soft_labels_are_per_class_source_averages():
  m = make_method("sdt")
  batch = make_batch(labelled=3)
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  f = loss_and_grad(m)
  (_, (metrics, new_state)), _ = f(params, state, batch, jax.random.key(0),
                                   jnp.int32(3), hparams_of(m))
  logits = m.predict(params, state, batch["xs"])
  p = jax.nn.softmax(logits / 2.0)
  for c in range(NUM_CLASSES):
    np.testing.assert_allclose(new_state["soft_labels"][c],
                               p[batch["ys"] == c].mean(0), rtol=1e-4,
                               atol=1e-6)
  assert float(metrics["soft_label_loss"]) > 0


@pytest.mark.parametrize("name", ("dsn", "pixelda", "dann"))
def test_image_networks(name):
  model = get_model("lenet", NUM_CLASSES, conv_features=(4, 4), hidden=(8,))
  m = make_method(name, model=model)
  batch = make_batch(shape=(4, 8, 8, 1))
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  (loss, (metrics, _)), grads = loss_and_grad(m)(
      params, state, batch, jax.random.key(1), jnp.int32(2), hparams_of(m))
  assert np.isfinite(float(loss))
  for part, g in grads.items():
    assert tree_norm(g) > 0, (name, part)
  if name == "pixelda":
    fake = pixelda.generate(params, jnp.asarray(batch["xs"]),
                            jax.random.key(0), gen_features=4, gen_blocks=1)
    assert fake.shape == batch["xs"].shape


def test_networks_shapes():
  x = jnp.ones((2, 8, 8, 3))
  dec = networks.SharedDecoder(out_shape=(7, 9, 3))
  out, _ = dec.init_with_output(jax.random.key(0), jnp.ones((2, 5)))
  assert out.shape == (2, 7, 9, 3)
  disc = networks.DomainDiscriminator(hidden=(4,), num_outputs=2)
  out, _ = disc.init_with_output(jax.random.key(0), x)
  assert out.shape == (2, 2)
  enc = networks.PrivateEncoder(code_dim=6)
  out, _ = enc.init_with_output(jax.random.key(0), jnp.ones((2, 10)))
  assert out.shape == (2, 6)


@pytest.mark.parametrize("name", DEEP_METHODS)
def test_config_files(name):
  mod = importlib.import_module(f"experiments.configs.{name}")
  cfg = mod.get_config()
  quick = mod.get_config("quick")
  assert cfg.method.name == name == quick.method.name
  assert quick.steps <= 20
  defaults = make_method(name).hparams  # the factory's own defaults
  assert defaults
  for key, value in defaults.items():
    assert cfg.method[key] == pytest.approx(value), (name, key)
  with pytest.raises(ValueError):
    mod.get_config("nonsense")


def test_unknown_layer_is_named():
  m = make_method("ddc", layers=("nope",))
  batch = make_batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  with pytest.raises(KeyError, match="nope"):
    m.loss(params, state, batch, jax.random.key(0), jnp.int32(0),
           hparams_of(m))


def test_losses_are_the_library_functions():
  """DDC (biased) is exactly tlax.losses.linear_mmd of the embeddings."""
  m = make_method("ddc", loss="linear_mmd", loss_kwargs={})
  batch = make_batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  _, (metrics, _) = m.loss(params, state, batch, jax.random.key(0),
                           jnp.int32(0), hparams_of(m))
  fs = m.features(params, state, batch["xs"])["embedding"]
  ft = m.features(params, state, batch["xt"])["embedding"]
  assert float(metrics["align_loss"]) == pytest.approx(
      float(losses.linear_mmd(fs, ft)), rel=1e-5)


def test_ddc_default_is_the_unbiased_linear_mmd():
  m = make_method("ddc")
  batch = make_batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  _, (metrics, _) = m.loss(params, state, batch, jax.random.key(0),
                           jnp.int32(0), hparams_of(m))
  fs = m.features(params, state, batch["xs"])["embedding"]
  ft = m.features(params, state, batch["xt"])["embedding"]
  assert float(metrics["align_loss"]) == pytest.approx(
      float(losses.mmd(fs, ft, kernel="linear", estimator="unbiased")),
      rel=1e-5)


@pytest.mark.parametrize("name,ramped", (("dann", True), ("cdan", True),
                                         ("jan", True), ("coral", False), ("sdt", False),
                                         ("dsn", True)))
def test_align_start_holds_alignment_off_then_ramps(name, ramped):
  """``align_start`` = s: the alignment weight is 0 for steps < s, then the
  ramp over the remaining steps (or 1 for unramped methods); the default
  s = 0 is the plain schedule."""
  total, start = 20, 8
  m0 = make_method(name, total_steps=total)
  m = make_method(name, total_steps=total, align_start=start)
  batch = make_batch()
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  f = loss_and_grad(m)
  f0 = loss_and_grad(m0)
  hp = hparams_of(m)
  scale = float(hp.get("gamma", hp.get("lambda", 1.0)))

  def weight(fn, step):
    (_, (met, _)), _ = fn(params, state, batch, jax.random.key(1),
                          jnp.int32(step), hp)
    return float(met["align_weight"]) / scale

  for step in (0, 3, start - 1):
    assert weight(f, step) == 0.0
  for step in (start, 12, total):
    p = (step - start) / (total - start)
    want = 2 / (1 + np.exp(-10 * p)) - 1 if ramped else 1.0
    assert weight(f, step) == pytest.approx(want, abs=1e-6)
  p0 = 5 / total
  want0 = 2 / (1 + np.exp(-10 * p0)) - 1 if ramped else 1.0
  assert weight(f0, 5) == pytest.approx(want0, abs=1e-6)


@pytest.mark.parametrize("bad", (-1, 20, 2.5, True))
def test_align_start_rejects_bad_values(bad):
  with pytest.raises(ValueError, match="align_start"):
    make_method("dann", total_steps=20, align_start=bad)
  with pytest.raises(ValueError, match="align_start"):
    common.alignment_schedule(0, 20, bad)


def _forward_both(model, params, state, batch, mode):
  classify = common.classifier_fn(model)

  def f(p):
    out, new_state = common.forward_domains(classify, p, state, batch,
                                            jax.random.key(3), mode=mode)
    (ls, fs), (lt, ft) = out["s"], out["t"]
    value = (jnp.sum(jnp.tanh(ls)) + jnp.sum(lt ** 2)
             + sum(jnp.sum(jnp.sin(v)) for v in ft.values()))
    return value, (out, new_state)
  return jax.jit(jax.value_and_grad(f, has_aux=True))(params)


def test_forward_domains_split_equals_concat_without_batch_statistics():
  """Split (one call per domain) and concat give the same outputs and
  gradients for a network without BatchNorm; ``auto`` is split on every
  backend."""
  model = get_model("lenet", NUM_CLASSES, conv_features=(4, 6), hidden=(8,))
  m = make_method("dann", model=model)
  batch = make_batch(shape=(4, 8, 8, 1), labelled=2)
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  assert not state["model"]
  (v1, (o1, _)), g1 = _forward_both(model, params, state, batch, "concat")
  (v2, (o2, _)), g2 = _forward_both(model, params, state, batch, "split")
  assert sorted(o1) == sorted(o2) == ["s", "t", "tl"]
  for key in o1:
    np.testing.assert_allclose(o1[key][0], o2[key][0], rtol=1e-5, atol=1e-6)
    for name in o1[key][1]:
      np.testing.assert_allclose(o1[key][1][name], o2[key][1][name],
                                 rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(v1, v2, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-5), g1, g2)
  assert common.resolve_forward_mode("auto", state) == "split"


class _BatchNormNet(nn.Module):
  """Dense -> BatchNorm -> ReLU -> head: the smallest model with batch stats."""

  @nn.compact
  def __call__(self, x, *, train=False):
    h = nn.Dense(6)(x.reshape(x.shape[0], -1))
    h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
    return nn.Dense(NUM_CLASSES, name="head")(h), {"fc1": h, "embedding": h}


def test_forward_domains_keeps_one_call_for_batchnorm_models():
  """With BatchNorm the joint call is what DAN/DANN do (statistics over both
  domains); ``auto`` keeps it, and ``split`` really differs."""
  model = _BatchNormNet()
  m = make_method("dann", model=model)
  classify = common.classifier_fn(model)
  batch = make_batch()
  batch["xt"] = batch["xt"] * 3.0  # another scale: per-domain stats differ
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  assert state["model"]
  assert common.resolve_forward_mode("auto", state) == "concat"
  forward = jax.jit(
      lambda mode: common.forward_domains(classify, params, state, batch,
                                          jax.random.key(3), mode=mode),
      static_argnums=0)
  auto_out, auto_state = forward("auto")
  cat_out, cat_state = forward("concat")
  split_out, _ = forward("split")
  np.testing.assert_array_equal(auto_out["t"][0], cat_out["t"][0])
  jax.tree.map(np.testing.assert_array_equal, auto_state, cat_state)
  assert not np.allclose(split_out["t"][0], cat_out["t"][0], atol=1e-3)


def test_forward_domains_unknown_mode_is_named():
  with pytest.raises(ValueError, match="Unknown forward mode 'both'"):
    common.resolve_forward_mode("both", {"model": {}})
