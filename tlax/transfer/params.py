"""Parameter-path rules for transfer: strict loading, layer transfer, lr rules.

Model-based transfer copies a network ``f`` from a source run, then trains
some of it on the target. This module holds the declarative pieces, as pure
functions over parameter trees (no config, no disk):

1. **Strict loading** (the habit of big_vision's ``merge_params``):
   :func:`merge_params` walks the freshly initialised tree of the target run
   and takes every leaf from the checkpoint where the *path and shape* match.
   Paths matching a ``reinit`` rule keep their fresh initialisation (e.g. the
   head, whose number of classes may differ); ``allow_missing`` and
   ``allow_unexpected`` rules let through leaves the target has but the
   checkpoint lacks, and the reverse. Every re-initialised or skipped leaf is
   logged by name; anything else that does not match raises
   :class:`CheckpointMismatchError` listing *all* mismatches. A restore never
   succeeds silently with half the weights. :class:`Pretrained` carries a
   loaded checkpoint and its rules; :func:`merge_pretrained` applies it.

2. **Rules over parameter paths**, evaluated first-match-wins:

   * ``lr_mults = (("^model/head/", 10.0), ("^model/conv", 0.0))``: a
     learning-rate multiplier per leaf, 0 meaning frozen;
     :func:`apply_lr_rules` wraps any optax optimiser with
     :func:`optax.partition` (frozen leaves get :func:`optax.set_to_zero`, so
     they keep no optimiser state and are not touched by weight decay);
   * ``copy_layers = k``: copy the first ``k`` layers of an ordered list of
     layer names and re-initialise the rest (Yosinski et al., 2014);
     :func:`layer_transfer_rules` turns it into ``reinit`` rules, and, with
     ``freeze_copied``, into ``lr_mults`` that freeze the copied layers.

Paths are ``/``-joined keys of the run's trees, starting at the tree's top
key: ``"model/Conv_0/kernel"`` for the classifier's parameters,
``"lora/..."`` or ``"task_heads/..."`` for a method's extra networks. The
model's non-trainable collections (``state["model"]["batch_stats"]...``) are
matched with the collection name dropped (``"model/BatchNorm_0/mean"``), so
one rule covers a layer's parameters and its statistics.

References:
  Yosinski, Clune, Bengio, Lipson. How transferable are features in deep
  neural networks? NeurIPS 2014.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

PyTree = Any
Rules = Sequence[tuple[str, float]]

logger = logging.getLogger("tlax.transfer")


class CheckpointMismatchError(ValueError):
  """A checkpoint does not match the target tree in a way the config allows."""


# --------------------------------------------------------------------------
# Paths.
# --------------------------------------------------------------------------
def _key_str(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_str(path) -> str:
  """``"a/b/c"`` for a :func:`jax.tree_util.tree_flatten_with_path` path."""
  return "/".join(_key_str(k) for k in path)


def flatten(tree: PyTree, prefix: str = "") -> dict[str, Any]:
  """``{path: leaf}`` in tree order; ``prefix`` is prepended with a ``/``."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  out = {}
  for path, leaf in leaves:
    p = path_str(path)
    out[f"{prefix}/{p}" if prefix and p else (prefix or p)] = leaf
  return out


def unflatten(flat: Mapping[str, Any]) -> dict:
  """Nested dicts from ``{"a/b": leaf}`` (the inverse of :func:`flatten`)."""
  out: dict = {}
  for path, leaf in flat.items():
    keys = path.split("/")
    node = out
    for k in keys[:-1]:
      node = node.setdefault(k, {})
    node[keys[-1]] = leaf
  return out


def first_match(path: str, patterns: Iterable[str]) -> str | None:
  """The first of ``patterns`` (``re.search``) that matches ``path``."""
  for pat in patterns:
    if re.search(pat, path):
      return pat
  return None


def state_match_path(path: str) -> str:
  """The path a model-state leaf is matched under: the collection dropped.

  ``"model/batch_stats/BatchNorm_0/mean"`` -> ``"model/BatchNorm_0/mean"``.
  """
  parts = path.split("/")
  if len(parts) >= 3:
    return "/".join(parts[:1] + parts[2:])
  return path


