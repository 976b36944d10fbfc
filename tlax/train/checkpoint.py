"""Checkpoints with orbax: the TrainState pytree plus the run's config (JSON).

A checkpoint directory holds one sub-directory per saved step (orbax writes
each one to a temporary name and renames it when complete, so a run killed
while saving leaves the previous checkpoint intact). Saving is synchronous:
when :func:`save_checkpoint` returns, the checkpoint is on disk.

Each checkpoint also holds the SHA-256 of every saved array (``checksums``)
and, optionally, a small JSON ``extra`` item (the trainer keeps the metrics
of the current logging window there). :func:`restore_intact` restores the
newest checkpoint whose arrays read back with the saved checksums; a damaged
one (a flipped byte, a truncated or missing file) is named, moved to
``<checkpoints>.damaged/`` and the previous one is tried.
"""

from __future__ import annotations

import hashlib
import logging as py_logging
import os
import shutil
import time
from typing import Any, Callable, Mapping

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp



def checkpoint_manager(directory: str | os.PathLike, *, max_to_keep: int = 2
                       ) -> ocp.CheckpointManager:
  """An orbax ``CheckpointManager`` keeping the last ``max_to_keep`` steps."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(os.path.abspath(os.fspath(directory)),
                               options=options)


class CheckpointError(RuntimeError):
  """No intact checkpoint could be restored (every one is damaged)."""


def checksums(tree: Any) -> dict[str, str]:
  """``{tree path: "sha256:dtype:shape"}`` of every array leaf of ``tree``."""
  host = jax.device_get(tree)
  out = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(host):
    a = np.ascontiguousarray(np.asarray(leaf))
    digest = hashlib.sha256(a.tobytes()).hexdigest()
    out[jax.tree_util.keystr(path)] = f"{digest}:{a.dtype}:{a.shape}"
  return out


def save_checkpoint(manager: ocp.CheckpointManager, state: TrainState,
                    config: Mapping[str, Any],
                    extra: Mapping[str, Any] | None = None, *,
                    step: int | None = None) -> int:
  """Saves ``state`` (at its own step), the JSON-able ``config``, the
  checksums of the state's arrays and an optional JSON-able ``extra``.

  ``step``: the step to save under, for a state whose ``step`` is not a
  scalar (the stacked states of runs trained together); default
  ``state.step``.

  Returns:
    The step saved.
  """
  step = int(jax.device_get(state.step)) if step is None else int(step)
  items = dict(state=ocp.args.StandardSave(state),
               config=ocp.args.JsonSave(dict(config)),
               checksums=ocp.args.JsonSave(checksums(state)))
  if extra is not None:
    items["extra"] = ocp.args.JsonSave(dict(extra))
  manager.save(step, args=ocp.args.Composite(**items), force=True)
  manager.wait_until_finished()
  return step


def _step_dir(manager: ocp.CheckpointManager, step: int) -> str:
  return os.path.join(os.fspath(manager.directory), str(step))


def _move_aside(manager: ocp.CheckpointManager, step: int) -> str:
  """Moves a damaged step folder to ``<checkpoints>.damaged/`` (kept for a
  post-mortem, out of orbax's sight); returns its new path."""
  src = _step_dir(manager, step)
  dst_root = os.fspath(manager.directory).rstrip(os.sep) + ".damaged"
  os.makedirs(dst_root, exist_ok=True)
  dst = os.path.join(dst_root, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
  if os.path.exists(src):
    shutil.move(src, dst)
  manager.reload()
  return dst


def restore_intact(manager: ocp.CheckpointManager, target: TrainState,
                   check_config: Callable[[dict], None] | None = None
                   ) -> tuple[TrainState, dict, dict | None] | None:
  """Restores the newest intact checkpoint.

  Steps are tried newest first. A checkpoint is intact when its config, its
  state and its checksums read back and every restored array has its saved
  SHA-256 (checkpoints written without checksums are accepted as read). A
  damaged one is logged with the reason, moved to ``<checkpoints>.damaged/``
  and the previous one is tried.

  Args:
    manager: the checkpoint manager.
    target: a state with the structure, shapes and dtypes to restore.
    check_config: called with each candidate's saved config before its state
      is read; its exceptions (a config mismatch) propagate.

  Returns:
    ``(state, config, extra)`` of the newest intact checkpoint (``extra``
    None if it has none), or None when the folder holds no checkpoint.

  Raises:
    CheckpointError: there were checkpoints but none is intact; names each
      damaged one and why.
  """
  damaged = []
  for step in sorted(manager.all_steps(), reverse=True):
    where = _step_dir(manager, step)
    try:
      config = restore_config(manager, step)
    except Exception as e:  # pylint: disable=broad-except
      damaged.append((step, where, f"its config cannot be read: {_short(e)}"))
      continue
    if check_config is not None:
      check_config(config)
    try:
      state = restore_checkpoint(manager, target, step)
      extra = None
      names = set(os.listdir(where))
      if "checksums" in names:
        saved = manager.restore(step, args=ocp.args.Composite(
            checksums=ocp.args.JsonRestore())).checksums
        got = checksums(state)
        bad = sorted(k for k in set(saved) | set(got)
                     if saved.get(k) != got.get(k))
        if bad:
          raise ValueError(f"{len(bad)} array(s) differ from their saved "
                           f"checksums: {', '.join(bad[:3])}")
      if "extra" in names:
        extra = dict(manager.restore(step, args=ocp.args.Composite(
            extra=ocp.args.JsonRestore())).extra)
    except Exception as e:  # pylint: disable=broad-except
      damaged.append((step, where, _short(e)))
      continue
    for s, path, why in damaged:
      moved = _move_aside(manager, s)
      logging.warning("Checkpoint %s is damaged (%s); moved to %s. Resuming "
                      "from step %d instead.", path, why, moved, step)
    return state, config, extra
  if damaged:
    lines = "\n".join(f"  {path}: {why}" for _, path, why in damaged)
    raise CheckpointError(
        f"No intact checkpoint in {manager.directory}:\n{lines}\nDelete "
        "that folder (or the whole workdir) to start the run again.")
  return None


def _short(e: BaseException) -> str:
  text = " ".join(str(e).split())
  return f"{type(e).__name__}: {text[:300]}"


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


def restore_checkpoint(manager: ocp.CheckpointManager, target: Any,
                       step: int | None = None) -> Any:
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
  """Drops orbax's INFO lines (dozens per checkpoint save) and its warning
  that a checkpoint item was not restored (tlax restores only the items it
  needs, e.g. ``state`` without ``config``, ``extra`` and ``checksums``)."""

  def filter(self, record):
    if "orbax" not in (record.pathname or ""):
      return True
    if record.levelno < py_logging.WARNING:
      return False
    return "was found in the checkpoint, but could not be restored" not in (
        record.getMessage())


def quiet_orbax_logs() -> None:
  """Hides orbax's INFO logging and its not-restored-item warnings on the
  absl handler (other warnings still show)."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietOrbax) for f in handler.filters):
    handler.addFilter(_QuietOrbax())
