"""Safe transfer: triggers, PGD, defect inheritance rates, the
defect-reducing methods and the runner (quick runs on embedded data)."""

import copy
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from jax import test_util as jtu

from experiments.configs.safe import transfer as safe_config
from tlax import methods
from tlax.methods import safe
from tlax.models import lenet
from tlax.safety import attacks
from tlax.safety import runner
from tlax.transfer import params as transfer


# --------------------------------------------------------------------------
# The trigger and poisoning.
# --------------------------------------------------------------------------
def test_trigger_is_stamped_exactly():
  x = np.full((2, 6, 6, 1), 0.5, np.float32)
  out = np.asarray(attacks.apply_trigger(x, 2, "bottom_right", margin=1))
  want = x.copy()
  want[:, 3:5, 3:5, 0] = [[1, 0], [0, 1]]
  np.testing.assert_array_equal(out, want)
  out = np.asarray(attacks.apply_trigger(x[..., 0], 3, "top_left", margin=0))
  want = x[..., 0].copy()
  want[:, 0:3, 0:3] = [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
  np.testing.assert_array_equal(out, want)
  rgb = np.zeros((1, 5, 5, 3), np.float32)
  out = np.asarray(attacks.apply_trigger(rgb, 1, "top_right", margin=1))
  assert out.sum() == 3 and (out[0, 1, 3] == 1).all()


def test_trigger_larger_than_the_image_is_refused():
  with pytest.raises(ValueError, match=r"trigger_size=8 .*larger than the "
                     r"8x8 images"):
    attacks.apply_trigger(np.zeros((1, 8, 8, 1)), 8, margin=1)
  with pytest.raises(ValueError, match="trigger_position"):
    attacks.apply_trigger(np.zeros((1, 8, 8)), 2, "middle")


def test_poison_relabels_exactly_the_poisoned_fraction():
  x = np.zeros((8, 6, 6, 1), np.float32)
  y = np.arange(8) % 4
  xp, yp, mask = attacks.poison(x, y, poison_rate=0.25, target_class=3,
                                num_classes=4, size=2, seed=1)
  assert mask.sum() == 2
  assert (yp[mask] == 3).all() and (yp[~mask] == y[~mask]).all()
  assert (xp[~mask] == 0).all()
  np.testing.assert_array_equal(
      xp[mask], attacks.apply_trigger(x[mask], 2))
  for rate in (-0.1, 1.5, float("nan")):
    with pytest.raises(ValueError, match=r"poison_rate=.* must be in \[0, 1\]"):
      attacks.poison(x, y, poison_rate=rate, target_class=0, num_classes=4,
                     size=2)
  with pytest.raises(ValueError, match="target_class=4"):
    attacks.poison(x, y, poison_rate=0.1, target_class=4, num_classes=4,
                   size=2)


# --------------------------------------------------------------------------
# PGD.
# --------------------------------------------------------------------------
def _linear_problem():
  rng = np.random.default_rng(0)
  w = jnp.asarray(rng.normal(size=(12, 3)), jnp.float32)
  x = jnp.asarray(rng.uniform(0.2, 0.8, size=(5, 12)), jnp.float32)
  y = jnp.asarray(np.argmax(np.asarray(x @ w), -1), jnp.int32)
  return w, x, y


def test_pgd_stays_in_the_ball_and_increases_the_loss():
  w, x, y = _linear_problem()
  objective = attacks.cross_entropy_objective(lambda z: z @ w, y)
  eps = 0.05
  adv = jax.jit(lambda x, k: attacks.pgd(
      objective, x, eps=eps, step_size=0.02, steps=10, rng=k))(
          x, jax.random.key(0))
  assert float(jnp.max(jnp.abs(adv - x))) <= eps + 1e-6
  assert float(jnp.min(adv)) >= 0.0 and float(jnp.max(adv)) <= 1.0
  assert (np.asarray(objective(adv)) > np.asarray(objective(x))).all()
  # The optimum of a linear CE attack in an L_inf ball is a corner: from the
  # clean point PGD without a random start reaches x + eps * sign(grad).
  adv0 = attacks.pgd(objective, x, eps=eps, step_size=eps, steps=1)
  g = jax.grad(lambda v: jnp.sum(objective(v)))(x)
  np.testing.assert_allclose(adv0, np.clip(x + eps * np.sign(g), 0, 1),
                             atol=1e-6)


def test_pgd_vmaps_over_eps_and_clips():
  w, x, y = _linear_problem()
  objective = attacks.cross_entropy_objective(lambda z: z @ w, y)
  eps = jnp.array([0.0, 0.1, 0.3])
  advs = jax.vmap(lambda e: attacks.pgd(objective, x, eps=e, step_size=0.1,
                                        steps=5))(eps)
  for a, e in zip(advs, eps):
    assert float(jnp.max(jnp.abs(a - x))) <= float(e) + 1e-6
  np.testing.assert_array_equal(advs[0], x)
  losses = [float(jnp.mean(objective(a))) for a in advs]
  assert losses[0] < losses[1] < losses[2]


def test_feature_objective_is_zero_at_the_clean_input():
  w, x, _ = _linear_problem()
  objective = attacks.feature_objective(lambda z: jnp.tanh(z @ w), x)
  np.testing.assert_allclose(objective(x), 0.0, atol=1e-12)
  adv = attacks.pgd(objective, x, eps=0.05, step_size=0.02, steps=5,
                    rng=jax.random.key(1))
  assert (np.asarray(objective(adv)) > 0).all()


# --------------------------------------------------------------------------
# Defect inheritance rates.
# --------------------------------------------------------------------------
def test_attack_success_rate_on_hand_made_predictions():
  labels = np.array([0, 1, 2, 3, 1])
  triggered = np.array([0, 0, 2, 0, 1])   # target 0: 2 of the 4 non-0 hit
  assert attacks.attack_success_rate(triggered, labels, 0) == 50.0
  assert np.isnan(attacks.attack_success_rate([0, 0], [0, 0], 0))


def test_adversarial_inheritance_rate_on_hand_made_predictions():
  labels = np.array([0, 1, 2, 3])
  clean = np.array([0, 1, 2, 0])           # 3 right
  adv = np.array([1, 1, 0, 3])             # 2 of those 3 flipped
  assert attacks.adversarial_inheritance_rate(clean, adv, labels) == \
      pytest.approx(200 / 3)
  assert np.isnan(attacks.adversarial_inheritance_rate([1], [1], [0]))


def test_mapped_target_class():
  assert attacks.mapped_target_class([4, 4, 1, 4, 2], 6) == 4
  assert attacks.mapped_target_class([3, 1, 3, 1], 6) == 1  # ties: smallest


# --------------------------------------------------------------------------
# Methods.
# --------------------------------------------------------------------------
def test_feature_map_distance_numpy_reference_and_grads():
  rng = np.random.default_rng(0)
  s = rng.normal(size=(3, 4, 4, 5))
  t = rng.normal(size=(3, 4, 4, 5))
  w = np.asarray(safe.attention_weights(jnp.asarray(rng.normal(size=(3, 5)))))
  want = np.einsum("nc,nc->n", w, ((s - t) ** 2).sum((1, 2)))
  got = safe.feature_map_distance(jnp.asarray(s, jnp.float32),
                                  jnp.asarray(t, jnp.float32),
                                  jnp.asarray(w, jnp.float32))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
  jtu.check_grads(lambda a: safe.feature_map_distance(
      a, jnp.asarray(t), jnp.asarray(w)), (jnp.asarray(s),), order=1,
                  modes=("rev",), atol=1e-2, rtol=1e-2)


def test_magnitude_and_relevance_masks_numpy_reference():
  w = jnp.asarray([[0.1, -0.5], [2.0, -0.05], [0.3, 1.0]])
  np.testing.assert_array_equal(safe.magnitude_mask(w, 0.5),
                                [[0, 1], [1, 0], [0, 1]])
  cov = jnp.asarray([10.0, 0.0, 1.0])   # input 1 never active
  score = np.abs(np.asarray(w)) * np.asarray(cov)[:, None]
  keep = np.asarray(safe.relevance_mask(w, cov, 0.5))
  assert keep.sum() == 3
  np.testing.assert_array_equal(keep, score >= np.sort(score.ravel())[3])
  assert keep[1].sum() == 0  # the uncovered neuron's weights are dropped


def _tiny_pretrained():
  model = lenet.LeNet(10, conv_features=(4, 8), hidden=(16,))
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(6, 16, 16, 1)),
                  jnp.float32)
  teacher = jax.jit(model.init)(jax.random.key(42), x)["params"]
  pre = transfer.Pretrained(params=teacher, reinit=("^model/head/",))
  return model, x, teacher, pre


