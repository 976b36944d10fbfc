r"""Safe transfer: how much of a poisoned teacher's defects a student inherits.

A LeNet teacher is pretrained on SynDigits with a BadNets backdoor (10% of
its training images carry a 3x3 checkerboard trigger in the bottom-right
corner and are relabelled to class 0) and fine-tuned on a target by one
fine-tuning method; ``result.json`` holds the student's
``target_accuracy`` and its ``defect_inheritance_rate`` (the backdoor's
attack success rate on the student; ``adversarial_dir`` for PGD examples
crafted on the teacher's penultimate layer), see
:mod:`tlax.safety.runner`. Students: USPS and MNIST (the teacher's digit
classes) or font letters (26 classes: the backdoor's class maps through the
new head). ``transfer.py:<preset>,letters
--config.defect.latent_domain=fonts/letters`` plants a latent backdoor for
the letters instead (:mod:`tlax.safety.runner`).

COMMAND:
  python -m experiments.run --config=experiments/configs/safe/transfer.py:remos \
    --config.target=mnist_usps/usps --config.seed=0 \
    --config.teacher_workdir=runs/safe/teacher \
    --workdir=runs/safe/remos/usps/0

  # a student on letters, the teacher with a latent backdoor for A:
  python -m experiments.run \
    --config=experiments/configs/safe/transfer.py:remos,letters \
    --config.defect.latent_domain=fonts/letters --config.seed=0 \
    --config.teacher_workdir=runs/safe_latent/teacher/letters \
    --workdir=runs/safe_latent/remos/letters/0

  # every preset, targets and seeds, the table and the Pareto plot:
  python -m experiments.safe_transfer --targets=usps,mnist,letters \
    --seeds=0,1,2 --root=runs/safe --out=docs/safe_transfer.md

Config argument ``<preset>[,<target>][,quick]``; target ``usps`` (default),
``mnist`` or ``letters`` sets the student's domain and its options (e.g.
``transfer.py:remos,letters``); preset one of:
  ``finetune``: full fine-tuning, the head re-initialised (default);
  ``finetune_head``: full fine-tuning from the teacher's head too (the
    student keeps every teacher weight; only for a target with the
    teacher's classes: USPS, MNIST);
  ``linear_probe``: only the new head is trained;
  ``layer_transfer``: conv1 and conv2 copied and frozen, the rest
    re-initialised (Yosinski et al.'s AnB, k = 2);
  ``reinit_top``: fc1, fc2 and the head re-initialised, all fine-tuned;
  ``reinit_fc2``: fc2 and the head re-initialised, all fine-tuned (with
    ``reinit_top``, which layers hold the defect);
  ``l2sp``, ``output_kl``, ``lora``: as ``experiments/configs/finetune.py``
    (``output_kl`` needs the teacher's label space: not for letters);
  ``delta``: DELTA (method ``delta``);
  ``magnitude_prune``: half of every kernel pruned by magnitude, then
    fine-tuning (method ``magnitude_prune``);
  ``fine_prune``: Fine-Pruning: half of the neurons of fc1 and of fc2,
    those least active on the target data in the teacher, removed, then
    fine-tuning (method ``fine_prune``);
  ``remos``: ReMoS relevant-model slicing (method ``remos``);
  ``clean_distill``: fc1, fc2 and the head re-initialised (as
    ``reinit_top``) and taught the teacher's fc1 and fc2 features on the
    clean target inputs (method ``clean_distill``);
  ``clean_distill_head``: the same with the teacher's head kept (fc1 and
    fc2 re-initialised and taught on clean target inputs; only for a
    target with the teacher's classes);
  ``peer_distill``: fc1, fc2 and the head re-initialised (as
    ``reinit_top``), taught the labels and, on the clean target inputs, the
    predictions of a plainly fine-tuned peer (the whole teacher, a new
    head) trained beside it (method ``peer_distill``);
  ``peer_distill_head``: the same with the teacher's head kept by both (fc1
    and fc2 re-initialised; the peer is ``finetune_head``; only for a
    target with the teacher's classes);
  ``scratch``: the same network trained from scratch (no teacher: the
    floor of what can be inherited).
``quick``: a tiny teacher and student on embedded data (tests).
"""

