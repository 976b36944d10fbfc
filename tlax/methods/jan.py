"""JAN: Joint Adaptation Network (joint MMD over features and predictions).

Long, Zhu, Wang & Jordan, "Deep Transfer Learning with Joint Adaptation
Networks", ICML 2017.

``R = JMMD^2((z_s, g_s), (z_t, g_t))`` with the tensor-product kernel over
the head input ``z`` (``"embedding"``; five Gaussian kernels around the mean
distance, ``"mean:5"``) and the softmax predictions ``g`` (one Gaussian
kernel with the fixed bandwidth of the authors' code, ``2 sigma^2 = 1.68``,
``sigma = 0.9165``). ``lambda = 1`` with the paper's progressive schedule
``2 / (1 + exp(-10 p)) - 1`` (``warmup``), which "suppresses noisy
activations at the early stages of training". The estimator is the
quadratic unbiased one (the paper's is the linear-time unbiased estimate,
``config.method.estimator = "linear"``).
"""

from __future__ import annotations

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import register
from tlax.methods.ddc import DiscrepancyMethod

JAN_SOFTMAX_SIGMA = 0.9165  # 2 sigma^2 = 1.68 (JAN's released code)


@register
class JAN(DiscrepancyMethod):
  """Joint MMD over ``config.method.layers`` (default features + softmax)."""

  name = "jan"
  default_hparams = {"lambda": 1.0}
  default_layers = ("embedding", "softmax")
  default_warmup = True

  def __init__(self, ctx):
    super().__init__(ctx)
    default = tuple("mean:5" if n != "softmax" else JAN_SOFTMAX_SIGMA
                    for n in self.layers)
    self.sigmas = tuple(networks.method_option(self, "sigmas", default))
    self.estimator = networks.method_option(self, "estimator", "unbiased")

  def discrepancy(self, zs, zt, out, batch, state, step):
    value = losses.jmmd(list(zs), list(zt), self.sigmas,
                        estimator=self.estimator)
    return value, {}, state
