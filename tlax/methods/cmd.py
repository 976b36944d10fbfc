"""CMD: central moment discrepancy.

Zellinger, Grubinger, Lughofer, Natschlaeger & Saminger-Platz, "Central
Moment Discrepancy (CMD) for Domain-Invariant Representation Learning",
ICLR 2017.

``R = CMD_K(T(x_s), T(x_t))`` (:func:`tlax.losses.cmd`) on the head input
(``"embedding"``; the paper: the hidden layer of its networks), with the
paper's fixed settings ``K = 5`` moments and weight ``lambda = 1`` ("no
parameter tuning"), and bounds ``(0, 1)`` as in the released code
(``config.method.n_moments``, ``config.method.bounds``). The paper's
activations are sigmoids (bounded); on ReLU features the bound of the
metric does not hold, but the loss is the same.
"""

from __future__ import annotations

from tlax import losses
from tlax.methods import networks
from tlax.methods.base import register
from tlax.methods.ddc import DiscrepancyMethod


@register
class CMD(DiscrepancyMethod):
  """Central moment discrepancy summed over ``config.method.layers``."""

  name = "cmd"
  default_hparams = {"lambda": 1.0}
  default_layers = ("embedding",)

  def __init__(self, ctx):
    super().__init__(ctx)
    self.n_moments = int(networks.method_option(self, "n_moments", 5))
    self.bounds = tuple(networks.method_option(self, "bounds", (0.0, 1.0)))

  def discrepancy(self, zs, zt, out, batch, state, step):
    value = sum(losses.cmd(a, b, self.n_moments, self.bounds)
                for a, b in zip(zs, zt))
    return value, {}, state
