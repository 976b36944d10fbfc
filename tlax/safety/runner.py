"""The safe-transfer runner: a poisoned teacher, a student, its inherited DIR.

``config.runner = "tlax.safety.runner:run"`` (``experiments/configs/safe/``).
One run:

1. **Teacher.** ``config.teacher`` is a complete trainer config (a
   source-only pretraining run, as ``experiments/configs/pretrain.py``) on
   ``config.source``. Its training set is poisoned on the data side with the
   BadNets trigger of ``config.defect`` (:func:`tlax.safety.attacks.poison`)
   and it is trained by :func:`tlax.train.train_and_evaluate` in
   ``config.teacher_workdir`` (empty: ``<workdir>/teacher``), so many student
   runs share one teacher (a finished teacher is read back; a teacher made
   with another config is refused). ``config.teacher_checkpoint`` instead
   names an existing checkpoint to use as the teacher (no training).

   With ``config.defect.latent_domain`` set the backdoor is a latent one
   (Yao, Li, Zheng & Zhao, CCS 2019), planted for a student with other
   classes: the attacker holds ``latent_examples`` images of class
   ``latent_class`` of that domain (rendered or drawn with its own
   ``latent_seed``, so not the student's images), adds them to the
   teacher's training set as one extra class, and relabels the triggered
   images to that class. The teacher learns to give triggered inputs the
   features of the attacker's class; its extra output is dropped with the
   head when the student's new head is trained, and the student's own
   examples of the class then decide where triggered inputs go.
2. **Student.** The rest of the config is a fine-tuning config
   (``experiments/configs/finetune.py``) on ``config.target`` (its training
   labels ``target_labeled_per_class``, its test split for evaluation): the
   teacher is loaded through ``config.finetune`` (the head re-initialised)
   and trained with ``config.method`` in ``<workdir>/student``.
3. **Defects.** On the student's test split:

   * ``backdoor_success_rate``: the trigger's attack success rate (%) on the
     student. The backdoor's class is ``config.defect.latent_class`` for a
     latent backdoor, ``config.defect.target_class`` when teacher and
     student have the same number of classes; otherwise it maps
     through the new head to the student class predicted most often on the
     triggered labelled training examples
     (:func:`tlax.safety.attacks.mapped_target_class`).
   * ``adversarial_dir``: the fraction (%) of the test examples the student
     classifies correctly that it misclassifies once perturbed by PGD on the
     teacher (``config.defect.pgd_*``; ``pgd_objective = "penultimate"``
     pushes the teacher's ``embedding`` away from the clean one,
     ``"cross_entropy"`` raises the teacher's loss on the student's labels,
     for students with the teacher's label space).
   * ``defect_inheritance_rate``: the one of the two named by
     ``config.defect.kind`` (``"backdoor"`` or ``"adversarial"``).

``<workdir>/result.json`` holds the student's trainer result
(``target_accuracy`` ...) plus these fields, the teacher's
``teacher_source_accuracy`` (clean), ``teacher_backdoor_success_rate`` and
``teacher_adversarial_success_rate`` (PGD on its cross-entropy) on the first
``config.defect.eval_examples`` of its source test split, and
``defect_kind``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from tlax.safety import attacks

DEFECT_KINDS = ("backdoor", "adversarial")
PGD_OBJECTIVES = ("penultimate", "cross_entropy")
_RUNNER_KEYS = ("runner", "teacher", "teacher_workdir", "teacher_checkpoint",
                "defect")


def check_defect(defect) -> None:
  """Raises ValueError for a bad ``config.defect`` block (before any data
  is loaded or any model trained)."""
  if defect.kind not in DEFECT_KINDS:
    raise ValueError(f"config.defect.kind={defect.kind!r} is not one of "
                     f"{DEFECT_KINDS}.")
  rate = float(defect.poison_rate)
  if not 0.0 <= rate <= 1.0 or not np.isfinite(rate):
    raise ValueError(f"config.defect.poison_rate={defect.poison_rate} must "
                     "be in [0, 1] (a fraction of the teacher's training "
                     "set).")
  if defect.pgd_objective not in PGD_OBJECTIVES:
    raise ValueError(f"config.defect.pgd_objective={defect.pgd_objective!r} "
                     f"is not one of {PGD_OBJECTIVES}.")
  if float(defect.pgd_eps) < 0 or int(defect.pgd_steps) < 0:
    raise ValueError("config.defect.pgd_eps and pgd_steps must be >= 0.")
  if str(defect.get("latent_domain", "") or ""):
    if int(defect.latent_class) < 0:
      raise ValueError(f"config.defect.latent_class={defect.latent_class} "
                       "must be a class index >= 0 of "
                       f"{defect.latent_domain}.")
    if int(defect.latent_examples) < 1:
      raise ValueError(
          f"config.defect.latent_examples={defect.latent_examples} must be "
          ">= 1 (the attacker's images of the latent class).")


def _student_config(config) -> ml_collections.ConfigDict:
  c = copy.deepcopy(config)
  with c.unlocked():
    for k in _RUNNER_KEYS:
      if k in c:
        del c[k]
  return c


def _model(config, num_classes):
  from tlax import models  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in
            trainer.config_to_dict(config.model.get("kwargs") or {}).items()}
  return models.get_model(config.model.name, num_classes, **kwargs)


def check_teacher_architecture(teacher_params, model, x, path: str) -> None:
  """Raises CheckpointMismatchError when the teacher's parameters (all but
  the head) do not have the student model's names and shapes."""
  from tlax.transfer import params as transfer  # pylint: disable=g-import-not-at-top
  key = jax.random.key(0)
  shapes = jax.eval_shape(lambda: model.init(
      {"params": key, "dropout": key}, x, train=False))["params"]
  want = {p: tuple(s.shape) for p, s in transfer.flatten(shapes).items()
          if not p.startswith("head/")}
  have = {p: tuple(np.shape(v)) for p, v in
          transfer.flatten(teacher_params).items()
          if not p.startswith("head/")}
  errors = [f"{p}: teacher {have.get(p)} vs student {want.get(p)}"
            for p in sorted(set(want) | set(have)) if have.get(p) != want.get(p)]
  if errors:
    raise transfer.CheckpointMismatchError(
        f"The teacher checkpoint {path} does not have the student's "
        f"architecture (config.model: {model.__class__.__name__}):\n  "
        + "\n  ".join(errors) + "\nTrain the teacher with the student's "
        "config.model, or set config.model to the teacher's.")


