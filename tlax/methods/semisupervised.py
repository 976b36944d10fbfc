r"""Semi-supervised transfer: FixMatch, its adaptive thresholds, baselines.

Factories of the method contract (:mod:`tlax.methods.contract`). The
labelled examples of a batch are ``xs, ys`` (weighted by ``ws``) and, when
present, ``xtl, ytl``; the unlabelled ones are ``xt``. Two settings use
them:

* classic semi-supervised learning: ``xs, ys`` are ``k`` labelled examples
  per class of a domain and ``xt`` the rest of that domain
  (``config.labels_per_class``, :func:`tlax.data.make_task`);
* semi-supervised domain adaptation: ``xs, ys`` a labelled source domain,
  ``xtl, ytl`` a few labelled target examples
  (``config.target_labeled_per_class``) and ``xt`` the unlabelled target;
  FixMatch may add an alignment loss between source and target features
  (``align="mmd"``, ``"coral"``, the class-conditional ``"lmmd"``, weight
  ``lambda``, or DANN's adversarial ``"dann"``, reversal strength
  ``lambda``).

FixMatch (Sohn et al., 2020) minimises

.. math::
  \frac{1}{B}\sum_{b} H(y_b, p(y \mid \alpha(x_b)))
  + \lambda_u \frac{1}{\mu B} \sum_{b} w_b\,
    H(\hat q_b, p(y \mid \mathcal{A}(u_b)))
  + \lambda\, R(T(D_s), T(D_t))

with :math:`\alpha` the weak and :math:`\mathcal{A}` the strong
augmentation (:mod:`tlax.data.augment`, on device inside the jitted step),
:math:`\hat q_b` the argmax of the prediction on the weak view and
:math:`w_b` the weights of a threshold rule (:mod:`tlax.methods.thresholds`:
``fixed`` for FixMatch, ``flexmatch``, ``freematch`` (plus its fairness
term), ``softmatch``). The ratio :math:`\mu` is that of the batch sizes
(``config.target_batch_size / config.batch_size``). One forward pass runs
the labelled, weak and strong views together.

Every method here keeps an exponential moving average (EMA) of the
classifier's parameters in its state and evaluates with it (``predict`` and
``features``); the decay of step :math:`t` is
:math:`\min(d, (1 + t) / (10 + t))`, so short runs are not dominated by the
initial weights. ``ema_decay=0`` evaluates the raw parameters.

Metrics logged (``metrics.jsonl``): ``sup_loss``, ``unsup_loss``,
``mask_rate`` (mean weight of the unlabelled examples: the fraction above
the threshold for hard masks), ``threshold`` (mean over classes),
``threshold_min``, ``threshold_max``, and ``fairness_loss`` /
``align_loss`` where used.

Inputs that are not images (feature vectors) are not augmented.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tlax import losses as tlax_losses
from tlax.data import augment
from tlax.losses import semisupervised as ssl_losses
from tlax.methods import contract
from tlax.methods import networks
from tlax.methods import thresholds as thr_lib

ALIGN_LOSSES = ("none", "mmd", "coral", "lmmd", "dann")

# The domain classifier of ``align="dann"``: DANN's (Ganin et al., JMLR 2016,
# sec. 5.2.2), features -> 1024 -> 1024 -> source logit, ReLU, dropout 0.5.
DANN_DISCRIMINATOR = networks.DomainDiscriminator()


# ---------------------------------------------------------------------------
# Shared pieces.
# ---------------------------------------------------------------------------
def _check_ema(ema_decay: float) -> float:
  ema_decay = float(ema_decay)
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay}.")
  return ema_decay


def _ema_update(ema, params, step, decay):
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step)).astype(jnp.float32)
  return jax.tree.map(
      lambda e, p: (d * e + (1 - d) * jax.lax.stop_gradient(p)).astype(
          e.dtype), ema, params)


def _ema_parts(model, ema_decay):
  """``(init, predict, features, update_state)`` with the EMA evaluation."""
  ema_decay = _check_ema(ema_decay)

  def init(rng, batch):
    params, state = contract.init_classifier(model, rng, batch["xs"])
    if ema_decay > 0:
      state["ema"] = jax.tree.map(jnp.copy, params["model"])
    return params, state

  def _eval_params(params, state):
    if ema_decay > 0:
      return {**params, "model": state["ema"]}
    return params

  def predict(params, state, x):
    return contract.apply_classifier(model, _eval_params(params, state),
                                     state, x, train=False)[0]

  def features(params, state, x):
    return contract.apply_classifier(model, _eval_params(params, state),
                                     state, x, train=False)[1]

  def update_state(state, params, step):
    if ema_decay > 0:
      state = {**state, "ema": _ema_update(state["ema"], params["model"],
                                           step, ema_decay)}
    return state
  return init, predict, features, update_state


def _augmenters(flip, pad, num_ops=2, max_magnitude=1.0, cutout=0.5):
  def weak(key, x):
    if x.ndim != 4:
      return x
    return augment.weak_augment(key, x, flip=flip, pad=pad)

  def strong(key, x):
    if x.ndim != 4:
      return x
    return augment.strong_augment(key, x, flip=flip, pad=pad,
                                  num_ops=num_ops,
                                  max_magnitude=max_magnitude,
                                  cutout_size=cutout)
  return weak, strong


def _labelled(batch):
  """The labelled inputs, labels and weights of a batch (xs, then xtl)."""
  xs, ys = batch["xs"], batch["ys"]
  ws = batch.get("ws")
  if ws is None:
    ws = jnp.ones(ys.shape, jnp.float32)
  parts = [(xs, ys, ws)]
  if "xtl" in batch:
    parts.append((batch["xtl"], batch["ytl"],
                  jnp.ones(batch["ytl"].shape, jnp.float32)))
  return parts


def _supervised_loss(logits, parts):
  """Sum over the labelled parts of each part's weighted mean CE."""
  total, start = 0.0, 0
  for _, ys, ws in parts:
    n = ys.shape[0]
    total = total + contract.weighted_cross_entropy(
        logits[start:start + n], ys, ws)
    start += n
  return total