def _distill_case(name, reinit, **options):
  """The distillation method ``name`` on the tiny teacher with ``reinit``
  fresh, a batch of 3 labelled and 6 unlabelled target inputs, and its
  initial parameters and state."""
  model, x, teacher, _ = _tiny_pretrained()
  pre = transfer.Pretrained(params=teacher, reinit=reinit)
  m = methods.get_method(name)(model, 10, total_steps=1, pretrained=pre,
                               **options)
  xt = x[::-1] * 0.5
  batch = {"xs": x, "ys": jnp.zeros(6, jnp.int32), "xtl": x[:3],
           "ytl": jnp.arange(3), "xt": xt}
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  return model, x, xt, teacher, pre, m, batch, params, state


@pytest.mark.slow
def test_remos_keeps_the_relevant_slice_and_reinitialises_the_rest():
  model, x, teacher, pre = _tiny_pretrained()
  m = methods.get_method("remos")(model, 10, total_steps=1, pretrained=pre,
                                  remos_ratio=0.25)
  batch = {"xs": x, "ys": jnp.zeros(6, jnp.int32), "xt": x}
  params, _ = jax.jit(m.init)(jax.random.key(0), batch)
  fresh = model.init({"params": jax.random.split(jax.random.key(0))[0],
                      "dropout": jax.random.split(jax.random.key(0))[0]},
                     x)["params"]
  for layer in ("conv1", "conv2", "fc1"):
    w = np.asarray(params["model"][layer]["kernel"])
    t = np.asarray(teacher[layer]["kernel"])
    f = np.asarray(fresh[layer]["kernel"])
    from_teacher = w == t
    assert abs(from_teacher.mean() - 0.25) < 0.05, layer
    np.testing.assert_array_equal(w[~from_teacher], f[~from_teacher])
    np.testing.assert_array_equal(params["model"][layer]["bias"],
                                  teacher[layer]["bias"])
  with pytest.raises(ValueError, match="remos_ratio"):
    methods.get_method("remos")(model, 10, total_steps=1, pretrained=pre,
                                remos_ratio=0.0)