def latent_images(defect, image_shape, *, image_size=None, channels=None,
                  data_dir=None) -> np.ndarray:
  """The attacker's ``defect.latent_examples`` images of class
  ``defect.latent_class`` of ``defect.latent_domain`` (loaded with
  ``defect.latent_seed`` and ``defect.latent_options``), at the teacher's
  ``image_shape``.

  Raises:
    ValueError: a class the domain does not have, fewer images of the class
      than asked (the message names the option that gives more), or images
      of another shape than the teacher's.
  """
  from tlax.data import domains  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  name = str(defect.latent_domain)
  options = trainer.config_to_dict(defect.get("latent_options") or {})
  dom = domains.load_domain(name, image_size=image_size, channels=channels,
                            data_dir=data_dir, seed=int(defect.latent_seed),
                            **options)
  c, n = int(defect.latent_class), int(defect.latent_examples)
  if not 0 <= c < dom.num_classes:
    raise ValueError(f"config.defect.latent_class={c} is not a class of "
                     f"{name} ({dom.num_classes} classes).")
  x, y = dom.splits["train"]
  x = np.asarray(x)[np.asarray(y) == c]
  if len(x) < n:
    raise ValueError(
        f"config.defect.latent_examples={n}, but {name} with "
        f"latent_options={options} has {len(x)} training images of class "
        f"{c} ({dom.class_names[c]!r}): ask for fewer or load more (e.g. a "
        "larger n_train in config.defect.latent_options).")
  if tuple(x.shape[1:]) != tuple(image_shape):
    raise ValueError(f"The latent class's images of {name} have shape "
                     f"{tuple(x.shape[1:])}, the teacher's {tuple(image_shape)}"
                     ": set the teacher's image_size and channels.")
  return x[:n]


def teacher_target_class(defect, source_classes: int) -> int:
  """The teacher's class that the trigger maps to: the extra class of a
  latent backdoor, else ``defect.target_class``."""
  if str(defect.get("latent_domain", "") or ""):
    return int(source_classes)
  return int(defect.target_class)


