"""Fine-tuning from a config: ``config.finetune`` read into transfer rules.

The rules themselves (strict :func:`merge_params`, layer transfer, learning
rate multipliers) are pure functions of :mod:`tlax.transfer.params`; this
module reads the config block, loads checkpoints from disk, and builds the
trainer's optimiser with the rules applied.

The config block (``config.finetune``, see ``experiments/configs/finetune.py``)::

    checkpoint: ""          # workdir or checkpoint folder of the source run
    step: -1                # checkpoint step; -1 = latest
    reinit: ("^model/head/",)
    allow_missing: ()
    allow_unexpected: ()
    copy_layers: -1         # k >= 0: copy first k of `layers`, reinit rest
    layers: ()              # ordered layer names; () = order in the params
    freeze_copied: False
    lr_mults: ()            # ((regex, multiplier), ...)
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import optax

from tlax.transfer.params import CheckpointMismatchError
from tlax.transfer.params import Pretrained
from tlax.transfer.params import apply_lr_rules
from tlax.transfer.params import flatten
from tlax.transfer.params import layer_transfer_rules
from tlax.transfer.params import log_lr_rules
from tlax.transfer.params import lr_multipliers
from tlax.transfer.params import merge_params
from tlax.transfer.params import model_layer_names
from tlax.transfer.params import path_str
from tlax.transfer.params import state_match_path
from tlax.transfer.params import unflatten
from tlax.transfer import params as transfer_params

PyTree = Any

logger = logging.getLogger(__name__)

__all__ = [
    "CheckpointMismatchError", "Pretrained", "apply_lr_rules", "flatten",
    "layer_transfer_rules", "log_lr_rules", "lr_multipliers", "merge_params",
    "model_layer_names", "path_str", "state_match_path", "unflatten",
    "resolve_rules", "finetune_optimizer", "load_checkpoint_trees",
    "load_pretrained", "init_from_pretrained", "merge_pretrained",
]


def resolve_rules(config, model_params: Mapping[str, Any] | None = None
                  ) -> tuple[list[str], list[tuple[str, float]]]:
  """``(reinit, lr_mults)`` from ``config.finetune``, copy_layers expanded.

  ``copy_layers = k >= 0`` adds :func:`layer_transfer_rules` (with
  ``finetune.layers``, or the top-level modules of ``model_params`` when that
  is empty) before the config's own ``reinit`` and ``lr_mults``.
  """
  ft = _ft(config)
  if ft is None:
    return [], []
  reinit = list(ft.get("reinit", ()) or ())
  lr_mults = [tuple(r) for r in (ft.get("lr_mults", ()) or ())]
  k = int(ft.get("copy_layers", -1))
  if k >= 0:
    layers = list(ft.get("layers", ()) or ())
    if not layers:
      if model_params is None:
        raise ValueError("finetune.copy_layers needs finetune.layers or the "
                         "model's parameters to list the layers.")
      layers = model_layer_names(model_params)
    r, m = layer_transfer_rules(layers, k, freeze_copied=bool(
        ft.get("freeze_copied", False)))
    reinit = r + reinit
    lr_mults = m + lr_mults
  return reinit, lr_mults


def _ft(config):
  try:
    return config.get("finetune", None)
  except AttributeError:
    return None


def finetune_optimizer(tx: optax.GradientTransformation, params: PyTree,
                       config) -> optax.GradientTransformation:
  """The trainer's optimiser with ``config.finetune``'s lr rules applied.

  The hook for :func:`tlax.train.make_optimizer`: a no-op without a
  ``finetune`` block or without rules.
  """
  if _ft(config) is None:
    return tx
  _, lr_mults = resolve_rules(config, params.get("model")
                              if isinstance(params, Mapping) else None)
  if lr_mults:
    log_lr_rules(params, lr_mults)
  return apply_lr_rules(tx, params, lr_mults)


# --------------------------------------------------------------------------
# Checkpoints.
# --------------------------------------------------------------------------
def _checkpoint_dir(path: str) -> str:
  path = os.path.abspath(os.fspath(path))
  sub = os.path.join(path, "checkpoints")
  return sub if os.path.isdir(sub) else path


def load_checkpoint_trees(path: str, step: int = -1) -> dict[str, PyTree]:
  """``{"params": ..., "state": ..., "step": int, "path": str}`` of a run.

  ``path`` is a run's workdir (holding ``checkpoints/``) or its checkpoint
  folder, as written by :func:`tlax.train.save_checkpoint` (the trainer and
  the pretraining stage). The TrainState is restored *without a target*, so
  the trees are plain nested dicts of NumPy arrays whatever the model and
  whatever devices wrote them; the strict comparison with the target
  happens in :func:`merge_params`.

  Raises:
    FileNotFoundError: no checkpoint there (or not the requested step).
  """
  from tlax.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  directory = _checkpoint_dir(path)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"No checkpoint folder at {path}.")
  manager = ckpt_lib.read_only_manager(directory)
  try:
    steps = manager.all_steps()
    if not steps:
      raise FileNotFoundError(f"No checkpoint in {directory}.")
    step = manager.latest_step() if step is None or step < 0 else int(step)
    if step not in steps:
      raise FileNotFoundError(f"No checkpoint of step {step} in {directory} "
                              f"(steps: {sorted(steps)}).")
    # Target-free (any model), as NumPy: the pretraining may have run on
    # other devices (a GPU, pmap's replicas).
    tree = ckpt_lib.restore_state_numpy(manager, step)
  finally:
    manager.close()
  return {"params": tree["params"], "state": tree.get("state") or {},
          "step": int(step), "path": os.path.join(directory, str(step))}


def pretrained_record(config, trees: Mapping[str, PyTree],
                      model_params: PyTree) -> Pretrained:
  """The :class:`tlax.transfer.Pretrained` of restored ``trees`` under the
  rules of ``config.finetune`` (``copy_layers`` expanded over the layers of
  ``model_params``, a tree or its shapes)."""
  ft = _ft(config)
  reinit, _ = resolve_rules(config, model_params)
  src_params = trees["params"]
  if "model" not in src_params:
    raise CheckpointMismatchError(
        "checkpoint params have no 'model' tree; top keys: "
        f"{sorted(src_params)}")
  return Pretrained(
      params=src_params["model"],
      state=(trees.get("state") or {}).get("model", {}) or {},
      reinit=tuple(reinit),
      allow_missing=tuple(ft.get("allow_missing", ()) or ()),
      allow_unexpected=tuple(ft.get("allow_unexpected", ()) or ()))


def load_pretrained(config, model_params: PyTree, *, log: bool = True
                    ) -> Pretrained | None:
  """``config.finetune.checkpoint`` loaded from disk as a
  :class:`tlax.transfer.Pretrained`, or None when the config names none.

  ``model_params`` (the target model's parameters, or their shapes from
  :func:`jax.eval_shape`) lists the layers for ``copy_layers``.
  """
  ft = _ft(config)
  if ft is None or not ft.get("checkpoint", ""):
    return None
  trees = load_checkpoint_trees(os.fspath(ft.checkpoint),
                                int(ft.get("step", -1)))
  if log:
    logger.info("finetune: loading %s", trees["path"])
  return pretrained_record(config, trees, model_params)


def init_from_pretrained(config, params: PyTree, state: PyTree, *,
                         log: bool = True) -> tuple[PyTree, PyTree]:
  """Loads ``config.finetune.checkpoint`` into ``params["model"]`` and
  ``state["model"]``, strictly (:func:`tlax.transfer.merge_pretrained`).

  A no-op (returns its inputs) when the config has no ``finetune`` block or
  its ``checkpoint`` is empty.
  """
  pretrained = load_pretrained(config, params["model"], log=log)
  if pretrained is None:
    return params, state
  return transfer_params.merge_pretrained(pretrained, params, state, log=log)


def merge_pretrained(config, trees: Mapping[str, PyTree], params: PyTree,
                     state: PyTree, *, log: bool = True
                     ) -> tuple[PyTree, PyTree]:
  """:func:`init_from_pretrained` given already restored ``trees``."""
  return transfer_params.merge_pretrained(
      pretrained_record(config, trees, params["model"]), params, state,
      log=log)