import ml_collections

from experiments.configs import common
from experiments.configs import finetune
from experiments.configs import pretrain

PRESETS = ("finetune", "finetune_head", "linear_probe", "layer_transfer",
           "reinit_top", "reinit_fc2", "l2sp", "output_kl", "lora", "delta",
           "magnitude_prune", "fine_prune", "remos", "clean_distill",
           "clean_distill_head", "peer_distill", "peer_distill_head",
           "scratch")

# The student targets by short name (the config argument, the page script).
TARGETS = {"usps": "mnist_usps/usps", "mnist": "mnist_usps/mnist",
           "letters": "fonts/letters"}

# Per-target options of the student's domain (a seeded held-out test split
# for USPS and MNIST, whose files have one split).
TARGET_OPTIONS = {
    "mnist_usps/usps": {"holdout": 0.3},
    "mnist_usps/mnist": {"holdout": 0.3},
    "fonts/letters": {"n_train": 2600, "n_test": 1300},
}


_FC = ("^model/fc1/", "^model/fc2/")
_HEAD = ("^model/head/",)
# The presets of this module beyond experiments/configs/finetune.py's:
# preset -> (the method's name, the re-initialisation rules); None keeps
# what finetune.apply_preset set.
_SAFE_PRESETS = {
    "finetune_head": (None, ()),
    "reinit_top": (None, _FC + _HEAD),
    "reinit_fc2": (None, ("^model/fc2/",) + _HEAD),
    "delta": ("delta", None),
    "magnitude_prune": ("magnitude_prune", None),
    "fine_prune": ("fine_prune", None),
    "remos": ("remos", None),
    "clean_distill": ("clean_distill", _FC + _HEAD),
    "clean_distill_head": ("clean_distill", _FC),
    "peer_distill": ("peer_distill", _FC + _HEAD),
    "peer_distill_head": ("peer_distill", _FC),
    # The teacher is still trained (and its defects measured) but the
    # student starts from a fresh initialisation: all of it re-initialised.
    "scratch": (None, ("^model/",)),
}


def teacher_config(quick: bool = False) -> ml_collections.ConfigDict:
  """The teacher's pretraining run (its source and model are the main
  config's ``source`` and ``model``): the default pretraining size of
  ``experiments/configs/pretrain.py`` (100,000 SynDigits, 4,000 Adam steps
  of 256, cosine schedule with 100 warm-up steps)."""
  base = pretrain.get_config()
  c = common.base_config()
  c.stage = "pretrain"
  c.image_size = base.image_size
  c.channels = base.channels
  c.domain_options = ml_collections.ConfigDict(
      base.domain_options.to_dict())
  c.source_val_fraction = base.source_val_fraction
  c.iw_validation = False
  c.method.name = "source_only"
  c.optimizer = ml_collections.ConfigDict(base.optimizer.to_dict())
  c.steps = base.steps
  c.batch_size = base.batch_size
  c.log_every = base.log_every
  c.eval_every = base.eval_every
  c.checkpoint_every = base.checkpoint_every
  c.eval_batch_size = base.eval_batch_size
  c.seed = 0
  if quick:
    c.domain_options = ml_collections.ConfigDict(
        {"source": {"n_train": 256, "n_test": 64}})
    c.source_val_fraction = 0.1
    c.steps = 4
    c.batch_size = 16
    c.optimizer.warmup_steps = 0
    c.log_every = c.eval_every = c.checkpoint_every = 2
    c.eval_batch_size = 64
    c.progress = False
  return c


def parse_target(arg: str | None) -> tuple[str | None, str | None]:
  """``(target domain or None, the rest of the argument)`` of a config
  argument that may name a student target of :data:`TARGETS`.

  Raises:
    ValueError: two targets, or a target with ``quick`` (which runs the
      embedded letters).
  """
  parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
  named = [p for p in parts if p in TARGETS]
  if len(named) > 1:
    raise ValueError(f"Config argument {arg!r} names {len(named)} targets "
                     f"({', '.join(named)}); give one of {sorted(TARGETS)}.")
  if named and "quick" in parts:
    raise ValueError(f"Config argument {arg!r}: 'quick' runs the embedded "
                     f"letters; drop {named[0]!r} or 'quick'.")
  rest = ",".join(p for p in parts if p not in TARGETS) or None
  return (TARGETS[named[0]] if named else None), rest


