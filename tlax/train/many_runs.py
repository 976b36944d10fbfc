r"""Many runs in one program: K runs trained together under ``jax.vmap``.

Runs that differ only in what :class:`tlax.train.TrainState` keeps as arrays
(the seed, ``optimizer.lr``, ``optimizer.weight_decay`` and the method's
``hparams``: lambda, thresholds, ...) and in their task (same input shape
and number of classes) have train states of one shape. :func:`train_many`
stacks them along a leading run axis and trains them as one jitted program,

    state_k(t + 1) = step(state_k(t), batch_k(t)),   k = 1 .. K   (jax.vmap)

with the data loop on the device: the tasks' training arrays are copied to
the device once (one pool of distinct examples for all runs), the host
sends only the example indices that :meth:`tlax.data.PairedBatches.indices`
gives for each run's seed and step, and the batches are gathered inside the
program. ``steps_per_dispatch`` steps run per call with ``jax.lax.scan``
between the logging, evaluation and checkpoint steps.

Each run keeps its own workdir, with the ``metrics.jsonl``,
``result.json`` and final checkpoint that
:func:`tlax.train.train_and_evaluate` writes for the same config: the same
records and numbers, only the timings (``elapsed``, ``steps_per_sec``,
``wall_time_s``, ``images_per_sec``) are the group's. The checkpoints taken
during training hold all K runs, in the group's folder (by default
``<common parent of the workdirs>/.groups/<hash>``), and a killed group
resumes from them to the same bits; the folder is removed when every run has
its result.

Equality with sequential runs: a vmapped step computes each run's step with
batched operations (a batched matrix product, a grouped convolution), which
XLA may reduce in another order than the single-run step, so parameters can
differ from a sequential run's in the last bits; docs/many_runs.md gives
the measured differences. Runs through the sequential trainer are unchanged.

A config with ``steps_per_dispatch > 1`` given to
:func:`tlax.train.run_experiment` is trained here as a group of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import sys
import time
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from tlax.train import checkpoint as ckpt_lib
from tlax.train import devices as devices_lib
from tlax.train import trainer as trainer_lib
from tlax.train import workdir as workdir_lib
from tlax.train.finite import FiniteCheck
from tlax.train.metrics_log import MetricsLog
from tlax.train.optim import make_optimizer
from tlax.train.optim import make_schedule
from tlax.train.state import create_train_state
from tlax.train.step import train_step
from tlax.train.workdir import ConfigMismatchError
from tlax.train.xla import compiler_options

# Config keys in which runs of one program may differ (besides the method's
# hyper-parameters, ``method.<name of hparams>``, and the fields that do not
# change a run's numbers, trainer.NON_RESULT_FIELDS).
VARYING_KEYS = ("seed", "source", "target", "task_fingerprint",
                "optimizer.lr", "optimizer.weight_decay")
GROUPS_FOLDER = ".groups"


class GroupError(ValueError):
  """Runs that cannot be trained as one program (configs or shapes differ)."""


# ----------------------------------------------------------------------------
# Grouping
# ----------------------------------------------------------------------------
def _hparam_keys(method) -> set[str]:
  return {f"method.{k}" for k in dict(method.hparams)}


def program_diff(a: dict, b: dict, hparam_keys) -> list[str]:
  """The keys (dotted, with both values) where two resolved config dicts
  differ in something other than :data:`VARYING_KEYS`, the method's
  hyper-parameters ``hparam_keys`` and the non-result fields."""
  fa, fb = trainer_lib._flatten(a), trainer_lib._flatten(b)  # pylint: disable=protected-access
  lines = []
  for key in sorted(set(fa) | set(fb)):
    if key in VARYING_KEYS or key in hparam_keys:
      continue
    if key.split(".")[0] in trainer_lib.NON_RESULT_FIELDS:
      continue
    va, vb = fa.get(key, "<absent>"), fb.get(key, "<absent>")
    if va != vb:
      lines.append(f"  {key}: {va!r} vs {vb!r}")
  return lines


def default_group_dir(workdirs: Sequence[str]) -> str:
  """``<common parent>/.groups/<hash of the workdirs>``."""
  paths = [os.path.abspath(os.fspath(w)) for w in workdirs]
  parent = os.path.commonpath([os.path.dirname(p) for p in paths])
  digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
  return os.path.join(parent, GROUPS_FOLDER, digest)


# ----------------------------------------------------------------------------
# The examples on the device
# ----------------------------------------------------------------------------
def _pool(per_run: Sequence[Sequence[np.ndarray]]):
  """One table of the distinct rows of several runs' arrays.

  Args:
    per_run: for each run, a tuple of arrays with one row per example (e.g.
      ``(xs, ys, ws)``).

  Returns:
    ``(pool, maps)``: ``pool`` the tuple of arrays of the distinct rows
    (rows equal in every array are stored once), ``maps[r][i]`` the pool
    row of example ``i`` of run ``r``.
  """
  index: dict[bytes, int] = {}
  rows: list[tuple[int, int]] = []
  maps: list[np.ndarray] = []
  seen: dict[bytes, np.ndarray] = {}
  for r, arrays in enumerate(per_run):
    n = len(arrays[0])
    keys = np.concatenate(
        [np.ascontiguousarray(a).reshape(n, -1).view(np.uint8).reshape(n, -1)
         for a in arrays], axis=1) if n else np.zeros((0, 0), np.uint8)
    whole = hashlib.sha256(keys.tobytes()).digest() + bytes(str(keys.shape),
                                                            "ascii")
    if whole in seen:  # the same arrays as an earlier run
      maps.append(seen[whole])
      continue
    m = np.empty(n, np.int32)
    for i in range(n):
      j = index.setdefault(keys[i].tobytes(), len(rows))
      if j == len(rows):
        rows.append((r, i))
      m[i] = j
    seen[whole] = m
    maps.append(m)
  pool = []
  for a_idx in range(len(per_run[0])):
    arrays = [np.asarray(arrays[a_idx]) for arrays in per_run]
    pool.append(np.stack([arrays[r][i] for r, i in rows]) if rows else
                arrays[0][:0])
  return tuple(pool), maps


def _device_pools(batches_list) -> tuple[dict, list[dict]]:
  """The training examples of every run as device arrays, and per run the
  maps from its task's example indices to pool rows."""
  src = _pool([(b.task.xs.astype(np.float32, copy=False),
                b.task.ys.astype(np.int32, copy=False), b.source_weights,
                *(() if b.domain_rows is None else
                  (b.task.ds.astype(np.int32, copy=False),)))
               for b in batches_list])
  tgt = _pool([(b.task.xt.astype(np.float32, copy=False),)
               for b in batches_list])
  pools = {"xs": src[0][0], "ys": src[0][1], "ws": src[0][2],
           "xt": tgt[0][0]}
  if batches_list[0].domain_rows is not None:
    pools["ds"] = src[0][3]
  maps = [{"xs": src[1][r], "xt": tgt[1][r]} for r in range(len(batches_list))]
  if batches_list[0].labeled_batch_size:
    lab = _pool([(b.task.xtl.astype(np.float32, copy=False),
                  b.task.ytl.astype(np.int32, copy=False))
                 for b in batches_list])
    pools.update(xtl=lab[0][0], ytl=lab[0][1])
    for r, m in enumerate(maps):
      m["xtl"] = lab[1][r]
  return jax.device_put(pools), maps