def _weak_forward(model, params, state, batch, keys, weak, unlabelled=()):
  """One training forward pass over the labelled weak views and ``unlabelled``.

  The labelled parts of ``batch`` (:func:`_labelled`) get weak views with
  ``keys[i]``, the views in ``unlabelled`` follow them, and the network runs
  once with ``keys[-1]``.

  Returns:
    ``(logits, feats, state, sup, parts)``: ``sup`` the supervised loss on
    the labelled rows, which come first (``n_lab = len`` of the labelled
    rows, :func:`_num_labelled`).
  """
  parts = _labelled(batch)
  x = jnp.concatenate([weak(k, p[0]) for k, p in zip(keys, parts)]
                      + list(unlabelled))
  logits, feats, state = contract.apply_classifier(model, params, state, x,
                                                   train=True, rng=keys[-1])
  sup = _supervised_loss(logits[:_num_labelled(parts)], parts)
  return logits, feats, state, sup, parts


def _num_labelled(parts):
  return sum(p[1].shape[0] for p in parts)


def _rampup(step, total_steps, fraction):
  """Linear ramp from 0 to 1 over the first ``fraction`` of the run."""
  length = max(float(fraction) * total_steps, 1.0)
  return jnp.clip(step.astype(jnp.float32) / length, 0.0, 1.0)


def _sigmoid_rampup(step, total_steps, fraction):
  r""":math:`\exp(-5 (1 - t)^2)`, :math:`t` the position in the ramp."""
  t = _rampup(step, total_steps, fraction)
  return jnp.exp(-5.0 * jnp.square(1.0 - t))


def _check_rampup(fraction) -> None:
  if not 0.0 <= float(fraction) <= 1.0:
    raise ValueError(f"align_rampup must lie in [0, 1] (a fraction of the "
                     f"run), got {fraction!r}.")


