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

``hparams``: ``source_weight`` (default 1.0) and ``target_weight`` (1.0).
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

from tlax.methods.base import Method
from tlax.methods.base import accuracy
from tlax.methods.base import register
from tlax.methods.base import weighted_cross_entropy


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


@register
class Multitask(Method):
  """Shared trunk, a head for the source task and one for the target task.

  Options (``config.method``): ``source_num_classes`` (default: the task's
  number of classes); hparams ``source_weight``, ``target_weight``.
  """

  name = "multitask"
  default_hparams = {"source_weight": 1.0, "target_weight": 1.0}

  def __init__(self, ctx):
    super().__init__(ctx)
    cfg = self.config.get("method", None) if self.config is not None else None
    n = cfg.get("source_num_classes", None) if cfg is not None else None
    self.source_head = TaskHead(int(n or self.num_classes))

  def init_extra(self, rng, batch, params, state):
    _, feats, _ = self.classifier(params, state, jnp.asarray(batch["xs"])[:2],
                                  train=False)
    head = self.source_head.init(rng, feats["embedding"])["params"]
    return {"task_heads": {"source": head}}, {}

  def loss(self, params, state, batch, rng, step, hparams):
    del step
    if "xtl" not in batch:
      raise ValueError("multitask needs labelled target examples: set "
                       "config.target_labeled_per_class and "
                       "config.labeled_batch_size.")
    xs, ys, xtl, ytl = batch["xs"], batch["ys"], batch["xtl"], batch["ytl"]
    ns = xs.shape[0]
    x = jnp.concatenate([xs, xtl], axis=0)
    logits, feats, state = self.classifier(params, state, x, train=True,
                                           rng=rng)
    logits_t = logits[ns:]
    logits_s = self.source_head.apply(
        {"params": params["task_heads"]["source"]}, feats["embedding"][:ns])
    losses = {"source": weighted_cross_entropy(logits_s, ys, batch.get("ws")),
              "target": weighted_cross_entropy(logits_t, ytl)}
    weights = {"source": hparams["source_weight"],
               "target": hparams["target_weight"]}
    loss = joint_loss(losses, weights)
    metrics = {"loss": loss, "cls_loss": losses["target"],
               "source_loss": losses["source"],
               "source_acc": accuracy(logits_s, ys),
               "target_train_acc": accuracy(logits_t, ytl)}
    return loss, (metrics, state)
