"""Vision Transformers: ViT-S/16 and ViT-B/16 (Dosovitskiy et al., 2021).

The network of google-research/vision_transformer, whose ImageNet-21k
"AugReg" checkpoints (Steiner et al., 2022) are the weights timm's
``vit_small_patch16_224`` and ``vit_base_patch16_224`` were converted from:

* patch embedding: a ``p x p`` convolution with stride ``p`` (``embedding``);
* a learned class token (``cls``) prepended, a learned position embedding
  over all tokens added (``Transformer/posembed_input/pos_embedding``);
* ``depth`` pre-norm blocks ``Transformer/encoderblock_<i>``: LayerNorm ->
  multi-head self-attention -> residual, LayerNorm -> MLP (Dense, GELU,
  Dense) -> residual; LayerNorm epsilon 1e-6, exact (erf) GELU;
* ``Transformer/encoder_norm``, then the class token (``classifier="token"``)
  or the mean of the patch tokens (``"gap"``) -> optional bottleneck
  (:mod:`tlax.models.heads`) -> ``head``.

Parameter names are those of the flax checkpoints (``.npz``) of that
release, so they load as they are; timm's names convert one to one
(:mod:`tlax.models.convert`).

Features: ``"patches"`` (patch embeddings ``(n, h*w, D)``), ``"tokens"``
(encoder output after the final norm, ``(n, T, D)``), ``"pool"`` (class token
or mean), ``"bottleneck"`` (when set), ``"embedding"`` (the head's input).

References:
  Dosovitskiy et al. An image is worth 16x16 words: transformers for image
  recognition at scale. ICLR 2021.
  Steiner et al. How to train your ViT? Data, augmentation, and
  regularization in vision transformers. TMLR 2022.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.models import heads

Array = jax.Array

LN_EPS = 1e-6


class AddPositionEmbs(nn.Module):
  """Adds a learned ``pos_embedding`` of shape ``(1, T, D)``."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    pe = self.param("pos_embedding", nn.initializers.normal(stddev=0.02),
                    (1, x.shape[1], x.shape[2]), jnp.float32)
    return x + pe.astype(x.dtype)


class MlpBlock(nn.Module):
  """Dense (``mlp_dim``) -> GELU -> Dense (input width)."""
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    dense = functools.partial(
        nn.Dense, dtype=self.dtype,
        kernel_init=nn.initializers.xavier_uniform(),
        bias_init=nn.initializers.normal(stddev=1e-6))
    y = nn.gelu(dense(self.mlp_dim, name="Dense_0")(x), approximate=False)
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    y = dense(x.shape[-1], name="Dense_1")(y)
    return nn.Dropout(self.dropout, deterministic=not train)(y)


class EncoderBlock(nn.Module):
  """Pre-norm Transformer block (attention, then MLP, each residual)."""
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    y = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="LayerNorm_0")(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype,
        kernel_init=nn.initializers.xavier_uniform(),
        deterministic=True, name="MultiHeadDotProductAttention_1")(y, y)
    y = nn.Dropout(self.dropout, deterministic=not train)(y)
    x = x + y
    y = nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype, name="LayerNorm_2")(x)
    y = MlpBlock(self.mlp_dim, self.dropout, dtype=self.dtype,
                 name="MlpBlock_3")(y, train=train)
    return x + y


class Encoder(nn.Module):
  """Position embedding, ``depth`` blocks, final LayerNorm."""
  depth: int
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    x = AddPositionEmbs(name="posembed_input")(x)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dropout,
                       dtype=self.dtype, name=f"encoderblock_{i}")(
                           x, train=train)
    return nn.LayerNorm(epsilon=LN_EPS, dtype=self.dtype,
                        name="encoder_norm")(x)


class VisionTransformer(nn.Module):
  """ViT classifier (see the module docstring).

  Attributes:
    num_classes: size of the ``head``.
    patch_size: patch side ``p`` (16).
    hidden_size: token width ``D`` (384 for ViT-S, 768 for ViT-B).
    depth: number of blocks (12).
    num_heads: attention heads (6 for ViT-S, 12 for ViT-B).
    mlp_dim: hidden width of the MLP blocks (4 D).
    classifier: ``"token"`` (class token, as the AugReg and timm weights) or
      ``"gap"`` (mean of the patch tokens after the final norm; no class
      token).
    bottleneck: optional Dense + BatchNorm + ReLU width before the head.
    dropout: dropout rate in the blocks (0 for fine-tuning).
    head_dropout: dropout rate before the head.
    augment, crop_scale: training-time random resized crop and flip.
    normalization: input statistics: ``"inception"`` ([0, 1] -> [-1, 1],
      the AugReg weights') or ``"imagenet"``.
    bn_momentum: momentum of the bottleneck's BatchNorm.
    dtype: computation dtype; parameters float32, logits float32.
  """
  num_classes: int
  patch_size: int = 16
  hidden_size: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  classifier: str = "token"
  bottleneck: int | None = None
  dropout: float = 0.0
  head_dropout: float = 0.0
  augment: bool = False
  crop_scale: Sequence[float] = (0.08, 1.0)
  normalization: str = "inception"
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False
               ) -> tuple[Array, dict[str, Array]]:
    if self.classifier not in ("token", "gap"):
      raise ValueError(f"classifier must be 'token' or 'gap', got "
                       f"{self.classifier!r}.")
    h = heads.prepare_input(self, x, train=train, augment=self.augment,
                            crop_scale=self.crop_scale,
                            normalization=self.normalization, dtype=self.dtype)
    n, height, width, _ = h.shape
    p = self.patch_size
    if height % p or width % p:
      raise ValueError(f"Image size {height}x{width} is not a multiple of the "
                       f"patch size {p}.")
    feats = {}
    h = nn.Conv(self.hidden_size, (p, p), strides=(p, p), padding="VALID",
                dtype=self.dtype, name="embedding")(h)
    h = h.reshape(n, -1, self.hidden_size)
    feats["patches"] = h
    if self.classifier == "token":
      cls = self.param("cls", nn.initializers.zeros,
                       (1, 1, self.hidden_size), jnp.float32)
      h = jnp.concatenate([jnp.broadcast_to(cls.astype(h.dtype),
                                            (n, 1, self.hidden_size)), h], 1)
    h = Encoder(self.depth, self.num_heads, self.mlp_dim, self.dropout,
                dtype=self.dtype, name="Transformer")(h, train=train)
    feats["tokens"] = h
    h = h[:, 0] if self.classifier == "token" else jnp.mean(h, axis=1)
    feats["pool"] = h
    logits = heads.bottleneck_head(
        h, feats, num_classes=self.num_classes, bottleneck=self.bottleneck,
        dropout=self.head_dropout, train=train, bn_momentum=self.bn_momentum,
        dtype=self.dtype, param_dtype=jnp.float32)
    return logits, feats


ViT_S16 = functools.partial(VisionTransformer, patch_size=16, hidden_size=384,
                            depth=12, num_heads=6, mlp_dim=1536)
ViT_B16 = functools.partial(VisionTransformer, patch_size=16, hidden_size=768,
                            depth=12, num_heads=12, mlp_dim=3072)
