"""The pretraining stage: data parallelism with ``jax.pmap``.

The one place in tlax where devices appear. A pretraining run trains a
classifier on a large labelled source (SynDigits at 100k images by default,
or any ``tfds/<name>`` domain) with synchronous data parallelism:

* the :class:`tlax.train.TrainState` is replicated on the local devices
  (:func:`replicate` / :func:`unreplicate`);
* each step takes a per-host batch of ``B_host = B / process_count`` examples
  reshaped to ``(local_devices, B_host / local_devices, ...)``
  (:func:`shard_batch`); each device computes the method's loss and gradient
  on its shard;
* gradients are averaged over all devices of all hosts with
  ``lax.pmean(grads, axis_name)``, so every replica applies the same update:
  one data-parallel step on a global batch equals one single-device step on
  that batch (``tests/test_parallel.py`` checks it on 4 fake CPU devices);
* BatchNorm statistics are synchronised: models that take a
  ``bn_axis_name`` (ResNet) get :data:`AXIS` so batch statistics are
  computed over the global batch; for any other collection the updated
  state is averaged with ``lax.pmean`` after the step (the flax ImageNet
  example's habit), so the replicas never drift;
* the optimiser is any of the trainer's (``sgd``, ``adam``, ``adamw``,
  ``lamb``: You et al., 2020, for large batches).

Multi-host: with ``config.distributed`` set, :func:`maybe_initialize_distributed`
calls ``jax.distributed.initialize()`` (its arguments from the environment or
``config.distributed_args``); ``jax.pmap`` then averages over the devices of
every host, and each host draws its batches from its own contiguous shard of
the training set (:func:`host_shard`), with a per-host seed. The global batch
``config.batch_size`` is split evenly over hosts then devices. This path is
written to the JAX multi-process contract but only the shard selection is
tested (no multi-host machine here).

Models never see device counts: the axis name is set on the model by this
module (``bn_axis_name``) and nowhere else.

Entry point: :func:`pretrain_and_evaluate(config, workdir)`, dispatched by
``experiments/run.py`` for ``config.stage == "pretrain"``; it writes orbax
checkpoints (:mod:`tlax.train.checkpoint`), ``metrics.jsonl`` and
``result.json`` in ``workdir``.

References:
  You, Li, Reddi, et al. Large batch optimization for deep learning: training
  BERT in 76 minutes (LAMB). ICLR 2020.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any, Callable, Mapping

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from tlax.train import optim
from tlax.train.optim import make_optimizer  # re-exported: has lamb
from tlax.train.state import TrainState

PyTree = Any
AXIS = "batch"  # the pmap axis name (for lax.pmean and BatchNorm)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------
# Devices and hosts.
# --------------------------------------------------------------------------
def maybe_initialize_distributed(config) -> bool:
  """``jax.distributed.initialize(**config.distributed_args)`` when
  ``config.distributed`` is set; returns whether it was called.

  Call it before anything touches a device. On a cluster manager JAX knows
  (SLURM, Cloud TPU, Open MPI, ...), no arguments are needed; otherwise pass
  ``coordinator_address``, ``num_processes`` and ``process_id`` in
  ``config.distributed_args``.
  """
  if not bool(config.get("distributed", False)):
    return False
  args = dict(config.get("distributed_args", None) or {})
  jax.distributed.initialize(**args)
  logger.info("jax.distributed: process %d of %d, %d local / %d global "
              "devices", jax.process_index(), jax.process_count(),
              jax.local_device_count(), jax.device_count())
  return True


def host_shard(n: int, process_index: int, process_count: int
               ) -> tuple[int, int]:
  """``[start, stop)`` of the examples host ``process_index`` reads.

  The ``n`` examples are cut into ``process_count`` contiguous shards whose
  sizes differ by at most one (the first ``n % process_count`` shards get one
  more); together they cover every example exactly once.
  """
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} outside "
                     f"0..{process_count - 1}.")
  if n < process_count:
    raise ValueError(f"{n} examples cannot be split over {process_count} "
                     "hosts.")
  base, extra = divmod(n, process_count)
  start = process_index * base + min(process_index, extra)
  stop = start + base + (1 if process_index < extra else 0)
  return start, stop


def per_device_batch_size(global_batch: int, *, process_count: int,
                          local_devices: int) -> int:
  """Examples per device; raises unless the global batch splits evenly."""
  n = process_count * local_devices
  if global_batch % n:
    raise ValueError(f"batch_size {global_batch} is not divisible by the "
                     f"{n} devices ({process_count} hosts x {local_devices} "
                     "local devices).")
  return global_batch // n


def replicate(tree: PyTree, devices=None) -> PyTree:
  """Copies every leaf onto each local device, stacked on a leading axis.

  The result is what ``jax.pmap`` expects for a replicated argument
  (``in_axes=0`` with identical slices), laid out one slice per device.
  """
  devices = list(devices or jax.local_devices())
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(AXIS))

  def rep(x):
    x = np.asarray(x)
    return jax.device_put(np.broadcast_to(x, (len(devices),) + x.shape),
                          sharding)
  return jax.tree.map(rep, tree)


def unreplicate(tree: PyTree) -> PyTree:
  """The first replica of a replicated tree (host arrays)."""
  def first(x):
    if hasattr(x, "addressable_shards") and x.ndim > 0:
      shard = x.addressable_shards[0].data
      return np.asarray(shard)[0] if shard.shape[:1] == (1,) else np.asarray(
          shard)
    return np.asarray(x)[0]
  return jax.tree.map(first, tree)


def shard_batch(batch: Mapping[str, np.ndarray], num_devices: int) -> dict:
  """Reshapes each ``(B, ...)`` array to ``(num_devices, B / num_devices,
  ...)``: device ``d`` gets rows ``d * B/n .. (d+1) * B/n - 1``."""
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    if v.shape[0] % num_devices:
      raise ValueError(f"batch[{k!r}] has {v.shape[0]} rows, not divisible "
                       f"by {num_devices} devices.")
    out[k] = v.reshape((num_devices, v.shape[0] // num_devices) + v.shape[1:])
  return out


# --------------------------------------------------------------------------
# Models and optimisers.
# --------------------------------------------------------------------------
def with_axis_name(model, axis_name: str | None = AXIS):
  """``model`` with cross-device BatchNorm when it supports ``bn_axis_name``.

  Models that have no such attribute (no BatchNorm) are returned unchanged.
  """
  fields = {f.name for f in dataclasses.fields(model)}
  if "bn_axis_name" in fields:
    return model.clone(bn_axis_name=axis_name)
  return model


# --------------------------------------------------------------------------
# The data-parallel step.
# --------------------------------------------------------------------------
def _is_float(x) -> bool:
  return jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)


def parallel_train_step(state: TrainState, batch: Mapping[str, Any], *,
                        method, tx: optax.GradientTransformation,
                        schedule: Callable[[Any], Any],
                        axis_name: str = AXIS) -> tuple[TrainState, dict]:
  """One synchronous data-parallel update (run under ``jax.pmap``).

  The same computation as :func:`tlax.train.step.train_step` with three
  additions: the step key is folded with the device index (different
  dropout masks per device, the same ``state.rng`` everywhere), gradients
  and metrics are ``lax.pmean``-ed over ``axis_name`` before the update, and
  floating state leaves (BatchNorm statistics) are ``pmean``-ed after it
  (a no-op for models whose BatchNorm already syncs over ``axis_name``).

  For a per-example-mean loss, the mean over devices of shard gradients is
  the gradient on the global batch, so the update equals a single-device
  update on the concatenated batch (up to float summation order).
  """
  key = jax.random.wrap_key_data(state.rng)
  key, step_key = jax.random.split(key)
  step_key = jax.random.fold_in(step_key, lax.axis_index(axis_name))

  def loss_fn(params):
    return method.loss(params, state.state, batch, step_key, state.step,
                       state.hparams)

  (loss, (metrics, new_method_state)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grads = lax.pmean(grads, axis_name)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  lr = state.hparams["lr"] * schedule(state.step)
  updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
  params = optax.apply_updates(state.params, updates)
  new_method_state = jax.tree.map(
      lambda x: lax.pmean(x, axis_name) if _is_float(x) else x,
      new_method_state)
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  metrics.update(loss=jnp.asarray(loss, jnp.float32),
                 lr=jnp.asarray(lr, jnp.float32),
                 grad_norm=optax.tree.norm(grads).astype(jnp.float32))
  metrics = lax.pmean(metrics, axis_name)
  new_state = state.replace(step=state.step + 1, params=params,
                            state=new_method_state, opt_state=opt_state,
                            rng=jax.random.key_data(key))
  return new_state, metrics


def make_parallel_train_step(method, tx: optax.GradientTransformation,
                             schedule: Callable[[Any], Any],
                             axis_name: str = AXIS, donate: bool = True):
  """:func:`parallel_train_step` bound and wrapped in ``jax.pmap``.

  Takes a replicated state and a sharded batch (leading axis: local
  devices); returns the replicated new state and replicated metrics.
  """
  fn = functools.partial(parallel_train_step, method=method, tx=tx,
                         schedule=schedule, axis_name=axis_name)
  return jax.pmap(fn, axis_name=axis_name,
                  donate_argnums=(0,) if donate else ())


# --------------------------------------------------------------------------
# Data: the source domain, sharded over hosts.
# --------------------------------------------------------------------------
@dataclasses.dataclass
class SourceData:
  """This host's part of a labelled source domain.

  Attributes:
    x, y: this host's shard of the training split (minus validation).
    x_val, y_val: the stratified source validation split (every host has
      all of it; evaluation runs on each host's first device).
    x_test, y_test: the domain's test split.
    num_classes, input_shape: of the domain.
    shard: ``(start, stop)`` of this host's shard in the training split.
  """
  x: np.ndarray
  y: np.ndarray
  x_val: np.ndarray
  y_val: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int
  input_shape: tuple
  shard: tuple[int, int]


def load_source(config, *, process_index: int | None = None,
                process_count: int | None = None) -> SourceData:
  """Loads ``config.source`` and keeps this host's shard of its train split.

  ``config.domain_options`` are passed to the loader (the keys ``source`` /
  ``target`` as in :func:`tlax.data.make_task`), e.g.
  ``{"source": {"n_train": 100000}}`` for SynDigits. The validation split
  (``config.source_val_fraction``) is taken before sharding, with the same
  seeded generator as :func:`tlax.data.make_task`.
  """
  from tlax.data import domains  # pylint: disable=g-import-not-at-top
  from tlax.data import tasks  # pylint: disable=g-import-not-at-top
  pi = jax.process_index() if process_index is None else process_index
  pc = jax.process_count() if process_count is None else process_count
  opts = _to_dict(config.get("domain_options") or {})
  src_opts, _ = tasks._split_options(opts)  # pylint: disable=protected-access
  dom = domains.load_domain(
      config.source, image_size=config.get("image_size"),
      channels=config.get("channels"), data_dir=config.get("data_dir"),
      seed=int(config.seed), **src_opts)
  x_all, y_all = dom.splits["train"]
  keep, val = domains.stratified_split(
      y_all, float(config.get("source_val_fraction", 0.1)),
      np.random.default_rng([int(config.seed), 1001]))
  start, stop = host_shard(len(keep), pi, pc)
  mine = keep[start:stop]
  x_test, y_test = dom.splits["test"]
  return SourceData(x=x_all[mine], y=y_all[mine], x_val=x_all[val],
                    y_val=y_all[val], x_test=x_test, y_test=y_test,
                    num_classes=dom.num_classes,
                    input_shape=tuple(dom.input_shape), shard=(start, stop))


def host_batch(data: SourceData, step: int, size: int, *, seed: int,
               process_index: int) -> dict:
  """This host's batch at ``step``: a pure function of (seed, host, step).

  Consecutive slices of an endless stream of epoch permutations of the
  host's shard (:func:`tlax.data.tasks.stream_indices`), so a resumed run
  needs only the step. Keys follow :class:`tlax.data.PairedBatches`; ``xt``
  repeats ``xs`` (pretraining has no target) so methods that read it run.
  """
  from tlax.data import tasks  # pylint: disable=g-import-not-at-top
  idx = tasks.stream_indices(int(seed), 100 + int(process_index),
                             len(data.x), int(step) * size, size)
  xs = np.asarray(data.x[idx], np.float32)
  return {"xs": xs, "ys": np.asarray(data.y[idx], np.int32),
          "ws": np.ones(size, np.float32), "xt": xs}


def _to_dict(c) -> dict:
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  return trainer.config_to_dict(c)


# --------------------------------------------------------------------------
# The pretraining run.
# --------------------------------------------------------------------------
def resolve_pretrain_config(config):
  """A copy of ``config`` with the pretraining defaults filled and checked."""
  import copy  # pylint: disable=g-import-not-at-top
  config = copy.deepcopy(config)
  with config.unlocked():
    for field in ("steps", "batch_size", "optimizer.name", "optimizer.lr"):
      node, *rest = field.split(".")
      value = config[node] if not rest else config[node][rest[0]]
      if value is None:
        raise ValueError(f"config.{field} must be set for pretraining.")
    if config.model.name in (None, "auto"):
      config.model.name = "lenet"
    if config.optimizer.get("schedule") is None:
      config.optimizer.schedule = "constant"
    if config.optimizer.get("weight_decay") is None:
      config.optimizer.weight_decay = 0.0
    if config.get("eval_every") is None:
      config.eval_every = max(1, int(config.steps) // 5)
    if config.get("checkpoint_every") is None:
      config.checkpoint_every = config.eval_every
  optim.make_schedule(config)
  make_optimizer(config)
  return config


def _device_name() -> str:
  d = jax.local_devices()[0]
  return f"{d.platform}:{getattr(d, 'device_kind', '')}".rstrip(":")


def pretrain_and_evaluate(config, workdir: str | os.PathLike) -> dict:
  """Data-parallel pretraining on ``config.source``; writes ``result.json``.

  Config fields read (``experiments/configs/pretrain.py``): ``source``,
  ``domain_options``, ``image_size``, ``channels``, ``seed``, ``model``,
  ``method.name`` (``source_only``), ``optimizer`` (``sgd`` | ``adam`` |
  ``adamw`` | ``lamb``), ``steps``, ``batch_size`` (global), ``num_devices``
  (0: all local devices), ``log_every``, ``eval_every``,
  ``checkpoint_every``, ``eval_batch_size``, ``distributed``,
  ``distributed_args``, ``target`` (optional: also evaluate there, e.g. the
  zero-shot accuracy on ``mnist_usps/usps``; empty for none).

  Returns:
    The result dict, also written to ``<workdir>/result.json``: ``stage``,
    ``source``, ``source_test_accuracy``, ``source_val_accuracy``,
    ``target_accuracy`` (when a target is set), ``images_per_sec`` (training
    throughput after the first, compiling, step), ``num_devices``,
    ``num_processes``, ``per_device_batch``, ``device``, ``checkpoint`` (the
    folder to give ``finetune.checkpoint``), ``wall_time_s``, ``config``.
  """
  # pylint: disable=g-import-not-at-top
  import tlax
  from tlax import methods, models
  from tlax.methods import contract
  from tlax.train import checkpoint as ckpt_lib
  from tlax.train import state as state_lib
  from tlax.train import trainer
  from tlax.train.evaluate import evaluate
  from tlax.train.metrics_log import MetricsLog, write_atomic
  # pylint: enable=g-import-not-at-top
  t_start = time.time()
  maybe_initialize_distributed(config)
  workdir = os.path.abspath(os.fspath(workdir))
  os.makedirs(workdir, exist_ok=True)
  result_path = os.path.join(workdir, "result.json")
  if os.path.exists(result_path):
    with open(result_path) as f:
      previous = json.load(f)
    diff = trainer.config_diff(config, previous.get("config", {}),
                               partial=True)
    if diff:
      raise trainer.ConfigMismatchError(
          f"{result_path} was made with a different config:\n"
          + "\n".join(diff))
    return previous

  config = resolve_pretrain_config(config)
  config_dict = _to_dict(config)
  pi, pc = jax.process_index(), jax.process_count()
  devices = jax.local_devices()
  n_dev = int(config.get("num_devices", 0) or 0) or len(devices)
  if n_dev > len(devices):
    raise ValueError(f"num_devices={n_dev} but only {len(devices)} local "
                     "devices (on CPU set XLA_FLAGS="
                     "--xla_force_host_platform_device_count=N before JAX "
                     "starts).")
  devices = devices[:n_dev]
  per_dev = per_device_batch_size(int(config.batch_size), process_count=pc,
                                  local_devices=n_dev)
  host_bs = per_dev * n_dev
  data = load_source(config)
  steps = int(config.steps)

  kwargs = _to_dict(config.model.get("kwargs") or {})
  model = models.get_model(config.model.name, data.num_classes, **kwargs)
  factory = methods.get_method(config.method.name)
  options = {k: v for k, v in _to_dict(config.method).items() if k != "name"}

  def build(m):
    return contract.call_factory(factory, options, model=m,
                                 num_classes=data.num_classes,
                                 total_steps=steps)
  train_method = build(with_axis_name(model, AXIS))
  eval_method = build(model)

  sample = host_batch(data, 0, per_dev, seed=int(config.seed),
                      process_index=pi)
  key = jax.random.key(int(config.seed))
  init_key, train_key = jax.random.split(key)
  params, mstate = eval_method.init(init_key, sample)
  tx = make_optimizer(config, params)
  state = state_lib.TrainState(
      step=jnp.asarray(0, jnp.int32), params=params, state=mstate,
      opt_state=tx.init(params), rng=jax.random.key_data(train_key),
      hparams=state_lib.init_hparams(config, eval_method))

  manager = ckpt_lib.checkpoint_manager(os.path.join(workdir, "checkpoints"))
  start_step = 0
  if manager.latest_step() is not None:
    saved = ckpt_lib.restore_config(manager)
    diff = trainer.config_diff(config_dict, saved)
    if diff:
      raise trainer.ConfigMismatchError(
          f"The checkpoint in {workdir} was made with a different config:\n"
          + "\n".join(diff))
    state = ckpt_lib.restore_checkpoint(manager, state)
    start_step = int(jax.device_get(state.step))
    logger.info("Resumed pretraining from step %d.", start_step)
  log = MetricsLog(os.path.join(workdir, "metrics.jsonl"),
                   keep_until_step=start_step if start_step else None)

  p_step = make_parallel_train_step(train_method, tx,
                                    optim.make_schedule(config))
  rstate = replicate(state, devices)

  def host_state():
    return jax.device_get(unreplicate(rstate))

  def run_eval(st, step):
    val = evaluate(eval_method, st.params, st.state, data.x_val,
                            data.y_val, config.eval_batch_size,
                            data.num_classes)
    rec = {"type": "eval", "step": step,
           "source_val_accuracy": val["accuracy"]}
    log.write(rec)
    return rec

  pending = []
  train_time, images_timed = 0.0, 0
  timer = None  # started after the first (compiling) step

  def pause():  # excludes evaluation and checkpointing from the throughput
    nonlocal train_time, timer
    jax.block_until_ready(rstate)
    if timer is not None:
      train_time += time.time() - timer
    timer = None

  last_val = None
  for step in range(start_step, steps):
    if step > start_step and timer is None:
      timer = time.time()
    batch = shard_batch(host_batch(data, step, host_bs, seed=int(config.seed),
                                   process_index=pi), n_dev)
    rstate, metrics = p_step(rstate, batch)
    done = step + 1
    pending.append(metrics)
    if step == start_step:  # compilation: not part of the throughput
      jax.block_until_ready(rstate)
    else:
      images_timed += int(config.batch_size)
    if done % config.log_every == 0 or done == steps:
      host = jax.device_get([unreplicate(m) for m in pending])
      avg = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
      if not np.isfinite(avg["loss"]):
        raise trainer.NonFiniteLossError(
            f"pretraining loss is {avg['loss']} by step {done}.")
      log.write({"type": "train", "step": done, **avg,
                 "elapsed": time.time() - t_start})
      pending.clear()
    if done % config.eval_every == 0 or done == steps:
      pause()
      last_val = run_eval(host_state(), done)
    if done % config.checkpoint_every == 0 or done == steps:
      pause()
      ckpt_lib.save_checkpoint(manager, host_state(), config_dict)
  pause()
  images_per_sec = images_timed / train_time if train_time > 0 else None
  final = host_state()
  manager.close()
  if last_val is None:
    last_val = run_eval(final, steps)
  test = evaluate(eval_method, final.params, final.state,
                           data.x_test, data.y_test, config.eval_batch_size,
                           data.num_classes)
  result = {
      "stage": "pretrain",
      "method": config.method.name,
      "source": config.source,
      "seed": int(config.seed),
      "steps": steps,
      "model": config.model.name,
      "optimizer": config.optimizer.name,
      "batch_size": int(config.batch_size),
      "per_device_batch": per_dev,
      "num_devices": n_dev * pc,
      "num_processes": pc,
      "num_train_examples_host": int(len(data.x)),
      "source_test_accuracy": test["accuracy"],
      "source_val_accuracy": last_val["source_val_accuracy"],
      "images_per_sec": images_per_sec,
      "checkpoint": os.path.join(workdir, "checkpoints"),
      "wall_time_s": time.time() - t_start,
      "config": config_dict,
      "tlax_version": tlax.__version__,
      "jax_version": jax.__version__,
      "device": _device_name(),
  }
  target = config.get("target") or ""
  if target:
    from tlax.data import domains  # pylint: disable=g-import-not-at-top
    from tlax.data import tasks  # pylint: disable=g-import-not-at-top
    _, tgt_opts = tasks._split_options(  # pylint: disable=protected-access
        _to_dict(config.get("domain_options") or {}))
    tdom = domains.load_domain(
        target, image_size=config.get("image_size"),
        channels=config.get("channels"), data_dir=config.get("data_dir"),
        seed=int(config.seed), **tgt_opts)
    xt, yt = tdom.splits["test"]
    tev = evaluate(eval_method, final.params, final.state, xt, yt,
                            config.eval_batch_size, data.num_classes)
    result["target"] = target
    result["target_accuracy"] = tev["accuracy"]
  if pi == 0:
    write_atomic(result_path, json.dumps(result, indent=2) + "\n")
  logger.info("pretrain %s: source test accuracy %.2f%%, %.0f images/s on "
              "%d devices.", config.source, test["accuracy"],
              images_per_sec or float("nan"), n_dev * pc)
  return result
