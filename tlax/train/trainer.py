"""The one generic trainer: ``train_and_evaluate(config, workdir) -> result``.

Flow: config -> task -> paired batches -> method -> jitted step (placed on
devices by :mod:`tlax.train.devices` for ``config.parallel``) -> metrics
(``metrics.jsonl``) -> checkpoints (orbax) -> evaluation -> ``result.json``.

Pretraining is a run of this loop too: a source-only method on a large
source with ``config.target`` empty (``experiments/configs/pretrain.py``);
the result then reports ``source_test_accuracy``, and the checkpoints under
``<workdir>/checkpoints`` are what fine-tuning configs load
(``finetune.checkpoint``). ``images_per_sec`` (training throughput without
the compiling first step, evaluations and checkpoints), ``parallel`` and
``num_devices`` are in every result.

Workdir layout::

    <workdir>/checkpoints/<step>/   the TrainState and the config (last 2)
    <workdir>/metrics.jsonl         train and eval records, one per line
    <workdir>/result.json           the final result (written atomically)

Resuming: when ``<workdir>`` holds a checkpoint, the run continues from it
and ends with exactly the parameters of an uninterrupted run (the batches
are a pure function of the seed and the step, the PRNG key is in the state).
When ``result.json`` exists for the same config, it is returned without
training. A workdir belongs to one config: a different one is an error that
lists the differing keys.

Fields left ``None`` in the config (and ``model.name == "auto"``) take
per-collection defaults from ``config.auto`` (see
``experiments/configs/common.py``); the model is chosen by the kind of the
domains when the table does not name one: ``mlp`` for feature vectors,
``lenet`` for images. ``result.json`` records the resolved config.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
import os
import platform
import signal
import sys
import time
from typing import Any, Mapping

from absl import logging
import jax
import ml_collections
import numpy as np
import tqdm

import tlax
from tlax.train import checkpoint as ckpt_lib
from tlax.train import devices as devices_lib
from tlax.train import selection
from tlax.train import workdir as workdir_lib
from tlax.train.workdir import ConfigMismatchError  # pylint: disable=unused-import  (re-exported)
from tlax.train.finite import FiniteCheck
from tlax.train.finite import NonFiniteLossError  # pylint: disable=unused-import
from tlax.train.evaluate import evaluate
from tlax.train.metrics_log import MetricsLog
from tlax.train.metrics_log import write_atomic
from tlax.train.optim import make_optimizer
from tlax.train.optim import make_schedule
from tlax.train.state import create_train_state

# Fields that may be left None (or "auto") and are then filled from
# config.auto[<collection of the source>] or config.auto.default.
AUTO_FIELDS = ("model.name", "steps", "batch_size", "optimizer.name",
               "optimizer.lr", "optimizer.schedule", "optimizer.weight_decay",
               "channels", "image_size")
# Of those, the ones a run cannot do without.
REQUIRED_FIELDS = ("model.name", "steps", "batch_size", "optimizer.name",
                   "optimizer.lr")
# Fields that do not change the numbers a run produces: ignored when a
# workdir's saved config is compared with the requested one.
# ``auto`` (the per-collection defaults table) is not compared itself: the
# values it resolves to are.
NON_RESULT_FIELDS = ("progress", "stop_after_step", "data_dir", "auto",
                     "plots", "validators", "checkpoint_every", "distributed",
                     "distributed_args", "steps_per_dispatch", "scan_unroll")
MODEL_BY_KIND = {"features": "mlp", "image": "lenet"}
# Config keys added after runs were made, each with the value that does what
# runs made before the key existed did. A workdir whose config lacks one of
# them matches a request holding that value (and the other way round), so
# finished runs stay valid when a config grows an option.
KEYS_ADDED_LATER = {
    "method.align_start": 0,  # alignment weight held at 0 for N steps
    # Runs made before the DEV selection existed did not record it; their
    # other numbers are those of a run with it (the final accuracy, the
    # source-validation selection).
    "iw_validation": True,
    "parallel": "none",       # data parallelism (tlax.train.devices)
    "num_devices": 0,
}


# ----------------------------------------------------------------------------
# Config helpers
# ----------------------------------------------------------------------------
def _json_safe(value):
  if isinstance(value, Mapping):
    return {str(k): _json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_safe(v) for v in value]
  if isinstance(value, (np.generic,)):
    return value.item()
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  return repr(value)


def config_to_dict(config) -> dict:
  """A JSON-able plain dict of a ConfigDict (references resolved)."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  return json.loads(json.dumps(_json_safe(config)))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, Mapping) and v:
      out.update(_flatten(v, key + "."))
    else:
      out[key] = v
  return out


