"""Pieces shared by the pretrained backbones: the input step and the
bottleneck classifier head of the deep domain-adaptation recipe.

Both are plain functions called inside a module's ``@nn.compact``
``__call__``, so the layers they create belong to that module and keep the
flat names the fine-tuning rules address (``bottleneck``, ``bottleneck_bn``,
``head``).

The bottleneck head (Long et al., 2015; TLlib's ``ImageClassifier``)::

    backbone features -> Dense(d) -> BatchNorm -> ReLU -> [dropout] -> head

with ``d = 256`` in the published Office-31 / Office-Home / VisDA setting.

References:
  Long, Cao, Wang, Jordan. Learning transferable features with deep
  adaptation networks. ICML 2015.
  Jiang, Chen, Fu, Long, Wang. Transfer-Learning-library (TLlib), 2020.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.models import preprocess

Array = jax.Array


def prepare_input(module: nn.Module, x: Array, *, train: bool,
                  augment: bool, crop_scale: Sequence[float],
                  normalization: str, dtype: Any) -> Array:
  """Images ``(n, H, W, C)`` in [0, 1] -> augmented, normalised input.

  Augmentation (random resized crop with area ``crop_scale``, horizontal
  flip) runs when ``train`` and ``augment`` are set and the module was given
  a ``"dropout"`` PRNG stream (as every tlax method does in its training
  loss); evaluation-mode calls see the images as they are.
  """
  x = jnp.asarray(x)
  if x.ndim != 4:
    raise ValueError(f"Expected images (batch, height, width, channels), got "
                     f"an array of shape {x.shape}.")
  x = x.astype(jnp.float32)
  if train and augment and module.has_rng("dropout"):
    x = preprocess.augment(module.make_rng("dropout"), x,
                           scale=tuple(crop_scale))
  return preprocess.normalize_named(x, normalization).astype(dtype)


def bottleneck_head(h: Array, feats: dict, *, num_classes: int,
                    bottleneck: int | None, dropout: float, train: bool,
                    bn_momentum: float, dtype: Any, param_dtype: Any
                    ) -> Array:
  """Optional ``bottleneck`` (Dense + BatchNorm + ReLU), dropout, ``head``.

  Writes ``feats["bottleneck"]`` (when set) and ``feats["embedding"]`` (the
  head's input) and returns float32 logits.
  """
  if bottleneck:
    h = nn.Dense(bottleneck, dtype=dtype, param_dtype=param_dtype,
                 name="bottleneck")(h)
    h = nn.BatchNorm(use_running_average=not train, momentum=bn_momentum,
                     epsilon=1e-5, dtype=dtype, param_dtype=param_dtype,
                     name="bottleneck_bn")(h)
    h = nn.relu(h)
    feats["bottleneck"] = h
  if dropout > 0:
    h = nn.Dropout(dropout, deterministic=not train)(h)
  feats["embedding"] = h
  logits = nn.Dense(num_classes, dtype=dtype, param_dtype=param_dtype,
                    name="head")(h)
  return logits.astype(jnp.float32)