def _align_ramp(step, total_steps, fraction):
  """The alignment weight's factor: :func:`_sigmoid_rampup` over the first
  ``fraction`` of the run, 1 throughout when ``fraction`` is 0."""
  if float(fraction) == 0.0:
    return 1.0
  return _sigmoid_rampup(step, total_steps, fraction)


def _alignment(align, fs, ft, labels_s, logits_t):
  """The alignment loss between source and target features.

  ``lmmd`` is DSAN's class-conditional MMD: source classes from the labels,
  target classes from the softmax of ``logits_t`` (no gradient through it).
  """
  if align == "mmd":
    return tlax_losses.mk_mmd(fs, ft, "mean:5")
  if align == "coral":
    return tlax_losses.coral(fs, ft)
  if align == "lmmd":
    probs_t = jax.nn.softmax(jax.lax.stop_gradient(logits_t), -1)
    return tlax_losses.class_conditional_mmd(fs, ft, labels_s, probs_t,
                                             probs_t.shape[-1],
                                             sigmas="mean:5")
  raise ValueError(align)


def _align_term(align, params, rng, fs, ft, labels_s, logits_t, weight):
  """``(term added to the loss, alignment loss logged)``.

  For the discrepancies the term is ``weight * loss``. For ``"dann"`` it is
  the domain classifier's cross-entropy (:data:`DANN_DISCRIMINATOR`,
  ``params["discriminator"]``) on the features behind a gradient reversal
  of strength ``weight``: the classifier minimises it, the features
  maximise it (Ganin & Lempitsky, ICML 2015).
  """
  if align != "dann":
    value = _alignment(align, fs, ft, labels_s, logits_t)
    return weight * value, value
  h = tlax_losses.gradient_reversal(jnp.concatenate([fs, ft], 0), weight)
  d = DANN_DISCRIMINATOR.apply({"params": params["discriminator"]}, h,
                               train=True, rngs={"dropout": rng})
  value = tlax_losses.dann_domain_loss(d[:fs.shape[0]], d[fs.shape[0]:])
  return value, value


def _with_discriminator(init, model, align, align_layer):
  """``init`` plus DANN's domain classifier in ``params["discriminator"]``
  when ``align == "dann"``."""
  if align != "dann":
    return init

  def init_dann(rng, batch):
    params, state = init(rng, batch)
    _, feats, _ = contract.apply_classifier(
        model, params, state, jnp.asarray(batch["xs"])[:2], train=False)
    f = feats[align_layer].reshape(2, -1)
    rng_disc = jax.random.fold_in(rng, 1)
    params["discriminator"] = DANN_DISCRIMINATOR.init(rng_disc, f)["params"]
    return params, state
  return init_dann


# ---------------------------------------------------------------------------
# Baselines.
# ---------------------------------------------------------------------------
def supervised(model, num_classes, *, total_steps, ema_decay: float = 0.99,
               flip: bool = False, pad: int = 2) -> contract.Method:
  """Supervised training on the labelled examples only (weak augmentation).

  With ``config.labels_per_class = k`` it is the labelled-only lower bound
  of classic semi-supervised learning; with ``labels_per_class = -1`` (every
  label of the training split) the fully supervised ceiling; in
  semi-supervised domain adaptation it trains on the labelled source and the
  few labelled target examples.

  Args:
    model: the classifier network.
    num_classes: C.
    total_steps: length of the run.
    ema_decay: decay of the evaluated parameter average (0: none).
    flip: random horizontal flips in the weak augmentation.
    pad: largest translation of the weak augmentation (pixels).
  """
  del num_classes, total_steps
  init, predict, features, update_state = _ema_parts(model, ema_decay)
  weak, _ = _augmenters(flip, pad)

  def loss(params, state, batch, rng, step, hparams):
    del hparams
    keys = jax.random.split(rng, len(_labelled(batch)) + 1)
    logits, _, state, value, parts = _weak_forward(model, params, state,
                                                   batch, keys, weak)
    state = update_state(state, params, step)
    n = parts[0][1].shape[0]
    return value, ({"sup_loss": value,
                    "source_acc": contract.accuracy(logits[:n],
                                                    parts[0][1])}, state)
  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, name="supervised")