def config_diff(requested: Mapping[str, Any], saved: Mapping[str, Any], *,
                partial: bool = False) -> list[str]:
  """The dotted keys where two configs differ, as readable lines.

  Args:
    requested: the config of this run (a dict).
    saved: the config stored in the workdir (a dict).
    partial: if True, the keys that run-time resolution fills
      (:data:`AUTO_FIELDS`, ``model.kwargs``, ``eval_every``,
      ``checkpoint_every``) are not compared where ``requested`` leaves them
      None or ``"auto"`` (the saved config is resolved, the request may not
      be). Every other key is compared, None included.
  """
  a = _flatten(config_to_dict(requested))
  b = _flatten(config_to_dict(saved))
  defaults = _method_option_defaults(a.get("method.name"))
  lines = []
  for key in sorted(set(a) | set(b)):
    if key.split(".")[0] in NON_RESULT_FIELDS:
      continue
    va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
    if partial and va in (None, "auto") and _resolved_at_run_time(key):
      continue
    if key in KEYS_ADDED_LATER and "<absent>" in (va, vb) and (
        KEYS_ADDED_LATER[key] in (va, vb)):
      continue
    # A method option left out is the option at its factory's default.
    if "<absent>" in (va, vb) and key in defaults and (
        defaults[key] in (va, vb)):
      continue
    if va != vb:
      lines.append(f"  {key}: requested {va!r}, workdir has {vb!r}")
  return lines


def stored_result(workdir: str, requested: Mapping[str, Any], *,
                  partial: bool = False) -> dict | None:
  """The ``result.json`` a finished run left in ``workdir``, or None.

  Args:
    workdir: the run's folder.
    requested: this run's config as a dict (compared with the stored one).
    partial: as :func:`config_diff`.

  Raises:
    ConfigMismatchError: the stored result was made with another config (the
      message lists the keys that differ).
    WorkdirError: the file is damaged (:func:`workdir.read_result`).
  """
  path = os.path.join(os.fspath(workdir), "result.json")
  if not os.path.exists(path):
    return None
  previous = workdir_lib.read_result(path)
  diff = config_diff(requested, previous.get("config", {}), partial=partial)
  if diff:
    raise ConfigMismatchError(
        f"{path} was made with a different config:\n" + "\n".join(diff)
        + "\nUse another --workdir or delete this one.")
  logging.info("Found %s; returning it.", path)
  return previous


def _resolved_at_run_time(key: str) -> bool:
  return (key in AUTO_FIELDS or key.startswith("model.kwargs.")
          or key in ("eval_every", "checkpoint_every"))


def _method_option_defaults(name) -> dict[str, Any]:
  """``{"method.<option>": default}`` of the factory of method ``name``
  (``{}`` when it cannot be resolved)."""
  import inspect  # pylint: disable=g-import-not-at-top
  import keyword  # pylint: disable=g-import-not-at-top
  from tlax import methods  # pylint: disable=g-import-not-at-top
  try:
    params = inspect.signature(methods.get_method(name)).parameters
  except Exception:  # pylint: disable=broad-except
    return {}
  out = {}
  for p in params.values():
    if p.kind != p.KEYWORD_ONLY or p.default is p.empty:
      continue
    key = p.name[:-1] if (p.name.endswith("_")
                          and keyword.iskeyword(p.name[:-1])) else p.name
    if isinstance(p.default, Mapping):
      for k, v in _flatten(config_to_dict(dict(p.default))).items():
        out[f"method.{key}.{k}"] = v
    else:
      out[f"method.{key}"] = config_to_dict({"v": p.default})["v"]
  return out


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    if node is None or part not in node:
      return None
    node = node[part]
  return node


