"""Shared config defaults: ``base_config()`` and the per-collection table.

Every experiment config starts from :func:`base_config` and sets its method.
Fields left ``None`` (and ``model.name = "auto"``) are filled at run time by
:func:`tlax.train.resolve_config` from ``config.auto.<collection>`` (the part
of ``config.source`` before the slash) or ``config.auto.default``, so the one
runner command gives sensible settings for every benchmark while any
``--config.<field>=...`` on the command line still wins. ``result.json``
records the resolved values.
"""

import inspect
import keyword
from typing import Mapping

import ml_collections
from ml_collections import config_dict

# The default task needs no files: embedded domains (tlax.data.synthetic).
# Digits rendered from fonts -> scikit-learn's handwritten digits: the same
# classes, typeset against handwritten (docs/domains.md, docs/main_job.md).
DEFAULT_SOURCE = "digits/fonts"
DEFAULT_TARGET = "digits/sklearn"
DEFAULT_IMAGE_SIZE = 16

# Per-collection training settings (keys are dotted config fields; a model
# named here brings its model.kwargs). Chosen a priori, not tuned on target
# labels:
# office_caltech10 (and coil20): 800-d SURF features (1024-d pixels), 157-1123
#   examples per domain: an MLP (one hidden layer of 256, dropout 0.5) with
#   Adam, 500 steps of 32 (about 15-100 epochs).
# mnist_usps and digits: 16x16 images, LeNet, SGD momentum 0.9, lr 0.01 with
#   the DANN annealing (Ganin et al., 2016), weight decay 5e-4, 2000 steps
#   of 64. conv_impl "xla" (nn.Conv, the models' default; the digit tables
#   were made with it): the opt-in CPU forms of tlax.kernels.conv ("auto",
#   "native", ...) give the same values to float32 rounding only.
_LENET = {"name": "lenet", "kwargs": {"conv_impl": "xla"}}
_MLP = {"name": "mlp", "kwargs": {"hidden": (256,), "dropout": 0.5}}
_ADAM = {"name": "adam", "lr": 1e-3, "schedule": "constant",
         "weight_decay": 5e-4}
AUTO = {
    "default": {
        "steps": 2000, "batch_size": 64,
        "optimizer": {"name": "sgd", "lr": 0.01, "schedule": "dann",
                      "weight_decay": 5e-4},
    },
    "office_caltech10": {"model": _MLP, "steps": 500, "batch_size": 32,
                         "optimizer": _ADAM},
    "coil20": {"model": _MLP, "steps": 500, "batch_size": 32,
               "optimizer": _ADAM},
    "mnist_usps": {"model": _LENET},
    "digits": {"model": _LENET, "channels": 3},  # grey repeated to RGB
}


def set_dotted(c: ml_collections.ConfigDict, dotted: str, value) -> None:
  """``c.a.b = value`` for ``dotted = "a.b"``."""
  *parents, leaf = dotted.split(".")
  node = c
  for p in parents:
    node = node[p]
  node[leaf] = value


def base_config() -> ml_collections.ConfigDict:
  """All fields shared by the experiment configs."""
  c = ml_collections.ConfigDict()
  # Task.
  c.source = DEFAULT_SOURCE
  c.target = DEFAULT_TARGET
  c.seed = 0
  c.image_size = DEFAULT_IMAGE_SIZE          # ignored by feature domains
  c.channels = config_dict.placeholder(int)  # None: the domains' own
  c.data_dir = config_dict.placeholder(str)  # None: $TLAX_DATA_DIR
  c.domain_options = ml_collections.ConfigDict()
  c.source_val_fraction = 0.1
  # Also record the importance-weighted (DEV) validation risk at every
  # evaluation and the step it selects (tlax/train/selection.py).
  c.iw_validation = True
  # Label-free validators recorded at every evaluation, and the step each
  # selects (tlax/train/validators.py): entropy, bnm, snd, class_ami,
  # mixval, reverse.
  c.validators = ()
  c.target_labeled_per_class = 0

  # Model and method.
  c.model = ml_collections.ConfigDict()
  c.model.name = "auto"  # auto: from AUTO, else mlp (features) / lenet (images)
  c.model.kwargs = ml_collections.ConfigDict()
  c.method = ml_collections.ConfigDict()
  c.method.name = "source_only"

  # Optimisation (None: from AUTO).
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = config_dict.placeholder(str)    # sgd | adam | adamw
  c.optimizer.lr = config_dict.placeholder(float)
  c.optimizer.schedule = config_dict.placeholder(str)  # constant|cosine|dann
  c.optimizer.weight_decay = config_dict.placeholder(float)
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.warmup_steps = 0
  c.optimizer.clip_norm = 0.0  # 0: no clipping
  c.steps = config_dict.placeholder(int)
  c.batch_size = config_dict.placeholder(int)
  c.target_batch_size = config_dict.placeholder(int)  # None: batch_size
  c.labeled_batch_size = 0

  # Logging, evaluation, checkpoints.
  c.log_every = 50
  c.eval_every = config_dict.placeholder(int)        # None: steps // 10
  c.checkpoint_every = config_dict.placeholder(int)  # None: eval_every
  c.eval_batch_size = 256
  c.progress = True
  c.plots = config_dict.placeholder(str)  # "tsne" or "pca": PNGs at the end
  c.quick = False
  c.stop_after_step = -1  # tests only: SIGKILL the process after this step
  # Training steps per call of the jitted program (jax.lax.scan, the batches
  # gathered on the device; tlax.train.many_runs); 1: the step-by-step loop.
  c.steps_per_dispatch = 1
  # unroll of that scan: 1 (a loop), n copies of the step per iteration, or
  # 0 (straight-line code: on the CPU, where XLA runs convolutions inside
  # loops slowly).
  c.scan_unroll = 1

  # Devices (tlax.train.devices): "none" (one device), "auto" (= "sharded"),
  # "sharded" (jit over a mesh) or "pmap"; num_devices 0: all local ones.
  c.parallel = "none"
  c.num_devices = 0
  # Multi-host: jax.distributed.initialize(**distributed_args) when True (or
  # when JAX_COORDINATOR_ADDRESS is set).
  c.distributed = False
  c.distributed_args = ml_collections.ConfigDict()

  c.auto = ml_collections.ConfigDict(AUTO)
  return c


