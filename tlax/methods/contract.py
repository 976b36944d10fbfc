"""The method contract: a method is a record of pure functions.

A method is built by a plain function with explicit keyword arguments (its
defaults, once, in its signature) and returned as a :class:`Method`, an
immutable record of pure functions in the spirit of optax's
``GradientTransformation``. The trainer (:mod:`tlax.train`) only calls these
functions; a method never reads a config and never imports the training
package.

Factory signature::

    def my_method(model, num_classes, *, total_steps, <options>) -> Method

``model`` is a flax module from :mod:`tlax.models` whose
``apply(variables, x, train=bool)`` returns ``(logits, features)``
(``features["embedding"]`` is the head input); ``total_steps`` is the length
of the run (for schedules). Options whose names are Python keywords take a
trailing underscore (``lambda_``); the config key is ``lambda``.

The functions::

    init(rng, batch) -> (params, state)
    loss(params, state, batch, rng, step, hparams)
        -> (loss, (metrics, new_state))
    predict(params, state, x) -> logits             # evaluation mode
    features(params, state, x) -> {name: array}     # evaluation mode

and, for methods that own their update (several optimisers, alternating
phases such as MCD or ADDA)::

    init_opt(tx, params) -> opt_state
    update(params, state, opt_state, batch, rng, step, hparams, *, tx, lr)
        -> (params, new_state, opt_state, metrics)   # metrics has "loss"

Terms::

  params:  trainable pytree ``{"model": <classifier params>, <extra nets>}``.
  state:   non-trainable pytree carried from step to step
           (``{"model": <flax collections such as batch_stats>, ...}``);
           checkpointed, so runs resume exactly.
  batch:   dict of arrays: ``xs``, ``ys``, ``ws`` (source instance weights,
           mean 1), ``xt`` (unlabelled target), and optionally ``xtl``,
           ``ytl`` (a few labelled target examples).
  step:    int32 scalar (traced), the global step.
  hparams: dict of float32 scalars (traced) that researchers sweep: the
           ``hparams`` field of the record gives their values for this run
           (e.g. ``{"lambda": 1.0}``); the trainer adds ``"lr"`` and keeps
           them in the train state, so many runs can be vmapped.
  tx, lr:  the optax optimiser the trainer built from the config, and the
           learning rate of this step (``hparams["lr"] * schedule(step)``);
           an ``update`` applies ``lr * tx.update(...)`` itself.
"""

from __future__ import annotations

import inspect
import keyword
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array
PyTree = Any


class Method(NamedTuple):
  """A transfer method: pure functions the trainer calls (see module doc)."""
  init: Callable[..., Any]
  loss: Callable[..., Any] | None
  predict: Callable[..., Any]
  features: Callable[..., Any]
  hparams: Mapping[str, float] = {}
  update: Callable[..., Any] | None = None
  init_opt: Callable[..., Any] | None = None
  name: str = ""


# ---------------------------------------------------------------------------
# Building blocks shared by the method factories.
# ---------------------------------------------------------------------------
def weighted_cross_entropy(logits: Array, labels: Array,
                           weights: Array | None = None) -> Array:
  """Mean of ``v_i * CE(f(x_i), y_i)``: the weighted source risk.

  Args:
    logits: (n, C) unnormalised scores.
    labels: (n,) integer labels.
    weights: optional (n,) non-negative instance weights, used as given (the
      data pipeline normalises them to mean 1 over the source).

  Returns:
    Scalar loss.
  """
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  if weights is None:
    return jnp.mean(ce)
  return jnp.mean(weights.astype(ce.dtype) * ce)


def accuracy(logits: Array, labels: Array) -> Array:
  """Fraction of rows whose argmax equals the label (float32 scalar)."""
  return jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))


def init_classifier(model, rng, x) -> tuple[dict, dict]:
  """``({"model": params}, {"model": other collections})`` of ``model``."""
  variables = dict(model.init({"params": rng, "dropout": rng},
                              jnp.asarray(x), train=False))
  return {"model": variables.pop("params")}, {"model": variables}


def apply_classifier(model, params, state, x, *, train: bool, rng=None,
                     key: str = "model"):
  """Runs ``model``; returns ``(logits, features, new_state)``.

  ``params[key]`` are the model's parameters and ``state[key]`` its other
  flax collections (BatchNorm statistics), updated in ``new_state`` when
  ``train`` is True.
  """
  variables = {"params": params[key], **state[key]}
  rngs = {"dropout": rng} if rng is not None else None
  if train and state[key]:
    (logits, feats), updates = model.apply(
        variables, x, train=True, rngs=rngs, mutable=list(state[key]))
    state = {**state, key: {**state[key], **updates}}
  else:
    logits, feats = model.apply(variables, x, train=train, rngs=rngs)
  return logits, feats, state


def eval_fns(model, key: str = "model"):
  """``(predict, features)`` in evaluation mode for ``params[key]``."""
  def predict(params, state, x):
    return apply_classifier(model, params, state, x, train=False, key=key)[0]

  def features(params, state, x):
    return apply_classifier(model, params, state, x, train=False, key=key)[1]
  return predict, features


def call_factory(factory: Callable[..., Method], options: Mapping[str, Any],
                 **fixed) -> Method:
  """``factory(**fixed, **options)`` with clear errors for unknown options.

  Option names that are Python keywords (``lambda``) are passed with a
  trailing underscore (``lambda_``). Lists become tuples.

  Raises:
    TypeError: an option the factory does not take; the message lists the
      options it takes.
  """
  kwargs = {}
  for k, v in options.items():
    if keyword.iskeyword(k):
      k = k + "_"
    kwargs[k] = tuple(v) if isinstance(v, list) else v
  params = inspect.signature(factory).parameters
  takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
  unknown = sorted(k for k in kwargs if k not in params)
  if unknown and not takes_any:
    valid = sorted(
        (k[:-1] if k.endswith("_") and keyword.iskeyword(k[:-1]) else k)
        for k, p in params.items()
        if p.kind == p.KEYWORD_ONLY and k not in fixed)
    name = getattr(factory, "__name__", None) or getattr(
        getattr(factory, "func", None), "__name__", repr(factory))
    # An option that lives inside a dict-valued option (loss_kwargs).
    defaults = {k: p.default for k, p in params.items()}
    nested = [f"{u!r} is set inside {k} (--config.method.{k}.{u}=...)"
              for u in unknown for k, d in defaults.items()
              if isinstance(d, Mapping) and u in d]
    raise TypeError(
        f"Method {name!r} has no option(s) {', '.join(map(repr, unknown))}; "
        f"its options are: {', '.join(valid) or 'none'}."
        + (f" {'; '.join(nested)}." if nested else ""))
  return factory(**fixed, **kwargs)
