"""DDC: Deep Domain Confusion (linear MMD), and the discrepancy-method base.

Objective (DESIGN.md's unified objective with a feature discrepancy)::

    (1/Ns) sum_i v_i CE(f(x_i), y_i) + lambda * w(p) * R(T(x_s), T(x_t))

:class:`DiscrepancyMethod` is that objective for any discrepancy ``R`` over
named layers ``T`` (``config.method.layers``: model feature names, or
``"logits"`` / ``"softmax"``); DAN, JAN, Deep CORAL, CMD and DDAN subclass it
and only say what ``R`` is. ``w(p)`` is 1, or DANN's ramp ``2 / (1 +
exp(-10 p)) - 1`` with ``p = step / steps`` when ``config.method.warmup`` is
true (JAN and DDAN use it). ``config.method.align_start`` (steps, default 0)
holds ``w`` at 0 for that many steps and starts the ramp after them
(:func:`tlax.methods.networks.alignment_schedule`).

DDC (Tzeng et al., "Deep Domain Confusion: Maximizing for Domain
Invariance", arXiv:1412.3474, 2014): ``R`` is the linear-kernel MMD
``||mean(T(x_s)) - mean(T(x_t))||^2`` on the adaptation layer (the paper adds
a 256-d ``fc_adapt`` bottleneck to AlexNet and picks the layer and its width
by the MMD; here the layer is the head input ``"embedding"``: set
``config.model.kwargs.bottleneck`` for a bottleneck), with ``lambda = 0.25``
(the paper's value).

Estimator: the paper's loss is the plain (biased) ``||mean_s - mean_t||^2``,
whose expectation is the squared mean difference *plus* ``tr(Cov_s) / n_s +
tr(Cov_t) / n_t``: minimising it also shrinks the within-domain variance of
the features. Trained from scratch (not fine-tuned from ImageNet as in the
paper) that collapsed the features here (Office-Caltech10 amazon -> webcam,
MLP, seed 0: 22.4 % against 41.7 % source-only). The default is therefore the
unbiased linear-kernel estimate (:func:`tlax.losses.mmd` with
``kernel="linear", estimator="unbiased"``), the same mean difference without
the variance terms; ``config.method.estimator = "biased"`` gives the paper's
(:func:`tlax.losses.linear_mmd`).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import Method
from tlax.methods.base import register


class DiscrepancyMethod(Method):
  """Source risk + ``lambda * R`` over named layers; subclasses define ``R``.

  Static options (``config.method.<key>``): ``layers`` (tuple of layer names,
  default :attr:`default_layers`), ``warmup`` (bool, default
  :attr:`default_warmup`). Swept: ``hparams["lambda"]``.
  """

  default_hparams = {"lambda": 1.0}
  default_layers: Sequence[str] = ("embedding",)
  default_warmup = False

  def __init__(self, ctx):
    super().__init__(ctx)
    self.layers = tuple(networks.method_option(self, "layers",
                                               self.default_layers))
    self.warmup = bool(networks.method_option(self, "warmup",
                                              self.default_warmup))

  def discrepancy(self, zs, zt, out, batch, state, step):
    """``R`` for the layers ``zs``, ``zt`` (lists of (n, d) arrays).

    ``out`` is the :func:`networks.forward_domains` output (for logits),
    ``batch`` the batch (for labels);
    returns ``(value, metrics, new_state)``.
    """
    raise NotImplementedError

  def align_weight(self, step, hparams):
    return hparams["lambda"] * networks.alignment_schedule(
        self, step, ramp=self.warmup)

  def loss(self, params, state, batch, rng, step, hparams):
    out, state = networks.forward_domains(self, params, state, batch, rng)
    cls_loss, metrics = networks.supervised_loss(out, batch)
    (ls, fs), (lt, ft) = out["s"], out["t"]
    zs = [networks.select_layer(n, ls, fs) for n in self.layers]
    zt = [networks.select_layer(n, lt, ft) for n in self.layers]
    align, extra, state = self.discrepancy(zs, zt, out, batch, state, step)
    weight = self.align_weight(step, hparams)
    loss = cls_loss + weight * align
    metrics.update(extra)
    metrics.update(loss=loss, align_loss=align, align_weight=weight)
    return loss, (metrics, state)


@register
class DDC(DiscrepancyMethod):
  """Deep Domain Confusion: linear MMD on the adaptation layer, lambda 0.25."""

  name = "ddc"
  default_hparams = {"lambda": 0.25}

  def __init__(self, ctx):
    super().__init__(ctx)
    self.estimator = networks.method_option(self, "estimator", "unbiased")

  def _linear_mmd(self, a, b):
    if self.estimator == "biased":
      return losses.linear_mmd(a, b)
    return losses.mmd(a, b, kernel="linear", estimator=self.estimator)

  def discrepancy(self, zs, zt, out, batch, state, step):
    value = sum(self._linear_mmd(a, b) for a, b in zip(zs, zt))
    return value, {}, state
