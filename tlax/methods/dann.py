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
  (``config.method.feature_layer``, ``"auto"``);
* ``D``: ``T -> 1024 -> 1024 -> 1`` with ReLU and dropout 0.5 (sec. 5.2.2,
  the Office architecture; the paper's MNIST domain classifier is ``T -> 100
  -> 1``: set ``config.method.disc_hidden = (100,)``);
* ``config.method.align_start`` (not in the paper, default 0): no reversal
  for that many steps, the ramp over the rest
  (:func:`tlax.methods.networks.alignment_schedule`);
* the learning-rate annealing ``mu_p = 0.01 / (1 + 10 p)^0.75`` with SGD
  momentum 0.9 is the trainer's ``optimizer.schedule = "dann"``.

:class:`DANN` is also the base of CDAN (:mod:`tlax.methods.cdan`), which
changes only what ``D`` sees (:meth:`DANN.domain_inputs`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import Method
from tlax.methods.base import register


@register
class DANN(Method):
  """Gradient reversal + domain classifier with DANN's lambda schedule."""

  name = "dann"
  default_hparams = {"lambda": 1.0}
  default_feature_layer = "auto"

  def __init__(self, ctx):
    super().__init__(ctx)
    opt = lambda k, d: networks.method_option(self, k, d)
    self.feature_layer = opt("feature_layer", self.default_feature_layer)
    self.grl_gamma = float(opt("grl_gamma", 10.0))
    self.disc = networks.DomainDiscriminator(
        hidden=tuple(opt("disc_hidden", (1024, 1024))),
        dropout=float(opt("disc_dropout", 0.5)))

  # ----- what the domain classifier sees --------------------------------
  def _layer(self, logits, feats):
    name = self.feature_layer
    if name == "auto":
      name = "flat" if "flat" in feats else "embedding"
    return networks.select_layer(name, logits, feats)

  def domain_inputs(self, out, state):
    """``(h_s, h_t, weights)``: discriminator inputs, optional weights."""
    del state
    return self._layer(*out["s"]), self._layer(*out["t"]), None

  def init_extra(self, rng, batch, params, state):
    xs = jnp.asarray(batch["xs"])[:2]
    xt = jnp.asarray(batch["xt"])[:2]
    extra_state = self.init_domain_state(rng, batch, params, state)
    out, _ = networks.forward_domains(
        self, params, {**state, **extra_state}, {"xs": xs, "xt": xt}, None,
        train=False)
    hs, _, _ = self.domain_inputs(out, {**state, **extra_state})
    disc_params = self.disc.init(rng, hs)["params"]
    return {"discriminator": disc_params}, extra_state

  def init_domain_state(self, rng, batch, params, state):
    """Extra non-trainable state (CDAN's random projection)."""
    del rng, batch, params, state
    return {}

  def grl_coefficient(self, step, hparams):
    return hparams["lambda"] * networks.alignment_schedule(
        self, step, gamma=self.grl_gamma)

  # ----- the objective --------------------------------------------------
  def loss(self, params, state, batch, rng, step, hparams):
    rng_model, rng_disc = jax.random.split(rng)
    out, state = networks.forward_domains(self, params, state, batch,
                                          rng_model)
    cls_loss, metrics = networks.supervised_loss(out, batch)
    hs, ht, weights = self.domain_inputs(out, state)
    coeff = self.grl_coefficient(step, hparams)
    h = losses.gradient_reversal(jnp.concatenate([hs, ht], 0), coeff)
    d = self.disc.apply({"params": params["discriminator"]}, h, train=True,
                        rngs={"dropout": rng_disc})
    ns = hs.shape[0]
    dom_loss = losses.dann_domain_loss(d[:ns], d[ns:], weights)
    loss = cls_loss + dom_loss
    metrics.update(
        loss=loss, align_loss=dom_loss, align_weight=coeff,
        domain_acc=0.5 * (jnp.mean((d[:ns] > 0).astype(jnp.float32))
                          + jnp.mean((d[ns:] < 0).astype(jnp.float32))))
    return loss, (metrics, state)
