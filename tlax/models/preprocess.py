"""Input pipeline of the pretrained backbones, on device: augmentation and
ImageNet normalisation.

Domains hold images in [0, 1] (:mod:`tlax.data.domains`). The ImageNet
backbones (:mod:`tlax.models.resnet_tv`, :mod:`tlax.models.vit`) expect the
normalisation their weights were trained with, and the deep domain-adaptation
recipe (TLlib, DomainBed) trains on random resized crops with horizontal
flips. Both run inside the jitted step, as pure functions of a PRNG key:

* :func:`random_resized_crop`: a crop of area fraction ``s ~ U(scale)`` of the
  image and aspect ratio ``r`` with ``log r ~ U(log ratio)``, at a uniform
  position, resampled (bilinear, antialiased) to the input size;
* :func:`random_flip`: a horizontal flip with probability 1/2;
* :func:`normalize`: ``(x - mean) / std`` per channel.

References:
  Szegedy et al. Going deeper with convolutions. CVPR 2015 (random resized
  crops). Gulrajani, Lopez-Paz. In search of lost domain generalization. ICLR
  2021 (DomainBed's crop scale (0.7, 1)).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array

# torchvision's ImageNet statistics (RGB, images in [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Inception / big_vision ViT statistics: x in [0, 1] -> [-1, 1].
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
NORMALIZATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD),
                  "inception": (INCEPTION_MEAN, INCEPTION_STD),
                  "none": None}


def normalize(x: Array, mean: Sequence[float], std: Sequence[float]) -> Array:
  """``(x - mean) / std`` over the last (channel) axis.

  Grey images (one channel) use the mean of ``mean`` and of ``std``.
  """
  mean = jnp.asarray(mean, x.dtype)
  std = jnp.asarray(std, x.dtype)
  if x.shape[-1] != mean.shape[0]:
    if x.shape[-1] != 1:
      raise ValueError(f"Cannot normalise {x.shape[-1]}-channel images with "
                       f"{mean.shape[0]}-channel statistics.")
    mean, std = jnp.mean(mean, keepdims=True), jnp.mean(std, keepdims=True)
  return (x - mean) / std


def normalize_named(x: Array, name: str) -> Array:
  """:func:`normalize` with the statistics called ``name``
  (:data:`NORMALIZATIONS`: ``"imagenet"``, ``"inception"``, ``"none"``)."""
  try:
    stats = NORMALIZATIONS[name]
  except KeyError:
    raise ValueError(f"Unknown input normalisation {name!r}; valid: "
                     f"{', '.join(NORMALIZATIONS)}.") from None
  return x if stats is None else normalize(x, *stats)


def crop_boxes(rng: Array, n: int, height: int, width: int,
               scale: Sequence[float] = (0.08, 1.0),
               ratio: Sequence[float] = (3 / 4, 4 / 3)) -> Array:
  """Random crop boxes ``(n, 4)``: ``(top, left, h, w)`` in pixels, float32.

  The area fraction is ``U(scale)``, the aspect ratio ``w / h`` is
  log-uniform in ``ratio``; a box larger than the image is clipped to it.
  """
  k_area, k_ratio, k_y, k_x = jax.random.split(rng, 4)
  area = height * width * jax.random.uniform(
      k_area, (n,), minval=scale[0], maxval=scale[1])
  log_r = jax.random.uniform(k_ratio, (n,), minval=math.log(ratio[0]),
                             maxval=math.log(ratio[1]))
  r = jnp.exp(log_r)
  w = jnp.clip(jnp.sqrt(area * r), 1.0, width)
  h = jnp.clip(jnp.sqrt(area / r), 1.0, height)
  top = jax.random.uniform(k_y, (n,)) * (height - h)
  left = jax.random.uniform(k_x, (n,)) * (width - w)
  return jnp.stack([top, left, h, w], axis=1)


def crop_and_resize(images: Array, boxes: Array) -> Array:
  """Each image's box resampled to the full image size (bilinear,
  antialiased when the box is larger than the output).

  Args:
    images: ``(n, H, W, C)``.
    boxes: ``(n, 4)`` ``(top, left, h, w)`` in pixels.

  Returns:
    ``(n, H, W, C)``.
  """
  _, height, width, _ = images.shape

  def one(img, box):
    top, left, h, w = box[0], box[1], box[2], box[3]
    scale = jnp.stack([height / h, width / w])
    translation = -jnp.stack([top, left]) * scale
    return jax.image.scale_and_translate(
        img, img.shape, spatial_dims=(0, 1), scale=scale,
        translation=translation, method="linear", antialias=True)

  return jax.vmap(one)(images, boxes.astype(images.dtype))


def random_resized_crop(rng: Array, images: Array,
                        scale: Sequence[float] = (0.08, 1.0),
                        ratio: Sequence[float] = (3 / 4, 4 / 3)) -> Array:
  """Random resized crops of ``(n, H, W, C)`` images, same output size."""
  n, height, width, _ = images.shape
  boxes = crop_boxes(rng, n, height, width, scale, ratio)
  return crop_and_resize(images, boxes)


def random_flip(rng: Array, images: Array) -> Array:
  """Flips each ``(n, H, W, C)`` image left-right with probability 1/2."""
  flip = jax.random.bernoulli(rng, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1], images)


def augment(rng: Array, images: Array,
            scale: Sequence[float] = (0.08, 1.0),
            ratio: Sequence[float] = (3 / 4, 4 / 3),
            flip: bool = True) -> Array:
  """Random resized crop then (optionally) random horizontal flip."""
  k_crop, k_flip = jax.random.split(rng)
  out = random_resized_crop(k_crop, images, scale, ratio)
  return random_flip(k_flip, out) if flip else out
