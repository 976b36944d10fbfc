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
are noisy early in training (as in JAN). The estimator's options
(``mu_learning_rate``, ``mu_ema_decay``, ``mu_class_reduction``) are
arguments of :func:`ddan`.
"""

from __future__ import annotations

from typing import Sequence

import jax

from tlax import losses
from tlax.methods import common
from tlax.methods import contract
from tlax.methods.discrepancy import aligned_method


def ddan(model, num_classes: int, *, total_steps: int,
         lambda_: float = 1.0,
         layers: Sequence[str] = ("embedding",),
         sigmas="mean:5",
         warmup: bool = True,
         align_start: int = 0,
         mu_learning_rate: float = 0.05,
         mu_ema_decay: float = 0.9,
         mu_class_reduction: str = "mean") -> contract.Method:
  """Dynamic MMD with the learned balance factor mu.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    lambda_: alignment weight (config key ``lambda``).
    layers: the one aligned layer.
    sigmas: Gaussian bandwidths of the MMDs (:func:`tlax.losses.mk_mmd`).
    warmup: DANN's ramp on ``lambda``.
    align_start: steps of source training before alignment.
    mu_learning_rate, mu_ema_decay, mu_class_reduction: options of
      :func:`tlax.losses.dynamic_mu_estimator`.

  Returns:
    A :class:`tlax.methods.contract.Method`; metrics add ``mu`` and
    ``a_distance_global``.
  """
  layers = tuple(layers)
  if len(layers) != 1:
    raise ValueError(f"ddan aligns one layer; got layers={layers}.")
  estimator = losses.dynamic_mu_estimator(
      num_classes, learning_rate=float(mu_learning_rate),
      ema_decay=float(mu_ema_decay), class_reduction=mu_class_reduction)
  classify = common.classifier_fn(model)

  def extra_init(rng, batch, params, state):
    del rng
    logits, feats, _ = classify(params, state, batch["xs"][:2], train=False)
    dim = common.select_layer(layers[0], logits, feats).shape[-1]
    return {}, {"mu_estimator": estimator.init(int(dim))._asdict()}

  def discrepancy_fn(zs, zt, out, batch, state, step):
    del step
    zs, zt = zs[0], zt[0]
    probs_t = jax.lax.stop_gradient(jax.nn.softmax(out["t"][0], -1))
    est_state = losses.DynamicMuState(**state["mu_estimator"])
    est_state, mu = estimator.update(est_state, zs, batch["ys"], zt, probs_t)
    mu = jax.lax.stop_gradient(mu)
    value = losses.dynamic_mmd(zs, zt, batch["ys"], probs_t, mu, num_classes,
                               sigmas=_tuple(sigmas))
    state = {**state, "mu_estimator": est_state._asdict()}
    metrics = {"mu": mu, "a_distance_global": est_state.a_distance_global}
    return value, metrics, state

  return aligned_method(model, num_classes, total_steps=total_steps,
                        layers=layers, lambda_=lambda_, warmup=warmup,
                        align_start=align_start,
                        discrepancy_fn=discrepancy_fn, extra_init=extra_init,
                        name="ddan")


def _tuple(v):
  return tuple(v) if isinstance(v, list) else v
