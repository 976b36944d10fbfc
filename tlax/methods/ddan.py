"""DDAN: deep dynamic distribution adaptation with a learned mu.

Wang, Chen, Feng & Yu, "Transfer Learning with Dynamic Distribution
Adaptation", ACM TIST 2020 (DDAN); the dynamic factor follows MEDA (Wang et
al., ACM MM 2018) and DAAN (Yu et al., ICDM 2019).

``R = (1 - mu) MMD^2(z_s, z_t) + mu * (1/C) sum_c MMD^2_c(z_s, z_t)``
(:func:`tlax.losses.dynamic_mmd`): the marginal MMD and the class-conditional
MMD with the source labels and the target's soft predictions
``softmax(logits_t)`` (stopped), on the head input ``"embedding"``, with the
multi-kernel Gaussian of DAN (``"mean:5"``). ``mu`` is learned during
training by :func:`tlax.losses.dynamic_mu_estimator`: proxy A-distances of a
global and of per-class linear domain classifiers trained in the graph on
stopped features, ``mu = mean_c d_c / (d_g + mean_c d_c)``; its state
(classifiers and error averages) lives in the method state under
``"mu_estimator"``, so a resumed run continues with the same ``mu``. ``mu``
itself is stopped in the loss. ``lambda = 1`` with DANN's progressive ramp
(``warmup``), since the conditional term relies on target predictions that
are noisy early in training (as in JAN). Estimator options
(``config.method.mu_learning_rate = 0.05``, ``mu_ema_decay = 0.9``,
``mu_class_reduction = "mean"``) are the defaults of the estimator.
"""

from __future__ import annotations

import jax

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import register
from tlax.methods.ddc import DiscrepancyMethod


@register
class DDAN(DiscrepancyMethod):
  """Dynamic MMD with the learned balance factor mu."""

  name = "ddan"
  default_hparams = {"lambda": 1.0}
  default_layers = ("embedding",)
  default_warmup = True

  def __init__(self, ctx):
    super().__init__(ctx)
    if len(self.layers) != 1:
      raise ValueError(f"ddan aligns one layer; got layers={self.layers}.")
    opt = lambda k, d: networks.method_option(self, k, d)
    self.sigmas = opt("sigmas", "mean:5")
    self.estimator = losses.dynamic_mu_estimator(
        self.num_classes,
        learning_rate=float(opt("mu_learning_rate", 0.05)),
        ema_decay=float(opt("mu_ema_decay", 0.9)),
        class_reduction=opt("mu_class_reduction", "mean"))

  def init_extra(self, rng, batch, params, state):
    del rng
    logits, feats, _ = self.classifier(params, state, batch["xs"][:2],
                                       train=False)
    dim = networks.select_layer(self.layers[0], logits, feats).shape[-1]
    return {}, {"mu_estimator": self.estimator.init(int(dim))._asdict()}

  def discrepancy(self, zs, zt, out, batch, state, step):
    zs, zt = zs[0], zt[0]
    probs_t = jax.lax.stop_gradient(jax.nn.softmax(out["t"][0], -1))
    est_state = losses.DynamicMuState(**state["mu_estimator"])
    est_state, mu = self.estimator.update(est_state, zs, batch["ys"], zt,
                                          probs_t)
    mu = jax.lax.stop_gradient(mu)
    value = losses.dynamic_mmd(zs, zt, batch["ys"], probs_t, mu,
                               self.num_classes, sigmas=self.sigmas)
    state = {**state, "mu_estimator": est_state._asdict()}
    metrics = {"mu": mu, "a_distance_global": est_state.a_distance_global}
    return value, metrics, state
