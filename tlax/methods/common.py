"""Building blocks shared by the method factories.

* :func:`init_with` builds a method's ``init`` from the classifier and the
  extra networks it adds;
* :func:`forward_domains` runs the classifier on the source, target (and
  labelled target) inputs of a batch;
* :func:`supervised_loss` is the weighted source risk of every method;
* :func:`select_layer` picks a named layer (``"logits"``, ``"softmax"`` or a
  model feature) for alignment;
* :func:`alignment_schedule` is the 0 -> 1 weight of an alignment term
  (DANN's ramp, after ``align_start`` steps of source training).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from tlax import losses
from tlax.methods import contract

Array = jax.Array
PyTree = Any

# How forward_domains runs the domains through the classifier: "concat" (one
# call on [xs; xt; xtl]), "split" (one call per domain), or "auto": "split"
# when the model keeps no batch statistics, "concat" when it does (then
# BatchNorm normalises with statistics of both domains, as DAN and DANN
# implementations do). The choice depends only on the model, so a seed runs
# the same program on every backend.
FORWARD_MODES = ("auto", "concat", "split")
FORWARD_MODE = "auto"


def resolve_forward_mode(mode: str, state) -> str:
  """``"concat"`` or ``"split"``: what ``mode`` means for this model state."""
  if mode not in FORWARD_MODES:
    raise ValueError(f"Unknown forward mode {mode!r}; expected one of "
                     f"{FORWARD_MODES}.")
  if mode == "auto":
    return "concat" if state.get("model") else "split"
  return mode


def classifier_fn(model) -> Callable[..., Any]:
  """``(params, state, x, *, train, rng=None) -> (logits, feats, state)``."""
  return functools.partial(contract.apply_classifier, model)


def init_with(model, extra=None):
  """``init(rng, batch)``: the classifier, then ``extra``'s networks.

  ``rng`` is split in two: the classifier is initialised with the first key
  (:func:`contract.init_classifier` on ``batch["xs"]``), and
  ``extra(rng_extra, batch, params, state) -> (params, state)`` adds the
  method's own networks and state with the second.
  """
  def init(rng, batch):
    rng_model, rng_extra = jax.random.split(rng)
    params, state = contract.init_classifier(model, rng_model, batch["xs"])
    if extra is not None:
      extra_params, extra_state = extra(rng_extra, batch, params, state)
      params.update(extra_params)
      state.update(extra_state)
    return params, state
  return init


def forward_domains(classify, params, state, batch, rng, *, train: bool = True,
                    mode: str | None = None):
  """The classifier's outputs on ``xs``, ``xt`` (and ``xtl``), by domain.

  Args:
    classify: ``(params, state, x, *, train, rng) -> (logits, feats, state)``
      (:func:`classifier_fn`).
    params, state: the method's trees.
    batch: the batch (``xs``, ``xt``, optionally ``xtl``).
    rng: dropout key (None: no dropout).
    train: training mode.
    mode: ``"concat"`` (one call on the concatenated batch, so BatchNorm
      statistics see both domains), ``"split"`` (one call per domain, dropout
      from ``fold_in(rng, i)``) or ``"auto"``; default :data:`FORWARD_MODE`,
      see :func:`resolve_forward_mode`.

  Returns:
    ``(out, new_state)``: ``out`` maps ``"s"``, ``"t"`` and (when the batch
    has labelled target examples) ``"tl"`` to ``(logits, features)``.
  """
  parts = [("s", batch["xs"]), ("t", batch["xt"])]
  if "xtl" in batch and batch["xtl"] is not None and len(batch["xtl"]):
    parts.append(("tl", batch["xtl"]))
  out = {}
  if resolve_forward_mode(mode or FORWARD_MODE, state) == "split":
    for i, (key, p) in enumerate(parts):
      r = None if rng is None else jax.random.fold_in(rng, i)
      logits, feats, state = classify(params, state, jnp.asarray(p),
                                      train=train, rng=r)
      out[key] = (logits, feats)
    return out, state
  x = jnp.concatenate([jnp.asarray(p) for _, p in parts], axis=0)
  logits, feats, state = classify(params, state, x, train=train, rng=rng)
  start = 0
  for key, p in parts:
    end = start + p.shape[0]
    out[key] = (logits[start:end],
                {k: v[start:end] for k, v in feats.items()})
    start = end
  return out, state


def supervised_loss(out, batch):
  """The weighted source risk ``mean_i v_i CE(f(x_i), y_i)``, plus the plain
  risk on labelled target examples when there are any.

  Returns ``(loss, metrics)``.
  """
  logits_s = out["s"][0]
  loss = contract.weighted_cross_entropy(logits_s, batch["ys"],
                                         batch.get("ws"))
  metrics = {"source_acc": contract.accuracy(logits_s, batch["ys"])}
  if "tl" in out:
    loss = loss + contract.weighted_cross_entropy(out["tl"][0], batch["ytl"])
  metrics["cls_loss"] = loss
  return loss, metrics


def select_layer(name: str, logits: Array, feats) -> Array:
  """A named layer: ``"logits"``, ``"softmax"`` or a model feature name."""
  if name == "logits":
    return logits
  if name == "softmax":
    return jax.nn.softmax(logits, axis=-1)
  if name not in feats:
    raise KeyError(f"Layer {name!r} is not a feature of the model; available: "
                   f"logits, softmax, {', '.join(sorted(feats))}.")
  return feats[name].reshape(feats[name].shape[0], -1)


def progress(step, total_steps) -> Array:
  """Training progress ``p = step / total_steps`` in [0, 1] (traced)."""
  total = max(int(total_steps), 1)
  return jnp.clip(jnp.asarray(step, jnp.float32) / total, 0.0, 1.0)


def dann_ramp(step, total_steps, gamma: float = 10.0) -> Array:
  """``2 / (1 + exp(-gamma p)) - 1`` with ``p = step / total_steps``.

  DANN's 0 -> 1 ramp (Ganin et al. 2016), :func:`tlax.losses.grl_lambda_schedule`;
  JAN, DDAN, CDAN and DSN use it too.
  """
  return losses.grl_lambda_schedule(progress(step, total_steps), gamma)


def check_align_start(align_start, total_steps: int) -> int:
  """``align_start`` as an int in ``[0, total_steps)`` (0 always allowed).

  Raises:
    ValueError: not an integer, or out of range; the message names the
      option ``align_start``.
  """
  if isinstance(align_start, bool) or int(align_start) != align_start:
    raise ValueError(f"config.method.align_start must be an integer, got "
                     f"{align_start!r}.")
  start, total = int(align_start), int(total_steps)
  if start < 0 or (start > 0 and start >= total):
    raise ValueError(f"config.method.align_start must be in [0, steps) = "
                     f"[0, {total}), got {start}.")
  return start


def alignment_schedule(step, total_steps: int, align_start: int = 0, *,
                       ramp: bool = True, gamma: float = 10.0) -> Array:
  """The alignment weight's factor at ``step``, in [0, 1].

  0 for the first ``align_start`` steps (source training only), then DANN's
  ramp ``2 / (1 + exp(-gamma p)) - 1`` (``ramp``) or 1, with ``p`` the
  progress over the remaining steps, ``(step - start) / (steps - start)``.
  With ``align_start = 0`` this is :func:`dann_ramp` (or 1).

  A start matters when a network trained from scratch sits on its chance
  plateau for the first hundreds of steps (SynDigits): an alignment term
  active then can reach a constant-feature solution that the classifier never
  leaves.
  """
  start = check_align_start(align_start, total_steps)
  s = jnp.asarray(step, jnp.float32) - start
  if ramp:  # progress() clips s < 0 to p = 0, where the ramp is 0
    return dann_ramp(s, int(total_steps) - start, gamma)
  return (s >= 0).astype(jnp.float32)


def resolve_loss(name: str | Callable[..., Array]) -> Callable[..., Array]:
  """A loss function: a name in :mod:`tlax.losses`, an importable
  ``"package.module:function"``, or a callable (returned as is).

  Raises:
    KeyError: an unknown name; the message lists how to name one.
  """
  if callable(name):
    return name
  if not isinstance(name, str) or not name:
    raise KeyError(f"A loss must be a name in tlax.losses or "
                   f"'package.module:function', got {name!r}.")
  if ":" in name:
    from tlax import utils  # pylint: disable=g-import-not-at-top
    return utils.import_object(name, what="loss")
  fn = getattr(losses, name, None)
  if not callable(fn) or name.startswith("_"):
    public = sorted(n for n in getattr(losses, "__all__", dir(losses))
                    if not n.startswith("_")
                    and callable(getattr(losses, n, None)))
    raise KeyError(f"Unknown loss {name!r}: not a function of tlax.losses "
                   f"({', '.join(public)}); or give "
                   "'package.module:function' for a loss of your own.")
  return fn