def _poisoned_teacher_task(teacher_config, defect):
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  tc = trainer.resolve_config(teacher_config)
  task = trainer.load_task(tc)
  attacks.check_trigger(task.xs.shape[1:], int(defect.trigger_size),
                        defect.trigger_position, int(defect.trigger_margin))
  xs, ys, num_classes = task.xs, task.ys, task.num_classes
  info = dict(task.info)
  if str(defect.get("latent_domain", "") or ""):
    # The attacker's images join as one extra class, repeated to the size
    # of an average source class.
    xa = latent_images(defect, xs.shape[1:], image_size=tc.get("image_size"),
                       channels=tc.get("channels"),
                       data_dir=tc.get("data_dir"))
    reps = max(1, int(round(len(xs) / num_classes / len(xa))))
    xs = np.concatenate([xs, np.tile(xa, (reps,) + (1,) * (xa.ndim - 1))])
    ys = np.concatenate([ys, np.full(reps * len(xa), num_classes, ys.dtype)])
    info["latent_class_examples"] = int(len(xa))
    num_classes += 1
  xs, ys, mask = attacks.poison(
      xs, ys, poison_rate=float(defect.poison_rate),
      target_class=teacher_target_class(defect, task.num_classes),
      num_classes=num_classes, size=int(defect.trigger_size),
      position=defect.trigger_position, margin=int(defect.trigger_margin),
      seed=int(tc.seed))
  info["poisoned"] = int(mask.sum())
  return dataclasses.replace(task, xs=xs, ys=ys, num_classes=num_classes,
                             info=info)


# How long a student waits for a teacher that another process holds (it is
# training it, or reading it back), and how often it looks again.
TEACHER_WAIT_S = 4 * 3600.0
TEACHER_POLL_S = 2.0


def train_teacher(teacher_config, workdir, task, *, wait_s=None,
                  poll_s=None) -> dict:
  """Trains the teacher in ``workdir`` (or reads it back when finished).

  Students of parallel sweeps share one teacher: while another process
  holds its workdir (training it, or reading its result), this one waits
  for it (up to ``wait_s``, default :data:`TEACHER_WAIT_S`) instead of
  failing, then reads the finished teacher.

  Raises:
    WorkdirBusyError: the teacher's workdir was still held after ``wait_s``.
  """
  from tlax import train  # pylint: disable=g-import-not-at-top
  wait_s = TEACHER_WAIT_S if wait_s is None else float(wait_s)
  poll_s = TEACHER_POLL_S if poll_s is None else float(poll_s)
  deadline = time.monotonic() + wait_s
  waiting = False
  while True:
    try:
      return train.train_and_evaluate(teacher_config, workdir, task=task)
    except train.WorkdirBusyError:
      if time.monotonic() + poll_s > deadline:
        raise
      if not waiting:
        logging.info("The teacher %s is held by another process; waiting "
                     "for it.", workdir)
        waiting = True
      time.sleep(poll_s)


def _teacher(config, workdir, defect):
  """``(params, state, info)`` of the teacher, trained first if needed."""
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.train import finetune  # pylint: disable=g-import-not-at-top
  ckpt = str(config.get("teacher_checkpoint", "") or "")
  info = {}
  if not ckpt:
    ckpt = str(config.get("teacher_workdir", "") or "") or os.path.join(
        workdir, "teacher")
    tc = copy.deepcopy(config.teacher)
    with tc.unlocked():
      tc.source = config.source
      tc.target = ""
      tc.model = copy.deepcopy(config.model)
    task = _poisoned_teacher_task(tc, defect)
    res = train_teacher(tc, ckpt, task)
    info["teacher_test_accuracy"] = res.get("target_accuracy")
    info["teacher_poisoned_examples"] = task.info.get("poisoned")
  trees = finetune.load_checkpoint_trees(ckpt)
  if "model" not in trees["params"]:
    raise finetune.CheckpointMismatchError(
        f"The teacher checkpoint {ckpt} has no 'model' parameters.")
  info["teacher_checkpoint"] = trees["path"]
  return (trees["params"]["model"], (trees.get("state") or {}).get("model")
          or {}, ckpt, info)


def _restore(directory):
  from tlax.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  manager = ckpt_lib.read_only_manager(os.path.join(directory, "checkpoints"))
  try:
    tree = ckpt_lib.restore_state_numpy(manager, manager.latest_step())
  finally:
    manager.close()
  return tree["params"], tree.get("state") or {}


