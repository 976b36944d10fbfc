"""The contract between transfer methods and the one generic trainer.

A method is the loss it adds (DESIGN.md): it owns no training loop. The
trainer (:mod:`tlax.train`) calls, inside one jitted step::

    (loss, (metrics, new_state)), grads = jax.value_and_grad(
        method.loss, has_aux=True)(params, state, batch, rng, step, hparams)

Terms:
  params:  trainable pytree ``{"model": <classifier params>, <extra nets>...}``
           (a DANN adds ``"discriminator"``, DSN adds encoders/decoder, ...).
  state:   non-trainable pytree the method carries from step to step,
           ``{"model": <flax collections such as batch_stats>, ...}``; a
           method may keep more (an EMA, DDAN's mu estimator) under its own
           keys. Everything here is checkpointed, so runs resume exactly.
  batch:   dict of host arrays from :class:`tlax.data.PairedBatches`:
           ``xs`` (source inputs), ``ys`` (source labels), ``ws`` (source
           instance weights v_i, mean 1), ``xt`` (unlabelled target inputs),
           and, when few labelled target examples are used, ``xtl``, ``ytl``.
  step:    int32 scalar (traced): the global step, for schedules.
  hparams: dict of float32 scalars (traced) that researchers sweep, e.g.
           ``{"lambda": 1.0}``; they live in the TrainState so many runs can
           be vmapped in one program. Static settings come from the config.

The model contract: ``model.apply(variables, x, train=bool, ...)`` returns
``(logits, features)`` where ``features`` is a dict of named intermediate
activations; ``features["embedding"]`` is always the input of the
classification head, so any method can align it (or any other named layer).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

Array = jax.Array
PyTree = Any


def weighted_cross_entropy(logits: Array, labels: Array,
                           weights: Array | None = None) -> Array:
  """Mean of ``v_i * CE(f(x_i), y_i)``: the weighted source risk of DESIGN.md.

  Args:
    logits: (n, C) unnormalised scores.
    labels: (n,) integer labels.
    weights: optional (n,) non-negative instance weights; they are used as
      given (the data pipeline normalises them to mean 1 over the source), so
      uniform weights of 1 give the plain mean.

  Returns:
    Scalar loss.
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  if weights is None:
    return jnp.mean(ce)
  return jnp.mean(weights.astype(ce.dtype) * ce)


def accuracy(logits: Array, labels: Array) -> Array:
  return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


@dataclasses.dataclass
class MethodContext:
  """Static information a method is built from."""
  model: nn.Module            # the classifier network (tlax.models)
  num_classes: int
  config: ml_collections.ConfigDict  # the whole experiment config
  total_steps: int


class Method:
  """Base class: source-only training. Subclasses override what they add.

  Subclasses usually override :meth:`init_extra` (extra networks) and
  :meth:`loss`; :meth:`classifier` runs the shared classifier network.
  """

  name = "source_only"
  # hparams this method reads, with defaults; the trainer puts the config's
  # values (config.method.<name>) into the TrainState as float32 arrays.
  default_hparams: Mapping[str, float] = {}

  def __init__(self, ctx: MethodContext):
    self.ctx = ctx
    self.model = ctx.model
    self.num_classes = ctx.num_classes
    self.config = ctx.config

  # ----- initialisation -------------------------------------------------
  def init(self, rng: Array, batch: Mapping[str, Any]) -> tuple[PyTree, PyTree]:
    """Returns ``(params, state)`` for a sample batch."""
    rng_model, rng_extra = jax.random.split(rng)
    variables = self.model.init({"params": rng_model, "dropout": rng_model},
                                jnp.asarray(batch["xs"]), train=False)
    variables = dict(variables)
    params = {"model": variables.pop("params")}
    state = {"model": variables}
    extra_params, extra_state = self.init_extra(rng_extra, batch, params, state)
    params.update(extra_params)
    state.update(extra_state)
    return params, state

  def init_extra(self, rng, batch, params, state):
    """Extra networks and state of a method: ``(params, state)`` dicts."""
    del rng, batch, params, state
    return {}, {}

  # ----- the network ----------------------------------------------------
  def classifier(self, params, state, x, *, train: bool, rng=None):
    """Runs the classifier network; returns ``(logits, features, new_state)``.

    ``new_state`` is ``state`` with the model's mutable collections (BatchNorm
    statistics) updated when ``train`` is True.
    """
    variables = {"params": params["model"], **state["model"]}
    rngs = {"dropout": rng} if rng is not None else None
    if train and state["model"]:
      (logits, feats), updates = self.model.apply(
          variables, x, train=True, rngs=rngs, mutable=list(state["model"]))
      state = {**state, "model": {**state["model"], **updates}}
    else:
      logits, feats = self.model.apply(variables, x, train=train, rngs=rngs)
    return logits, feats, state

  # ----- the objective --------------------------------------------------
  def loss(self, params, state, batch, rng, step, hparams):
    """Source-only: the weighted source classification risk.

    Returns ``(loss, (metrics, new_state))``; metrics are scalars.
    """
    del step, hparams
    logits, _, state = self.classifier(params, state, batch["xs"], train=True,
                                       rng=rng)
    loss = weighted_cross_entropy(logits, batch["ys"], batch.get("ws"))
    if "xtl" in batch:  # few labelled target examples: plain supervised term
      logits_tl, _, state = self.classifier(params, state, batch["xtl"],
                                            train=True, rng=rng)
      loss = loss + weighted_cross_entropy(logits_tl, batch["ytl"])
    metrics = {"loss": loss, "cls_loss": loss,
               "source_acc": accuracy(logits, batch["ys"])}
    return loss, (metrics, state)

  # ----- evaluation -----------------------------------------------------
  def predict(self, params, state, x):
    """Logits in evaluation mode."""
    logits, _, _ = self.classifier(params, state, x, train=False)
    return logits

  def features(self, params, state, x):
    """Named features in evaluation mode (for plots and selection)."""
    _, feats, _ = self.classifier(params, state, x, train=False)
    return feats


METHODS: dict[str, type[Method]] = {"source_only": Method}


def register(cls: type[Method]) -> type[Method]:
  """Class decorator: makes a method available to configs by its ``name``."""
  if cls.name in METHODS and METHODS[cls.name] is not cls:
    raise ValueError(f"Method name {cls.name!r} registered twice.")
  METHODS[cls.name] = cls
  return cls


def get_method(name: str) -> type[Method]:
  """The method class registered under ``name``."""
  import tlax.methods  # pylint: disable=g-import-not-at-top,unused-import  (fills METHODS)
  if name in METHODS:
    return METHODS[name]
  if isinstance(name, str) and name.count(":") == 1:
    from tlax import utils  # pylint: disable=g-import-not-at-top
    return utils.import_object(name, what="method")
  raise KeyError(f"Unknown method {name!r}; registered methods: "
                 f"{', '.join(sorted(METHODS))}, or 'package.module:factory' "
                 "for a method of your own.")
