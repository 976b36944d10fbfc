r"""Writes the reference fixtures of the backbone converters (needs torch).

For a small network of each family, with random weights (BatchNorm
statistics included), saves the PyTorch state dict as ``.safetensors`` and
the eval-mode outputs of the PyTorch model on a fixed input, so that
``tests/test_backbones.py`` checks, without torch, that the converted flax
model computes the same function. The networks are the real torchvision and
timm classes at small widths:

* ``resnet18_tiny``: torchvision ``ResNet`` with ``BasicBlock`` [2, 2, 2, 2],
  stem 8, widths (4, 8, 8, 16), 5 classes, 32x32 input;
* ``resnet50_tiny``: torchvision ``ResNet`` with ``Bottleneck`` [3, 4, 6, 3]
  (the ResNet-50 layout, stride on the 3x3), stem 8, widths (4, 8, 8, 8);
* ``vit_tiny``: timm ``VisionTransformer``, 32x32 input, patch 8, width 32,
  2 blocks, 4 heads, MLP 128, class token, 5 classes.

It also writes the names and shapes of every tensor of the full-size
torchvision ``resnet18``, ``resnet34``, ``resnet50`` and timm
``vit_small_patch16_224``, ``vit_base_patch16_224`` (random initialisation,
nothing downloaded) to ``tests/fixtures/backbones/layouts.json``, so that the
tests also check the full-size layouts name by name.

COMMAND (torch==2.13.0 CPU, torchvision, timm; pip install -e .[bench]):
  python -m experiments.make_backbone_fixtures --out=tests/fixtures/backbones
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def _import_torchvision():
  """Imports torchvision; only its pure-Python models are used here.

  A torchvision wheel built for another torch variant (CUDA against a CPU
  torch) cannot load its C++ operators, and its import then stops at the
  registration of ``torchvision::nms``; declaring the two operator schemas
  first lets the import finish (the operators themselves are never called).
  """
  import sys  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  try:
    import torchvision  # pylint: disable=g-import-not-at-top
  except RuntimeError as e:
    if "torchvision::nms" not in str(e):
      raise
    for name in [m for m in sys.modules if m.startswith("torchvision")]:
      del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
      lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) "
                 "-> Tensor")
    _import_torchvision.lib = lib  # keep the definitions alive
    import torchvision  # pylint: disable=g-import-not-at-top
  return torchvision


def _small_resnet(block, layers, stem, widths, num_classes):
  """torchvision's ResNet with its own blocks and _make_layer, small widths."""
  import torch.nn as nn  # pylint: disable=g-import-not-at-top
  from torchvision.models import resnet as tv  # pylint: disable=g-import-not-at-top

  class SmallResNet(tv.ResNet):

    def __init__(self):  # pylint: disable=super-init-not-called
      nn.Module.__init__(self)
      self._norm_layer = nn.BatchNorm2d
      self.inplanes = stem
      self.dilation = 1
      self.groups = 1
      self.base_width = 64
      self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3,
                             bias=False)
      self.bn1 = nn.BatchNorm2d(stem)
      self.relu = nn.ReLU(inplace=True)
      self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
      self.layer1 = self._make_layer(block, widths[0], layers[0])
      self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
      self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
      self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
      self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
      self.fc = nn.Linear(widths[3] * block.expansion, num_classes)

  return SmallResNet()


def _randomise_bn(model, gen):
  import torch  # pylint: disable=g-import-not-at-top
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d)):
        m.weight.uniform_(0.5, 1.5, generator=gen)
        m.bias.uniform_(-0.3, 0.3, generator=gen)
        m.running_mean.uniform_(-0.3, 0.3, generator=gen)
        m.running_var.uniform_(0.5, 1.5, generator=gen)


def _randomise_vit(model, gen):
  import torch  # pylint: disable=g-import-not-at-top
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name in ("cls_token", "pos_embed") or "norm" in name \
          or name.endswith("bias"):
        p.normal_(0.0, 0.2, generator=gen)
        if "norm" in name and name.endswith("weight"):
          p.add_(1.0)


def _save(out, name, model, x_unit, x_norm, extra):
  import torch  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  model.eval()
  with torch.no_grad():
    logits = model(torch.from_numpy(x_norm.transpose(0, 3, 1, 2)))
    pool = extra(model, torch.from_numpy(x_norm.transpose(0, 3, 1, 2)))
  state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
  save_file(state, os.path.join(out, f"{name}.safetensors"))
  save_file({"x": x_unit, "logits": logits.numpy().astype(np.float32),
             "pool": pool.numpy().astype(np.float32)},
            os.path.join(out, f"{name}_io.safetensors"))
  print(f"{name}: {sum(v.size for v in state.values())} weights, logits "
        f"{tuple(logits.shape)}")


def _resnet_pool(model, x):
  import torch  # pylint: disable=g-import-not-at-top
  h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
  for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
    h = layer(h)
  return torch.flatten(model.avgpool(h), 1)


def _vit_pool(model, x):
  return model.forward_head(model.forward_features(x), pre_logits=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="tests/fixtures/backbones")
  args = parser.parse_args()
  import torch  # pylint: disable=g-import-not-at-top
  torchvision = _import_torchvision()
  import timm  # pylint: disable=g-import-not-at-top
  from torchvision.models import resnet as tv  # pylint: disable=g-import-not-at-top

  os.makedirs(args.out, exist_ok=True)
  torch.manual_seed(0)
  gen = torch.Generator().manual_seed(0)
  rng = np.random.default_rng(0)
  x_unit = rng.uniform(0.0, 1.0, (2, 32, 32, 3)).astype(np.float32)
  mean = np.asarray([0.485, 0.456, 0.406], np.float32)
  std = np.asarray([0.229, 0.224, 0.225], np.float32)
  x_imagenet = (x_unit - mean) / std
  x_inception = (x_unit - 0.5) / 0.5

  r18 = _small_resnet(tv.BasicBlock, [2, 2, 2, 2], 8, (4, 8, 8, 16), 5)
  _randomise_bn(r18, gen)
  _save(args.out, "resnet18_tiny", r18, x_unit, x_imagenet, _resnet_pool)
  r50 = _small_resnet(tv.Bottleneck, [3, 4, 6, 3], 8, (4, 8, 8, 8), 5)
  _randomise_bn(r50, gen)
  _save(args.out, "resnet50_tiny", r50, x_unit, x_imagenet, _resnet_pool)
  vit = timm.models.vision_transformer.VisionTransformer(
      img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4,
      mlp_ratio=4.0, num_classes=5, class_token=True, global_pool="token")
  _randomise_vit(vit, gen)
  _save(args.out, "vit_tiny", vit, x_unit, x_inception, _vit_pool)

  layouts = {}
  for name in ("resnet18", "resnet34", "resnet50"):
    sd = getattr(torchvision.models, name)(weights=None).state_dict()
    layouts[f"torchvision_{name}"] = {
        k: [list(v.shape), str(v.dtype).replace("torch.", "")]
        for k, v in sd.items()}
  for name in ("vit_small_patch16_224", "vit_base_patch16_224"):
    sd = timm.create_model(name, pretrained=False).state_dict()
    layouts[f"timm_{name}"] = {
        k: [list(v.shape), str(v.dtype).replace("torch.", "")]
        for k, v in sd.items()}
  with open(os.path.join(args.out, "layouts.json"), "w") as f:
    json.dump({"torch": torch.__version__,
               "torchvision": torchvision.__version__,
               "timm": timm.__version__, "layouts": layouts}, f, indent=0)
  print("layouts:", ", ".join(layouts))


if __name__ == "__main__":
  main()
