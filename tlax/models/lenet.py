"""The LeNet-style digit network of DANN (Ganin et al., 2016)."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.models import layers

Array = jax.Array


def as_images(x: Array, input_shape: Sequence[int] | None = None) -> Array:
  """``x`` as an NHWC batch.

  ``(n, h, w)`` gets a channel axis; ``(n, d)`` rows are reshaped to
  ``input_shape`` (``(h, w)`` or ``(h, w, c)``), which flat inputs require.
  """
  x = jnp.asarray(x)
  if input_shape is not None:
    x = x.reshape(x.shape[0], *input_shape)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4:
    raise ValueError(
        f"expected images (n, h, w) or (n, h, w, c), got shape {x.shape}; "
        "for flat rows pass input_shape=(h, w) or (h, w, c).")
  return x


class LeNet(nn.Module):
  """The MNIST network of DANN (Ganin et al., 2016, JMLR, Sec. 5.2 / Fig. 4).

  Feature extractor: conv 5x5, 32 -> ReLU -> max-pool 2x2/2 -> conv 5x5, 48
  -> ReLU -> max-pool 2x2/2 -> flatten (``"flat"``, the feature the DANN
  domain classifier reads). Label predictor: fc 100 -> ReLU -> fc 100 -> ReLU
  -> ``head`` (fc C).

  Padding: the convolutions use ``padding="SAME"`` by default (the paper's
  28x28 MNIST net is VALID), so that the 16x16 digits of the ``mnist_usps``
  benchmark (tlax's default digit size) keep a 4x4 map after two poolings.
  Flat feature size ``(h/4) * (w/4) * 48``: 768 for 16x16, 2352 for 28x28,
  3072 for 32x32. ``padding="VALID"`` gives the paper's 768-d feature on
  28x28 (16x16 then shrinks to 1x1, 48-d).

  Inputs: ``(n, h, w)``, ``(n, h, w, c)`` (1 or 3 channels, any size that
  survives the two poolings), or flat rows with ``input_shape`` set.

  Features: ``"conv1"``, ``"conv2"`` (after ReLU and pooling), ``"flat"``,
  ``"fc1"``, ``"fc2"`` (after ReLU, before dropout), ``"bottleneck"`` (when
  set), ``"embedding"`` (exactly the input of ``head``).

  Attributes:
    num_classes: number of classes.
    conv_features: channels of the two convolutions.
    kernel_size: convolution window.
    hidden: widths of the label predictor's hidden layers ``fc1, fc2, ...``.
    bottleneck: optional width of a Dense + ReLU ``bottleneck`` before the head.
    dropout: dropout rate after each hidden/bottleneck activation.
    padding: convolution padding, ``"SAME"`` or ``"VALID"``.
    input_shape: ``(h, w[, c])`` to reshape flat input rows to.
    conv_impl: ``"xla"``: ``nn.Conv`` and :func:`tlax.models.layers.max_pool`
      (the same program on every backend); any other value is an opt-in
      CPU form of :mod:`tlax.kernels.conv` (``"native"``: the C++ conv +
      bias + pool kernel, compiled on first use; ``"auto"``: chosen there by
      backend and shape), with the same parameters and values to float32
      rounding.
    dtype: computation dtype; parameters are ``param_dtype``; logits float32.
  """
  num_classes: int
  conv_features: Sequence[int] = (32, 48)
  kernel_size: int = 5
  hidden: Sequence[int] = (100, 100)
  bottleneck: int | None = None
  dropout: float = 0.0
  padding: str = "SAME"
  input_shape: Sequence[int] | None = None
  conv_impl: str = "xla"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False
               ) -> tuple[Array, dict[str, Array]]:
    h = as_images(x, self.input_shape).astype(self.dtype)
    feats = {}
    for i, width in enumerate(self.conv_features):
      # relu(max_pool(h)) == max_pool(relu(h)); ReLU on 4x fewer values.
      h = nn.relu(layers.conv_pool(
          h, width, self.kernel_size, impl=self.conv_impl, pool=2,
          padding=self.padding, dtype=self.dtype,
          param_dtype=self.param_dtype, name=f"conv{i + 1}"))
      feats[f"conv{i + 1}"] = h
    h = h.reshape(h.shape[0], -1)
    feats["flat"] = h
    widths = [(f"fc{i + 1}", w) for i, w in enumerate(self.hidden)]
    if self.bottleneck:
      widths.append(("bottleneck", self.bottleneck))
    for name, width in widths:
      h = nn.relu(nn.Dense(width, dtype=self.dtype,
                           param_dtype=self.param_dtype, name=name)(h))
      feats[name] = h
      if self.dropout > 0:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
    feats["embedding"] = h
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(h)
    return logits.astype(jnp.float32), feats
