r"""Fine-tuning a pretrained network on a few labelled target examples.

Loads ``finetune.checkpoint`` (a run of ``experiments/configs/pretrain.py``)
strictly (:mod:`tlax.train.finetune`, :mod:`tlax.transfer`): parameters match by name and shape,
the head is re-initialised by the rule ``reinit = ("^model/head/",)``, every
reset or skipped parameter is logged, anything else that does not match is an
error. Then trains on ``target_labeled_per_class`` labelled target examples
per class and reports the accuracy on the held-out target test split.

COMMAND (after the pretraining run of ``pretrain.py:small``):
  python -m experiments.run --config=experiments/configs/finetune.py:l2sp \
    --config.finetune.checkpoint=runs/pretrain/syndigits20k_lenet \
    --config.target_labeled_per_class=10 --config.seed=0 \
    --workdir=runs/finetune/l2sp/k10/0

Config argument ``<preset>[,quick]``, preset one of:
  ``full``: fine-tune every layer (default);
  ``linear_probe``: freeze everything but the new head
    (``lr_mults = (("^model/head/", 1), ("^model/", 0))``);
  ``l2sp``: full fine-tuning + L2-SP (method ``l2sp``);
  ``output_kl``: full fine-tuning + KL to the source model's outputs
    (method ``output_kl``);
  ``lora``: LoRA rank 4 on every conv and dense kernel but the head, base
    frozen (method ``lora``);
  ``layer_transfer``: copy the first ``finetune.copy_layers`` layers
    (LeNet: conv1, conv2, fc1, fc2), re-initialise the rest;
    ``finetune.freeze_copied`` freezes the copied ones.
``quick`` shrinks the run (tests); it needs a checkpoint all the same.

The "source" of the fine-tuning task is only a placeholder for the trainer's
task (the fine-tuning methods train on the labelled target examples ``xtl,
ytl`` alone); it is SynDigits with 500 images so that no time is spent on it.
"""

import ml_collections

from experiments.configs import common

PRESETS = ("full", "linear_probe", "l2sp", "output_kl", "lora",
           "layer_transfer")


def finetune_block() -> ml_collections.ConfigDict:
  """The ``config.finetune`` fields (see :mod:`tlax.train.finetune`)."""
  return ml_collections.ConfigDict({
      "checkpoint": "",          # workdir or checkpoints/ of the source run
      "step": -1,                # -1: latest
      "reinit": ("^model/head/",),
      "allow_missing": (),
      "allow_unexpected": (),
      "copy_layers": -1,         # k >= 0: copy the first k `layers`
      "layers": (),              # () : the model's top-level modules in order
      "freeze_copied": False,
      "lr_mults": (),            # ((regex, multiplier), ...), 0 = frozen
  })


def parse_preset(arg: str | None, presets, default: str) -> tuple[str, bool]:
  """``(preset, quick)`` of a config argument ``"<preset>[,quick]"``."""
  parts = [p.strip() for p in (arg or default).split(",") if p.strip()]
  quick = "quick" in parts
  parts = [p for p in parts if p != "quick"] or [default]
  if len(parts) != 1 or parts[0] not in presets:
    raise ValueError(f"Unknown config argument {arg!r}; valid: one of "
                     f"{tuple(presets)}, optionally followed by ',quick'.")
  return parts[0], quick


def apply_preset(c: ml_collections.ConfigDict, preset: str) -> None:
  """Sets the method and ``c.finetune`` rules of a fine-tuning preset
  (``full`` and presets this module does not know change nothing)."""
  if preset == "linear_probe":
    c.finetune.lr_mults = (("^model/head/", 1.0), ("^model/", 0.0))
  elif preset == "l2sp":
    c.method.name = "l2sp"
    c.method.l2sp_alpha = 0.1
  elif preset == "output_kl":
    c.method.name = "output_kl"
  elif preset == "lora":
    c.method.name = "lora"
    c.finetune.lr_mults = (("^model/head/", 1.0), ("^model/", 0.0))
    c.optimizer.lr = 3e-3
  elif preset == "layer_transfer":
    c.finetune.copy_layers = 2
    c.finetune.freeze_copied = True


def get_config(arg: str | None = None):
  """The fine-tuning config for ``arg = "<preset>[,quick]"``."""
  preset, quick = parse_preset(arg, PRESETS, "full")

  c = common.base_config()
  c.stage = "finetune"
  c.preset = preset
  c.source = "digits/syndigits"  # placeholder, see the module docstring
  c.target = "mnist_usps/usps"
  c.image_size = 16
  c.channels = 1
  c.domain_options = ml_collections.ConfigDict({
      "source": {"n_train": 500, "n_test": 100},
      "target": {"holdout": 0.3},
  })
  c.target_labeled_per_class = 10
  c.labeled_batch_size = 32
  c.batch_size = 8           # source examples per batch (unused by the loss)
  c.target_batch_size = 8

  c.model.name = "lenet"
  c.model.kwargs = ml_collections.ConfigDict()
  c.method.name = "finetune"
  c.finetune = finetune_block()

  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.optimizer.schedule = "constant"
  c.optimizer.weight_decay = 0.0
  c.steps = 300
  c.log_every = 50
  c.eval_every = 100
  c.checkpoint_every = 300

  apply_preset(c, preset)

  if quick:
    c.quick = True
    c.domain_options = ml_collections.ConfigDict({
        "source": {"n_train": 64, "n_test": 16},
        "target": {"n_train": 200, "n_test": 60},
    })
    c.target = "digits/syndigits"  # no benchmark files needed
    # The architecture of experiments/configs/pretrain.py:quick.
    c.model.kwargs = ml_collections.ConfigDict(
        {"conv_features": (4, 8), "hidden": (16,)})
    c.target_labeled_per_class = 2
    c.labeled_batch_size = 8
    c.steps = 4
    c.log_every = 2
    c.eval_every = 2
    c.checkpoint_every = 2
    c.eval_batch_size = 64
    c.progress = False
  common.fill_method_options(c)
  return c