@pytest.mark.slow
def test_magnitude_prune_keeps_pruned_weights_at_zero():
  model, x, teacher, pre = _tiny_pretrained()
  m = methods.get_method("magnitude_prune")(model, 10, total_steps=1,
                                            pretrained=pre, prune_ratio=0.5)
  batch = {"xs": x, "ys": jnp.arange(6) % 10}
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  mask = state["prune_mask"]
  assert abs(float(mask["conv2"]["kernel"].mean()) - 0.5) < 0.05
  assert float(mask["head"]["kernel"].mean()) == 1.0
  # The forward pass equals the teacher with the pruned kernel zeroed.
  masked = jax.tree.map(lambda w, k: w * k, params["model"], mask)
  np.testing.assert_allclose(jax.jit(m.predict)(params, state, x),
                             jax.jit(model.apply)({"params": masked}, x)[0],
                             rtol=1e-6)
  grads = jax.jit(jax.grad(
      lambda p: m.loss(p, state, batch, None, 0, {})[0]))(params)
  g = np.asarray(grads["model"]["conv2"]["kernel"])
  assert (g[np.asarray(mask["conv2"]["kernel"]) == 0] == 0).all()


def test_dormant_mask_prunes_the_least_active_neurons():
  cov = jnp.asarray([0.5, 0.0, 2.0, 0.0, 1.0, 0.1])
  np.testing.assert_array_equal(safe.dormant_mask(cov, 0.5),
                                [1, 0, 1, 0, 1, 0])
  np.testing.assert_array_equal(safe.dormant_mask(cov, 0.0), np.ones(6))


@pytest.mark.slow
def test_fine_prune_removes_the_dormant_neurons_of_the_teacher():
  model, x, teacher, pre = _tiny_pretrained()
  m = methods.get_method("fine_prune")(model, 10, total_steps=1,
                                       pretrained=pre, prune_ratio=0.25,
                                       prune_layers=("^model/head/",))
  batch = {"xs": x, "ys": jnp.zeros(6, jnp.int32), "xt": x}
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  # numpy reference: fc1's outputs (the head's inputs) in the teacher.
  _, feats = model.apply({"params": teacher}, x)
  activity = np.abs(np.asarray(feats["embedding"])).mean(0)
  pruned = np.argsort(activity, kind="stable")[:4]
  rows = np.asarray(state["prune_mask"]["head"]["kernel"])
  assert (rows[pruned] == 0).all() and rows.sum() == 12 * 10
  assert float(state["prune_mask"]["fc1"]["kernel"].min()) == 1.0
  # The pruned neurons do not reach the output, even when they are active.
  masked = jax.tree.map(lambda w, k: w * k, params["model"],
                        state["prune_mask"])
  np.testing.assert_allclose(jax.jit(m.predict)(params, state, x),
                             jax.jit(model.apply)({"params": masked}, x)[0],
                             rtol=1e-6)
  grads = jax.jit(jax.grad(
      lambda p: m.loss(p, state, batch, None, 0, {})[0]))(params)
  assert (np.asarray(grads["model"]["head"]["kernel"])[pruned] == 0).all()
  with pytest.raises(ValueError, match="match no Dense or Conv"):
    m = methods.get_method("fine_prune")(model, 10, total_steps=1,
                                         pretrained=pre,
                                         prune_layers=("^model/fc9/",))
    m.init(jax.random.key(0), batch)
  with pytest.raises(ValueError, match="prune_ratio"):
    methods.get_method("fine_prune")(model, 10, total_steps=1,
                                     pretrained=pre, prune_ratio=1.0)


def test_signed_points_never_read_minus_zero():
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  assert safe_transfer._signed(-0.04) == "+0.0"
  assert safe_transfer._signed(-0.06) == "-0.1"
  assert safe_transfer._signed(1.25) == "+1.2"


@pytest.mark.parametrize("preset,method,reinit", [
    ("clean_distill_head", "clean_distill", ("fc1", "fc2")),
    ("peer_distill", "peer_distill", ("fc1", "fc2", "head")),
    ("peer_distill_head", "peer_distill", ("fc1", "fc2"))])
def test_distillation_presets(preset, method, reinit):
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  c = safe_config.get_config(f"{preset},mnist")
  assert c.method.name == method
  assert tuple(c.finetune.reinit) == tuple(f"^model/{l}/" for l in reinit)
  # A preset that keeps the teacher's head needs the teacher's classes.
  assert (preset in safe_transfer.SAME_LABELS_ONLY) == ("head" not in reinit)


def test_clean_distill_head_keeps_the_teachers_head():
  _, _, _, teacher, _, _, _, params, _ = _distill_case(
      "clean_distill", ("^model/fc1/",), distill_layers=("fc1",))
  np.testing.assert_array_equal(params["model"]["head"]["kernel"],
                                teacher["head"]["kernel"])
  assert not np.allclose(params["model"]["fc1"]["kernel"],
                         teacher["fc1"]["kernel"])