def pseudo_label(model, num_classes, *, total_steps, tau: float = 0.95,
                 lambda_u: float = 1.0, rampup: float = 0.4,
                 ema_decay: float = 0.99, flip: bool = False,
                 pad: int = 2) -> contract.Method:
  r"""Pseudo-labelling (Lee, 2013): the model's own confident predictions.

  .. math::
    \mathcal{L} = \mathcal{L}_s + \lambda_u\,r(t)\,\frac{1}{\mu B}\sum_b
      1[\max q_b \ge \tau]\,H(\hat q_b, p(y \mid \alpha(u_b)))

  with :math:`q_b` the prediction on the same weak view (no gradient) and
  :math:`r(t)` a linear ramp from 0 to 1 over the first ``rampup`` of the
  run (Lee's :math:`\alpha(t)` schedule).

  Args:
    model, num_classes, total_steps: as :func:`supervised`.
    tau: confidence threshold in (0, 1) (swept hparam ``tau``).
    lambda_u: the unlabelled-loss weight (swept hparam ``lambda_u``).
    rampup: fraction of the run over which the weight ramps up.
    ema_decay, flip, pad: as :func:`supervised`.

  References:
    Lee, Pseudo-label: The simple and efficient semi-supervised learning
    method for deep neural networks, ICML Workshops 2013.
  """
  del num_classes
  rule = thr_lib.fixed(tau)
  init, predict, features, update_state = _ema_parts(model, ema_decay)
  weak, _ = _augmenters(flip, pad)

  def loss(params, state, batch, rng, step, hparams):
    keys = jax.random.split(rng, len(_labelled(batch)) + 2)
    logits, _, state, sup, parts = _weak_forward(
        model, params, state, batch, keys, weak,
        [weak(keys[-2], batch["xt"])])
    logits_u = logits[_num_labelled(parts):]
    probs = jax.nn.softmax(jax.lax.stop_gradient(logits_u), -1)
    weights, probs, _, info = rule.apply({}, probs, hparams["tau"])
    unsup = jnp.mean(ssl_losses.pseudo_label_cross_entropy(logits_u, probs,
                                                           weights))
    ramp = _rampup(step, total_steps, rampup)
    value = sup + hparams["lambda_u"] * ramp * unsup
    state = update_state(state, params, step)
    metrics = {"sup_loss": sup, "unsup_loss": unsup,
               "mask_rate": jnp.mean(weights),
               "threshold": jnp.mean(info["threshold"])}
    return value, (metrics, state)
  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features,
                         hparams={"lambda_u": lambda_u, "tau": rule.tau},
                         name="pseudo_label")


