"""CDAN and CDAN+E: conditional adversarial domain adaptation.

Long, Cao, Wang & Jordan, "Conditional Adversarial Domain Adaptation",
NeurIPS 2018.

DANN (:mod:`tlax.methods.dann`) whose domain classifier sees the multilinear
map ``T(f, g) = g (x) f`` of the features ``f`` (the head input,
``"embedding"``) and the predictions ``g = softmax(logits)``, so it aligns
the joint distribution of features and classes. Defaults from the paper and
its released code:

* the randomized multilinear map ``(f R_f) * (g R_g) / sqrt(1024)`` with
  fixed Gaussian ``R_f``, ``R_g`` (kept in the method state) when
  ``d * C > 4096``, else the exact outer product (``randomized``:
  ``"auto"``, ``True`` or ``False``; ``randomized_dim = 1024``);
* ``g`` enters the map with its gradient stopped (``softmax_output.detach()``
  in the released code; the Transfer-Learning-Library does the same);
* CDAN+E (``cdan_e``) weights each example's domain loss by ``w = 1 +
  exp(-H(g))`` (entropy conditioning), normalised per domain;
* the discriminator ``1024 -> 1024 -> 1`` with dropout 0.5, the GRL
  coefficient ``lambda * (2 / (1 + exp(-10 p)) - 1)``, ``lambda = 1``, as
  DANN.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import common
from tlax.methods import contract
from tlax.methods import networks
from tlax.methods.dann import adversarial_method


def cdan(model, num_classes: int, *, total_steps: int,
         lambda_: float = 1.0,
         feature_layer: str = "embedding",
         randomized="auto",
         randomized_dim: int = 1024,
         max_multilinear_dim: int = 4096,
         entropy_conditioning: bool = False,
         disc_hidden: Sequence[int] = (1024, 1024),
         disc_dropout: float = 0.5,
         grl_gamma: float = 10.0,
         align_start: int = 0) -> contract.Method:
  """CDAN: DANN on the multilinear map of features and predictions.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    lambda_: the maximum GRL coefficient (config key ``lambda``; swept).
    feature_layer: the features ``f`` of the map.
    randomized: ``"auto"`` (random map when ``d * C > max_multilinear_dim``),
      True or False.
    randomized_dim: the random map's output size.
    max_multilinear_dim: see ``randomized``.
    entropy_conditioning: CDAN+E's example weights ``1 + exp(-H(g))``.
    disc_hidden, disc_dropout, grl_gamma, align_start: as :func:`dann`.

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  classify = common.classifier_fn(model)

  def use_random(dim):
    if randomized == "auto":
      return dim * num_classes > max_multilinear_dim
    return bool(randomized)

  def init_domain_state(rng, batch, params, state):
    _, feats, _ = classify(params, state, jnp.asarray(batch["xs"])[:2],
                           train=False)
    dim = common.select_layer(feature_layer, feats["embedding"],
                              feats).shape[-1]
    if not use_random(dim):
      return {}
    rf, rg = losses.cdan_random_projection(
        jax.random.fold_in(rng, 1), dim, num_classes, int(randomized_dim))
    return {"cdan_projection": {"features": rf, "predictions": rg}}

  def domain_inputs(out, state):
    proj = state.get("cdan_projection")
    proj = None if proj is None else (proj["features"], proj["predictions"])

    def side(logits, feats):
      f = common.select_layer(feature_layer, logits, feats)
      g = jax.lax.stop_gradient(jax.nn.softmax(logits, -1))
      h = losses.cdan_multilinear(f, g, proj)
      w = losses.entropy_weights(g) if entropy_conditioning else None
      return h, w

    hs, ws = side(*out["s"])
    ht, wt = side(*out["t"])
    return hs, ht, (ws, wt) if entropy_conditioning else None

  disc = networks.DomainDiscriminator(hidden=tuple(disc_hidden),
                                      dropout=float(disc_dropout))
  return adversarial_method(
      model, total_steps=total_steps, lambda_=lambda_, disc=disc,
      grl_gamma=float(grl_gamma), align_start=align_start,
      domain_inputs=domain_inputs, init_domain_state=init_domain_state,
      name="cdan_e" if entropy_conditioning else "cdan")


# CDAN+E: CDAN with entropy-conditioned example weights.
cdan_e = functools.partial(cdan, entropy_conditioning=True)