def test_peer_distill_teaches_fresh_layers_a_fine_tuned_peers_outputs():
  model, x, xt, teacher, pre, m, batch, params, state = _distill_case(
      "peer_distill", ("^model/fc1/", "^model/head/"), temperature=2.0)
  # The student's fc1 and head are fresh; the peer is the whole teacher
  # with the student's initial head.
  assert not np.allclose(params["model"]["fc1"]["kernel"],
                         teacher["fc1"]["kernel"])
  np.testing.assert_array_equal(params["peer"]["fc1"]["kernel"],
                                teacher["fc1"]["kernel"])
  np.testing.assert_array_equal(params["peer"]["head"]["kernel"],
                                params["model"]["head"]["kernel"])
  hp = {"distill_weight": jnp.float32(0.5)}
  value, (metrics, _) = jax.jit(m.loss)(params, state, batch, None, 0, hp)
  # numpy reference: both cross-entropies on the labelled inputs, the KL
  # (peer || student) at temperature 2 over labelled and unlabelled inputs.
  inputs = jnp.concatenate([x[:3], xt], 0)
  apply = jax.jit(model.apply)
  s_logits = np.asarray(apply({"params": params["model"]}, inputs)[0],
                        np.float64)
  p_logits = np.asarray(apply({"params": params["peer"]}, inputs)[0],
                        np.float64)

  def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))

  y = np.arange(3)
  ce = -log_softmax(s_logits[:3])[np.arange(3), y].mean()
  peer_ce = -log_softmax(p_logits[:3])[np.arange(3), y].mean()
  lp, ls = log_softmax(p_logits / 2.0), log_softmax(s_logits / 2.0)
  kl = (np.exp(lp) * (lp - ls)).sum(-1).mean() * 4.0
  np.testing.assert_allclose(metrics["cls_loss"], ce, rtol=1e-5)
  np.testing.assert_allclose(metrics["peer_cls_loss"], peer_ce, rtol=1e-5)
  np.testing.assert_allclose(metrics["peer_kl"], kl, rtol=1e-4)
  np.testing.assert_allclose(value, ce + peer_ce + 0.5 * kl, rtol=1e-5)
  # The KL term moves the student only: the peer's gradient is that of its
  # own cross-entropy.
  grads = jax.jit(jax.grad(
      lambda p: m.loss(p, state, batch, None, 0, hp)[0]))(params)
  peer_only = jax.jit(jax.grad(
      lambda p: m.loss(p, state, batch, None, 0, hp)[1][0]["peer_cls_loss"]
  ))(params)
  for a, b in zip(jax.tree.leaves(grads["peer"]),
                  jax.tree.leaves(peer_only["peer"])):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert float(jnp.abs(grads["model"]["fc1"]["kernel"]).sum()) > 0
  # A student equal to its peer has nothing to learn from it.
  same = {**params, "model": params["peer"]}
  _, (metrics, _) = jax.jit(m.loss)(same, state, batch, None, 0, hp)
  assert float(metrics["peer_kl"]) == pytest.approx(0.0, abs=1e-6)
  with pytest.raises(ValueError, match="temperature"):
    methods.get_method("peer_distill")(model, 10, total_steps=1,
                                       pretrained=pre, temperature=0.0)
  with pytest.raises(ValueError, match="source model"):
    methods.get_method("peer_distill")(model, 10, total_steps=1)


def test_clean_distill_pulls_fresh_layers_to_the_teachers_features():
  model, x, xt, teacher, pre, m, batch, params, state = _distill_case(
      "clean_distill", ("^model/fc1/", "^model/head/"),
      distill_layers=("fc1",))
  assert not np.allclose(params["model"]["fc1"]["kernel"],
                         teacher["fc1"]["kernel"])
  hp = {"distill_weight": jnp.float32(2.0)}
  value, (metrics, _) = jax.jit(m.loss)(params, state, batch, None, 0, hp)
  # numpy reference over the labelled and the unlabelled inputs.
  inputs = jnp.concatenate([x[:3], xt], 0)
  apply = jax.jit(model.apply)
  _, f_s = apply({"params": params["model"]}, inputs)
  _, f_t = apply({"params": teacher}, inputs)
  want = np.mean((np.asarray(f_s["fc1"]) - np.asarray(f_t["fc1"])) ** 2)
  np.testing.assert_allclose(metrics["distill_distance"], want, rtol=1e-5)
  np.testing.assert_allclose(value, metrics["cls_loss"] + 2.0 * want,
                             rtol=1e-5)
  grads = jax.jit(jax.grad(
      lambda p: m.loss(p, state, batch, None, 0, hp)[0]))(params)
  assert float(jnp.abs(grads["model"]["fc1"]["kernel"]).sum()) > 0
  # The student equal to the teacher below the head: nothing to distil.
  same = {"model": {**teacher, "head": params["model"]["head"]}}
  _, (metrics, _) = jax.jit(m.loss)(same, state, batch, None, 0, hp)
  assert float(metrics["distill_distance"]) == pytest.approx(0.0, abs=1e-10)
  with pytest.raises(ValueError, match="distill_layers"):
    bad = methods.get_method("clean_distill")(
        model, 10, total_steps=1, pretrained=pre, distill_layers=("fc9",))
    bad.loss(params, state, batch, None, 0, hp)


