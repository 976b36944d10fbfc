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
  ``d * C > 4096``, else the exact outer product
  (``config.method.randomized``: ``"auto"``, ``True`` or ``False``;
  ``randomized_dim = 1024``);
* ``g`` enters the map with its gradient stopped (``softmax_output.detach()``
  in the released code; the Transfer-Learning-Library does the same);
* CDAN+E (``cdan_e``) weights each example's domain loss by ``w = 1 +
  exp(-H(g))`` (entropy conditioning), normalised per domain;
* the discriminator ``1024 -> 1024 -> 1`` with dropout 0.5, the GRL
  coefficient ``lambda * (2 / (1 + exp(-10 p)) - 1)``, ``lambda = 1``, as
  DANN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import register
from tlax.methods.dann import DANN


@register
class CDAN(DANN):
  """DANN on the multilinear map of features and predictions."""

  name = "cdan"
  default_feature_layer = "embedding"
  entropy_conditioning = False

  def __init__(self, ctx):
    super().__init__(ctx)
    opt = lambda k, d: networks.method_option(self, k, d)
    self.randomized = opt("randomized", "auto")
    self.randomized_dim = int(opt("randomized_dim", 1024))
    self.max_multilinear_dim = int(opt("max_multilinear_dim", 4096))

  def _use_random(self, dim):
    if self.randomized == "auto":
      return dim * self.num_classes > self.max_multilinear_dim
    return bool(self.randomized)

  def init_domain_state(self, rng, batch, params, state):
    _, feats, _ = self.classifier(params, state,
                                  jnp.asarray(batch["xs"])[:2], train=False)
    dim = networks.select_layer(self.feature_layer, feats["embedding"],
                                feats).shape[-1]
    if not self._use_random(dim):
      return {}
    rf, rg = losses.cdan_random_projection(
        jax.random.fold_in(rng, 1), dim, self.num_classes, self.randomized_dim)
    return {"cdan_projection": {"features": rf, "predictions": rg}}

  def domain_inputs(self, out, state):
    proj = state.get("cdan_projection")
    proj = None if proj is None else (proj["features"], proj["predictions"])

    def side(logits, feats):
      f = networks.select_layer(self.feature_layer, logits, feats)
      g = jax.lax.stop_gradient(jax.nn.softmax(logits, -1))
      h = losses.cdan_multilinear(f, g, proj)
      w = losses.entropy_weights(g) if self.entropy_conditioning else None
      return h, w

    hs, ws = side(*out["s"])
    ht, wt = side(*out["t"])
    return hs, ht, (ws, wt) if self.entropy_conditioning else None


@register
class CDANE(CDAN):
  """CDAN+E: CDAN with entropy-conditioned example weights."""

  name = "cdan_e"
  entropy_conditioning = True
