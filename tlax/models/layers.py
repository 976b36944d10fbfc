"""Layers of the tlax models: :func:`conv` and :func:`max_pool`.

The models compute the same function with the same program on every
backend: convolutions are flax's ``nn.Conv`` (XLA's convolution) and pooling
is :func:`max_pool`, plain ``jax.numpy`` with the values and gradients of
``nn.max_pool``. Faster CPU forms of the convolution (im2col, Winograd, a
native C++ conv + pool kernel) live in :mod:`tlax.kernels.conv` and are used
only when a model is asked for them (``conv_impl`` other than ``"xla"``,
e.g. ``--config.model.kwargs.conv_impl=native``).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from tlax.models.pooling import _pair
from tlax.models.pooling import max_pool

Array = jax.Array


def conv(features: int, kernel_size, *, impl: str = "xla", **kwargs
         ) -> nn.Module:
  """A 2-D convolution layer: ``nn.Conv`` for ``impl="xla"``.

  Any other ``impl`` (``"auto"``, ``"patches"``, ``"im2col"``,
  ``"winograd"``, ``"native"``) is the opt-in :class:`tlax.kernels.conv.Conv`
  of that form, with the same parameters (``kernel`` HWIO, ``bias``), so
  checkpoints move between the two.

  Args:
    features: output channels.
    kernel_size: int or ``(kh, kw)``.
    impl: ``"xla"`` or a form of :mod:`tlax.kernels.conv`.
    **kwargs: ``strides``, ``padding``, ``use_bias``, ``dtype``,
      ``param_dtype``, ``name``, ... as ``nn.Conv`` takes them.
  """
  if impl == "xla":
    strides = kwargs.pop("strides", 1)
    return nn.Conv(features, _pair(kernel_size, "kernel_size"),
                   strides=_pair(strides, "strides"), **kwargs)
  from tlax.kernels import conv as kernels_conv  # pylint: disable=g-import-not-at-top
  return kernels_conv.Conv(features, kernel_size, impl=impl, **kwargs)


def conv_pool(x: Array, features: int, kernel_size, *, impl: str = "xla",
              pool: int = 2, **kwargs) -> Array:
  """``max_pool(conv(...)(x), pool)``; the opt-in kernels may fuse the two
  (:class:`tlax.kernels.conv.Conv` called with ``pool``)."""
  layer = conv(features, kernel_size, impl=impl, **kwargs)
  if impl == "xla":
    return max_pool(layer(x), pool)
  return layer(x, pool=pool)
