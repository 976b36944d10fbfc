r"""The deep domain-adaptation fine-tuning recipe on image-folder trees.

The setting of the Office-31 / Office-Home / VisDA tables of DAN, DANN, CDAN,
MCD and MDD as TLlib runs them, on any ``<root>/<domain>/<class>/<image>``
tree (:mod:`tlax.data.image_folder`):

* an ImageNet ResNet-50 (torchvision layout, ``model.pretrained`` = its weight
  file; without one the network starts from random weights), then a 256-d
  bottleneck (Dense + BatchNorm + ReLU) and the classifier head;
* 224x224 images, ImageNet normalisation, random resized crops and flips in
  training (on device);
* SGD, momentum 0.9, Nesterov, weight decay 1e-3, learning rate 0.01 with the
  DANN annealing ``(1 + 10 p) ** -0.75`` (Ganin et al., 2016); the backbone
  learns at 0.1x the rate of the bottleneck and head
  (``finetune.lr_mults``);
* 32 source + 32 target images per step; 20,000 steps (TLlib: 20 epochs of
  1,000 iterations);
* the whole target domain is the unlabelled training data and the test set.

Config arguments (comma-separated, after the method config's own):
``quick`` (tests: a test-sized ResNet of the same layout at 32x32, two images
per class, two steps) and ``plumbing`` (a randomly initialised full ResNet-50
at 32x32, four images per class, three steps, on the CPU).
"""

import importlib

import ml_collections

RECIPE_STEPS = 20_000
BACKBONE_LR_MULT = 0.1


def recipe(method: str, arg: str | None = None
           ) -> ml_collections.ConfigDict:
  """The method's config (``experiments/configs/<method>.py``) in the
  recipe's setting; ``arg``: ``quick``, ``plumbing`` and the method config's
  own items (e.g. ``lambda=0.3``)."""
  items = [a.strip() for a in (arg or "").split(",") if a.strip()]
  own = [a for a in items if a not in ("quick", "plumbing")]
  config = importlib.import_module(
      f"experiments.configs.{method}").get_config(",".join(own) or None)
  c = config
  c.source = "office31/amazon"
  c.target = "office31/webcam"
  c.image_size = 224
  c.channels = 3
  c.domain_options = ml_collections.ConfigDict()
  c.model.name = "resnet50_tv"
  c.model.kwargs = ml_collections.ConfigDict({
      "bottleneck": 256, "augment": True, "crop_scale": (0.08, 1.0),
      "normalization": "imagenet"})
  # Pretrained weights (tlax.models.convert): a torchvision ResNet-50 as
  # .safetensors or .pth, or a flax checkpoint; "" starts from random weights.
  c.model.pretrained = ""
  c.model.pretrained_layout = "auto"
  c.model.pretrained_reinit = ("^model/head/", "^model/bottleneck")
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.optimizer.weight_decay = 1e-3
  c.optimizer.schedule = "dann"
  c.finetune = ml_collections.ConfigDict({
      "checkpoint": "", "reinit": (), "copy_layers": -1,
      # First match wins: the new layers at the full rate, the backbone at
      # 0.1x, the method's own networks (discriminators) at the full rate.
      "lr_mults": (("^model/head/", 1.0), ("^model/bottleneck", 1.0),
                   ("^model/", BACKBONE_LR_MULT)),
  })
  c.steps = RECIPE_STEPS
  c.batch_size = 32
  c.target_batch_size = 32
  c.source_val_fraction = 0.1
  c.log_every = 100
  c.eval_every = 2_000
  c.eval_batch_size = 64
  if "plumbing" in items:
    c.source, c.target = "pacs/photo", "pacs/sketch"
    c.image_size = 32
    c.domain_options = ml_collections.ConfigDict({"max_per_class": 4})
    c.steps, c.batch_size, c.target_batch_size = 3, 4, 4
    c.log_every = c.eval_every = c.checkpoint_every = 3
    c.eval_batch_size = 32
    c.iw_validation = False
  if "quick" in items:
    c.quick = True
    c.source, c.target = "pacs/photo", "pacs/sketch"
    c.image_size = 32
    c.domain_options = ml_collections.ConfigDict({"max_per_class": 2})
    c.model.name = "resnet18_tv"
    c.model.kwargs.widths = (4, 8, 8, 16)
    c.model.kwargs.stem_width = 8
    c.model.kwargs.bottleneck = 8
    c.steps, c.batch_size, c.target_batch_size = 2, 4, 4
    c.log_every = c.eval_every = c.checkpoint_every = 2
    c.eval_batch_size = 16
    c.progress = False
    if c.method.get("disc_hidden") is not None:
      c.method.disc_hidden = (8,)
  return c
