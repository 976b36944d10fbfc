r"""PACS in DomainBed's ERM setting: an ImageNet ResNet-50, three domains
train, the fourth is held out.

DomainBed's default hyper-parameters for ERM (Gulrajani & Lopez-Paz, "In
Search of Lost Domain Generalization", ICLR 2021): a torchvision ResNet-50
from ImageNet weights (``model.pretrained``, its 1000-way head replaced by a
fresh 7-way head), 224x224 images normalised with ImageNet statistics,
random resized crops (area 0.7-1) and horizontal flips in training, Adam
with learning rate 5e-5 and no weight decay, no dropout, 32 images per
training domain per step, 5,000 steps, 20 % of every domain held out for
training-domain validation, evaluation every 300 steps. The algorithm and
the held-out domain are arguments like in every DG config
(:mod:`experiments.configs.dg.common`).

Differences from DomainBed, stated: its training augmentation also jitters
colour (0.3) and turns 10 % of the images grey; its ResNet keeps BatchNorm
statistics frozen during training; here they are updated.

COMMAND (a torchvision ResNet-50 weight file; sketch held out):
  python -m experiments.run --config=experiments/configs/dg/pacs_resnet50.py:erm \
    --config.model.pretrained=resnet50.safetensors \
    --config.seed=0 --workdir=runs/dg_resnet50/erm/pacs--sketch/0

Another held-out domain: ``--config.source=pacs/art_painting+pacs/cartoon+pacs/sketch
--config.target=pacs/photo``.

Quick mode (``:erm,quick``, tests): a test-sized ResNet of the same layout at
32x32, two images per class, two steps.
"""

import ml_collections

from experiments.configs.dg import common as dg_common
from experiments.configs.dg import pacs

PER_DOMAIN_BATCH = 32


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The DomainBed ERM setting on PACS; ``arg`` as in
  :mod:`experiments.configs.dg.common` (``quick``: a test-sized ResNet)."""
  items = [a.strip() for a in (arg or "").split(",") if a.strip()]
  quick = "quick" in items
  own = ",".join(a for a in items if a != "quick") or None
  domains = pacs.DOMAINS
  c = dg_common.dg_config(
      "+".join(domains[:3]), domains[3], own, **{
          "image_size": 224, "channels": 3,
          "steps": 5000, "eval_every": 300, "checkpoint_every": 300,
          "batch_size": PER_DOMAIN_BATCH * 3, "eval_batch_size": 64,
          "optimizer.name": "adam", "optimizer.lr": 5e-5,
          "optimizer.schedule": "constant", "optimizer.weight_decay": 0.0})
  c.model.name = "resnet50_tv"
  c.model.kwargs = ml_collections.ConfigDict({
      "augment": True, "crop_scale": (0.7, 1.0), "dropout": 0.0,
      "normalization": "imagenet"})
  c.model.pretrained = ""  # "": random initialisation
  c.model.pretrained_layout = "auto"
  c.model.pretrained_reinit = ("^model/head/",)
  c.domain_options = ml_collections.ConfigDict()
  if quick:
    c.quick = True
    c.image_size = 32
    c.domain_options = ml_collections.ConfigDict({"max_per_class": 2})
    c.model.name = "resnet18_tv"
    c.model.kwargs.widths = (4, 8, 8, 16)
    c.model.kwargs.stem_width = 8
    c.steps, c.batch_size = 2, 6
    c.log_every = c.eval_every = c.checkpoint_every = 2
    c.eval_batch_size = 16
    c.progress = False
  return c
