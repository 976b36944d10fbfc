"""Classifier networks: flax.linen modules returning ``(logits, features)``.

Every model follows the contract of :mod:`tlax.methods.contract`:
``model.apply(variables, x, train=bool, rngs=..., mutable=...)`` returns
``(logits, features)``; ``features`` maps names to intermediate activations
and ``features["embedding"]`` is always the input of the classification head,
a submodule named ``head`` (so fine-tuning rules can reset ``head/...``).

Registry: :func:`get_model` maps the names used in configs to constructors.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn

from tlax.models.layers import conv
from tlax.models.layers import max_pool
from tlax.models.lenet import LeNet
from tlax.models.mlp import MLP
from tlax.models.resnet import BasicBlock, ResNet
from tlax.models.resnet_tv import TorchvisionResNet
from tlax.models.vit import VisionTransformer
from tlax.models.vit import ViT_B16, ViT_S16

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "lenet": LeNet,
    "resnet8": functools.partial(ResNet, depth=8),
    "resnet14": functools.partial(ResNet, depth=14),
    "resnet20": functools.partial(ResNet, depth=20),
    "resnet32": functools.partial(ResNet, depth=32),
    # ImageNet backbones (torchvision / timm layouts; tlax.models.convert).
    "resnet18_tv": functools.partial(TorchvisionResNet, depth=18),
    "resnet34_tv": functools.partial(TorchvisionResNet, depth=34),
    "resnet50_tv": functools.partial(TorchvisionResNet, depth=50),
    "vit_s16": ViT_S16,
    "vit_b16": ViT_B16,
    "vit": VisionTransformer,
}


def get_model(name: str, num_classes: int, **kwargs: Any) -> nn.Module:
  """The model registered as ``name`` with ``num_classes`` outputs.

  ``kwargs`` are the model's attributes, e.g.
  ``get_model("mlp", 10, hidden=(512,), dropout=0.5)``.
  """
  try:
    ctor = MODELS[name]
  except KeyError:
    raise KeyError(f"Unknown model {name!r}; registered models: "
                   f"{', '.join(sorted(MODELS))}.") from None
  return ctor(num_classes=num_classes, **kwargs)


__all__ = ["MODELS", "get_model", "MLP", "LeNet", "ResNet", "BasicBlock",
           "TorchvisionResNet", "VisionTransformer", "conv", "max_pool"]