def get_config(arg: str | None = None):
  """The safe-transfer config for ``arg = "<preset>[,<target>][,quick]"``
  (target one of :data:`TARGETS`: the student's domain and its options;
  default USPS)."""
  target, rest = parse_target(arg)
  preset, quick = finetune.parse_preset(rest, PRESETS, "finetune")

  c = common.base_config()
  c.runner = "tlax.safety.runner:run"
  c.stage = "safe_transfer"
  c.preset = preset
  c.source = "digits/syndigits"   # the teacher's source
  c.target = "mnist_usps/usps"    # the student's domain
  c.image_size = 16
  c.channels = 1
  c.domain_options = ml_collections.ConfigDict(
      {"target": TARGET_OPTIONS["mnist_usps/usps"]})
  c.iw_validation = False
  c.target_labeled_per_class = 50
  c.labeled_batch_size = 32
  c.batch_size = 8
  c.target_batch_size = 128  # unlabelled target inputs: ReMoS's coverage

  c.model.name = "lenet"
  c.model.kwargs = ml_collections.ConfigDict(
      {"conv_features": (16, 32), "hidden": (64, 64)})
  c.method.name = "finetune"
  c.finetune = finetune.finetune_block()

  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.optimizer.schedule = "constant"
  c.optimizer.weight_decay = 0.0
  c.steps = 300
  c.log_every = 50
  c.eval_every = 150
  c.checkpoint_every = 300
  c.eval_batch_size = 256

  c.teacher = teacher_config(quick)
  c.teacher_workdir = ""      # "": <workdir>/teacher
  c.teacher_checkpoint = ""   # an existing teacher instead of training one
  c.defect = ml_collections.ConfigDict({
      "kind": "backdoor",     # the defect_inheritance_rate: or adversarial
      "target_class": 0,
      "poison_rate": 0.1,
      "trigger_size": 3,
      "trigger_position": "bottom_right",
      "trigger_margin": 1,
      "pgd_objective": "penultimate",
      "pgd_eps": 0.1,
      "pgd_step_size": 0.025,
      "pgd_steps": 10,
      "eval_examples": 500,
      # A latent backdoor (Yao et al., 2019) for a student with other
      # classes: "" keeps BadNets on the teacher's classes; a domain name
      # (the student's target) adds latent_examples images of its class
      # latent_class, drawn with the attacker's latent_seed, to the
      # teacher's training set as one extra class, the trigger's class.
      "latent_domain": "",
      "latent_class": 0,
      "latent_examples": 250,
      "latent_seed": 101,
      "latent_options": {"n_train": 6500, "n_test": 0},
  })

  if target:
    c.target = target
    c.domain_options = ml_collections.ConfigDict(
        {"target": TARGET_OPTIONS[target]})

  finetune.apply_preset(c, preset)  # linear_probe, layer_transfer, l2sp, ...
  method, reinit = _SAFE_PRESETS.get(preset, (None, None))
  if method is not None:
    c.method.name = method
  if reinit is not None:
    c.finetune.reinit = reinit

  if quick:
    c.quick = True
    c.target = "fonts/letters"
    c.domain_options = ml_collections.ConfigDict(
        {"target": {"n_train": 130, "n_test": 52}})
    c.model.kwargs = ml_collections.ConfigDict(
        {"conv_features": (4, 8), "hidden": (16, 16)})
    c.target_labeled_per_class = 2
    c.labeled_batch_size = 8
    c.target_batch_size = 16
    c.steps = 4
    c.log_every = c.eval_every = c.checkpoint_every = 2
    c.eval_batch_size = 64
    c.progress = False
    c.defect.pgd_steps = 2
    c.defect.eval_examples = 32
    c.defect.latent_examples = 8
    c.defect.latent_options = ml_collections.ConfigDict(
        {"n_train": 260, "n_test": 0})
  common.fill_method_options(c)
  return c
