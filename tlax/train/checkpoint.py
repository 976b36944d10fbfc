"""Checkpoints with orbax: the TrainState pytree plus the run's config (JSON).

A checkpoint directory holds one sub-directory per saved step (orbax writes
each one to a temporary name and renames it when complete, so a run killed
while saving leaves the previous checkpoint intact). Saving is synchronous:
when :func:`save_checkpoint` returns, the checkpoint is on disk.
"""

from __future__ import annotations

import logging as py_logging
import os
from typing import Any, Mapping

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from tlax.train.state import TrainState


def checkpoint_manager(directory: str | os.PathLike, *, max_to_keep: int = 2
                       ) -> ocp.CheckpointManager:
  """An orbax ``CheckpointManager`` keeping the last ``max_to_keep`` steps."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)),
                               options=options)


def save_checkpoint(manager: ocp.CheckpointManager, state: TrainState,
                    config: Mapping[str, Any]) -> int:
  """Saves ``state`` (at its own step) and the JSON-able ``config``.

  Returns:
    The step saved.
  """
  step = int(jax.device_get(state.step))
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state),
      config=ocp.args.JsonSave(dict(config))), force=True)
  manager.wait_until_finished()
  return step


def restore_config(manager: ocp.CheckpointManager, step: int | None = None
                   ) -> dict | None:
  """The config saved with a checkpoint (default: the latest); None if none."""
  step = manager.latest_step() if step is None else step
  if step is None:
    return None
  restored = manager.restore(step, args=ocp.args.Composite(
      config=ocp.args.JsonRestore()))
  return dict(restored.config)


def read_only_manager(directory: str | os.PathLike) -> ocp.CheckpointManager:
  """A read-only manager of a checkpoint folder that knows the ``state``
  item's handler (so :func:`restore_state_numpy` can read its metadata)."""
  return ocp.CheckpointManager(
      os.path.abspath(os.fspath(directory)),
      options=ocp.CheckpointManagerOptions(create=False, read_only=True),
      item_handlers={"state": ocp.PyTreeCheckpointHandler()})


def restore_state_numpy(manager: ocp.CheckpointManager, step: int) -> Any:
  """The state saved at ``step`` as a tree of NumPy arrays, without a target.

  ``manager``: from :func:`read_only_manager`. The structure comes from the
  checkpoint itself, so any model's state loads. NumPy arrays, not device
  arrays: they can be read whatever devices wrote the checkpoint (a GPU run
  read on a CPU machine, an array saved from ``cpu:3`` of a multi-device
  process), and also while a function is being traced. (Orbax's own
  target-free restore puts each array back on the device it was saved from
  and fails when that device is not here.)
  """
  meta = manager.item_metadata(step)["state"]
  meta = getattr(meta, "tree", meta)  # newer orbax wraps the tree
  as_numpy = jax.tree.map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), meta)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(restore_args=as_numpy)))
  return restored.state


def restore_checkpoint(manager: ocp.CheckpointManager, target: TrainState,
                       step: int | None = None) -> TrainState:
  """Restores a :class:`TrainState` (default: the latest step).

  Args:
    manager: the checkpoint manager.
    target: a state with the same structure, shapes and dtypes (a freshly
      initialised one); its values are not used.
    step: the step to restore; None for the latest.

  Raises:
    FileNotFoundError: no checkpoint in the directory.
    ValueError (from orbax): the saved tree does not match ``target``.
  """
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"No checkpoint in {manager.directory}.")
  abstract = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                     sharding=getattr(x, "sharding", None)),
      target)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract)))
  return restored.state


class _QuietOrbax(py_logging.Filter):
  """Drops orbax's INFO lines (dozens per checkpoint save)."""

  def filter(self, record):
    return record.levelno >= py_logging.WARNING or "orbax" not in (
        record.pathname or "")


def quiet_orbax_logs() -> None:
  """Hides orbax's INFO logging on the absl handler (warnings still show)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietOrbax) for f in handler.filters):
    handler.addFilter(_QuietOrbax())
