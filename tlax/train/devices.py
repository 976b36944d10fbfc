"""Data parallelism over devices: the one place in tlax that knows them.

:func:`data_parallel` wraps the trainer's one step
(:func:`tlax.train.step.train_step`) for ``config.parallel``:

* ``"none"``: the step jitted for one device (the default of every config).
* ``"sharded"``: the same step under ``jax.jit`` with shardings. A
  :class:`jax.sharding.Mesh` of the devices has one axis, :data:`AXIS`; the
  state is replicated (``PartitionSpec()``) and every batch array is split
  along its first axis (``PartitionSpec(AXIS)``). XLA partitions the program:
  the mean over the batch of the loss (hence the gradient) and BatchNorm's
  batch statistics are computed over the global batch, so the program is
  the single-device program, and its numbers equal the single-device run's
  up to float32 summation order; random streams (dropout) are the
  single-device ones.
* ``"pmap"``: the step under ``jax.pmap`` over the local devices (the
  per-device program of the flax ImageNet example): each device gets
  ``B / devices`` rows; gradients are averaged with ``lax.pmean`` before the
  optimiser (for methods that own their update, the optimiser itself
  averages what it is given); the step's key is
  folded with the device index (independent dropout per device); BatchNorm
  statistics are synchronised: models with a ``bn_axis_name`` field (ResNet)
  get :data:`AXIS` through :func:`with_axis_name`, so batch statistics are
  over the global batch, and the non-trainable state of any other model is
  averaged after the step; metrics are averaged.

``"sharded"`` is the default data-parallel mode (``"auto"``): it gives the
single-device numbers for every method, dropout included, with no per-device
code, and measured as fast as ``pmap`` on 4 CPU devices
(``experiments/bench_parallel.py``; docs/results_finetune.md, "Which mode
is the default, measured").

Multi-host: :func:`maybe_initialize_distributed` calls
``jax.distributed.initialize`` when ``config.distributed`` is set or the
environment names a coordinator (``JAX_COORDINATOR_ADDRESS``). Every host
builds the same global batch (a pure function of the seed and the step) and
feeds its own contiguous rows of it (:func:`host_rows`), so a multi-host run
trains on exactly the batches of a one-host run. Only the row selection is
tested (no multi-host machine in CI).

XLA:CPU's collectives (jax 0.10) abort a program when too many
multi-device steps are queued by asynchronous dispatch: three devices wait in
the all-reduce of one step while the fourth never starts, and after 40 s XLA
stops the process ("Termination timeout for `all reduce` ... only 3 of them
arrived"). A plain ``jax.pmap`` of a matmul and a ``lax.pmean`` does it, and
so does a sharded ``jit``. How deep a queue survives depends on how busy the
host's cores are: on a 2-core machine with one core taken by another
process, 300 steps of the quick pretraining config with ``parallel="pmap"``
aborted with 8 steps queued and completed with 1, 2 or 4. The trainer keeps
at most :data:`MAX_STEPS_IN_FLIGHT` steps queued (it waits for the metrics
of the step that many steps back), which changes no value.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from typing import Any, Callable, Mapping

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from tlax.train import step as step_lib
from tlax.train import xla

PyTree = Any
AXIS = "batch"  # the mesh / pmap axis name (lax.pmean, BatchNorm)
PARALLEL_MODES = ("none", "auto", "sharded", "pmap")
DEFAULT_PARALLEL = "sharded"  # what "auto" stands for
# Steps dispatched ahead of the host before it waits (see module docstring).
MAX_STEPS_IN_FLIGHT = 2

logger = logging.getLogger(__name__)


def device_name() -> str:
  """``"<platform>:<device kind>"`` of the first device (``"cpu:cpu"``)."""
  d = jax.devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '')}".rstrip(":")


# --------------------------------------------------------------------------
# Hosts.
# --------------------------------------------------------------------------
def maybe_initialize_distributed(config) -> bool:
  """Calls ``jax.distributed.initialize`` when a multi-host run is asked for.

  Asked for: ``config.distributed`` is True (arguments from
  ``config.distributed_args``: ``coordinator_address``, ``num_processes``,
  ``process_id``, ... or, on a cluster JAX detects itself (SLURM, Open MPI,
  Cloud TPU), none), or the environment sets ``JAX_COORDINATOR_ADDRESS``
  (with ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``). Call it before
  anything touches a device; calling it twice is a no-op.

  Returns:
    Whether the process is part of a multi-host run.
  """
  args = dict(config.get("distributed_args", None) or {})
  env = os.environ.get("JAX_COORDINATOR_ADDRESS")
  if not bool(config.get("distributed", False)) and not env:
    return False
  if env:
    args.setdefault("coordinator_address", env)
    for key, var in (("num_processes", "JAX_NUM_PROCESSES"),
                     ("process_id", "JAX_PROCESS_ID")):
      if os.environ.get(var) is not None:
        args.setdefault(key, int(os.environ[var]))
  if not jax.distributed.is_initialized():
    jax.distributed.initialize(**args)
  logger.info("jax.distributed: process %d of %d, %d local / %d global "
              "devices", jax.process_index(), jax.process_count(),
              jax.local_device_count(), jax.device_count())
  return True


def host_rows(n: int, process_index: int, process_count: int
              ) -> tuple[int, int]:
  """``[start, stop)``: the rows of an ``n``-row global batch a host feeds.

  Contiguous blocks of ``n / process_count`` rows, host 0 first.
  """
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} outside "
                     f"0..{process_count - 1}.")
  if n % process_count:
    raise ValueError(f"A batch of {n} rows cannot be split evenly over "
                     f"{process_count} hosts; make it a multiple.")
  size = n // process_count
  return process_index * size, (process_index + 1) * size


def per_device_batch_size(global_batch: int, *, process_count: int,
                          local_devices: int) -> int:
  """Rows per device; raises unless the global batch splits evenly."""
  n = process_count * local_devices
  if global_batch % n:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"{n} devices ({process_count} hosts x {local_devices} "
                     "local devices); set config.batch_size to a multiple "
                     "or config.num_devices to fewer devices.")
  return global_batch // n


# --------------------------------------------------------------------------
# Arrays on devices.
# --------------------------------------------------------------------------
def replicate(tree: PyTree, devices=None) -> PyTree:
  """Every leaf copied onto each device, stacked on a new leading axis (what
  ``jax.pmap`` takes for a replicated argument)."""
  devices = list(devices or jax.local_devices())
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))

  def rep(x):
    x = np.asarray(x)
    return jax.device_put(np.broadcast_to(x, (len(devices),) + x.shape),
                          sharding)
  return jax.tree.map(rep, tree)


def unreplicate(tree: PyTree) -> PyTree:
  """The first replica of a :func:`replicate` d tree, as NumPy arrays."""
  def first(x):
    if hasattr(x, "addressable_shards") and x.ndim > 0:
      shard = np.asarray(x.addressable_shards[0].data)
      return shard[0] if shard.shape[:1] == (1,) else shard
    return np.asarray(x)[0]
  return jax.tree.map(first, tree)


def shard_batch(batch: Mapping[str, Any], num_devices: int) -> dict:
  """Each ``(B, ...)`` array reshaped to ``(num_devices, B / num_devices,
  ...)``: device ``d`` gets rows ``d * B/n .. (d+1) * B/n - 1``."""
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    if v.shape[0] % num_devices:
      raise ValueError(f"batch[{k!r}] has {v.shape[0]} rows, not divisible "
                       f"by {num_devices} devices.")
    out[k] = v.reshape((num_devices, v.shape[0] // num_devices) + v.shape[1:])
  return out


def with_axis_name(model, axis_name: str | None = AXIS):
  """``model`` with cross-device BatchNorm when it has ``bn_axis_name``.

  Models without that field (no BatchNorm) are returned unchanged.
  """
  if not dataclasses.is_dataclass(model):
    return model
  if "bn_axis_name" in {f.name for f in dataclasses.fields(model)}:
    return model.clone(bn_axis_name=axis_name)
  return model


# --------------------------------------------------------------------------
# The wrapped step.
# --------------------------------------------------------------------------
@dataclasses.dataclass
class DataParallel:
  """The one train step placed on devices.

  Attributes:
    mode: ``"none"``, ``"sharded"`` or ``"pmap"``.
    num_devices: devices over all hosts.
    step: ``(device_state, device_batch) -> (device_state, metrics)``.
    put_state: host (or one-device) state -> the state the step takes.
    get_state: the step's state -> a state on one device or the host (for
      evaluation and checkpoints).
    put_batch: a global batch (every host the same) -> the step's batch.
    get_metrics: the step's metrics -> scalars.
  """
  mode: str
  num_devices: int
  step: Callable[..., Any]
  put_state: Callable[[Any], Any]
  get_state: Callable[[Any], Any]
  put_batch: Callable[[Mapping[str, Any]], Any]
  get_metrics: Callable[[Any], Any]


def resolve_mode(config) -> str:
  """``config.parallel`` with ``"auto"`` resolved; checks the name."""
  mode = str(config.get("parallel", "none") or "none")
  if mode not in PARALLEL_MODES:
    raise ValueError(f"config.parallel={mode!r}; expected one of "
                     f"{PARALLEL_MODES}.")
  return DEFAULT_PARALLEL if mode == "auto" else mode


def select_devices(config) -> list:
  """The local devices a run uses (``config.num_devices``; 0: all)."""
  local = jax.local_devices()
  n = int(config.get("num_devices", 0) or 0) or len(local)
  if n > len(local):
    raise ValueError(f"config.num_devices={n} but this host has "
                     f"{len(local)} devices (on the CPU, set XLA_FLAGS="
                     "--xla_force_host_platform_device_count=N before JAX "
                     "starts).")
  return local[:n]


def _check_batch(batch: Mapping[str, Any], n: int) -> None:
  for k, v in batch.items():
    if np.shape(v)[0] % n:
      raise ValueError(
          f"batch[{k!r}] has {np.shape(v)[0]} rows, not divisible by the {n} "
          "devices of a data-parallel run; make config.batch_size (and "
          "target_batch_size, labeled_batch_size) multiples of the device "
          "count or set config.num_devices.")


def data_parallel(config, method, tx: optax.GradientTransformation,
                  schedule: Callable[[Any], Any], *, train_method=None
                  ) -> DataParallel:
  """The step of :func:`tlax.train.step.train_step` for ``config.parallel``.

  Args:
    config: reads ``parallel`` and ``num_devices``.
    method: the method (its model without an axis name).
    tx, schedule: as :func:`tlax.train.step.make_train_step`.
    train_method: for ``"pmap"``: the method built on
      ``with_axis_name(model)`` (cross-device BatchNorm); default ``method``.
  """
  mode = resolve_mode(config)
  if mode == "none":
    ident = lambda x: x
    return DataParallel("none", 1, step_lib.make_train_step(method, tx,
                                                            schedule),
                        ident, ident, ident, ident)
  devices = select_devices(config)
  pi, pc = jax.process_index(), jax.process_count()
  n_local = len(devices)

  def local_rows(batch):
    _check_batch(batch, n_local * pc)
    out = {}
    for k, v in batch.items():
      start, stop = host_rows(np.shape(v)[0], pi, pc)
      out[k] = np.asarray(v)[start:stop]
    return out

  if mode == "pmap":
    fn = functools.partial(step_lib.train_step, method=train_method or method,
                           tx=tx, schedule=schedule, axis_name=AXIS)
    p_step = jax.pmap(fn, axis_name=AXIS, devices=devices, donate_argnums=0)
    return DataParallel(
        "pmap", n_local * pc, p_step,
        put_state=lambda s: replicate(s, devices),
        get_state=lambda s: jax.tree.map(jnp.asarray, unreplicate(s)),
        put_batch=lambda b: shard_batch(local_rows(b), n_local),
        get_metrics=lambda m: jax.tree.map(lambda x: x[0], m))

  # "sharded": one program over a mesh of every host's devices.
  all_devices = (devices if pc == 1 else
                 [d for d in jax.devices() if d.process_index != pi
                  or d in devices])
  mesh = jax.sharding.Mesh(np.array(all_devices), (AXIS,))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))
  s_step = jax.jit(
      functools.partial(step_lib.train_step, method=method, tx=tx,
                        schedule=schedule),
      in_shardings=(replicated, split), out_shardings=(replicated,
                                                       replicated),
      donate_argnums=0, compiler_options=xla.compiler_options())

  def put_batch(batch):
    rows = local_rows(batch)
    return {k: jax.make_array_from_process_local_data(split, v)
            for k, v in rows.items()}

  return DataParallel(
      "sharded", len(all_devices), s_step,
      put_state=lambda s: jax.device_put(s, replicated),
      get_state=lambda s: jax.tree.map(jnp.asarray, jax.device_get(s)),
      put_batch=put_batch, get_metrics=lambda m: m)