def mean_teacher(model, num_classes, *, total_steps, lambda_u: float = 10.0,
                 rampup: float = 0.4, ema_decay: float = 0.99,
                 flip: bool = False, pad: int = 2) -> contract.Method:
  r"""Mean teacher (Tarvainen and Valpola, 2017).

  .. math::
    \mathcal{L} = \mathcal{L}_s + \lambda_u\,r(t)\,\frac{1}{\mu B}\sum_b
      \|\sigma(f_\theta(\alpha(u_b))) - \sigma(f_{\theta'}(\alpha'(u_b)))\|^2

  the student :math:`\theta` and the teacher :math:`\theta'` (the EMA of
  the student, which is also the evaluated model) see two weak views;
  :math:`r(t) = \exp(-5(1 - t)^2)` ramps up over the first ``rampup`` of
  the run.

  Args:
    model, num_classes, total_steps: as :func:`supervised`.
    lambda_u: the consistency weight (swept hparam ``lambda_u``).
    rampup: fraction of the run over which the weight ramps up.
    ema_decay: the teacher's decay in (0, 1).
    flip, pad: as :func:`supervised`.

  References:
    Tarvainen and Valpola, Mean teachers are better role models:
    Weight-averaged consistency targets improve semi-supervised deep
    learning results, NeurIPS 2017.
  """
  del num_classes
  if not 0.0 < float(ema_decay) < 1.0:
    raise ValueError(f"mean_teacher needs ema_decay in (0, 1) for its "
                     f"teacher, got {ema_decay}.")
  init, predict, features, update_state = _ema_parts(model, ema_decay)
  weak, _ = _augmenters(flip, pad)

  def loss(params, state, batch, rng, step, hparams):
    keys = jax.random.split(rng, len(_labelled(batch)) + 4)
    logits, _, state, sup, parts = _weak_forward(
        model, params, state, batch, keys, weak,
        [weak(keys[-4], batch["xt"])])
    n_lab = _num_labelled(parts)
    teacher = {**params, "model": state["ema"]}
    logits_t, _, _ = contract.apply_classifier(
        model, teacher, state, weak(keys[-3], batch["xt"]), train=True,
        rng=keys[-2])
    cons = jnp.mean(ssl_losses.softmax_mse(logits[n_lab:], logits_t))
    value = sup + hparams["lambda_u"] * _sigmoid_rampup(
        step, total_steps, rampup) * cons
    state = update_state(state, params, step)
    return value, ({"sup_loss": sup, "unsup_loss": cons}, state)
  return contract.Method(init=init, loss=loss, predict=predict,
                         features=features, hparams={"lambda_u": lambda_u},
                         name="mean_teacher")