# Factory arguments that are not config options.
_NOT_OPTIONS = ("model", "num_classes", "total_steps", "pretrained")


def method_defaults(name: str) -> dict:
  """The options of method ``name`` with their defaults, as config values.

  Read from the factory's signature (where the defaults live), so a config
  sets only what differs and every option can still be overridden on the
  command line (``--config.method.<option>=...``). Keyword names take their
  config spelling (``lambda_`` -> ``lambda``); options without a config
  value (default None, callables) are left out.
  """
  from tlax import methods  # pylint: disable=g-import-not-at-top
  factory = methods.get_method(name)
  out = {}
  for p in inspect.signature(factory).parameters.values():
    if (p.kind != p.KEYWORD_ONLY or p.name in _NOT_OPTIONS
        or p.default is p.empty or p.default is None
        or callable(p.default)):
      continue
    key = p.name
    if key.endswith("_") and keyword.iskeyword(key[:-1]):
      key = key[:-1]
    value = p.default
    if isinstance(value, Mapping):
      value = ml_collections.ConfigDict(dict(value))
    out[key] = value
  return out


def fill_method_options(c: ml_collections.ConfigDict
                        ) -> ml_collections.ConfigDict:
  """Adds to ``c.method`` every option of its method that it does not set,
  with the factory's default (:func:`method_defaults`)."""
  for key, value in method_defaults(c.method.name).items():
    if key not in c.method:
      c.method[key] = value
  return c


def apply_arg(c: ml_collections.ConfigDict, arg: str | None
              ) -> ml_collections.ConfigDict:
  """Completes a method config and applies its argument
  (``--config=<file>:<arg>``).

  The method's options it does not set are added with their defaults
  (:func:`fill_method_options`).

  ``arg`` is a comma-separated list of ``quick`` (:func:`make_quick`) and
  ``<hparam>=<number>`` items that set ``c.method.<hparam>``, for
  hyperparameters that are not valid flag paths (``lambda`` is a Python
  keyword, so ``--config.method.lambda=...`` cannot be parsed), e.g.
  ``experiments/configs/coral.py:lambda=0.1``.
  """
  fill_method_options(c)
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    if item == "quick":
      make_quick(c)
      continue
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or key not in c.method:
      known = sorted(k for k in c.method.keys()
                     if isinstance(c.method[k], (int, float))
                     and not isinstance(c.method[k], bool))
      raise ValueError(
          f"Unknown config argument {item!r}; valid: 'quick' or "
          f"'<hparam>=<number>' for a numeric method field "
          f"({', '.join(known) or 'none'}).")
    try:
      c.method[key] = float(value)
    except ValueError:
      raise ValueError(f"Config argument {item!r}: {value!r} is not a "
                       "number.") from None
  return c


def make_quick(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a config to a ten-step run of a small MLP (tests, notebooks)."""
  c.quick = True
  c.steps = 10
  c.batch_size = 8
  c.log_every = 5
  c.eval_every = 5
  c.checkpoint_every = 5
  c.eval_batch_size = 64
  c.progress = False
  c.model.name = "mlp"
  c.model.kwargs = ml_collections.ConfigDict({"hidden": (32,)})
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.01
  c.optimizer.schedule = "dann"
  c.optimizer.weight_decay = 0.0
  return c
