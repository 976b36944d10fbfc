"""DAN: Deep Adaptation Network (multi-kernel MMD on several layers).

Long, Cao, Wang & Jordan, "Learning Transferable Features with Deep
Adaptation Networks", ICML 2015.

``R = sum_l MK-MMD^2(T_l(x_s), T_l(x_t))`` over the task-specific layers
(the paper: AlexNet fc6-fc8, i.e. the hidden layers and the logits; here
``("embedding", "logits")``: the head input and the head output) with a
family of Gaussian kernels whose bandwidths are the mean pairwise squared
distance times ``2^k``, ``k = -2..2`` (the paper: ``m`` kernels with
bandwidths ``2^-8 gamma .. 2^8 gamma`` around the mean; five kernels around
the mean as in the authors' later code and the Transfer-Learning-Library), the
kernel weights uniform (the paper's optional QP for ``beta`` is not done).
The paper uses the linear-time unbiased estimate for speed; at batch 64 the
quadratic unbiased estimate costs nothing and has lower variance, so it is
the default (``config.method.estimator``). ``lambda = 1`` (the trade-off of
the authors' code and the Transfer-Learning-Library).
"""

from __future__ import annotations

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import register
from tlax.methods.ddc import DiscrepancyMethod


@register
class DAN(DiscrepancyMethod):
  """MK-MMD summed over ``config.method.layers``."""

  name = "dan"
  default_hparams = {"lambda": 1.0}
  default_layers = ("embedding", "logits")

  def __init__(self, ctx):
    super().__init__(ctx)
    self.sigmas = networks.method_option(self, "sigmas", "mean:5")
    self.estimator = networks.method_option(self, "estimator", "unbiased")

  def discrepancy(self, zs, zt, out, batch, state, step):
    per_layer = [losses.mk_mmd(a, b, self.sigmas, estimator=self.estimator)
                 for a, b in zip(zs, zt)]
    metrics = {f"mmd_{n}": v for n, v in zip(self.layers, per_layer)}
    return sum(per_layer), metrics, state