# ---------------------------------------------------------------------------
# FixMatch and its thresholds.
# ---------------------------------------------------------------------------
def fixmatch(model, num_classes, *, total_steps, threshold: str = "fixed",
             tau: float = 0.95, lambda_u: float = 1.0, lambda_: float = 0.0,
             align: str = "none", align_layer: str = "embedding",
             align_rampup: float = 0.2,
             ema_decay: float = 0.99, flip: bool = False, pad: int = 2,
             num_ops: int = 2, max_magnitude: float = 1.0,
             cutout: float = 0.5, memory: int = 2048, warmup: bool = True,
             momentum: float = 0.999, n_sigma: float = 2.0,
             uniform_alignment: bool = True,
             fairness_weight: float = 0.01) -> contract.Method:
  r"""FixMatch with a threshold rule, optionally with an alignment loss.

  See the module docstring for the objective.

  Args:
    model: the classifier network.
    num_classes: C.
    total_steps: length of the run.
    threshold: ``"fixed"`` (FixMatch), ``"flexmatch"``, ``"freematch"``
      or ``"softmatch"`` (:mod:`tlax.methods.thresholds`).
    tau: the confidence threshold in (0, 1) (fixed, and FlexMatch's upper
      threshold; swept hparam ``tau`` of those two rules).
    lambda_u: the unlabelled-loss weight (swept hparam ``lambda_u``).
    lambda_: the alignment weight (swept hparam ``lambda``), with ``align``.
    align: ``"none"``, ``"mmd"`` (DAN's multi-kernel MMD), ``"coral"``,
      ``"lmmd"`` (DSAN's class-conditional MMD: source classes from the
      labels, target classes from the weak view's softmax) or ``"dann"``
      (DANN's domain classifier, :data:`DANN_DISCRIMINATOR`, behind a
      gradient reversal of strength ``lambda`` times the ramp) between the
      labelled source's and the unlabelled target's weak-view features.
    align_layer: the feature aligned (a key of the model's features).
    align_rampup: the alignment weight ramps up as
      :math:`\exp(-5(1 - t)^2)` over this fraction of the run (0: full
      weight from the first step). Without it MK-MMD at weight 1 collapsed
      the features of 2 of 3 seeds in the first 50 steps (SynDigits ->
      USPS, 10 target labels per class: every ReLU dead, the labelled loss
      at chance).
    ema_decay: decay of the evaluated parameter average (0: none).
    flip, pad: weak augmentation (:func:`tlax.data.augment.weak_augment`).
    num_ops, max_magnitude, cutout: strong augmentation
      (:func:`tlax.data.augment.strong_augment`).
    memory, warmup: FlexMatch's prediction buffer and threshold warm-up.
    momentum: FreeMatch's and SoftMatch's EMA momentum.
    n_sigma, uniform_alignment: SoftMatch's options.
    fairness_weight: weight of FreeMatch's self-adaptive fairness term.

  Raises:
    ValueError: an unknown threshold or alignment, or ``tau`` outside
      (0, 1).

  References:
    Sohn et al., FixMatch, NeurIPS 2020; Zhang et al., FlexMatch, NeurIPS
    2021; Wang et al., FreeMatch, ICLR 2023; Chen et al., SoftMatch, ICLR
    2023.
  """
  if threshold not in thr_lib.RULES:
    raise ValueError(f"Unknown threshold {threshold!r}; valid: "
                     f"{', '.join(thr_lib.RULES)}.")
  if align not in ALIGN_LOSSES:
    raise ValueError(f"Unknown align {align!r}; valid: "
                     f"{', '.join(ALIGN_LOSSES)}.")
  _check_rampup(align_rampup)
  if threshold == "fixed":
    rule = thr_lib.fixed(tau)
  elif threshold == "flexmatch":
    rule = thr_lib.flexmatch(num_classes, tau, memory=memory, warmup=warmup)
  elif threshold == "freematch":
    rule = thr_lib.freematch(num_classes, momentum=momentum)
  else:
    rule = thr_lib.softmatch(num_classes, momentum=momentum, n_sigma=n_sigma,
                             uniform_alignment=uniform_alignment)
  ema_init, predict, features, update_state = _ema_parts(model, ema_decay)
  weak, strong = _augmenters(flip, pad, num_ops, max_magnitude, cutout)
  use_fairness = threshold == "freematch" and fairness_weight > 0

  def init(rng, batch):
    params, state = ema_init(rng, batch)
    state["threshold"] = rule.init()
    return params, state

  def loss(params, state, batch, rng, step, hparams):
    keys = jax.random.split(rng, len(_labelled(batch)) + 3)
    xu = batch["xt"]
    n_u = xu.shape[0]
    logits, feats, state, sup, parts = _weak_forward(
        model, params, state, batch, keys, weak,
        [weak(keys[-3], xu), strong(keys[-2], xu)])
    n_lab = _num_labelled(parts)
    n_src = parts[0][1].shape[0]
    logits_w = logits[n_lab:n_lab + n_u]
    logits_s = logits[n_lab + n_u:]
    probs_w = jax.nn.softmax(jax.lax.stop_gradient(logits_w), -1)
    weights, probs_w, rule_state, info = rule.apply(
        state["threshold"], probs_w,
        *([hparams["tau"]] if rule.tau is not None else []))
    unsup = jnp.mean(ssl_losses.pseudo_label_cross_entropy(
        logits_s, probs_w, weights))
    value = sup + hparams["lambda_u"] * unsup
    thr = info["threshold"]
    metrics = {"sup_loss": sup, "unsup_loss": unsup,
               "mask_rate": jnp.mean(weights), "threshold": jnp.mean(thr),
               "threshold_min": jnp.min(thr), "threshold_max": jnp.max(thr),
               "source_acc": contract.accuracy(logits[:n_src], parts[0][1])}
    if use_fairness:
      fair = ssl_losses.self_adaptive_fairness(
          jax.nn.softmax(logits_s, -1), weights, rule_state["p_model"],
          rule_state["label_hist"])
      value = value + fairness_weight * fair
      metrics["fairness_loss"] = fair
    if align != "none":
      f = feats[align_layer]
      f = f.reshape(f.shape[0], -1)
      term, align_loss = _align_term(
          align, params, jax.random.fold_in(rng, 1), f[:n_src],
          f[n_lab:n_lab + n_u], parts[0][1], logits_w,
          hparams["lambda"] * _align_ramp(step, total_steps, align_rampup))
      value = value + term
      metrics["align_loss"] = align_loss
    state = {**state, "threshold": rule_state}
    state = update_state(state, params, step)
    return value, (metrics, state)

  return contract.Method(
      init=_with_discriminator(init, model, align, align_layer), loss=loss,
      predict=predict, features=features,
      hparams={"lambda_u": lambda_u, "lambda": lambda_,
               **({"tau": rule.tau} if rule.tau is not None else {})},
      name=threshold if threshold != "fixed" else "fixmatch")