def test_delta_loss_adds_the_attention_weighted_term():
  model, x, teacher, pre = _tiny_pretrained()
  m = methods.get_method("delta")(model, 10, total_steps=1, pretrained=pre)
  batch = {"xs": x, "ys": jnp.arange(6) % 10}
  params, state = jax.jit(m.init)(jax.random.key(0), batch)
  hp = {"delta_alpha": jnp.float32(1.0), "delta_beta": jnp.float32(0.0)}
  loss_fn = jax.jit(m.loss)
  loss, (metrics, _) = loss_fn(params, state, batch, None, 0, hp)
  # At initialisation the student's body is the teacher's: no distance.
  assert float(metrics["delta_feature_map"]) == pytest.approx(0.0, abs=1e-6)
  moved = jax.tree.map(lambda w: w * 1.1, params)
  _, (metrics, _) = loss_fn(moved, state, batch, None, 0, hp)
  assert float(metrics["delta_feature_map"]) > 0
  assert np.isfinite(float(loss))
  with pytest.raises(ValueError, match="delta_layers"):
    bad = methods.get_method("delta")(model, 10, total_steps=1,
                                      pretrained=pre, delta_layers=("nope",))
    bad.loss(params, state, batch, None, 0, hp)


# --------------------------------------------------------------------------
# The runner.
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("teacher"))


def _quick(preset, teacher_dir, **overrides):
  c = safe_config.get_config(f"{preset},quick")
  c.teacher_workdir = teacher_dir
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


@pytest.fixture(scope="module")
def finetune_run(teacher_dir, tmp_path_factory):
  """A quick finetune run (which trains the shared quick teacher)."""
  workdir = tmp_path_factory.mktemp("finetune")
  config = _quick("finetune", teacher_dir)
  return config, workdir, runner.run(config, workdir)


_FAST = ("finetune",)


@pytest.mark.parametrize("preset", [
    p if p in _FAST else pytest.param(p, marks=pytest.mark.slow)
    for p in safe_config.PRESETS])
def test_quick_run_of_each_preset(preset, teacher_dir, finetune_run,
                                  tmp_path):
  if preset == "finetune":
    config, tmp_path, result = finetune_run
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  overrides = {}
  if preset in safe_transfer.SAME_LABELS_ONLY:  # the teacher's ten classes
    overrides = {"target": "digits/sklearn", "domain_options": (
        ml_collections.ConfigDict({"target": {}}))}
  if preset != "finetune":
    config = _quick(preset, teacher_dir, **overrides)
    result = runner.run(config, tmp_path)
  assert result["preset"] == preset
  assert result["defect_kind"] == "backdoor"
  for k in ("target_accuracy", "defect_inheritance_rate",
            "backdoor_success_rate", "adversarial_dir", "teacher_source_accuracy",
            "teacher_backdoor_success_rate"):
    assert 0.0 <= result[k] <= 100.0, k
  assert result["defect_inheritance_rate"] == result["backdoor_success_rate"]
  with open(tmp_path / "result.json") as f:
    assert json.load(f)["preset"] == preset
  # A rerun returns the stored result; another config is refused.
  assert runner.run(config, tmp_path)["target_accuracy"] == \
      result["target_accuracy"]
  if preset == "finetune":
    config = copy.deepcopy(config)
    config.defect.poison_rate = 0.2
    from tlax import train  # pylint: disable=g-import-not-at-top
    with pytest.raises(train.ConfigMismatchError, match="poison_rate"):
      runner.run(config, tmp_path)


@pytest.mark.parametrize("key,value,match", [
    ("defect.poison_rate", 1.5, r"poison_rate=1.5 must be in \[0, 1\]"),
    ("defect.poison_rate", -0.1, r"poison_rate=-0.1 must be in \[0, 1\]"),
    ("defect.trigger_size", 16, "larger than the 16x16 images"),
    ("defect.kind", "trojan", "defect.kind"),
])
def test_bad_defect_config_is_refused_before_training(key, value, match,
                                                      tmp_path):
  config = _quick("finetune", str(tmp_path / "teacher"), **{key: value})
  with pytest.raises(ValueError, match=match):
    runner.run(config, tmp_path / "run")
  assert not (tmp_path / "teacher").exists()


def test_teacher_of_another_architecture_is_refused(teacher_dir, finetune_run,
                                                   tmp_path):
  del finetune_run  # it trained the teacher; a wider student loads it
  config = _quick("finetune", "")
  config.teacher_checkpoint = teacher_dir
  config.model.kwargs.conv_features = (6, 8)
  with pytest.raises(transfer.CheckpointMismatchError,
                     match=r"does not have the student's architecture"
                     r"(.|\n)*conv1/kernel"):
    runner.run(config, tmp_path / "bad")


def _result(acc, asr):
  """A hand-made safe-transfer result."""
  return {"target_accuracy": acc, "backdoor_success_rate": asr,
          "adversarial_dir": 10.0, "backdoor_clean_rate": 1.0}


