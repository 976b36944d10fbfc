"""SDT: Simultaneous Deep Transfer across domains and tasks.

Tzeng, Hoffman, Darrell & Saenko, "Simultaneous Deep Transfer Across Domains
and Tasks", ICCV 2015.

Three terms besides the weighted source risk:

* a domain classifier ``D`` (2-way softmax on the head input
  ``"embedding"``; the paper's ``fcD`` is one linear layer on fc7, so
  ``disc_hidden = ()``) trained to tell the domains apart:
  ``L_D = CE(D(f), domain)``;
* the domain confusion loss for the feature extractor: the cross-entropy of
  ``D``'s prediction with the *uniform* domain distribution,
  ``L_conf = -1/2 sum_d log q_d`` (maximal confusion rather than DANN's
  reversed gradient), weight ``lambda = 0.01`` (paper);
* the soft-label loss: per-class averages of the source predictions at
  temperature ``tau``, ``l^(k) = mean_{i: y_i = k} softmax(z_i / tau)``, are
  the targets of the tempered predictions on labelled target examples,
  ``L_soft = -sum_k l^(y)_k log softmax(z / tau)_k``, weight ``nu = 0.1``
  (paper), ``tau = 2`` (the distillation temperature the paper adopts
  from Hinton et al.).

Deviations: the paper alternates updates of ``D`` and of the features;
here both happen in one step with ``stop_gradient`` (``L_D`` sees stopped features, ``L_conf`` stopped ``D``
parameters), which gives the same gradients as the alternation. The paper
computes the soft labels once from a source-trained CNN; here they are an
exponential moving average (``soft_label_momentum = 0.9``) of the per-class
means of the current network's source predictions, kept in the method state.
The soft-label loss needs labelled target examples
(``config.target_labeled_per_class > 0``); in the unsupervised setting it is
absent unless ``soft_label_target = "pseudo"``, which applies
it to target examples whose predicted class has probability above
``pseudo_threshold`` (an extension, not in the paper).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from tlax import losses
from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks


def sdt(model, num_classes: int, *, total_steps: int,
        lambda_: float = 0.01,
        nu: float = 0.1,
        temperature: float = 2.0,
        feature_layer: str = "embedding",
        disc_hidden: Sequence[int] = (),
        disc_dropout: float = 0.0,
        soft_label_momentum: float = 0.9,
        soft_label_target: str = "labelled",
        pseudo_threshold: float = 0.9,
        align_start: int = 0) -> contract.Method:
  """SDT: domain confusion toward the uniform prediction + soft labels.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    lambda_: weight of the confusion loss (config key ``lambda``; swept).
    nu: weight of the soft-label loss (swept).
    temperature: the soft-label temperature ``tau`` (swept).
    feature_layer: what the domain classifier sees.
    disc_hidden, disc_dropout: the domain classifier's hidden widths and
      dropout (the paper: one linear layer).
    soft_label_momentum: EMA momentum of the per-class soft labels.
    soft_label_target: ``"labelled"`` or ``"pseudo"`` (see module doc).
    pseudo_threshold: confidence of the pseudo-labelled target examples.
    align_start: steps before the confusion term starts.

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  if soft_label_target not in ("labelled", "pseudo"):
    raise ValueError("config.method.soft_label_target must be 'labelled' or "
                     f"'pseudo', got {soft_label_target!r}.")
  common.check_align_start(align_start, total_steps)
  classify = common.classifier_fn(model)
  disc = networks.DomainDiscriminator(hidden=tuple(disc_hidden),
                                      dropout=disc_dropout, num_outputs=2)
  momentum = float(soft_label_momentum)
  threshold = float(pseudo_threshold)
  c = num_classes

  def extra_init(rng, batch, params, state):
    logits, feats, _ = classify(params, state, jnp.asarray(batch["xs"])[:2],
                                train=False)
    z = common.select_layer(feature_layer, logits, feats)
    extra_state = {"soft_labels": jnp.full((c, c), 1.0 / c, jnp.float32),
                   "soft_label_seen": jnp.zeros((c,), jnp.float32)}
    return {"discriminator": disc.init(rng, z)["params"]}, extra_state

  def update_soft_labels(state, logits_s, ys, tau):
    p = jax.nn.softmax(jax.lax.stop_gradient(logits_s) / tau, -1)
    onehot = jax.nn.one_hot(ys, c, dtype=p.dtype)
    counts = jnp.sum(onehot, axis=0)
    means = (onehot.T @ p) / jnp.maximum(counts, 1.0)[:, None]
    old, seen = state["soft_labels"], state["soft_label_seen"]
    m = jnp.where(seen > 0, momentum, 0.0)[:, None]
    new = jnp.where(counts[:, None] > 0, m * old + (1 - m) * means, old)
    seen = jnp.maximum(seen, (counts > 0).astype(seen.dtype))
    return {**state, "soft_labels": new, "soft_label_seen": seen}

  def loss(params, state, batch, rng, step, hparams):
    rng_model, rng_disc = jax.random.split(rng)
    out, state = common.forward_domains(classify, params, state, batch,
                                        rng_model)
    cls_loss, metrics = common.supervised_loss(out, batch)
    keys = [k for k in ("s", "t", "tl") if k in out]
    z = jnp.concatenate([common.select_layer(feature_layer, *out[k])
                         for k in keys], axis=0)
    ns = out["s"][0].shape[0]
    domain = (jnp.arange(z.shape[0]) >= ns).astype(jnp.int32)
    d_params = params["discriminator"]
    # The domain classifier learns on stopped features ...
    d_logits = disc.apply({"params": d_params}, jax.lax.stop_gradient(z),
                          train=True, rngs={"dropout": rng_disc})
    disc_loss = jnp.mean(
        optax.softmax_cross_entropy_with_integer_labels(d_logits, domain))
    # ... and the features learn to confuse the stopped domain classifier.
    conf_logits = disc.apply({"params": jax.lax.stop_gradient(d_params)}, z,
                             train=True, rngs={"dropout": rng_disc})
    conf_loss = losses.domain_confusion_loss(conf_logits)

    tau = hparams["temperature"]
    state = update_soft_labels(state, out["s"][0], batch["ys"], tau)
    soft = jax.lax.stop_gradient(state["soft_labels"])
    if "tl" in out:
      soft_loss = losses.soft_label_loss(out["tl"][0], batch["ytl"], soft, tau)
    elif soft_label_target == "pseudo":
      lt = out["t"][0]
      probs = jax.nn.softmax(jax.lax.stop_gradient(lt), -1)
      soft_loss = losses.soft_label_loss(
          lt, jnp.argmax(probs, -1), soft, tau,
          mask=jnp.max(probs, -1) >= threshold)
    else:
      soft_loss = jnp.zeros((), jnp.float32)

    weight = hparams["lambda"] * common.alignment_schedule(
        step, total_steps, align_start, ramp=False)
    value = (cls_loss + disc_loss + weight * conf_loss
             + hparams["nu"] * soft_loss)
    metrics.update(
        loss=value, align_loss=conf_loss, disc_loss=disc_loss,
        soft_label_loss=soft_loss, align_weight=weight,
        domain_acc=jnp.mean((jnp.argmax(d_logits, -1) == domain)
                            .astype(jnp.float32)))
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(
      init=common.init_with(model, extra_init), loss=loss, predict=predict,
      features=features, name="sdt",
      hparams={"lambda": lambda_, "nu": nu, "temperature": temperature})
