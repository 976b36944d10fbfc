"""DANN: domain-adversarial training with a gradient reversal layer.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML
2015; Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR
2016.

A domain classifier ``D`` (:class:`networks.DomainDiscriminator`) learns to
tell source from target features; the features receive its gradient
reversed and scaled by ``lambda_p``::

    loss = (1/Ns) sum_i v_i CE(f(x_i), y_i)
           + L_dom(D(GRL_{lambda_p}(T(x_s))), D(GRL_{lambda_p}(T(x_t))))

so ``D`` minimises the domain loss and the feature extractor maximises it.
Defaults from the JMLR paper:

* ``lambda_p = lambda * (2 / (1 + exp(-10 p)) - 1)``, ``p = step / steps``,
  ``lambda = 1`` (sec. 5.2.2; ``hparams["lambda"]`` is the swept maximum);
* ``T`` is the feature extractor's output, the input of the label predictor
  in the paper's MNIST net: ``"flat"`` for LeNet (the flattened conv
  features), ``"embedding"`` for models without ``"flat"``
  (``feature_layer = "auto"``);
* ``D``: ``T -> 1024 -> 1024 -> 1`` with ReLU and dropout 0.5 (sec. 5.2.2,
  the Office architecture; the paper's MNIST domain classifier is ``T -> 100
  -> 1``: set ``disc_hidden = (100,)``);
* ``align_start`` (not in the paper, default 0): no reversal for that many
  steps, the ramp over the rest
  (:func:`tlax.methods.common.alignment_schedule`);
* the learning-rate annealing ``mu_p = 0.01 / (1 + 10 p)^0.75`` with SGD
  momentum 0.9 is the trainer's ``optimizer.schedule = "dann"``.

:func:`adversarial_method` is also the body of CDAN (:mod:`tlax.methods.cdan`),
which changes only what ``D`` sees (its ``domain_inputs``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks


def adversarial_method(model, *, total_steps: int, lambda_: float,
                       disc: networks.DomainDiscriminator, grl_gamma: float,
                       align_start: int, domain_inputs,
                       init_domain_state=None, name: str = ""
                       ) -> contract.Method:
  """Source risk + the domain loss of ``disc`` behind a gradient reversal.

  ``domain_inputs(out, state) -> (h_s, h_t, weights)`` gives what the
  discriminator sees from :func:`common.forward_domains`' output ``out``
  (``weights``: None or per-domain example weights of the domain loss);
  ``init_domain_state(rng, batch, params, state) -> dict`` adds
  non-trainable state (CDAN's random projection).
  """
  common.check_align_start(align_start, total_steps)
  classify = common.classifier_fn(model)

  def extra_init(rng, batch, params, state):
    xs = jnp.asarray(batch["xs"])[:2]
    xt = jnp.asarray(batch["xt"])[:2]
    extra_state = ({} if init_domain_state is None
                   else init_domain_state(rng, batch, params, state))
    full_state = {**state, **extra_state}
    out, _ = common.forward_domains(classify, params, full_state,
                                    {"xs": xs, "xt": xt}, None, train=False)
    hs, _, _ = domain_inputs(out, full_state)
    return {"discriminator": disc.init(rng, hs)["params"]}, extra_state

  def loss(params, state, batch, rng, step, hparams):
    rng_model, rng_disc = jax.random.split(rng)
    out, state = common.forward_domains(classify, params, state, batch,
                                        rng_model)
    cls_loss, metrics = common.supervised_loss(out, batch)
    hs, ht, weights = domain_inputs(out, state)
    coeff = hparams["lambda"] * common.alignment_schedule(
        step, total_steps, align_start, gamma=grl_gamma)
    h = losses.gradient_reversal(jnp.concatenate([hs, ht], 0), coeff)
    d = disc.apply({"params": params["discriminator"]}, h, train=True,
                   rngs={"dropout": rng_disc})
    ns = hs.shape[0]
    dom_loss = losses.dann_domain_loss(d[:ns], d[ns:], weights)
    value = cls_loss + dom_loss
    metrics.update(
        loss=value, align_loss=dom_loss, align_weight=coeff,
        domain_acc=0.5 * (jnp.mean((d[:ns] > 0).astype(jnp.float32))
                          + jnp.mean((d[ns:] < 0).astype(jnp.float32))))
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(init=common.init_with(model, extra_init), loss=loss,
                         predict=predict, features=features,
                         hparams={"lambda": lambda_}, name=name)


def feature_layer_fn(feature_layer: str):
  """``(logits, feats) -> array``: the named layer; ``"auto"`` is ``"flat"``
  when the model has it (LeNet's flattened conv features), else
  ``"embedding"``."""
  def layer(logits, feats):
    name = feature_layer
    if name == "auto":
      name = "flat" if "flat" in feats else "embedding"
    return common.select_layer(name, logits, feats)
  return layer


def dann(model, num_classes: int, *, total_steps: int,
         lambda_: float = 1.0,
         feature_layer: str = "auto",
         disc_hidden: Sequence[int] = (1024, 1024),
         disc_dropout: float = 0.5,
         grl_gamma: float = 10.0,
         align_start: int = 0) -> contract.Method:
  """DANN: gradient reversal + domain classifier with DANN's lambda schedule.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    lambda_: the maximum GRL coefficient (config key ``lambda``; swept).
    feature_layer: what the discriminator sees (``"auto"``: ``"flat"`` when
      the model has it, else ``"embedding"``).
    disc_hidden, disc_dropout: the discriminator's hidden widths and dropout.
    grl_gamma: the ramp's steepness ``gamma`` in ``2 / (1 + exp(-gamma p)) - 1``.
    align_start: steps without reversal before the ramp starts.

  Returns:
    A :class:`tlax.methods.contract.Method` with a ``"discriminator"``
    network; metrics add ``domain_acc``.
  """
  del num_classes
  layer = feature_layer_fn(feature_layer)

  def domain_inputs(out, state):
    del state
    return layer(*out["s"]), layer(*out["t"]), None

  disc = networks.DomainDiscriminator(hidden=tuple(disc_hidden),
                                      dropout=float(disc_dropout))
  return adversarial_method(model, total_steps=total_steps, lambda_=lambda_,
                            disc=disc, grl_gamma=float(grl_gamma),
                            align_start=align_start,
                            domain_inputs=domain_inputs, name="dann")