def _gather(pools: dict, idx: dict) -> dict:
  """The batch of :class:`tlax.data.PairedBatches` from pool rows."""
  batch = {"xs": pools["xs"][idx["xs"]], "ys": pools["ys"][idx["xs"]],
           "ws": pools["ws"][idx["xs"]], "xt": pools["xt"][idx["xt"]]}
  if "ds" in pools:
    batch["ds"] = pools["ds"][idx["xs"]]
  if "xtl" in idx:
    batch["xtl"] = pools["xtl"][idx["xtl"]]
    batch["ytl"] = pools["ytl"][idx["xtl"]]
  return batch


def chunk_indices(batches_list, maps, start: int, num_steps: int) -> dict:
  """Pool rows of the batches of steps ``start .. start + num_steps - 1``
  of every run: ``{key: (num_steps, K, batch)}`` int32."""
  per_run = []
  for b, m in zip(batches_list, maps):
    idx = b.indices_range(start, num_steps)
    per_run.append({k: m[k][v] for k, v in idx.items()})
  return {k: np.stack([p[k] for p in per_run], axis=1).astype(np.int32)
          for k in per_run[0]}


# ----------------------------------------------------------------------------
# The program
# ----------------------------------------------------------------------------
def scan_unroll(config) -> int | bool:
  """``config.scan_unroll`` checked: the ``unroll`` of the scanned steps.

  1 (the default) compiles one step inside a loop; ``n > 1`` copies of the
  step per loop iteration; 0 (or ``True``) the whole chunk of
  ``steps_per_dispatch`` steps as straight-line code. XLA:CPU runs
  convolutions inside a loop many times slower than outside one
  (docs/many_runs.md), so on the CPU convolutional models want 0; compile
  time grows with the copies, so accelerators, which run loops at full
  speed, keep 1.
  """
  value = config.get("scan_unroll", 1)
  if value is True or (not isinstance(value, bool) and value == 0):
    return True
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"scan_unroll must be an integer >= 0 (0: the whole "
                     f"chunk unrolled), got {value!r}.")
  return value


