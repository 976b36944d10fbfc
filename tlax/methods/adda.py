r"""ADDA: Adversarial Discriminative Domain Adaptation.

Tzeng, Hoffman, Saenko & Darrell, "Adversarial Discriminative Domain
Adaptation", CVPR 2017.

Two stages, in one run:

1. **Source training** (the first ``source_fraction`` of the steps): the
   source encoder ``M_s`` and the classifier ``C`` minimise the weighted
   source risk.
2. **Adversarial adaptation** (the rest): the target encoder ``M_t`` starts
   as a copy of ``M_s`` (untied weights); ``M_s`` and ``C`` are frozen. A
   domain discriminator ``D`` learns to tell ``M_s(x_s)`` (label 1) from
   ``M_t(x_t)`` (label 0); ``M_t`` learns with the inverted labels (the GAN
   loss ``-log D(M_t(x_t))``). Each step updates ``D`` and then ``M_t``, each
   with its own optimiser state.

Target predictions are ``C(M_t(x))``: the classifier head is kept from the
source stage. During the source stage ``M_t`` is kept equal to ``M_s``, so
evaluations then report the source model.

The encoder is the model up to its head input (``features["embedding"]``,
LeNet's 500-unit layer as in the paper); ``D`` is the paper's
``500 -> 500 -> 1`` MLP with ReLU (``disc_hidden``). Both stages run inside
the one jitted step (the method owns its update and selects the stage's
result by the step); the trainer's optimiser drives all three parameter groups
(the paper: Adam, learning rate 2e-4, beta1 0.5, see
``experiments/configs/adda.py``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import optax

from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks

HEAD = "head"


def _bce(logits, label: float):
  return jnp.mean(optax.sigmoid_binary_cross_entropy(
      logits, jnp.full_like(logits, label)))


def adda(model, num_classes: int, *, total_steps: int,
         source_fraction: float = 0.5,
         disc_hidden: Sequence[int] = (500, 500),
         disc_dropout: float = 0.0) -> contract.Method:
  """ADDA: source training, then an adversarially adapted target encoder.

  Args:
    model: the classifier network (encoder = all but its ``head``).
    num_classes: number of classes.
    total_steps: length of the run.
    source_fraction: fraction of the steps spent on source training.
    disc_hidden, disc_dropout: the discriminator's hidden widths and dropout.

  Returns:
    A :class:`tlax.methods.contract.Method` that owns its update. Params:
    ``model`` (``M_s`` and ``C``), ``target_encoder`` (``M_t``: the model's
    parameters, whose head copy is unused), ``discriminator``. Metrics:
    ``loss``, ``cls_loss``, ``source_acc``, ``adapting`` (0 or 1),
    ``d_loss``, ``g_loss``, ``d_acc``.
  """
  del num_classes
  if not 0.0 < float(source_fraction) < 1.0:
    raise ValueError(f"config.method.source_fraction must be in (0, 1), got "
                     f"{source_fraction}.")
  source_steps = max(1, int(round(float(source_fraction) * total_steps)))
  classify = common.classifier_fn(model)
  disc = networks.DomainDiscriminator(hidden=tuple(disc_hidden),
                                      dropout=float(disc_dropout))

  def extra_init(rng, batch, params, state):
    _, feats, _ = classify(params, state, jnp.asarray(batch["xs"])[:2],
                           train=False)
    return ({"target_encoder": jax.tree.map(jnp.array, params["model"]),
             "discriminator": disc.init(rng, feats["embedding"])["params"]},
            {"target_state": state["model"]})

  def target_params(params, state):
    """Params and state that run ``C(M_t(x))`` through ``model``."""
    p = {"model": {**params["target_encoder"],
                   HEAD: params["model"][HEAD]}}
    return p, {"model": state["target_state"]}

  def init_opt(tx, params):
    return {"source": tx.init(params["model"]),
            "target": tx.init(params["target_encoder"]),
            "discriminator": tx.init(params["discriminator"])}

  def apply(tx, lr, grads, opt_state, p):
    updates, opt_state = tx.update(grads, opt_state, p)
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    return optax.apply_updates(p, updates), opt_state

  zero = jnp.zeros((), jnp.float32)

  def source_stage(params, state, opt_state, batch, rng, tx, lr):
    def loss_fn(model_params):
      logits, _, s = classify({"model": model_params}, state, batch["xs"],
                              train=True, rng=rng)
      risk = contract.weighted_cross_entropy(logits, batch["ys"],
                                             batch.get("ws"))
      return risk, (logits, s)
    (risk, (logits, state)), g = jax.value_and_grad(
        loss_fn, has_aux=True)(params["model"])
    model_params, opt_s = apply(tx, lr, g, opt_state["source"],
                                params["model"])
    # M_t follows M_s until the adaptation starts.
    params = {**params, "model": model_params,
              "target_encoder": model_params}
    state = {**state, "target_state": state["model"]}
    metrics = {"loss": risk, "cls_loss": risk,
               "source_acc": contract.accuracy(logits, batch["ys"]),
               "adapting": zero, "d_loss": zero, "g_loss": zero,
               "d_acc": zero}
    return params, state, {**opt_state, "source": opt_s}, metrics

  def adapt_stage(params, state, opt_state, batch, rng, tx, lr):
    rng_s, rng_t, rng_d, rng_g = jax.random.split(rng, 4)
    logits_s, feats_s, _ = classify(params, state, batch["xs"], train=False)
    hs = jax.lax.stop_gradient(feats_s["embedding"])
    risk = contract.weighted_cross_entropy(logits_s, batch["ys"],
                                           batch.get("ws"))
    tparams, tstate = target_params(params, state)
    _, feats_t, tstate = classify(tparams, tstate, batch["xt"], train=True,
                                  rng=rng_t)
    ht = jax.lax.stop_gradient(feats_t["embedding"])
    del rng_s

    # D: source features 1, target features 0.
    def d_loss_fn(dp):
      ds = disc.apply({"params": dp}, hs, train=True,
                      rngs={"dropout": rng_d})
      dt = disc.apply({"params": dp}, ht, train=True,
                      rngs={"dropout": jax.random.fold_in(rng_d, 1)})
      acc = 0.5 * (jnp.mean((ds > 0).astype(jnp.float32))
                   + jnp.mean((dt < 0).astype(jnp.float32)))
      return 0.5 * (_bce(ds, 1.0) + _bce(dt, 0.0)), acc
    (d_loss, d_acc), g = jax.value_and_grad(d_loss_fn, has_aux=True)(
        params["discriminator"])
    disc_params, opt_d = apply(tx, lr, g, opt_state["discriminator"],
                               params["discriminator"])

    # M_t: the inverted label, against the updated D.
    def g_loss_fn(enc):
      p = {"model": {**enc, HEAD: params["model"][HEAD]}}
      _, feats, s = classify(p, {"model": state["target_state"]},
                             batch["xt"], train=True, rng=rng_g)
      dt = disc.apply({"params": disc_params}, feats["embedding"],
                      train=True, rngs={"dropout": rng_g})
      return _bce(dt, 1.0), s
    (g_loss, tstate), g = jax.value_and_grad(g_loss_fn, has_aux=True)(
        params["target_encoder"])
    enc, opt_t = apply(tx, lr, g, opt_state["target"],
                       params["target_encoder"])
    params = {**params, "target_encoder": enc, "discriminator": disc_params}
    state = {**state, "target_state": tstate["model"]}
    metrics = {"loss": d_loss + g_loss, "cls_loss": risk,
               "source_acc": contract.accuracy(logits_s, batch["ys"]),
               "adapting": jnp.ones((), jnp.float32), "d_loss": d_loss,
               "g_loss": g_loss, "d_acc": d_acc}
    return (params, state,
            {**opt_state, "target": opt_t, "discriminator": opt_d}, metrics)

  def update(params, state, opt_state, batch, rng, step, hparams, *, tx, lr):
    del hparams
    # Both stages computed, the step's one selected: XLA:CPU ran the
    # convolutions inside a lax.cond 14x slower (2 against 29 steps per
    # second on the digits LeNet); elsewhere this costs the idle stage's
    # arithmetic.
    in_source = step < source_steps
    src = source_stage(params, state, opt_state, batch, rng, tx, lr)
    ada = adapt_stage(params, state, opt_state, batch, rng, tx, lr)
    return jax.tree.map(lambda a, b: jnp.where(in_source, a, b), src, ada)

  def loss(params, state, batch, rng, step, hparams):
    """The source risk of ``C(M_s)`` (for inspection; see ``update``)."""
    del step, hparams
    logits, _, state = classify(params, state, batch["xs"], train=True,
                                rng=rng)
    risk = contract.weighted_cross_entropy(logits, batch["ys"],
                                           batch.get("ws"))
    return risk, ({"source_acc": contract.accuracy(logits, batch["ys"])},
                  state)

  def predict(params, state, x):
    p, s = target_params(params, state)
    return classify(p, s, x, train=False)[0]

  def features(params, state, x):
    p, s = target_params(params, state)
    return classify(p, s, x, train=False)[1]

  return contract.Method(init=common.init_with(model, extra_init), loss=loss,
                         predict=predict, features=features, update=update,
                         init_opt=init_opt, name="adda")