def fixmatch_mmd(model, num_classes, *, total_steps, lambda_: float = 1.0,
                 **options):
  """FixMatch plus DAN's MK-MMD between source and target features
  (semi-supervised domain adaptation; :func:`fixmatch` options)."""
  return fixmatch(model, num_classes, total_steps=total_steps, align="mmd",
                  lambda_=lambda_, **options)._replace(name="fixmatch_mmd")


def fixmatch_coral(model, num_classes, *, total_steps, lambda_: float = 1.0,
                   **options):
  """FixMatch plus Deep CORAL between source and target features
  (semi-supervised domain adaptation; :func:`fixmatch` options)."""
  return fixmatch(model, num_classes, total_steps=total_steps, align="coral",
                  lambda_=lambda_, **options)._replace(name="fixmatch_coral")


def fixmatch_lmmd(model, num_classes, *, total_steps, lambda_: float = 1.0,
                  **options):
  """FixMatch plus DSAN's class-conditional MMD between source and target
  features, the target's classes weighted by its weak-view softmax
  (semi-supervised domain adaptation; :func:`fixmatch` options)."""
  return fixmatch(model, num_classes, total_steps=total_steps, align="lmmd",
                  lambda_=lambda_, **options)._replace(name="fixmatch_lmmd")


def mmd_align(model, num_classes, *, total_steps, lambda_: float = 1.0,
              align: str = "mmd", align_layer: str = "embedding",
              align_rampup: float = 0.2, ema_decay: float = 0.99,
              flip: bool = False, pad: int = 2) -> contract.Method:
  r"""Supervised training plus an alignment loss, without pseudo-labels.

  The labelled terms of :func:`supervised` plus :math:`\lambda` times an
  alignment loss (DAN's multi-kernel MMD by default) between the weak-view
  features of the labelled source (``xs``) and the unlabelled target
  (``xt``): the alignment half of :func:`fixmatch_mmd` (and, with
  ``align="coral"``, of :func:`fixmatch_coral`).

  Args:
    model, num_classes, total_steps: as :func:`supervised`.
    lambda_: the alignment weight (swept hparam ``lambda``).
    align: ``"mmd"``, ``"coral"``, ``"lmmd"`` or ``"dann"``
      (:func:`fixmatch`).
    align_layer: the feature aligned.
    align_rampup: as :func:`fixmatch`.
    ema_decay, flip, pad: as :func:`supervised`.

  Raises:
    ValueError: an unknown alignment, or ``align_rampup`` outside [0, 1].

  References:
    Long et al., Learning transferable features with deep adaptation
    networks, ICML 2015; Sun & Saenko, Deep CORAL, ECCV 2016 workshops.
  """
  del num_classes
  if align not in ALIGN_LOSSES or align == "none":
    raise ValueError(f"Unknown align {align!r}; valid: "
                     f"{', '.join(ALIGN_LOSSES[1:])}.")
  _check_rampup(align_rampup)
  init, predict, features, update_state = _ema_parts(model, ema_decay)
  weak, _ = _augmenters(flip, pad)

  def loss(params, state, batch, rng, step, hparams):
    keys = jax.random.split(rng, len(_labelled(batch)) + 2)
    logits, feats, state, sup, parts = _weak_forward(
        model, params, state, batch, keys, weak,
        [weak(keys[-2], batch["xt"])])
    n_lab = _num_labelled(parts)
    n_src = parts[0][1].shape[0]
    f = feats[align_layer].reshape(logits.shape[0], -1)
    term, align_loss = _align_term(
        align, params, jax.random.fold_in(rng, 1), f[:n_src], f[n_lab:],
        parts[0][1], logits[n_lab:],
        hparams["lambda"] * _align_ramp(step, total_steps, align_rampup))
    value = sup + term
    state = update_state(state, params, step)
    return value, ({"sup_loss": sup, "align_loss": align_loss}, state)
  return contract.Method(init=_with_discriminator(init, model, align,
                                                 align_layer),
                         loss=loss, predict=predict,
                         features=features, hparams={"lambda": lambda_},
                         name=f"{align}_align")


