"""Multitask learning: a shared trunk, one head per task, a weighted joint loss.

Model-based transfer by sharing (Caruana, 1997): two related tasks train one
feature extractor ``g`` jointly, each with its own classification head::

    loss = sum_k  w_k * (1/n_k) sum_i CE(h_k(g(x_i^k)), y_i^k)

In tlax's batch contract the two tasks are the labelled *source* examples
(``xs, ys``: the large task) and the labelled *target* examples (``xtl,
ytl``: the small task, ``config.target_labeled_per_class`` per class). The
classifier network's own ``head`` is the target task's head, so evaluation on
the target test split (the trainer's ``target_accuracy``) scores the small
task; the source task's head is an extra network under
``params["task_heads"]["source"]`` on the shared ``features["embedding"]``.

``hparams``: ``source_weight`` and ``target_weight``.
``source_weight = 0`` trains the target task alone with exactly the same
network, optimiser and batches (the source trunk pass still runs but gets no
gradient), the baseline that shows whether sharing helps
(``experiments/multitask.py``).

Both tasks go through the trunk in one forward pass on the concatenated
batch (so BatchNorm sees both, as in joint training).

:func:`joint_loss` is the task-agnostic weighted sum, for more than two
tasks.

Reference:
  Caruana. Multitask learning. Machine Learning 28, 1997.
"""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.methods import common
from tlax.methods import contract


def joint_loss(losses: Mapping[str, jax.Array],
               weights: Mapping[str, jax.Array]) -> jax.Array:
  """``sum_k weights[k] * losses[k]`` over the tasks of ``losses``.

  Raises:
    KeyError: a task without a weight.
  """
  missing = sorted(set(losses) - set(weights))
  if missing:
    raise KeyError(f"No weight for tasks {missing}.")
  total = jnp.zeros((), jnp.float32)
  for k, v in losses.items():
    total = total + jnp.asarray(weights[k], jnp.float32) * v
  return total


class TaskHead(nn.Module):
  """A linear classification head for one task."""
  num_classes: int

  @nn.compact
  def __call__(self, h):
    return nn.Dense(self.num_classes, name="head")(h).astype(jnp.float32)


def multitask(model, num_classes: int, *, total_steps: int,
              source_weight: float = 1.0, target_weight: float = 1.0,
              source_num_classes: int | None = None) -> contract.Method:
  """Shared trunk, a head for the source task and one for the target task.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    source_weight, target_weight: the task weights (swept).
    source_num_classes: classes of the source task (None: ``num_classes``).

  Returns:
    A :class:`tlax.methods.contract.Method` with a ``"task_heads"`` network.
  """
  del total_steps
  source_head = TaskHead(int(source_num_classes or num_classes))
  classify = common.classifier_fn(model)

  def extra_init(rng, batch, params, state):
    _, feats, _ = classify(params, state, jnp.asarray(batch["xs"])[:2],
                           train=False)
    head = source_head.init(rng, feats["embedding"])["params"]
    return {"task_heads": {"source": head}}, {}

  def loss(params, state, batch, rng, step, hparams):
    del step
    if "xtl" not in batch:
      raise ValueError("multitask needs labelled target examples: set "
                       "config.target_labeled_per_class and "
                       "config.labeled_batch_size.")
    xs, ys, xtl, ytl = batch["xs"], batch["ys"], batch["xtl"], batch["ytl"]
    ns = xs.shape[0]
    x = jnp.concatenate([xs, xtl], axis=0)
    logits, feats, state = classify(params, state, x, train=True, rng=rng)
    logits_t = logits[ns:]
    logits_s = source_head.apply({"params": params["task_heads"]["source"]},
                                 feats["embedding"][:ns])
    task_losses = {
        "source": contract.weighted_cross_entropy(logits_s, ys,
                                                  batch.get("ws")),
        "target": contract.weighted_cross_entropy(logits_t, ytl)}
    weights = {"source": hparams["source_weight"],
               "target": hparams["target_weight"]}
    value = joint_loss(task_losses, weights)
    metrics = {"loss": value, "cls_loss": task_losses["target"],
               "source_loss": task_losses["source"],
               "source_acc": contract.accuracy(logits_s, ys),
               "target_train_acc": contract.accuracy(logits_t, ytl)}
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(
      init=common.init_with(model, extra_init), loss=loss, predict=predict,
      features=features, name="multitask",
      hparams={"source_weight": source_weight,
               "target_weight": target_weight})
