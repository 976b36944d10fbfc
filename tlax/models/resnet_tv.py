"""ImageNet ResNets in the torchvision layout: ResNet-18, -34, -50.

The network of He et al. (2016) as torchvision builds it, so that its
ImageNet weights convert one to one (:mod:`tlax.models.convert`):

* stem: 7x7 convolution, stride 2, padding 3 (no bias) -> BatchNorm -> ReLU
  -> 3x3 max pool, stride 2, padding 1;
* four stages of ``layers[s]`` blocks, widths ``64, 128, 256, 512``; the
  first block of stages 2-4 downsamples by 2;
* basic block (ResNet-18/34): 3x3 -> BN -> ReLU -> 3x3 -> BN;
  bottleneck block (ResNet-50): 1x1 -> BN -> ReLU -> 3x3 -> BN -> ReLU ->
  1x1 (4x width) -> BN, with the stride on the 3x3 convolution ("ResNet
  v1.5", torchvision's convention; the original v1 strides the first 1x1);
* shortcut: identity, or a 1x1 strided convolution + BN ("downsample") when
  the shape changes; ReLU after the sum;
* global average pool -> optional bottleneck (:mod:`tlax.models.heads`) ->
  ``head``.

BatchNorm: epsilon 1e-5, running-average momentum 0.9 (torchvision's 0.1),
batch statistics when ``train=True`` (``mutable=["batch_stats"]``), running
averages otherwise.

Parameter names mirror torchvision's with ``.`` replaced by ``_`` at the
module level: ``conv1``, ``bn1``, ``layer3_1/conv2``,
``layer2_0/downsample_conv``, ``layer2_0/downsample_bn``; torchvision's ``fc``
is ``head``.

Features: ``"stem"`` (after the max pool), ``"layer1"`` ... ``"layer4"``,
``"pool"`` (global average, 512 or 2048 wide), ``"bottleneck"`` (when set),
``"embedding"`` (the head's input).

References:
  He, Zhang, Ren, Sun. Deep residual learning for image recognition. CVPR
  2016.
  Goyal et al. Accurate, large minibatch SGD: training ImageNet in 1 hour,
  2017 (the stride on the 3x3 convolution).
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.models import heads

Array = jax.Array

# name -> (block, blocks per stage)
DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
          50: ("bottleneck", (3, 4, 6, 3))}
EXPANSION = {"basic": 1, "bottleneck": 4}

# torchvision's initialisation: He normal over fan-out for convolutions.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _conv(features, kernel, stride=1, *, name, dtype, param_dtype):
  pad = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                 padding=((pad, pad), (pad, pad)), use_bias=False,
                 kernel_init=conv_init, dtype=dtype, param_dtype=param_dtype,
                 name=name)


class TVBlock(nn.Module):
  """One residual block (``kind`` "basic" or "bottleneck"), torchvision
  layout; ``planes`` is the stage width before expansion."""
  kind: str
  planes: int
  stride: int = 1
  norm: Any = nn.BatchNorm
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    conv = functools.partial(_conv, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    out_width = self.planes * EXPANSION[self.kind]
    if self.kind == "basic":
      y = nn.relu(self.norm(name="bn1")(
          conv(self.planes, 3, self.stride, name="conv1")(x)))
      y = self.norm(name="bn2")(conv(self.planes, 3, name="conv2")(y))
    else:
      y = nn.relu(self.norm(name="bn1")(conv(self.planes, 1, name="conv1")(x)))
      y = nn.relu(self.norm(name="bn2")(
          conv(self.planes, 3, self.stride, name="conv2")(y)))
      y = self.norm(name="bn3")(conv(out_width, 1, name="conv3")(y))
    if self.stride != 1 or x.shape[-1] != out_width:
      x = conv(out_width, 1, self.stride, name="downsample_conv")(x)
      x = self.norm(name="downsample_bn")(x)
    return nn.relu(x + y)


class TorchvisionResNet(nn.Module):
  """ResNet-18/34/50 in the torchvision layout (see the module docstring).

  Attributes:
    num_classes: size of the ``head``.
    depth: 18, 34 or 50.
    widths: stage widths before expansion (64, 128, 256, 512); smaller ones
      make test-sized networks of the same layout.
    stem_width: channels of the stem (64).
    bottleneck: optional width of the Dense + BatchNorm + ReLU bottleneck
      before the head (256 in the deep domain-adaptation recipe).
    dropout: dropout rate before the head.
    augment: random resized crop + flip in training (needs the "dropout"
      PRNG stream, which the tlax methods pass).
    crop_scale: area range of the random crops ((0.08, 1) as in ImageNet
      training; DomainBed uses (0.7, 1)).
    normalization: input statistics, ``"imagenet"`` (torchvision's mean and
      std over images in [0, 1]), ``"inception"`` or ``"none"``.
    bn_momentum: BatchNorm running-average momentum.
    bn_axis_name: optional axis name for cross-device BatchNorm statistics.
    dtype, param_dtype: computation and parameter dtypes; logits float32.
  """
  num_classes: int
  depth: int = 50
  widths: Sequence[int] = (64, 128, 256, 512)
  stem_width: int = 64
  bottleneck: int | None = None
  dropout: float = 0.0
  augment: bool = False
  crop_scale: Sequence[float] = (0.08, 1.0)
  normalization: str = "imagenet"
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False
               ) -> tuple[Array, dict[str, Array]]:
    if self.depth not in DEPTHS:
      raise ValueError(f"TorchvisionResNet depth must be one of "
                       f"{sorted(DEPTHS)}, got {self.depth}.")
    if len(self.widths) != 4:
      raise ValueError(f"widths must have 4 entries, got {self.widths!r}.")
    kind, blocks = DEPTHS[self.depth]
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             axis_name=self.bn_axis_name, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    h = heads.prepare_input(self, x, train=train, augment=self.augment,
                            crop_scale=self.crop_scale,
                            normalization=self.normalization, dtype=self.dtype)
    feats = {}
    h = _conv(self.stem_width, 7, 2, name="conv1", dtype=self.dtype,
              param_dtype=self.param_dtype)(h)
    h = nn.relu(norm(name="bn1")(h))
    h = nn.max_pool(h, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    feats["stem"] = h
    for s, (planes, n) in enumerate(zip(self.widths, blocks)):
      for b in range(n):
        stride = 2 if s > 0 and b == 0 else 1
        h = TVBlock(kind, planes, stride, norm=norm, dtype=self.dtype,
                    param_dtype=self.param_dtype, name=f"layer{s + 1}_{b}")(h)
      feats[f"layer{s + 1}"] = h
    h = jnp.mean(h, axis=(1, 2))
    feats["pool"] = h
    logits = heads.bottleneck_head(
        h, feats, num_classes=self.num_classes, bottleneck=self.bottleneck,
        dropout=self.dropout, train=train, bn_momentum=self.bn_momentum,
        dtype=self.dtype, param_dtype=self.param_dtype)
    return logits, feats


ResNet18 = functools.partial(TorchvisionResNet, depth=18)
ResNet34 = functools.partial(TorchvisionResNet, depth=34)
ResNet50 = functools.partial(TorchvisionResNet, depth=50)