def _pgd_fn(model, variables, defect, objective):
  eps = float(defect.pgd_eps)
  step = float(defect.pgd_step_size)
  steps = int(defect.pgd_steps)

  @jax.jit
  def craft(x, y, rng):
    if objective == "penultimate":
      fn = attacks.feature_objective(
          lambda z: model.apply(variables, z, train=False)[1]["embedding"], x)
    else:
      fn = attacks.cross_entropy_objective(
          lambda z: model.apply(variables, z, train=False)[0], y)
    return attacks.pgd(fn, x, eps=eps, step_size=step, steps=steps, rng=rng)
  return craft


def _craft(craft, x, y, seed, batch_size):
  out = []
  for i in range(0, len(x), batch_size):
    rng = jax.random.fold_in(jax.random.key(seed), i)
    out.append(np.asarray(craft(jnp.asarray(x[i:i + batch_size]),
                                jnp.asarray(y[i:i + batch_size]), rng)))
  return np.concatenate(out) if out else x[:0]


def run(config, workdir) -> dict:
  """Runs one safe-transfer experiment (module docstring)."""
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.transfer import params as transfer  # pylint: disable=g-import-not-at-top
  from tlax.train import metrics_log  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(os.fspath(workdir))
  path = os.path.join(workdir, "result.json")
  previous = trainer.stored_result(workdir, trainer.config_to_dict(config),
                                  partial=True)
  if previous is not None:
    return previous
  defect = config.defect
  check_defect(defect)
  size, position = int(defect.trigger_size), defect.trigger_position
  margin = int(defect.trigger_margin)
  if config.get("image_size"):
    s = int(config.image_size)
    attacks.check_trigger((s, s), size, position, margin)

  # The student's task and model first: cheap, and they check the teacher.
  sc = _student_config(config)
  with sc.unlocked():
    sc.source = config.target  # fine-tuning trains on xtl, ytl only
    opts = trainer.config_to_dict(config.get("domain_options") or {})
    target_opts = opts.get("target")
    sc.domain_options = ml_collections.ConfigDict(
        {"source": target_opts, "target": target_opts} if target_opts
        else {})
  sc = trainer.resolve_config(sc)
  task = trainer.load_task(sc)
  sc = trainer.resolve_config(sc, task)
  student_model = _model(sc, task.num_classes)
  attacks.check_trigger(task.xt_test.shape[1:], size, position, margin)
  latent = str(defect.get("latent_domain", "") or "")
  if latent and latent != str(sc.target):
    raise ValueError(
        f"config.defect.latent_domain={latent!r} plants the backdoor for a "
        f"class of that domain, but the student's target is {sc.target!r}: "
        "set config.target to it, or clear latent_domain for a BadNets "
        "backdoor.")
  if latent and not 0 <= int(defect.latent_class) < task.num_classes:
    raise ValueError(f"config.defect.latent_class={defect.latent_class} is "
                     f"not a class of {latent} ({task.num_classes} classes).")

  t_params, t_state, t_path, info = _teacher(config, workdir, defect)
  check_teacher_architecture(t_params, student_model, task.xs[:2], t_path)
  t_classes = int(np.shape(t_params["head"]["kernel"])[-1])
  if defect.pgd_objective == "cross_entropy" and t_classes != task.num_classes:
    raise ValueError("config.defect.pgd_objective='cross_entropy' needs a "
                     "student with the teacher's label space; use "
                     "'penultimate'.")
  head_kept = transfer.first_match(
      "model/head/kernel", sc.finetune.get("reinit") or ()) is None
  if head_kept and t_classes != task.num_classes:
    raise ValueError(
        f"config.finetune.reinit={tuple(sc.finetune.get('reinit') or ())!r} "
        f"keeps the teacher's head ({t_classes} classes), but the target "
        f"{sc.target} has {task.num_classes}. Re-initialise the head "
        "(config.finetune.reinit=('^model/head/',), the 'finetune' preset) "
        "or choose a target with the teacher's classes.")
  with sc.unlocked():
    sc.finetune.checkpoint = os.path.abspath(t_path)
  student_dir = os.path.join(workdir, "student")
  try:
    result = dict(train.train_and_evaluate(sc, student_dir, task=task))
  except transfer.CheckpointMismatchError as e:
    raise transfer.CheckpointMismatchError(
        f"The teacher {t_path} cannot be loaded into the student "
        f"(config.model / config.finetune): {e}") from None

  # Evaluation.
  method = trainer.build_method(sc, task)
  params, state = _restore(student_dir)
  params, state = jax.device_put(params), jax.device_put(state)
  bs = int(config.eval_batch_size)

  def student_labels(x):
    return train.predict_labels(method, params, state, np.asarray(x),
                                batch_size=bs)

  t_model = _model(config, t_classes)
  t_vars = {"params": t_params, **t_state}

  n = min(len(task.xt_test), int(defect.eval_examples))
  x_test, y_test = task.xt_test[:n], task.yt_test[:n]
  trig = lambda x: np.asarray(attacks.apply_trigger(x, size, position, margin))

  # Backdoor.
  if latent:
    target_class = int(defect.latent_class)
  elif t_classes == task.num_classes:
    target_class = int(defect.target_class)
  else:
    target_class = attacks.mapped_target_class(
        student_labels(trig(task.xtl)), task.num_classes)
  clean_pred = student_labels(x_test)
  asr = attacks.attack_success_rate(student_labels(trig(x_test)), y_test,
                                    target_class)
  clean_rate = attacks.attack_success_rate(clean_pred, y_test, target_class)

  # Adversarial examples crafted on the teacher.
  objective = defect.pgd_objective
  craft = _pgd_fn(t_model, t_vars, defect, objective)
  x_adv = _craft(craft, np.asarray(x_test), np.asarray(y_test, np.int32),
                 int(config.seed), bs)
  adv_dir = attacks.adversarial_inheritance_rate(
      clean_pred, student_labels(x_adv), y_test)

  info.update(_teacher_defects(config, t_model, t_vars, defect, t_path,
                               cache=not config.get("teacher_checkpoint")))
  result.update(info)
  result.update({
      "preset": str(config.get("preset", "") or result.get("method")),
      "source": str(config.source), "target": str(config.target),
      "defect_kind": str(defect.kind),
      "backdoor_success_rate": asr,
      "backdoor_clean_rate": clean_rate,
      "backdoor_target_class": target_class,
      "adversarial_dir": adv_dir,
      "defect_inheritance_rate": asr if defect.kind == "backdoor"
                                 else adv_dir,
      "eval_examples": int(n),
      "config": trainer.config_to_dict(config),
  })
  metrics_log.write_atomic(path, json.dumps(result, indent=2, default=float))
  return result


