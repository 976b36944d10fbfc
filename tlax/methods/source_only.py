"""Source-only training: the weighted source classification risk.

``loss = (1/Ns) sum_i v_i CE(f(x_i), y_i)`` (plus the plain risk on
labelled target examples when a batch has them): the baseline every
adaptation method is compared with, and the pretraining objective.
"""

from __future__ import annotations

from tlax.methods import common
from tlax.methods import contract


def source_only(model, num_classes: int, *, total_steps: int
                ) -> contract.Method:
  """Source-only training of ``model``.

  Args:
    model: the classifier network (:mod:`tlax.models`).
    num_classes: number of classes.
    total_steps: length of the run (unused).

  Returns:
    A :class:`tlax.methods.contract.Method`.
  """
  del num_classes, total_steps
  classify = common.classifier_fn(model)

  def loss(params, state, batch, rng, step, hparams):
    del step, hparams
    logits, _, state = classify(params, state, batch["xs"], train=True,
                                rng=rng)
    value = contract.weighted_cross_entropy(logits, batch["ys"],
                                            batch.get("ws"))
    if "xtl" in batch:  # few labelled target examples: plain supervised term
      logits_tl, _, state = classify(params, state, batch["xtl"], train=True,
                                     rng=rng)
      value = value + contract.weighted_cross_entropy(logits_tl, batch["ytl"])
    metrics = {"loss": value, "cls_loss": value,
               "source_acc": contract.accuracy(logits, batch["ys"])}
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(init=common.init_with(model), loss=loss,
                         predict=predict, features=features,
                         name="source_only")