def test_page_checks_the_targets_on_hand_made_results():
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top

  results = {("finetune", "usps", 0): _result(90.0, 80.0),
             ("finetune", "usps", 1): _result(92.0, 60.0),
             ("remos", "usps", 0): _result(88.0, 20.0),
             ("remos", "usps", 1): _result(89.0, 30.0),
             ("delta", "usps", 0): _result(80.0, 1.0)}
  table = safe_transfer.collect(results, ["finetune", "remos", "delta"],
                                ["usps"], [0, 1])
  lines = safe_transfer.check_targets(
      table, ["usps"], {"teacher_backdoor_success_rate": 100.0})
  text = "\n".join(lines)
  assert "keeps 70.0% backdoor success of the teacher's 100.0% (70%)" in text
  assert "reproduced" in text and "NOT reproduced" not in text
  # delta is 11 points below: not eligible; remos: 25 / 70 = 36% at -2.5.
  assert "remos, DIR 25.0% = 36% of fine-tuning's at -2.5 points" in text
  assert "target (<= 40%) is met" in text


def test_student_with_other_classes_cannot_keep_the_teachers_head(
    teacher_dir, finetune_run, tmp_path):
  del finetune_run  # it trained the teacher (10 classes)
  config = _quick("finetune_head", teacher_dir)  # quick target: 26 letters
  with pytest.raises(ValueError, match=r"keeps the teacher's head \(10 "
                     r"classes\), but the target fonts/letters has 26.*"
                     r"'finetune' preset"):
    runner.run(config, tmp_path / "run")


def test_targets_compare_with_the_whole_teacher_where_the_head_fits():
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top

  results = {("finetune", "usps", 0): _result(92.0, 20.0),
             ("finetune_head", "usps", 0): _result(91.0, 70.0),
             ("reinit_top", "usps", 0): _result(90.0, 1.0),
             ("finetune", "letters", 0): _result(70.0, 30.0),
             ("reinit_top", "letters", 0): _result(60.0, 5.0)}
  presets = ["finetune", "finetune_head", "reinit_top"]
  table = safe_transfer.collect(results, presets, ["usps", "letters"], [0])
  text = "\n".join(safe_transfer.check_targets(
      table, ["usps", "letters"], {"teacher_backdoor_success_rate": 100.0}))
  assert ("**usps**: plain fine-tuning (`finetune_head`: every teacher "
          "weight, the head too) keeps 70.0% backdoor success of the "
          "teacher's 100.0% (70%): the phenomenon (at least half) is "
          "reproduced.") in text
  assert "With the head re-initialised (`finetune`) it keeps 20.0%." in text
  assert "reinit_top, DIR 1.0% = 1% of fine-tuning's at -1.0 points" in text
  # letters has no finetune_head run: the baseline is finetune, and
  # reinit_top is 10 points below it.
  assert ("**letters**: plain fine-tuning (`finetune`: the head "
          "re-initialised) keeps 30.0%") in text
  assert "NOT reproduced" in text
  assert "No method is at most 3 points below" in text


def test_page_without_finetune_says_so_instead_of_failing():
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  results = {("remos", "usps", 0): {
      "target_accuracy": 88.0, "backdoor_success_rate": 20.0,
      "adversarial_dir": 10.0, "backdoor_clean_rate": 1.0}}
  table = safe_transfer.collect(results, ["remos"], ["usps"], [0])
  lines = safe_transfer.check_targets(
      table, ["usps"], {"teacher_backdoor_success_rate": 100.0})
  assert lines == ["- **usps**: no `finetune` run to compare with (add it "
                   "to --presets)."]


def test_teacher_is_pretrained_at_the_default_pretraining_size():
  from experiments.configs import pretrain  # pylint: disable=g-import-not-at-top
  from experiments.configs.safe import transfer as safe_config  # pylint: disable=g-import-not-at-top
  teacher, base = safe_config.teacher_config(), pretrain.get_config()
  assert teacher.domain_options.source.n_train == 100_000
  assert (teacher.steps, teacher.batch_size) == (base.steps, base.batch_size)
  assert teacher.optimizer.to_dict() == base.optimizer.to_dict()
  assert safe_config.teacher_config(quick=True).steps == 4


def test_bad_preset_is_named_before_any_run(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.safe_transfer", "--presets=bogus",
       f"--root={tmp_path}"], cwd=root, capture_output=True, text=True,
      timeout=120)
  assert proc.returncode != 0
  assert ("--presets: 'bogus' not in finetune, finetune_head, "
          "linear_probe") in proc.stderr
  assert not os.listdir(tmp_path)


def _write_result(root, preset, target, seed, labels, acc, asr):
  import json  # pylint: disable=g-import-not-at-top
  d = root / preset / target / str(seed)
  d.mkdir(parents=True)
  r = dict(_result(acc, asr), labels_per_class=labels)
  (d / "result.json").write_text(json.dumps(r))


