"""Deep CORAL: correlation alignment of deep features.

Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain
Adaptation", ECCV 2016 workshops.

``R = ||C_s - C_t||_F^2 / (4 d^2)`` (:func:`tlax.losses.coral`) on the
output of the last layer (the paper applies it to fc8, the logits:
``layers = ("logits",)``), weight ``lambda = 1``: the paper chooses lambda
so that the classification and CORAL losses are about equal at the end of
training; 1 is the usual value of reimplementations (the
Transfer-Learning-Library, DeepDA).
"""

from __future__ import annotations

from tlax import losses
from tlax.methods.base import register
from tlax.methods.ddc import DiscrepancyMethod


@register
class DeepCORAL(DiscrepancyMethod):
  """CORAL loss summed over ``config.method.layers``."""

  name = "coral"
  default_hparams = {"lambda": 1.0}
  default_layers = ("logits",)

  def discrepancy(self, zs, zt, out, batch, state, step):
    return sum(losses.coral(a, b) for a, b in zip(zs, zt)), {}, state