# --------------------------------------------------------------------------
# Strict merge.
# --------------------------------------------------------------------------
def merge_params(loaded: PyTree, init: PyTree, *,
                 reinit: Sequence[str] = (),
                 allow_missing: Sequence[str] = (),
                 allow_unexpected: Sequence[str] = (),
                 prefix: str = "",
                 match_path=None,
                 what: str = "params",
                 log: bool = True) -> PyTree:
  """Fills the target tree ``init`` from ``loaded``, strictly.

  For every leaf of ``init`` (path ``p``, matched as ``match_path(p)``):

  * ``p`` matches a ``reinit`` regex: the fresh value is kept (logged);
  * ``p`` is in ``loaded`` with the same shape: the loaded value is taken,
    cast to the init leaf's dtype;
  * ``p`` is missing from ``loaded``: kept from ``init`` if it matches an
    ``allow_missing`` regex (logged), else a mismatch;
  * shapes differ: a mismatch (re-initialise such a leaf with ``reinit``).

  Every leaf of ``loaded`` absent from ``init`` must match
  ``allow_unexpected`` (logged as skipped), else it is a mismatch.

  Args:
    loaded: the checkpoint's tree (nested dicts of arrays).
    init: the target's freshly initialised tree (its structure is kept).
    reinit, allow_missing, allow_unexpected: regexes (``re.search``) over
      paths.
    prefix: prepended to every path of both trees (e.g. ``"model"``).
    match_path: maps a path to the string the regexes see (default:
      identity); see :func:`state_match_path`.
    what: a word for log and error messages ("params", "state").
    log: log every re-initialised or skipped leaf (``logging.INFO``).

  Returns:
    A tree with the structure of ``init``.

  Raises:
    CheckpointMismatchError: listing every mismatch not allowed by the rules.
  """
  match_path = match_path or (lambda p: p)
  flat_init = flatten(init, prefix)
  flat_loaded = flatten(loaded, prefix)
  out, errors, notes = {}, [], []
  for path, fresh in flat_init.items():
    mp = match_path(path)
    if first_match(mp, reinit) is not None:
      out[path] = fresh
      notes.append(f"re-initialised {what} {path} {tuple(np.shape(fresh))}")
      continue
    if path not in flat_loaded:
      if first_match(mp, allow_missing) is not None:
        out[path] = fresh
        notes.append(f"not in checkpoint, kept initialisation: {what} {path}")
      else:
        errors.append(f"missing in checkpoint: {what} {path} "
                      f"{tuple(np.shape(fresh))}")
      continue
    value = flat_loaded[path]
    if tuple(np.shape(value)) != tuple(np.shape(fresh)):
      errors.append(f"shape mismatch: {what} {path}: checkpoint "
                    f"{tuple(np.shape(value))} vs target "
                    f"{tuple(np.shape(fresh))}")
      continue
    out[path] = jnp.asarray(value, dtype=getattr(fresh, "dtype", None))
  for path in flat_loaded:
    if path in flat_init:
      continue
    if first_match(match_path(path), allow_unexpected) is not None:
      notes.append(f"skipped checkpoint {what} {path} (not in target)")
    else:
      errors.append(f"unexpected in checkpoint: {what} {path} "
                    f"{tuple(np.shape(flat_loaded[path]))}")
  if log:
    for n in notes:
      logger.info("finetune: %s", n)
  if errors:
    raise CheckpointMismatchError(
        f"Checkpoint does not match the target {what} ({len(errors)} "
        "mismatches; allow them with finetune.reinit / allow_missing / "
        "allow_unexpected):\n  " + "\n  ".join(errors))
  leaves = [out[p] for p in flat_init]
  treedef = jax.tree_util.tree_structure(init)
  return jax.tree_util.tree_unflatten(treedef, leaves)


# --------------------------------------------------------------------------
# Layer transfer and learning-rate rules.
# --------------------------------------------------------------------------
def model_layer_names(model_params: Mapping[str, Any]) -> list[str]:
  """Top-level module names of a flax params dict, in creation order.

  Flax creates parameters in call order, so for a feed-forward network this
  is input-to-output order (the head last).
  """
  return list(model_params.keys())


def layer_transfer_rules(layers: Sequence[str], k: int, *,
                         freeze_copied: bool = False,
                         tree: str = "model"
                         ) -> tuple[list[str], list[tuple[str, float]]]:
  """``(reinit, lr_mults)`` that copy the first ``k`` layers.

  Args:
    layers: ordered layer (top-level module) names, input first.
    k: number of layers to copy, ``0 <= k <= len(layers)``.
    freeze_copied: freeze the copied layers (multiplier 0), the "AnB"
      setting of Yosinski et al.; otherwise they are fine-tuned ("AnB+").
    tree: the top key of the parameter paths.
  """
  if not 0 <= k <= len(layers):
    raise ValueError(f"copy_layers={k} outside 0..{len(layers)} "
                     f"(layers {list(layers)}).")
  reinit = [f"^{tree}/{re.escape(n)}/" for n in layers[k:]]
  lr_mults = ([(f"^{tree}/{re.escape(n)}/", 0.0) for n in layers[:k]]
              if freeze_copied else [])
  return reinit, lr_mults