def make_chunk_fn(method, config, params, *, vary_weight_decay: bool):
  """``chunk(states, weight_decay, idx, pools) -> (states, metrics)``, jitted.

  ``states``: K stacked train states (donated); ``weight_decay``: (K,)
  float32; ``idx``: ``{key: (S, K, batch)}`` pool rows; the result's
  ``metrics`` are ``{name: (S, K)}``. The S steps run under
  ``jax.lax.scan`` (S = 1: one step, no loop; ``config.scan_unroll``: its
  ``unroll``, :func:`scan_unroll`), each a ``jax.vmap`` of
  :func:`tlax.train.train_step` over the runs.
  """
  unroll = scan_unroll(config)
  schedule = make_schedule(config)
  tx = make_optimizer(config, params)

  def one_step(state, weight_decay, batch):
    run_tx = (make_optimizer(config, params, weight_decay=weight_decay)
              if vary_weight_decay else tx)
    return train_step(state, batch, method=method, tx=run_tx,
                      schedule=schedule)

  def chunk(states, weight_decay, idx, pools):
    def body(st, idx_step):
      batch = jax.vmap(_gather, in_axes=(None, 0))(pools, idx_step)
      return jax.vmap(one_step)(st, weight_decay, batch)
    if jax.tree.leaves(idx)[0].shape[0] == 1:  # one step: no loop
      states, metrics = body(states, jax.tree.map(lambda x: x[0], idx))
      return states, jax.tree.map(lambda x: x[None], metrics)
    return jax.lax.scan(body, states, idx, unroll=unroll)

  return jax.jit(chunk, donate_argnums=0,
                 compiler_options=compiler_options())


def stack(trees: Sequence[Any]) -> Any:
  """The trees stacked along a new leading axis (host arrays)."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]),
                      *jax.device_get(list(trees)))


def unstack(tree: Any, k: int) -> Any:
  """Run ``k`` of a stacked tree."""
  return jax.tree.map(lambda x: x[k], tree)


def _check_shapes(template, states, batches_list, workdirs,
                  same_structure: bool) -> None:
  """Raises :class:`GroupError` unless every run's state has the leaves of
  ``template`` (same number, shapes and dtypes; the same tree structure too
  when ``same_structure``) and every run's batches the same shapes."""
  ref_leaves = [(np.shape(x), _dtype(x)) for x in jax.tree.leaves(template)]
  ref_spec = batches_list[0].element_spec
  for r, state in enumerate(states):
    where = f"{workdirs[r]} and {workdirs[0]}"
    leaves = jax.tree_util.tree_leaves_with_path(state)
    if (len(leaves) != len(ref_leaves) or (same_structure and
        jax.tree.structure(state) != jax.tree.structure(template))):
      raise GroupError(
          f"The train states of {where} have different structures, so they "
          "cannot be trained as one program; train them in separate groups "
          "(e.g. --group=1).")
    for (path, leaf), shape in zip(leaves, ref_leaves):
      if (np.shape(leaf), _dtype(leaf)) != shape:
        raise GroupError(
            f"The runs in {where} have train states of different shapes "
            f"({jax.tree_util.keystr(path)}: {np.shape(leaf)} vs "
            f"{shape[0]}), e.g. tasks with other input shapes or numbers "
            "of classes; only runs whose shapes agree train as one program. "
            "Train them in separate groups (e.g. --group=1).")
    if batches_list[r].element_spec != ref_spec:
      raise GroupError(
          f"The runs in {where} have batches of different shapes; only runs "
          "whose shapes agree train as one program. Train them in separate "
          "groups (e.g. --group=1).")