def test_table_across_sizes_is_read_from_each_sizes_root(tmp_path):
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  big, small = tmp_path / "l50", tmp_path / "l5"
  _write_result(big, "finetune", "usps", 0, 50, 90.0, 20.0)
  _write_result(big, "finetune", "usps", 1, 50, 92.0, 30.0)
  _write_result(small, "finetune", "usps", 0, 5, 80.0, 40.0)
  _write_result(small, "reinit_top", "usps", 0, 5, 81.0, 2.0)
  _write_result(small, "remos", "usps", 0, 5, 81.0, 2.0)  # not a size row
  sizes = safe_transfer.parse_sizes([f"5:{small}"], 50, str(big))
  assert sizes == [(5, str(small)), (50, str(big))]
  lines = safe_transfer.sizes_table(
      safe_transfer.read_sizes(sizes, ["usps"], [0, 1]), ["usps"], [0, 1])
  assert lines == [
      "| labels per class | 5 | 50 |", "|---|---:|---:|",
      "| usps, `finetune` | 40.0 (80.0) [1 of 2 seeds] | 25.0 (91.0) |",
      "| usps, `reinit_top` | 2.0 (81.0) [1 of 2 seeds] | - |"]
  # Only the rows asked for.
  rows = ("reinit_top",)
  assert safe_transfer.sizes_table(
      safe_transfer.read_sizes(sizes, ["usps"], [0, 1], rows), ["usps"],
      [0, 1], rows)[2:] == [
          "| usps, `reinit_top` | 2.0 (81.0) [1 of 2 seeds] | - |"]
  # A root given for the wrong size is named.
  with pytest.raises(ValueError, match=r"l5/finetune/usps/0/result.json was "
                     r"run with 5 labels per class, not 10"):
    safe_transfer.read_sizes(safe_transfer.parse_sizes(
        [f"10:{small}"], 50, str(big)), ["usps"], [0])


@pytest.mark.parametrize("entry,match", [
    ("runs/safe_l5", "not LABELS:ROOT"), ("0:runs/x", "not LABELS:ROOT"),
    ("five:runs/x", "not LABELS:ROOT"), ("50:runs/x", "given twice")])
def test_bad_sizes_entry_is_named(entry, match):
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=match):
    safe_transfer.parse_sizes([entry], 50, "runs/safe")


# --------------------------------------------------------------------------
# The latent backdoor.
# --------------------------------------------------------------------------
def _latent_defect(**overrides):
  d = copy.deepcopy(safe_config.get_config("finetune,quick").defect)
  d.latent_domain = "fonts/letters"
  for k, v in overrides.items():
    d[k] = v
  return d


def test_latent_images_are_the_attackers_own_images_of_the_class():
  from tlax.data import domains  # pylint: disable=g-import-not-at-top
  d = _latent_defect(latent_class=2, latent_examples=5)
  x = runner.latent_images(d, (16, 16, 1), image_size=16, channels=1)
  dom = domains.load_domain("fonts/letters", image_size=16, channels=1,
                            seed=int(d.latent_seed), n_train=260, n_test=0)
  xa, ya = dom.splits["train"]
  np.testing.assert_array_equal(x, xa[ya == 2][:5])
  # The attacker's seed draws other images than a student's seed 0.
  student = domains.load_domain("fonts/letters", image_size=16, channels=1,
                                seed=0, n_train=260, n_test=0)
  xs, ys = student.splits["train"]
  assert not np.array_equal(x, xs[ys == 2][:5])


@pytest.mark.parametrize("overrides,shape,match", [
    ({"latent_class": 26}, (16, 16, 1), r"latent_class=26 is not a class of "
     r"fonts/letters \(26 classes\)"),
    ({"latent_examples": 11}, (16, 16, 1), r"latent_examples=11, but "
     r"fonts/letters .* has 10 training images of class 0 \('A'\).*n_train"),
    ({}, (8, 8, 1), r"shape \(16, 16, 1\), the teacher's \(8, 8, 1\)"),
])
def test_latent_images_bad_input(overrides, shape, match):
  with pytest.raises(ValueError, match=match):
    runner.latent_images(_latent_defect(**overrides), shape, image_size=16,
                         channels=1)


def test_latent_teacher_task_has_the_extra_class_and_its_trigger():
  config = safe_config.get_config("finetune,quick")
  d = _latent_defect(poison_rate=0.25)
  tc = runner._teacher_task_config(config)  # pylint: disable=protected-access
  with tc.unlocked():
    tc.model = copy.deepcopy(config.model)
  plain = runner._poisoned_teacher_task(  # pylint: disable=protected-access
      tc, _latent_defect(latent_domain="", poison_rate=0.0))
  task = runner._poisoned_teacher_task(tc, d)  # pylint: disable=protected-access
  k = plain.num_classes
  assert runner.teacher_target_class(d, k) == k == 10
  assert task.num_classes == k + 1
  xa = runner.latent_images(d, plain.xs.shape[1:], image_size=16, channels=1)
  reps = round(len(plain.xs) / k / len(xa))
  assert len(task.xs) == len(plain.xs) + reps * len(xa)
  n_poisoned = round(0.25 * len(task.xs))
  assert task.info["poisoned"] == n_poisoned
  assert task.info["latent_class_examples"] == len(xa)
  # Every example of the extra class is the attacker's image or a triggered
  # one; the rest keep their labels and images.
  trig = np.asarray(attacks.apply_trigger(task.xs, 3, "bottom_right", 1))
  stamped = (task.xs == trig).all(axis=(1, 2, 3))
  extra = task.ys == k
  assert extra.sum() >= n_poisoned
  assert stamped[extra].sum() >= n_poisoned
  clean = ~extra
  np.testing.assert_array_equal(task.ys[:len(plain.ys)][clean[:len(plain.ys)]],
                                plain.ys[clean[:len(plain.ys)]])