def lr_multipliers(params: PyTree, rules: Rules) -> PyTree:
  """The learning-rate multiplier of every leaf (first matching rule; 1.0)."""
  def mult(path, _):
    p = path_str(path)
    for pat, m in rules:
      if re.search(pat, p):
        return float(m)
    return 1.0
  return jax.tree_util.tree_map_with_path(mult, params)


def _label(m: float) -> str:
  return f"x{m:g}"


def apply_lr_rules(tx: optax.GradientTransformation, params: PyTree,
                   rules: Rules) -> optax.GradientTransformation:
  """Wraps ``tx`` so each leaf's update is scaled by its multiplier.

  Multiplier 1: the update of ``tx``; 0: :func:`optax.set_to_zero` (frozen,
  no optimiser state); otherwise ``tx`` followed by ``optax.scale(m)`` (for
  SGD and Adam alike this is the learning rate times ``m``). Implemented with
  :func:`optax.partition` over labels computed from the paths.

  Args:
    tx: the base optimiser.
    params: the trainable tree (only its structure and paths are used).
    rules: ``((regex, multiplier), ...)``, first match wins.
  """
  rules = [(str(p), float(m)) for p, m in (rules or ())]
  if not rules:
    return tx
  for pat, m in rules:
    re.compile(pat)
    if m < 0 or not np.isfinite(m):
      raise ValueError(f"lr multiplier for {pat!r} must be finite and >= 0, "
                       f"got {m}.")
  mults = jax.tree_util.tree_leaves(lr_multipliers(params, rules))
  transforms = {}
  for m in sorted(set(mults)):
    if m == 0.0:
      transforms[_label(m)] = optax.set_to_zero()
    elif m == 1.0:
      transforms[_label(m)] = tx
    else:
      transforms[_label(m)] = optax.chain(tx, optax.scale(m))

  def labels(p):
    return jax.tree.map(_label, lr_multipliers(p, rules))

  return optax.partition(transforms, labels)


def log_lr_rules(params: PyTree, rules: Rules) -> None:
  """Logs the multiplier of every leaf that is not 1 (frozen or scaled)."""
  for path, m in flatten(lr_multipliers(params, rules)).items():
    if m == 0.0:
      logger.info("finetune: frozen %s", path)
    elif m != 1.0:
      logger.info("finetune: lr x%g %s", m, path)


# --------------------------------------------------------------------------
# A loaded checkpoint and its rules.
# --------------------------------------------------------------------------
class Pretrained(NamedTuple):
  """A source network loaded from a checkpoint, with the rules to merge it.

  Attributes:
    params: the checkpoint's ``params["model"]`` tree (arrays).
    state: the checkpoint's ``state["model"]`` tree (BatchNorm statistics;
      empty for none).
    reinit, allow_missing, allow_unexpected: regexes over paths, see
      :func:`merge_params`.
  """
  params: PyTree
  state: PyTree = {}
  reinit: tuple[str, ...] = ()
  allow_missing: tuple[str, ...] = ()
  allow_unexpected: tuple[str, ...] = ()


def merge_pretrained(pretrained: Pretrained, params: PyTree, state: PyTree,
                     *, log: bool = True) -> tuple[PyTree, PyTree]:
  """``params["model"]`` and ``state["model"]`` filled from ``pretrained``.

  Strict (:func:`merge_params` with the record's rules); a method's extra
  networks (other top keys) keep their initialisation.

  Raises:
    CheckpointMismatchError: listing every mismatch the rules do not allow.
  """
  kw = dict(reinit=tuple(pretrained.reinit),
            allow_missing=tuple(pretrained.allow_missing),
            allow_unexpected=tuple(pretrained.allow_unexpected), log=log)
  new_model = merge_params(pretrained.params, params["model"], prefix="model",
                           what="params", **kw)
  params = {**params, "model": new_model}
  src_state = pretrained.state or {}
  tgt_state = (state or {}).get("model", {}) or {}
  if src_state or tgt_state:
    new_state = merge_params(src_state, tgt_state, prefix="model",
                             match_path=state_match_path, what="state", **kw)
    state = {**state, "model": new_state}
  return params, state


def shared_mask(model_params: PyTree, reinit=()) -> PyTree:
  """True for the leaves copied from a checkpoint (no ``reinit`` match).

  Paths are matched as ``"model/<path>"``.
  """
  def shared(path, _):
    return first_match("model/" + path_str(path), reinit) is None
  return jax.tree_util.tree_map_with_path(shared, model_params)
