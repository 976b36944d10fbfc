r"""Pretraining: a source-only run on a large source, data-parallel.

Trains a classifier on ``config.source`` (SynDigits, 100,000 rendered
training images by default) through the one trainer
(:func:`tlax.train.train_and_evaluate`; ``config.target`` empty), with
synchronous data parallelism over the local devices (``config.parallel``,
:mod:`tlax.train.devices`), and writes orbax checkpoints under
``<workdir>/checkpoints`` (the ``finetune.checkpoint`` of
``experiments/configs/finetune.py``) and ``<workdir>/result.json``
(``source_test_accuracy``, ``images_per_sec``, ``num_devices``, ...). A
finished run asked for again returns its stored result, so fine-tuning
scripts can call it to get the pretrained model once.

COMMAND:
  python -m experiments.run --config=experiments/configs/pretrain.py \
    --workdir=runs/pretrain/syndigits100k_lenet

  # 4 fake CPU devices (the flag must be set before JAX starts):
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
    python -m experiments.run --config=experiments/configs/pretrain.py \
    --config.optimizer.name=lamb --config.optimizer.lr=0.01 \
    --workdir=runs/pretrain/syndigits100k_lenet_lamb

  # pmap instead of the sharded jit:
  XLA_FLAGS=--xla_force_host_platform_device_count=4 \
    python -m experiments.run --config=experiments/configs/pretrain.py \
    --config.parallel=pmap --workdir=runs/pretrain/syndigits100k_pmap

  # Any TFDS dataset (images are resized to image_size):
  python -m experiments.run --config=experiments/configs/pretrain.py \
    --config.source=tfds/mnist --workdir=runs/pretrain/mnist

Config arguments (``--config=experiments/configs/pretrain.py:<arg>``):
  ``quick``: a 4-step run of a tiny LeNet on 512 SynDigits (tests);
  ``small``: SynDigits 20k, LeNet, 600 steps of batch 128 (the CPU-sized
    source model used by ``experiments/layer_transfer.py`` and
    ``experiments/few_shot.py``);
  ``resnet8``: ResNet-8 (BatchNorm synchronised over devices).

Multi-host: ``--config.distributed=True`` calls ``jax.distributed.initialize``
(arguments in ``config.distributed_args`` or from the cluster environment);
each host reads its own contiguous shard of the training split and
``batch_size`` is the global batch over all hosts and devices.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None):
  """The pretraining config; ``arg`` in (None, "quick", "small", "resnet8")."""
  c = common.base_config()
  c.stage = "pretrain"
  c.source = "digits/syndigits"
  c.target = ""  # optional: also report the accuracy on this domain's test
  c.source_test = True  # with a target: also evaluate the source test split
  c.image_size = 16
  c.channels = 1
  c.domain_options = ml_collections.ConfigDict(
      {"source": {"n_train": 100_000, "n_test": 5_000}})
  c.source_val_fraction = 0.02

  c.model.name = "lenet"
  c.model.kwargs = ml_collections.ConfigDict()
  c.method.name = "source_only"

  # adam | sgd | adamw | lamb (LAMB for large global batches).
  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.optimizer.schedule = "cosine"
  c.optimizer.weight_decay = 0.0
  c.optimizer.warmup_steps = 100
  c.optimizer.eps = 1e-8
  c.steps = 4000
  c.batch_size = 256  # global: over all hosts and devices
  c.parallel = "auto"  # data parallelism over all local devices
  c.num_devices = 0     # 0: all local devices

  c.log_every = 100
  c.eval_every = 1000
  c.checkpoint_every = 1000
  c.eval_batch_size = 512

  if arg == "quick":
    c.quick = True
    c.domain_options = ml_collections.ConfigDict(
        {"source": {"n_train": 512, "n_test": 128}})
    c.source_val_fraction = 0.1
    c.model.kwargs = ml_collections.ConfigDict(
        {"conv_features": (4, 8), "hidden": (16,)})
    c.steps = 4
    c.batch_size = 16
    c.optimizer.warmup_steps = 0
    c.log_every = 2
    c.eval_every = 2
    c.checkpoint_every = 2
    c.eval_batch_size = 64
    c.progress = False
  elif arg == "small":
    c.domain_options = ml_collections.ConfigDict(
        {"source": {"n_train": 20_000, "n_test": 2_000}})
    c.steps = 600
    c.batch_size = 128
    c.optimizer.warmup_steps = 50
    c.log_every = 50
    c.eval_every = 300
    c.checkpoint_every = 300
  elif arg == "resnet8":
    c.model.name = "resnet8"
    c.optimizer.name = "sgd"
    c.optimizer.lr = 0.1
    c.optimizer.weight_decay = 5e-4
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; valid: 'quick', "
                     "'small', 'resnet8'.")
  return c