def _dtype(x):
  return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype


def _stack_as(template, states):
  """The runs' states stacked leaf by leaf in the tree structure of
  ``template`` (their leaves agree; the structures may differ by leafless
  nodes, e.g. the empty state of a weight-decay term of 0)."""
  leaves = [np.stack(xs) for xs in zip(*[
      [np.asarray(x) for x in jax.tree.leaves(jax.device_get(s))]
      for s in states])]
  return jax.tree.unflatten(jax.tree.structure(template), leaves)


# ----------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------
class _Run:
  """One member of a group: its config, task, method, batches and logs."""

  def __init__(self, config, workdir: str, task):
    self.workdir = workdir
    self.request = config
    self.task = task
    self.result = None


def train_many(configs: Sequence[Any], workdirs: Sequence[str], *,
               group_dir: str | None = None,
               steps_per_dispatch: int | None = None,
               tasks: Sequence[Any] | None = None) -> list[dict]:
  """Trains K runs as one program and writes each run's workdir.

  Args:
    configs: the runs' experiment configs (as for
      :func:`tlax.train.train_and_evaluate`); they may differ only in
      ``seed``, ``source``, ``target``, ``optimizer.lr``,
      ``optimizer.weight_decay``, the method's hyper-parameters
      (``method.<name>`` for the names in its ``hparams``) and fields that
      do not change a run's numbers (``progress``, ``validators``, ...).
    workdirs: one folder per run (distinct).
    group_dir: the folder of the group's checkpoints; default
      :func:`default_group_dir`.
    steps_per_dispatch: steps per call of the program (``jax.lax.scan``);
      default ``configs[0].steps_per_dispatch`` or 1. Calls also end at
      every evaluation and checkpoint step.
    tasks: optional :class:`tlax.data.Task` per run, used instead of the
      configs' domain names.

  Returns:
    The runs' result dicts, in order. A run whose workdir already holds its
    ``result.json`` (same config) is not trained again.

  Raises:
    GroupError: the configs differ in other keys (each is named), the train
      states or batches differ in shape, or a run asks for data
      parallelism or a custom runner.
    RunError: the errors of :func:`tlax.train.train_and_evaluate` (a bad
      config, workdir or task).
  """
  if len(configs) != len(workdirs) or not configs:
    raise ValueError(f"train_many needs one workdir per config, got "
                     f"{len(configs)} configs and {len(workdirs)} workdirs.")
  if tasks is not None and len(tasks) != len(configs):
    raise ValueError(f"tasks: {len(tasks)} given for {len(configs)} configs.")
  workdirs = [workdir_lib.prepare_workdir(w) for w in workdirs]
  if len(set(workdirs)) != len(workdirs):
    raise GroupError(f"Two runs of a group share a workdir: {workdirs}.")
  for config, workdir in zip(configs, workdirs):
    if config.get("runner", None):
      raise GroupError(
          f"The run in {workdir} has its own runner ({config.runner}); "
          "only runs of the trainer can be trained as one program.")
    if devices_lib.resolve_mode(config) != "none":
      raise GroupError(
          f"The run in {workdir} asks for config.parallel="
          f"{config.parallel!r}; runs trained as one program use one device "
          "each. Set --config.parallel=none.")
  with contextlib.ExitStack() as stack_:
    for w in workdirs:
      stack_.enter_context(workdir_lib.WorkdirLock(w))
    interrupts = stack_.enter_context(workdir_lib.Interrupts())
    runs = [_Run(c, w, None if tasks is None else tasks[i])
            for i, (c, w) in enumerate(zip(configs, workdirs))]
    for run in runs:
      workdir_lib.remove_temporaries(run.workdir)
      run.result = _stored_result(run)
    todo = [r for r in runs if r.result is None]
    if todo:
      group_dir = group_dir or default_group_dir([r.workdir for r in todo])
      group_dir = workdir_lib.prepare_workdir(group_dir)
      with workdir_lib.WorkdirLock(group_dir):
        workdir_lib.remove_temporaries(os.path.join(group_dir, "checkpoints"))
        _train_group(todo, group_dir, interrupts, steps_per_dispatch)
      shutil.rmtree(group_dir, ignore_errors=True)
      parent = os.path.dirname(group_dir)
      if os.path.basename(parent) == GROUPS_FOLDER:
        with contextlib.suppress(OSError):
          os.rmdir(parent)  # only when empty
    return [r.result for r in runs]