def coral_align(model, num_classes, *, total_steps, lambda_: float = 1.0,
                **options):
  """Supervised training plus Deep CORAL, without pseudo-labels: the
  alignment half of :func:`fixmatch_coral` (:func:`mmd_align` options)."""
  return mmd_align(model, num_classes, total_steps=total_steps,
                   align="coral", lambda_=lambda_, **options)


def lmmd_align(model, num_classes, *, total_steps, lambda_: float = 1.0,
               **options):
  """Supervised training plus DSAN's class-conditional MMD (the target's
  classes weighted by the model's softmax), without FixMatch's
  pseudo-label loss: the alignment half of :func:`fixmatch_lmmd`
  (:func:`mmd_align` options)."""
  return mmd_align(model, num_classes, total_steps=total_steps,
                   align="lmmd", lambda_=lambda_, **options)


def fixmatch_dann(model, num_classes, *, total_steps, lambda_: float = 1.0,
                  **options):
  """FixMatch plus DANN's domain classifier behind a gradient reversal on
  the source and target features (semi-supervised domain adaptation;
  :func:`fixmatch` options; ``lambda`` is the reversal strength)."""
  return fixmatch(model, num_classes, total_steps=total_steps, align="dann",
                  lambda_=lambda_, **options)._replace(name="fixmatch_dann")


def dann_align(model, num_classes, *, total_steps, lambda_: float = 1.0,
               **options):
  """Supervised training plus DANN's domain classifier, without FixMatch's
  pseudo-label loss: the alignment half of :func:`fixmatch_dann`
  (:func:`mmd_align` options)."""
  return mmd_align(model, num_classes, total_steps=total_steps,
                   align="dann", lambda_=lambda_, **options)


def flexmatch(model, num_classes, *, total_steps, **options):
  """FixMatch with FlexMatch's thresholds (:func:`fixmatch` options)."""
  return fixmatch(model, num_classes, total_steps=total_steps,
                  threshold="flexmatch", **options)


def freematch(model, num_classes, *, total_steps, **options):
  """FixMatch with FreeMatch's thresholds and fairness term."""
  return fixmatch(model, num_classes, total_steps=total_steps,
                  threshold="freematch", **options)


def softmatch(model, num_classes, *, total_steps, **options):
  """FixMatch with SoftMatch's truncated-Gaussian weights."""
  return fixmatch(model, num_classes, total_steps=total_steps,
                  threshold="softmatch", **options)


METHODS = {
    "supervised": supervised,
    # The same training on every label of the split (the ceiling), under its
    # own name so that both sit in one sweep.
    "fully_supervised": supervised,
    "mmd_align": mmd_align,
    "fixmatch_mmd": fixmatch_mmd,
    "coral_align": coral_align,
    "fixmatch_coral": fixmatch_coral,
    "lmmd_align": lmmd_align,
    "fixmatch_lmmd": fixmatch_lmmd,
    "dann_align": dann_align,
    "fixmatch_dann": fixmatch_dann,
    "pseudo_label": pseudo_label,
    "mean_teacher": mean_teacher,
    "fixmatch": fixmatch,
    "flexmatch": flexmatch,
    "freematch": freematch,
    "softmatch": softmatch,
}