def _set(config, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[leaf] = value


def resolve_config(config: ml_collections.ConfigDict, task=None
                   ) -> ml_collections.ConfigDict:
  """A copy of ``config`` with the automatic fields filled in.

  Fields of :data:`AUTO_FIELDS` that are None (``model.name`` "auto") take
  the value of ``config.auto.<collection>`` or else ``config.auto.default``
  (``<collection>`` is the part of ``config.source`` before the slash); a
  model name taken from the table brings the table's ``model.kwargs`` (the
  config's own ``model.kwargs`` win); a
  model still unnamed is chosen by the domains' kind (``task.source.kind``)
  when ``task`` is given: ``mlp`` for feature vectors, ``lenet`` for
  images. ``eval_every`` None
  becomes ``max(1, steps // 10)``, ``checkpoint_every`` None becomes
  ``eval_every``.

  Raises:
    ValueError: a field is still unset, or a value is out of range.
  """
  config = copy.deepcopy(config)
  with config.unlocked():
    collection = str(config.source).split("/")[0]
    auto = config_to_dict(config.get("auto") or {})
    table = _flatten(auto.get("default") or {})
    table.update(_flatten(auto.get(collection) or {}))
    if config.model.name in (None, "auto") and table.get("model.name"):
      # The table's model comes with its settings (model.kwargs.*) under the
      # ones the config sets itself.
      kwargs = {k[len("model.kwargs."):]: v for k, v in table.items()
                if k.startswith("model.kwargs.")}
      kwargs.update(config_to_dict(config.model.get("kwargs") or {}))
      config.model.kwargs = ml_collections.ConfigDict(kwargs)
    for field in AUTO_FIELDS:
      value = _get(config, field)
      if value is None or value == "auto":
        if table.get(field) is not None:
          _set(config, field, table[field])
    if task is not None and config.model.name in (None, "auto"):
      kind = getattr(getattr(task, "source", None), "kind", None)
      if kind is None and task is not None:
        kind = "features" if len(task.input_shape) == 1 else "image"
      if kind in MODEL_BY_KIND:
        config.model.name = MODEL_BY_KIND[kind]
    if config.get("eval_every") is None and config.get("steps"):
      config.eval_every = max(1, int(config.steps) // 10)
    if config.get("checkpoint_every") is None:
      config.checkpoint_every = config.eval_every
  validate_config(config, check_model=task is not None)
  return config


def validate_config(config, check_model: bool = True) -> None:
  """Raises ValueError naming the field when a value is unset or invalid."""
  for field in REQUIRED_FIELDS:
    if field == "model.name" and not check_model:
      continue
    value = _get(config, field)
    if value is None or value == "auto":
      raise ValueError(
          f"config.{field} is not set and config.auto has no default for "
          f"collection {str(config.source).split('/')[0]!r}; set "
          f"--config.{field}=...")
  for field in ("steps", "batch_size", "log_every", "eval_every",
                "checkpoint_every", "eval_batch_size"):
    value = config.get(field)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
        or value < 1:
      raise ValueError(f"config.{field} must be a positive integer, got "
                       f"{value!r}.")
  tbs = config.get("target_batch_size")
  if tbs is not None and (isinstance(tbs, bool) or not isinstance(
      tbs, (int, np.integer)) or tbs < 1):
    raise ValueError(f"config.target_batch_size must be a positive integer "
                     f"or None (the source batch size), got {tbs!r}.")
  if config.get("labeled_batch_size", 0) < 0:
    raise ValueError("config.labeled_batch_size must be >= 0.")
  lr = config.optimizer.lr
  if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr < 0:
    raise ValueError(f"config.optimizer.lr must be a finite number >= 0, "
                     f"got {lr!r}.")
  if not isinstance(config.seed, (int, np.integer)) or isinstance(
      config.seed, bool) or config.seed < 0:
    raise ValueError(f"config.seed must be an integer >= 0, got "
                     f"{config.seed!r}.")
  fraction = config.get("source_val_fraction", 0.1)
  if not isinstance(fraction, (int, float)) or not 0.0 <= fraction < 1.0:
    raise ValueError(f"config.source_val_fraction must be in [0, 1) (the "
                     f"share of the source held out for validation), got "
                     f"{fraction!r}.")
  num_devices = config.get("num_devices", 0)
  if num_devices is not None and (
      isinstance(num_devices, bool) or not isinstance(
          num_devices, (int, np.integer)) or num_devices < 0):
    raise ValueError(f"config.num_devices must be an integer >= 0 (0: all "
                     f"local devices), got {num_devices!r}.")
  make_schedule(config)  # validates the schedule and the warm-up
  make_optimizer(config)  # validates the optimiser settings


# ----------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------
def load_task(config):
  """The task of a (resolved) config via :func:`tlax.data.make_task`.

  Without a target (``config.target`` empty: pretraining on a large source),
  the source plays both parts: the batches' ``xt`` come from the source's
  training split (a source-only method does not read them) and the
  evaluated test split is the source's.
  """
  from tlax import data  # pylint: disable=g-import-not-at-top
  options = config_to_dict(config.get("domain_options") or {}) or None
  if not config.target and options and "source" in options:
    options = {**options, "target": options["source"]}  # the same domain
  return data.make_task(
      config.source, config.target or config.source,
      image_size=config.get("image_size"), channels=config.get("channels"),
      data_dir=config.get("data_dir"), seed=int(config.seed),
      target_labeled_per_class=int(config.get("target_labeled_per_class", 0)),
      source_val_fraction=float(config.get("source_val_fraction", 0.1)),
      domain_options=options,
      labels_per_class=int(config.get("labels_per_class", 0) or 0))


def make_batches(config, task):
  from tlax import data  # pylint: disable=g-import-not-at-top
  return data.PairedBatches(
      task, int(config.batch_size), seed=int(config.seed),
      target_batch_size=config.get("target_batch_size"),
      labeled_batch_size=int(config.get("labeled_batch_size") or 0))


def build_method(config, task, *, axis_name: str | None = None):
  """The method of a (resolved) config for ``task``.

  ``config.method.<option>`` values become the factory's keyword arguments
  (:func:`tlax.methods.contract.call_factory`). A factory that takes
  ``pretrained`` gets ``config.finetune.checkpoint`` loaded from disk (a
  :class:`tlax.transfer.Pretrained`, see :func:`tlax.train.finetune.load_pretrained`),
  so its ``init`` stays pure. ``axis_name``: the devices' axis of a
  ``jax.pmap`` step, given to models that synchronise BatchNorm statistics
  (:func:`devices.with_axis_name`).
  """
  import inspect  # pylint: disable=g-import-not-at-top
  from tlax import methods  # pylint: disable=g-import-not-at-top
  from tlax import models  # pylint: disable=g-import-not-at-top
  from tlax.methods import contract  # pylint: disable=g-import-not-at-top
  factory = methods.get_method(config.method.name)
  kwargs = {k: tuple(v) if isinstance(v, list) else v
            for k, v in config_to_dict(config.model.get("kwargs") or {}).items()}
  model = models.get_model(config.model.name, task.num_classes, **kwargs)
  if axis_name is not None:
    model = devices_lib.with_axis_name(model, axis_name)
  options = {k: v for k, v in config_to_dict(config.method).items()
             if k != "name"}
  fixed = dict(model=model, num_classes=task.num_classes,
               total_steps=int(config.steps))
  try:
    factory_params = inspect.signature(factory).parameters
  except (TypeError, ValueError):
    factory_params = {}
  if getattr(task, "domain_names", ()) and "num_domains" in factory_params:
    fixed["num_domains"] = len(task.domain_names)  # multi-domain tasks
  if "pretrained" in factory_params and "pretrained" not in options:
    from tlax.train import finetune  # pylint: disable=g-import-not-at-top
    x = np.asarray(task.xs[:2])
    key = jax.random.key(0)
    shapes = jax.eval_shape(
        lambda: model.init({"params": key, "dropout": key}, x, train=False))
    pretrained = finetune.load_pretrained(config, shapes["params"])
    if pretrained is not None:
      fixed["pretrained"] = pretrained
  method = contract.call_factory(factory, options, **fixed)
  return method._replace(name=str(config.method.name))


def _selected(evals: list[dict], criterion: str = "source_val_accuracy"
              ) -> dict | None:
  """Label-free model selection: the evaluation that is best by
  ``criterion`` (highest ``source_val_accuracy``, or lowest ``dev_risk``,
  see :mod:`tlax.train.selection`; the latest one among ties). Never
  selects by target accuracy."""
  scored = [r for r in evals if r.get(criterion) is not None]
  if not scored:
    return None
  sign = -1.0 if criterion == "dev_risk" else 1.0
  best = max(scored, key=lambda r: (sign * r[criterion], r["step"]))
  return {"criterion": criterion, "step": best["step"],
          criterion: best[criterion],
          "target_accuracy": best["target_accuracy"],
          "target_mean_class_accuracy": best.get("target_mean_class_accuracy")}


def _validator_scores(method, st, task, names, fns, config) -> dict:
  """``{"val_<name>": score}`` of the label-free validators at one
  evaluation (:mod:`tlax.train.validators`), on at most 1000 unlabelled
  target examples (the same seeded subsample at every evaluation)."""
  from tlax.train import validators as validators_lib  # pylint: disable=g-import-not-at-top
  from tlax.train.evaluate import batched_apply  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng([int(config.seed), 31])
  xt = np.asarray(task.xt, np.float32)
  if len(xt) > 1000:
    xt = xt[np.sort(rng.choice(len(xt), 1000, replace=False))]
  run = lambda x: fns(st.params, st.state, x)
  bs = int(config.eval_batch_size)
  logits, ft = batched_apply(run, xt, bs)
  _, fs = batched_apply(run, np.asarray(task.xs_val, np.float32), bs)
  predict = lambda x: batched_apply(run, np.asarray(x, np.float32), bs)[0]
  out = validators_lib.scores(
      names, target_logits=logits, target_features=ft, target_inputs=xt,
      predict=predict, source_features=fs, source_labels=task.ys_val,
      seed=int(config.seed))
  return {f"val_{k}": v for k, v in out.items()}


def make_run_eval(config, task, method, log: MetricsLog, elapsed):
  """The evaluation of a run, ``run_eval(state, step) -> (record, tgt, src)``.

  ``run_eval`` evaluates a :class:`TrainState` on the target test split and
  the source validation split, adds the importance-weighted validation risk
  (``config.iw_validation``), the per-domain numbers of a multi-domain task
  and the label-free validators (``config.validators``), writes the record
  to ``log`` and returns it with the target and source metrics. Also
  returns the validator names.
  """
  has_target = bool(config.target)
  target_labels = bool(task.info.get("target_labels", True))
  use_iw = (has_target and bool(config.get("iw_validation", True))
            and len(task.xs_val) > 1 and len(task.xt) > 1)
  iw_fns = selection.make_fns(method) if use_iw else None
  validator_names = tuple(config.get("validators", None) or ())
  if validator_names:
    from tlax.train import validators as validators_lib  # pylint: disable=g-import-not-at-top
    validators_lib.check_names(validator_names)

  def run_eval(st, step):
    tgt = evaluate(method, st.params, st.state, task.xt_test, task.yt_test,
                   config.eval_batch_size, task.num_classes)
    src = evaluate(method, st.params, st.state, task.xs_val, task.ys_val,
                   config.eval_batch_size, task.num_classes)
    if not target_labels:
      tgt = {k: None for k in tgt}
    record = {"type": "eval", "step": step,
              "target_accuracy": tgt["accuracy"],
              "target_mean_class_accuracy": tgt["mean_class_accuracy"],
              "source_val_accuracy": src["accuracy"]}
    if use_iw:
      iw = selection.importance_weighted_validation(
          method, st.params, st.state, task.xs_val, task.ys_val, task.xt,
          batch_size=config.eval_batch_size, seed=int(config.seed),
          fns=iw_fns)
      record.update(dev_risk=iw["dev_risk"], iw_error=iw["iw_error"])
    if getattr(task, "ds_val", None) is not None:  # domain generalisation
      from tlax.train import dg_selection  # pylint: disable=g-import-not-at-top
      record.update(dg_selection.domain_eval(method, st.params, st.state, task,
                                             config.eval_batch_size))
    if validator_names:
      record.update(_validator_scores(method, st, task, validator_names,
                                      iw_fns or selection.make_fns(method),
                                      config))
    record["elapsed"] = elapsed()
    log.write(record)
    return record, tgt, src

  return run_eval, validator_names


def finish_run(config, config_dict: dict, task, method, state, log: MetricsLog,
               run_eval, validator_names, workdir: str, *, steps: int,
               manager, elapsed, t_start: float, images_per_sec,
               devices: Mapping[str, Any]) -> dict:
  """The final evaluation and ``<workdir>/result.json`` of a trained run.

  ``state`` is the run's :class:`TrainState` after ``steps`` steps (on the
  host or one device); ``manager`` (the run's checkpoint manager) is
  closed; ``devices`` holds ``parallel``, ``num_devices`` and
  ``per_device_batch``. Returns the result dict.
  """
  has_target = bool(config.target)
  target_labels = bool(task.info.get("target_labels", True))
  result_path = os.path.join(workdir, "result.json")
  evals = log.of_type("eval")
  if evals and evals[-1]["step"] == steps:
    # The final evaluation happened in the loop; recompute the per-class
    # numbers (cheap) rather than storing them in every eval record.
    tgt = evaluate(method, state.params, state.state, task.xt_test,
                   task.yt_test, config.eval_batch_size, task.num_classes)
    if not target_labels:
      tgt = {k: None for k in tgt}
    src_acc = evals[-1]["source_val_accuracy"]
  else:  # resumed after the last step: evaluate now
    _, tgt, src = run_eval(state, steps)
    src_acc = src["accuracy"]
  manager.close()

  result = {
      "method": config.method.name,
      "source": config.source,
      "target": config.target,
      "seed": int(config.seed),
      "steps": steps,
      # Labelled examples per class of the target (semi-supervised runs).
      "labels_per_class": int(config.get("labels_per_class", 0) or config.get(
          "target_labeled_per_class", 0) or 0),
      "target_accuracy": tgt["accuracy"],
      "target_mean_class_accuracy": tgt["mean_class_accuracy"],
      "per_class_accuracy": tgt["per_class_accuracy"],
      "source_val_accuracy": src_acc,
      "selected": _selected(log.of_type("eval")),
      "selected_dev": _selected(log.of_type("eval"), "dev_risk"),
      "selected_by": {name: _selected(log.of_type("eval"), f"val_{name}")
                      for name in validator_names} or None,
      "num_target_test": len(task.yt_test),
      "transductive": bool(getattr(task, "transductive", False)),
      "wall_time_s": elapsed(),
      "process_time_s": time.time() - t_start,
      "images_per_sec": images_per_sec,
      "parallel": devices["parallel"],
      "num_devices": devices["num_devices"],
      "per_device_batch": devices["per_device_batch"],
      "num_processes": jax.process_count(),
      "checkpoint": os.path.join(workdir, "checkpoints"),
      "config": config_dict,
      "tlax_version": tlax.__version__,
      "jax_version": jax.__version__,
      "python_version": platform.python_version(),
      "device": devices_lib.device_name(),
  }
  if config.get("stage"):
    result["stage"] = config.stage
  if not has_target:
    # The evaluated "target" was the source's test split.
    result["source_test_accuracy"] = result.pop("target_accuracy")
    for key in ("target_mean_class_accuracy", "per_class_accuracy"):
      result["source_test_" + key.replace("target_", "")] = result.pop(key)
  elif config.get("source_test", False):
    xs_test, ys_test = task.source.splits["test"]
    result["source_test_accuracy"] = evaluate(
        method, state.params, state.state, xs_test, ys_test,
        config.eval_batch_size, task.num_classes)["accuracy"]
  if getattr(task, "ds_val", None) is not None:  # domain generalisation
    from tlax.train import dg_selection  # pylint: disable=g-import-not-at-top
    result["test_domain_accuracy"] = tgt["accuracy"]
    result["training_domains"] = list(task.domain_names)
    result["selections"] = dg_selection.selections(log.of_type("eval"))
  if jax.process_index() == 0:
    with workdir_lib.disk_errors(result_path, "the result"):
      write_atomic(result_path, json.dumps(result, indent=2) + "\n")
  logging.info("%s %s -> %s seed %d: %s accuracy %s after %d steps.",
               result["method"], result["source"], result["target"],
               result["seed"], "target" if has_target else "source test",
               "unknown (no target labels)" if tgt["accuracy"] is None
               else f"{tgt['accuracy']:.2f}%", steps)
  return result


# ----------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------
def _with_task_names(config, task):
  """``config`` naming the given task's domains and fingerprinting its data."""
  import hashlib  # pylint: disable=g-import-not-at-top
  digest = hashlib.sha256()
  for name in ("xs", "ys", "xt", "xt_test", "yt_test", "xtl", "ytl"):
    a = np.ascontiguousarray(getattr(task, name))
    digest.update(f"{name}{a.shape}{a.dtype}".encode())
    digest.update(a.tobytes())
  config = copy.deepcopy(config)
  with config.unlocked():
    config.source, config.target = task.source.name, task.target.name
    config.task_fingerprint = digest.hexdigest()[:16]
  return config


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str | os.PathLike, *, task=None) -> dict:
  """Trains a method on a task, evaluates it and writes ``result.json``.

  Args:
    config: the experiment config (``experiments/configs/*.py``).
    task: optional :class:`tlax.data.Task` (e.g. from
      :func:`tlax.data.task_from_arrays`) used instead of the config's
      ``source`` and ``target`` domain names; the run records the task's
      names and a fingerprint of its arrays, so a workdir made with other
      arrays is refused. A task without target labels gives
      ``target_accuracy`` None and still records the label-free selections.
    workdir: the run's folder (created if needed). A checkpoint there is
      resumed; a finished result for the same config is returned as is.

  Returns:
    The result dict also written to ``<workdir>/result.json``: ``method``,
    ``source``, ``target``, ``seed``, ``steps``, ``target_accuracy``
    (percent, at the final step), ``target_mean_class_accuracy``,
    ``per_class_accuracy``, ``source_val_accuracy``, ``selected`` (the
    evaluated step with the best source-validation accuracy and its target
    accuracy), ``selected_dev`` (the same for the lowest importance-weighted
    validation risk, :mod:`tlax.train.selection`; with
    ``config.iw_validation``, default on), ``wall_time_s``, ``config``, ``tlax_version``,
    ``jax_version``, ``device``.

  Raises:
    ConfigMismatchError: the workdir holds a run with another config.
    NonFiniteLossError: the loss, the parameters or the optimiser state
      became NaN/inf (the step is named; every checkpoint kept is finite).
    WorkdirBusyError: another live process is running in ``workdir``.
    WorkdirError: the workdir cannot be used, the disk is full, or
      ``result.json`` is damaged (the path is named).
    CheckpointError: every checkpoint in the workdir is damaged.
    RunInterrupted: SIGINT/SIGTERM arrived; a checkpoint of the step reached
      was saved.
    KeyError / ValueError: unknown names or invalid values in the config,
      naming the valid ones; errors of :func:`tlax.data.make_task` (missing
      files, mismatched domain shapes) are passed through unchanged.
  """
  workdir = workdir_lib.prepare_workdir(workdir)
  with workdir_lib.WorkdirLock(workdir), \
      workdir_lib.Interrupts() as interrupts:
    workdir_lib.remove_temporaries(workdir)
    workdir_lib.remove_temporaries(os.path.join(workdir, "checkpoints"))
    return _train_and_evaluate(config, workdir, interrupts, task)


def _train_and_evaluate(config, workdir: str,
                        interrupts: workdir_lib.Interrupts, task) -> dict:
  """:func:`train_and_evaluate` inside the workdir lock."""
  t_start = time.time()
  if task is not None:
    config = _with_task_names(config, task)
  # Compare the table-resolved request (all but the model chosen by the
  # domains' kind, which needs the data) with the stored resolved config.
  previous = stored_result(workdir, resolve_config(config), partial=True)
  if previous is not None:
    return previous

  # Unknown names fail before any data is loaded.
  from tlax import methods  # pylint: disable=g-import-not-at-top
  methods.get_method(config.method.name)
  devices_lib.resolve_mode(config)
  devices_lib.maybe_initialize_distributed(config)
  config = resolve_config(config)  # table defaults (task-independent)
  if task is None:
    task = load_task(config)
  config = resolve_config(config, task)  # the model by the domains' kind
  config_dict = config_to_dict(config)
  method = build_method(config, task)
  batches = make_batches(config, task)
  steps = int(config.steps)

  state, tx = create_train_state(config, method, batches.batch(0))
  ckpt_dir = os.path.join(workdir, "checkpoints")
  manager = ckpt_lib.checkpoint_manager(ckpt_dir)
  start_step, elapsed_before = 0, 0.0

  def check_saved_config(saved_config):
    diff = config_diff(config_dict, saved_config)
    if diff:
      raise ConfigMismatchError(
          f"The checkpoint in {workdir} was made with a different config:\n"
          + "\n".join(diff) + "\nUse another --workdir or delete this one.")

  pending: list[tuple[int, dict]] = []   # metrics since the last log
  restored = ckpt_lib.restore_intact(manager, state, check_saved_config)
  if restored is not None:
    state, _, extra = restored
    start_step = int(jax.device_get(state.step))
    pending = _window_from_json(extra)
    logging.info("Resumed from step %d in %s.", start_step, workdir)
  with workdir_lib.disk_errors(workdir, "metrics.jsonl"):
    log = MetricsLog(os.path.join(workdir, "metrics.jsonl"),
                     keep_until_step=start_step if start_step else None)
  if start_step and log.records:
    elapsed_before = max(float(r.get("elapsed", 0.0)) for r in log.records)

  train_method = (build_method(config, task, axis_name=devices_lib.AXIS)
                  if devices_lib.resolve_mode(config) == "pmap" else method)
  dp = devices_lib.data_parallel(config, method, tx, make_schedule(config),
                                 train_method=train_method)
  state = dp.put_state(state)
  t0 = time.time()

  def elapsed():
    return elapsed_before + time.time() - t0

  run_eval, validator_names = make_run_eval(config, task, method, log,
                                            elapsed)

  finite = FiniteCheck(
      f"{config.method.name} on {config.source} -> {config.target}",
      manager.latest_step, ckpt_dir,
      hints=f"a lower optimizer.lr (now {config.optimizer.lr}) or "
      "optimizer.clip_norm (e.g. --config.optimizer.clip_norm=10)")

  def check_finite():
    finite.check(dp.get_state(state), done)

  def save(st):
    with workdir_lib.disk_errors(ckpt_dir, f"the checkpoint of step {done}"):
      ckpt_lib.save_checkpoint(manager, dp.get_state(st), config_dict,
                               extra=_window_to_json(pending))

  show = bool(config.get("progress", True)) and sys.stderr.isatty()
  bar = tqdm.tqdm(total=steps, initial=start_step, disable=not show,
                  desc=f"{config.method.name} {config.source}->"
                  f"{config.target} s{config.seed}", leave=False,
                  dynamic_ncols=True)
  postfix = {}
  stop_after = int(config.get("stop_after_step", -1) or -1)
  last_log_time, last_log_step = time.time(), start_step
  in_flight: list[Any] = []
  train_time, images_timed, timer = 0.0, 0, None

  def pause():  # evaluation and checkpoints are not training throughput
    nonlocal train_time, timer
    jax.block_until_ready(state)
    if timer is not None:
      train_time += time.time() - timer
    timer = None

  for step in range(start_step, steps):
    if step > start_step and timer is None:
      timer = time.time()
    state, metrics = dp.step(state, dp.put_batch(batches.batch(step)))
    metrics = dp.get_metrics(metrics)
    done = step + 1
    pending.append((done, metrics))
    finite.add(done, metrics["loss"])
    if step == start_step:  # compilation is not throughput
      jax.block_until_ready(metrics)
    else:
      images_timed += int(config.batch_size)
    # At most MAX_STEPS_IN_FLIGHT steps queued: XLA:CPU's collectives abort
    # a deeper queue of multi-device steps (tlax.train.devices).
    in_flight.append(metrics["loss"])
    if len(in_flight) > devices_lib.MAX_STEPS_IN_FLIGHT:
      jax.block_until_ready(in_flight.pop(0))
    if done % config.log_every == 0 or done == steps:
      check_finite()
      host = jax.device_get([m for _, m in pending])
      avg = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
      now = time.time()
      record = {"type": "train", "step": done, **avg, "elapsed": elapsed(),
                "steps_per_sec": (done - last_log_step) /
                                 max(now - last_log_time, 1e-9)}
      last_log_time, last_log_step = now, done
      with workdir_lib.disk_errors(log.path, "a metrics record"):
        log.write(record)
      pending.clear()
      postfix["loss"] = f"{avg['loss']:.4f}"
      bar.set_postfix(postfix, refresh=False)
    if done % config.eval_every == 0 or done == steps:
      check_finite()
      pause()
      record, _, _ = run_eval(dp.get_state(state), done)
      if record["target_accuracy"] is not None:
        postfix["target_acc"] = f"{record['target_accuracy']:.1f}"
      bar.set_postfix(postfix, refresh=False)
    if done % config.checkpoint_every == 0 or done == steps:
      check_finite()
      pause()
      save(state)
    bar.update(1)
    if interrupts.signum is not None:  # SIGINT/SIGTERM: save, then stop
      bar.close()
      if manager.latest_step() != done:
        check_finite()
        save(state)
      manager.close()
      interrupts.check(done)
    if done == stop_after:  # test hook: die like a killed process
      bar.close()
      sys.stdout.flush()
      sys.stderr.flush()
      os.kill(os.getpid(), signal.SIGKILL)
  bar.close()
  pause()
  state = dp.get_state(state)
  images_per_sec = images_timed / train_time if train_time > 0 else None

  result = finish_run(
      config, config_dict, task, method, state, log, run_eval,
      validator_names, workdir, steps=steps, manager=manager,
      elapsed=elapsed, t_start=t_start, images_per_sec=images_per_sec,
      devices={"parallel": dp.mode, "num_devices": dp.num_devices,
               "per_device_batch": int(config.batch_size) // dp.num_devices})
  return result


def _window_to_json(pending) -> dict:
  """The metrics of the current logging window, for the checkpoint (so a
  resumed run logs the same averages as an uninterrupted one)."""
  host = jax.device_get([m for _, m in pending])
  return {"window": [{"step": s, **{k: float(v) for k, v in m.items()}}
                     for (s, _), m in zip(pending, host)]}


def _window_from_json(extra) -> list[tuple[int, dict]]:
  """Inverse of :func:`_window_to_json` (float32 values, exact)."""
  out = []
  for rec in (extra or {}).get("window", []):
    rec = dict(rec)
    step = int(rec.pop("step"))
    out.append((step, {k: np.float32(v) for k, v in rec.items()}))
  return out


def run_experiment(config: ml_collections.ConfigDict,
                   workdir: str | os.PathLike, **kwargs) -> dict:
  """Runs one experiment of any family and returns its result dict.

  The runner contract: ``python -m experiments.run --config=... --workdir=...``
  and :mod:`experiments.sweep` call this. ``config.runner`` names the
  function that runs the experiment (``"package.module:function"`` taking
  ``(config, workdir, **kwargs)`` and writing ``<workdir>/result.json``); when
  it is absent or empty, :func:`train_and_evaluate` runs it (pretraining
  included: a source-only run without a target), or, with
  ``config.steps_per_dispatch > 1``, :func:`tlax.train.many_runs.train_many`
  as a group of one (the data loop on the device, that many steps per call).
  """
  runner = config.get("runner", None)
  workdir = workdir_lib.prepare_workdir(workdir)
  with workdir_lib.WorkdirLock(workdir):  # one run per workdir, any family
    if runner:
      from tlax import utils  # pylint: disable=g-import-not-at-top
      fn = utils.import_object(str(runner), what="runner")
      return fn(config, workdir, **kwargs)
    if int(config.get("steps_per_dispatch", 1) or 1) > 1:
      # Looked up at run time: tlax.train.many_runs builds on this module.
      many_runs = importlib.import_module("tlax.train.many_runs")
      tasks = [kwargs["task"]] if kwargs.get("task") is not None else None
      return many_runs.train_many([config], [workdir], tasks=tasks)[0]
    return train_and_evaluate(config, workdir, **kwargs)