def _stored_result(run: _Run) -> dict | None:
  """The run's result.json when it exists for the same config."""
  config = run.request
  if run.task is not None:
    config = trainer_lib._with_task_names(config, run.task)  # pylint: disable=protected-access
    run.request = config
  return trainer_lib.stored_result(run.workdir,
                                   trainer_lib.resolve_config(config),
                                   partial=True)


def _train_group(runs: list[_Run], group_dir: str,
                 interrupts: workdir_lib.Interrupts,
                 steps_per_dispatch: int | None) -> None:
  t_start = time.time()
  from tlax import methods  # pylint: disable=g-import-not-at-top
  k_runs = len(runs)
  for run in runs:
    methods.get_method(run.request.method.name)
    config = trainer_lib.resolve_config(run.request)
    if run.task is None:
      run.task = trainer_lib.load_task(config)
    run.config = trainer_lib.resolve_config(config, run.task)
    run.config_dict = trainer_lib.config_to_dict(run.config)
    run.method = trainer_lib.build_method(run.config, run.task)
    run.batches = trainer_lib.make_batches(run.config, run.task)
  first = runs[0]
  hparam_keys = _hparam_keys(first.method)
  for run in runs[1:]:
    diff = program_diff(first.config_dict, run.config_dict, hparam_keys)
    if diff:
      raise GroupError(
          f"The runs in {run.workdir} and {first.workdir} cannot be trained "
          "as one program: besides the seed, the task, optimizer.lr, "
          "optimizer.weight_decay and the method's hyper-parameters ("
          + ", ".join(sorted(hparam_keys)) + "), their configs differ in:\n"
          + "\n".join(diff) + "\nTrain them in separate groups.")
  config = first.config
  steps = int(config.steps)
  if steps_per_dispatch is None:
    steps_per_dispatch = int(config.get("steps_per_dispatch", 1) or 1)
  if isinstance(steps_per_dispatch, bool) or int(steps_per_dispatch) < 1:
    raise ValueError(f"steps_per_dispatch must be a positive integer, got "
                     f"{steps_per_dispatch!r}.")
  steps_per_dispatch = int(steps_per_dispatch)
  scan_unroll(config)  # refused before any training

  states = []
  for run in runs:
    state, _ = create_train_state(run.config, run.method,
                                  run.batches.batch(0))
    states.append(state)
  decays = np.asarray([float(r.config.optimizer.get("weight_decay") or 0.0)
                       for r in runs], np.float32)
  vary_decay = bool(np.any(decays != decays[0]))
  template = states[0]
  if vary_decay:  # the optimiser with its weight-decay term, as an array
    tx = make_optimizer(config, template.params,
                        weight_decay=jnp.float32(0.0))
    init_opt = getattr(first.method, "init_opt", None)
    template = template.replace(opt_state=(
        init_opt(tx, template.params) if init_opt is not None
        else tx.init(template.params)))
  _check_shapes(template, states, [r.batches for r in runs],
                [r.workdir for r in runs], same_structure=not vary_decay)
  run_structures = [jax.tree.structure(s) for s in states]
  group_config = {"runs": [r.config_dict for r in runs],
                  "workdirs": [r.workdir for r in runs]}

  ckpt_dir = os.path.join(group_dir, "checkpoints")
  manager = ckpt_lib.checkpoint_manager(ckpt_dir)
  stacked = _stack_as(template, states)
  del states

  def check_saved(saved):
    saved_runs = saved.get("runs", [])
    if len(saved_runs) != k_runs:
      raise ConfigMismatchError(
          f"The checkpoints in {ckpt_dir} hold {len(saved_runs)} runs, this "
          f"group has {k_runs}; delete {group_dir} to start the group again.")
    for run, saved_config in zip(runs, saved_runs):
      diff = trainer_lib.config_diff(run.config_dict, saved_config)
      if diff:
        raise ConfigMismatchError(
            f"The checkpoints in {ckpt_dir} were made with a different config "
            f"for {run.workdir}:\n" + "\n".join(diff) + f"\nDelete {group_dir}"
            " or use other workdirs.")

  start_step = 0
  pending = [[] for _ in runs]
  restored = ckpt_lib.restore_intact(manager, stacked, check_saved)
  if restored is not None:
    stacked, _, extra = restored
    start_step = int(np.asarray(jax.device_get(stacked.step))[0])
    windows = (extra or {}).get("windows") or [{} for _ in runs]
    pending = [trainer_lib._window_from_json(w) for w in windows]  # pylint: disable=protected-access
    logging.info("Resumed the group of %d runs from step %d in %s.", k_runs,
                 start_step, group_dir)
  elapsed_before = 0.0
  for run in runs:
    with workdir_lib.disk_errors(run.workdir, "metrics.jsonl"):
      run.log = MetricsLog(os.path.join(run.workdir, "metrics.jsonl"),
                           keep_until_step=start_step if start_step else None)
    if start_step and run.log.records:
      elapsed_before = max(elapsed_before, max(
          float(r.get("elapsed", 0.0)) for r in run.log.records))

  pools, maps = _device_pools([r.batches for r in runs])
  chunk_fn = make_chunk_fn(first.method, config,
                           jax.device_get(unstack(stacked, 0).params),
                           vary_weight_decay=vary_decay)
  decays = jnp.asarray(decays)
  stacked = jax.device_put(stacked)
  t0 = time.time()

  def elapsed():
    return elapsed_before + time.time() - t0

  for run in runs:
    run.run_eval, run.validator_names = trainer_lib.make_run_eval(
        run.config, run.task, run.method, run.log, elapsed)
    run.finite = FiniteCheck(
        f"{run.config.method.name} on {run.config.source} -> "
        f"{run.config.target} (seed {run.config.seed}, in a group of "
        f"{k_runs} runs)", manager.latest_step, ckpt_dir,
        hints=f"a lower optimizer.lr (now {run.config.optimizer.lr}) or "
        "optimizer.clip_norm (e.g. --config.optimizer.clip_norm=10)")

  def check_finite(st, done):
    for r, run in enumerate(runs):
      run.finite.check(unstack(st, r), done)

  def save(st, done):
    with workdir_lib.disk_errors(ckpt_dir, f"the checkpoint of step {done}"):
      ckpt_lib.save_checkpoint(
          manager, st, group_config, step=done,
          extra={"windows": [trainer_lib._window_to_json(p)  # pylint: disable=protected-access
                             for p in pending]})

  log_every, eval_every = int(config.log_every), int(config.eval_every)
  checkpoint_every = int(config.checkpoint_every)
  stop_after = int(config.get("stop_after_step", -1) or -1)
  show = bool(config.get("progress", True)) and sys.stderr.isatty()
  import tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm.tqdm(total=steps, initial=start_step, disable=not show,
                  desc=f"{k_runs} x {config.method.name}", leave=False,
                  dynamic_ncols=True)
  last_log_time, last_log_step = time.time(), start_step
  train_time, images_timed = 0.0, 0
  step = start_step
  while step < steps:
    # The chunk ends at the next evaluation, checkpoint or kill step.
    end = min(steps, step + steps_per_dispatch,
              (step // eval_every + 1) * eval_every,
              (step // checkpoint_every + 1) * checkpoint_every)
    if step < stop_after:
      end = min(end, stop_after)
    num = end - step
    idx = chunk_indices([r.batches for r in runs], maps, step, num)
    timer = time.time()
    stacked, metrics = chunk_fn(stacked, decays, idx, pools)
    host = jax.device_get(metrics)  # {name: (num, K)}; waits for the chunk
    if step > start_step:  # the first call compiles
      train_time += time.time() - timer
      images_timed += num * int(config.batch_size)
    for s in range(num):
      done = step + s + 1
      for r, run in enumerate(runs):
        m = {k: v[s, r] for k, v in host.items()}
        pending[r].append((done, m))
        run.finite.add(done, m["loss"])
      if done % log_every == 0 or done == steps:
        if done == end:
          check_finite(stacked, done)
        now = time.time()
        for r, run in enumerate(runs):
          values = [m for _, m in pending[r]]
          avg = {k: float(np.mean([m[k] for m in values])) for k in values[0]}
          record = {"type": "train", "step": done, **avg,
                    "elapsed": elapsed(),
                    "steps_per_sec": (done - last_log_step) /
                                     max(now - last_log_time, 1e-9)}
          with workdir_lib.disk_errors(run.log.path, "a metrics record"):
            run.log.write(record)
          pending[r].clear()
        last_log_time, last_log_step = now, done
    step = end
    bar.update(num)
    if step % eval_every == 0 or step == steps:
      check_finite(stacked, step)
      for r, run in enumerate(runs):
        run.run_eval(unstack(stacked, r), step)
    if step % checkpoint_every == 0 or step == steps:
      check_finite(stacked, step)
      save(stacked, step)
    if interrupts.signum is not None:
      bar.close()
      if manager.latest_step() != step:
        check_finite(stacked, step)
        save(stacked, step)
      manager.close()
      interrupts.check(step)
    if step == stop_after:  # test hook: die like a killed process
      bar.close()
      sys.stdout.flush()
      sys.stderr.flush()
      os.kill(os.getpid(), signal.SIGKILL)
  bar.close()
  manager.close()
  stacked = jax.device_get(stacked)
  images_per_sec = images_timed / train_time if train_time > 0 else None
  for r, run in enumerate(runs):
    state = jax.tree.unflatten(run_structures[r],
                               jax.tree.leaves(unstack(stacked, r)))
    run_manager = ckpt_lib.checkpoint_manager(
        os.path.join(run.workdir, "checkpoints"))
    with workdir_lib.disk_errors(run.workdir, "the final checkpoint"):
      ckpt_lib.save_checkpoint(run_manager, state, run.config_dict,
                               extra=trainer_lib._window_to_json(pending[r]))  # pylint: disable=protected-access
    run.result = trainer_lib.finish_run(
        run.config, run.config_dict, run.task, run.method, state, run.log,
        run.run_eval, run.validator_names, run.workdir, steps=steps,
        manager=run_manager, elapsed=elapsed, t_start=t_start,
        images_per_sec=images_per_sec,
        devices={"parallel": "none", "num_devices": 1,
                 "per_device_batch": int(run.config.batch_size)})


# ----------------------------------------------------------------------------
# Many configs: groups of compatible runs
# ----------------------------------------------------------------------------
def run_many(configs: Sequence[Any], workdirs: Sequence[str], *,
             group_size: int, on_error=None) -> list[dict | None]:
  """Runs configs in groups of at most ``group_size`` runs per program.

  Consecutive configs of the trainer (no ``config.runner``, no data
  parallelism) with the same method form groups in order; other configs run
  one by one through :func:`tlax.train.run_experiment`. ``on_error(workdirs,
  exception)``, when given, is called for a group that fails (its results
  are then None) instead of raising; interruptions always propagate.
  """
  if isinstance(group_size, bool) or int(group_size) < 1:
    raise ValueError(f"group_size must be >= 1, got {group_size!r}.")
  results: list[dict | None] = [None] * len(configs)
  groups: list[list[int]] = []
  for i, config in enumerate(configs):
    if (not _alone(config) and groups and len(groups[-1]) < group_size
        and not _alone(configs[groups[-1][0]])
        and configs[groups[-1][0]].method.name == config.method.name):
      groups[-1].append(i)
    else:
      groups.append([i])
  for members in groups:
    try:
      if len(members) == 1:
        i = members[0]
        results[i] = trainer_lib.run_experiment(configs[i], workdirs[i])
      else:
        out = train_many([configs[i] for i in members],
                         [workdirs[i] for i in members])
        for i, result in zip(members, out):
          results[i] = result
    except (workdir_lib.RunInterrupted, KeyboardInterrupt):
      raise
    except Exception as e:  # pylint: disable=broad-except
      if on_error is None:
        raise
      on_error([workdirs[i] for i in members], e)
  return results


def _alone(config) -> bool:
  return bool(config.get("runner", None)) or (
      devices_lib.resolve_mode(config) != "none")