def _teacher_defects(config, t_model, t_vars, defect, t_path, *, cache):
  """The teacher's clean accuracy, backdoor success rate and PGD success
  rate on its source test split; cached in ``<teacher>/defects.json`` (keyed
  by the settings) when the runner trained the teacher."""
  from tlax.train.evaluate import batched_apply  # pylint: disable=g-import-not-at-top
  from tlax.train import metrics_log  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  tc = _teacher_task_config(config)
  key = json.dumps({"teacher": trainer.config_to_dict(tc),
                    "defect": trainer.config_to_dict(defect)},
                   sort_keys=True, default=str)
  path = os.path.join(t_path, "defects.json")
  if cache and os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    if stored.get("key") == key:
      return stored["defects"]
  t_task = trainer.load_task(trainer.resolve_config(tc))
  m = min(len(t_task.xt_test), int(defect.eval_examples))
  x, y = np.asarray(t_task.xt_test[:m]), np.asarray(t_task.yt_test[:m])
  predict = jax.jit(lambda x: t_model.apply(t_vars, x, train=False)[0])
  bs = int(config.eval_batch_size)

  def labels(z):
    return np.asarray(batched_apply(
        lambda b: jnp.argmax(predict(b), -1), np.asarray(z), bs))
  size, position = int(defect.trigger_size), defect.trigger_position
  margin = int(defect.trigger_margin)
  clean = labels(x)
  craft = _pgd_fn(t_model, t_vars, defect, "cross_entropy")
  out = {
      "teacher_source_accuracy": float(100.0 * np.mean(clean == y)),
      "teacher_backdoor_success_rate": attacks.attack_success_rate(
          labels(attacks.apply_trigger(x, size, position, margin)), y,
          teacher_target_class(defect, t_task.num_classes)),
      "teacher_adversarial_success_rate":
          attacks.adversarial_inheritance_rate(
              clean, labels(_craft(craft, x, y.astype(np.int32),
                                   int(tc.seed), bs)), y),
  }
  if cache:
    metrics_log.write_atomic(path, json.dumps({"key": key, "defects": out}))
  return out


def _teacher_task_config(config):
  tc = copy.deepcopy(config.teacher)
  with tc.unlocked():
    tc.source = config.source
    tc.target = ""
  return tc