def test_latent_backdoor_run_measures_the_latent_class(tmp_path):
  config = _quick("finetune", str(tmp_path / "teacher"),
                  **{"defect.latent_domain": "fonts/letters",
                     "defect.latent_class": 3})
  result = runner.run(config, tmp_path / "run")
  assert result["backdoor_target_class"] == 3
  assert 0.0 <= result["backdoor_success_rate"] <= 100.0
  assert 0.0 <= result["teacher_backdoor_success_rate"] <= 100.0
  from tlax.train import finetune  # pylint: disable=g-import-not-at-top
  trees = finetune.load_checkpoint_trees(str(tmp_path / "teacher"))
  assert np.shape(trees["params"]["model"]["head"]["kernel"])[-1] == 11


@pytest.mark.parametrize("key,value,match", [
    ("defect.latent_examples", 0, "latent_examples=0 must be >= 1"),
    ("defect.latent_class", -1, "latent_class=-1 must be a class index"),
    ("target", "digits/sklearn", r"latent_domain='fonts/letters' plants .* "
     r"the student's target is 'digits/sklearn'"),
])
def test_bad_latent_config_is_refused_before_training(key, value, match,
                                                      tmp_path):
  overrides = {"defect.latent_domain": "fonts/letters", key: value}
  if key == "target":
    overrides["domain_options"] = ml_collections.ConfigDict({"target": {}})
  config = _quick("finetune", str(tmp_path / "teacher"), **overrides)
  with pytest.raises(ValueError, match=match):
    runner.run(config, tmp_path / "run")
  assert not (tmp_path / "teacher").exists()


def test_page_config_for_latent_backdoor_has_a_teacher_per_target():
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  c = safe_transfer.config_for("finetune", "letters", 1, "runs/x",
                               backdoor="latent")
  assert c.defect.latent_domain == "fonts/letters"
  assert c.defect.latent_class == 0
  assert c.teacher_workdir == "runs/x/teacher/letters"
  plain = safe_transfer.config_for("finetune", "letters", 1, "runs/x")
  assert plain.defect.latent_domain == ""
  assert plain.teacher_workdir == "runs/x/teacher"
  with pytest.raises(ValueError, match="backdoor='trojan'"):
    safe_transfer.config_for("finetune", "letters", 1, "runs/x",
                             backdoor="trojan")


def test_page_describes_the_backdoor_it_tabulates():
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  results = {("finetune", "letters", 0): _result(70.0, 60.0)}
  table = safe_transfer.collect(results, ["finetune"], ["letters"], [0])
  teacher = {"teacher_backdoor_success_rate": 100.0}
  args = (table, ["letters"], ["0"], teacher, [], None, "cmd")
  latent = safe_transfer.page(*args, backdoor="latent")
  assert latent.startswith("# Safe transfer: a latent backdoor")
  assert "latent backdoor (Yao et al., 2019)" in latent
  assert "250 images of that class" in latent
  assert "mapped through the new head" not in latent
  badnets = safe_transfer.page(*args)
  assert "BadNets backdoor" in badnets and "Yao" not in badnets
  assert "mapped through the new head" in badnets


def test_a_student_waits_for_a_teacher_another_process_holds(monkeypatch):
  from tlax import train  # pylint: disable=g-import-not-at-top
  calls = []

  def busy_twice(config, workdir, task):
    calls.append((config, workdir, task))
    if len(calls) < 3:
      raise train.WorkdirBusyError(f"{workdir} is in use by process 1")
    return {"target_accuracy": 99.0}

  monkeypatch.setattr(train, "train_and_evaluate", busy_twice)
  assert runner.train_teacher("c", "dir", "t", poll_s=0.01) == {
      "target_accuracy": 99.0}
  assert calls == [("c", "dir", "t")] * 3
  # Held past the wait: the error reaches the caller.
  calls.clear()
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: (
      _ for _ in ()).throw(train.WorkdirBusyError("dir is in use")))
  with pytest.raises(train.WorkdirBusyError, match="in use"):
    runner.train_teacher("c", "dir", "t", wait_s=0.05, poll_s=0.01)


def test_config_argument_names_the_target_and_its_options():
  c = safe_config.get_config("remos,letters")
  assert c.preset == "remos" and c.target == "fonts/letters"
  assert c.domain_options.target.to_dict() == {"n_train": 2600, "n_test": 1300}
  # The default is USPS; config_for gives the same config for a target.
  from experiments import safe_transfer  # pylint: disable=g-import-not-at-top
  assert safe_config.get_config("remos").to_dict() == \
      safe_config.get_config("remos,usps").to_dict()
  by_page = safe_transfer.config_for("remos", "letters", 0, "runs/x")
  by_hand = safe_config.get_config("remos,letters")
  by_hand.teacher_workdir = "runs/x/teacher"
  by_hand.progress = False
  assert by_hand.to_dict() == by_page.to_dict()
  for arg, match in [("remos,usps,mnist", "names 2 targets"),
                     ("finetune,letters,quick", "'quick' runs the embedded"),
                     ("remos,svhn", "Unknown config argument")]:
    with pytest.raises(ValueError, match=match):
      safe_config.get_config(arg)
