"""Small CIFAR-style ResNets (He et al., 2016, Sec. 4.2): depth 6n+2."""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.models import layers
from tlax.models.lenet import as_images

Array = jax.Array


class BasicBlock(nn.Module):
  """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus shortcut, then ReLU.

  The shortcut is a 1x1 strided convolution + BN when the shape changes
  (option B of He et al.), else the identity.
  """
  features: int
  strides: int = 1
  conv: Any = layers.conv
  norm: Any = nn.BatchNorm

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = self.conv(self.features, 3, strides=self.strides, use_bias=False,
                  name="conv1")(x)
    y = nn.relu(self.norm(name="bn1")(y))
    y = self.conv(self.features, 3, use_bias=False, name="conv2")(y)
    y = self.norm(name="bn2")(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = self.conv(self.features, 1, strides=self.strides, use_bias=False,
                    name="shortcut_conv")(x)
      x = self.norm(name="shortcut_bn")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """CIFAR-style ResNet: 3x3 stem, three stages of ``n`` basic blocks.

  ``depth = 6n + 2`` (8, 14, 20, 32, 44, 56); stage widths ``widths``
  (16, 32, 64), the 2nd and 3rd stages downsample by 2; global average pool;
  optional ``bottleneck`` Dense + ReLU; ``head`` Dense. Works on any image
  size (16x16 digits, 28x28, 32x32) and channel count.

  BatchNorm uses batch statistics and updates ``batch_stats`` when
  ``train=True`` (call ``apply`` with ``mutable=["batch_stats"]``) and the
  running averages when ``train=False``.

  Features: ``"stem"``, ``"stage1"``, ``"stage2"``, ``"stage3"`` (block
  outputs), ``"pool"`` (global average pool), ``"bottleneck"`` (when set),
  ``"embedding"`` (exactly the input of ``head``: ``"pool"``, or the
  bottleneck after dropout).

  Attributes:
    num_classes: number of classes.
    depth: 6n+2.
    widths: channels of the stages (the stem has ``widths[0]``).
    bottleneck: optional width of a Dense + ReLU layer before the head.
    dropout: dropout rate before the head.
    bn_momentum: BatchNorm running-average momentum.
    bn_axis_name: optional axis name for cross-device BatchNorm statistics
      (the trainer's pmap axis); the model itself knows no devices.
    input_shape: ``(h, w[, c])`` to reshape flat input rows to.
    conv_impl: ``"xla"`` (``nn.Conv``) or an opt-in form of
      :mod:`tlax.kernels.conv` (:func:`tlax.models.layers.conv`).
    dtype: computation dtype; parameters are ``param_dtype``; logits float32.
  """
  num_classes: int
  depth: int = 20
  widths: Sequence[int] = (16, 32, 64)
  bottleneck: int | None = None
  dropout: float = 0.0
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None
  input_shape: Sequence[int] | None = None
  conv_impl: str = "xla"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False
               ) -> tuple[Array, dict[str, Array]]:
    if self.depth < 8 or (self.depth - 2) % 6:
      raise ValueError(f"ResNet depth must be 6n+2 >= 8, got {self.depth}.")
    n = (self.depth - 2) // 6
    conv = functools.partial(layers.conv, impl=self.conv_impl, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             axis_name=self.bn_axis_name, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    h = as_images(x, self.input_shape).astype(self.dtype)
    feats = {}
    h = conv(self.widths[0], 3, use_bias=False, name="stem_conv")(h)
    h = nn.relu(norm(name="stem_bn")(h))
    feats["stem"] = h
    for s, width in enumerate(self.widths):
      for b in range(n):
        strides = 2 if s > 0 and b == 0 else 1
        h = BasicBlock(width, strides, conv=conv, norm=norm,
                       name=f"stage{s + 1}_block{b + 1}")(h)
      feats[f"stage{s + 1}"] = h
    h = jnp.mean(h, axis=(1, 2))
    feats["pool"] = h
    if self.bottleneck:
      h = nn.relu(nn.Dense(self.bottleneck, dtype=self.dtype,
                           param_dtype=self.param_dtype, name="bottleneck")(h))
      feats["bottleneck"] = h
    if self.dropout > 0:
      h = nn.Dropout(self.dropout, deterministic=not train)(h)
    feats["embedding"] = h
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(h)
    return logits.astype(jnp.float32), feats
