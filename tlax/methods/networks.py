"""Extra networks of the deep domain-adaptation methods.

The classifier network comes from :mod:`tlax.models`; the networks here are
what some methods add next to it:

* :class:`DomainDiscriminator`: the domain classifier of DANN, CDAN, SDT and
  the DANN similarity loss of DSN (an MLP on a feature vector);
* :class:`PrivateEncoder` and :class:`SharedDecoder`: DSN's private encoders
  and the shared decoder that reconstructs an input from shared + private
  codes;
* :class:`PixelDAGenerator` and :class:`PixelDACritic`: PixelDA's residual
  generator ``G(x_s, z)`` and its real/fake discriminator.

Every network works on images ``(N, H, W, C)`` and on feature vectors
``(N, D)`` (the SURF tasks), so every method runs on every task. The
convolutions are flax's ``nn.Conv``, as in the models. All modules are pure flax.linen modules without mutable
collections (no BatchNorm), so the methods keep only parameters for them.

``train`` switches dropout on; the dropout PRNG stream is ``"dropout"``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Conv = nn.Conv

Array = jax.Array


def _flatten(x: Array) -> Array:
  return x.reshape(x.shape[0], -1)


class DomainDiscriminator(nn.Module):
  """MLP domain classifier ``x -> logit(s)``.

  Defaults follow DANN (Ganin et al., JMLR 2016, sec. 5.2.2: ``x -> 1024 ->
  1024 -> domain``, ReLU and dropout 0.5), the same as CDAN (Long et al.,
  NeurIPS 2018) and the Transfer-Learning-Library ``DomainDiscriminator``.

  Attributes:
    hidden: hidden layer widths.
    dropout: dropout rate after each hidden layer (in training).
    num_outputs: 1 (a binary logit, returned with shape ``(N,)``) or more
      (logits ``(N, num_outputs)``; SDT uses 2).
  """
  hidden: Sequence[int] = (1024, 1024)
  dropout: float = 0.5
  num_outputs: int = 1

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    x = _flatten(x)
    for i, width in enumerate(self.hidden):
      x = nn.Dense(int(width), name=f"fc{i + 1}")(x)
      x = nn.relu(x)
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_outputs, name="out")(x)
    return x[:, 0] if self.num_outputs == 1 else x


class PrivateEncoder(nn.Module):
  """DSN private encoder ``x -> h_p`` (one per domain).

  Images: conv 5x5 32 -> max-pool -> conv 5x5 64 -> max-pool -> fc
  ``code_dim`` (the private encoder of DSN's MNIST models, Bousmalis et al.,
  NeurIPS 2016, supplementary). Vectors: an MLP with ``hidden`` widths.
  """
  code_dim: int
  hidden: Sequence[int] = (256,)

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    del train
    if x.ndim == 4:
      x = nn.relu(Conv(32, (5, 5), name="conv1")(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
      x = nn.relu(Conv(64, (5, 5), name="conv2")(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
      x = _flatten(x)
    else:
      x = _flatten(x)
      for i, width in enumerate(self.hidden):
        x = nn.relu(nn.Dense(int(width), name=f"fc{i + 1}")(x))
    return nn.Dense(self.code_dim, name="code")(x)


class SharedDecoder(nn.Module):
  """DSN shared decoder ``h_c + h_p -> x_hat`` of shape ``out_shape``.

  Images ``(H, W, C)``: fc to an ``(ceil(H/2), ceil(W/2), 32)`` map -> conv
  5x5 32 -> nearest 2x upsampling -> conv 3x3 16 -> crop to ``(H, W)`` ->
  conv 3x3 ``C`` (a smaller version of DSN's MNIST decoder: fc, convs,
  upsampling, convs). Vectors ``(D,)``: an MLP with ``hidden`` widths.
  The output is linear (no squashing): inputs may be standardised.
  """
  out_shape: Sequence[int]
  hidden: Sequence[int] = (256,)

  @nn.compact
  def __call__(self, code: Array, *, train: bool = False) -> Array:
    del train
    shape = tuple(int(s) for s in self.out_shape)
    if len(shape) == 3:
      h, w, c = shape
      h0, w0 = -(-h // 2), -(-w // 2)
      x = nn.relu(nn.Dense(h0 * w0 * 32, name="fc")(code))
      x = x.reshape(code.shape[0], h0, w0, 32)
      x = nn.relu(Conv(32, (5, 5), name="conv1")(x))
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)[:, :h, :w]
      x = nn.relu(Conv(16, (3, 3), name="conv2")(x))
      return Conv(c, (3, 3), name="conv3")(x)
    x = code
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(int(width), name=f"fc{i + 1}")(x))
    d = 1
    for s in shape:
      d *= s
    return nn.Dense(d, name="out")(x).reshape((code.shape[0],) + shape)


class PixelDAGenerator(nn.Module):
  """PixelDA generator ``G(x_s, z)``: a source input in the target style.

  Images: the noise ``z`` goes through a dense layer to one extra input
  channel, then conv 3x3 ``features`` -> ``num_blocks`` residual blocks
  (conv-ReLU-conv + skip) -> conv 3x3 ``C``. Bousmalis et al. (CVPR 2017)
  use 64 filters and 6 residual blocks with BatchNorm and a final tanh; here
  BatchNorm is left out (no mutable state) and the output is ``x +
  residual``, so the generator starts near the identity whatever the input
  normalisation. Vectors: the same residual structure with dense layers.
  """
  features: int = 64
  num_blocks: int = 6

  @nn.compact
  def __call__(self, x: Array, z: Array, *, train: bool = False) -> Array:
    del train
    n = x.shape[0]
    if x.ndim == 4:
      h, w, c = x.shape[1:]
      zmap = nn.Dense(h * w, name="noise_fc")(z).reshape(n, h, w, 1)
      y = nn.relu(Conv(self.features, (3, 3), name="conv_in")(
          jnp.concatenate([x, zmap], axis=-1)))
      for i in range(self.num_blocks):
        r = nn.relu(Conv(self.features, (3, 3), name=f"block{i}_conv1")(y))
        r = Conv(self.features, (3, 3), name=f"block{i}_conv2")(r)
        y = nn.relu(y + r)
      return x + Conv(c, (3, 3), name="conv_out")(y)
    flat = _flatten(x)
    y = nn.relu(nn.Dense(self.features * 4, name="fc_in")(
        jnp.concatenate([flat, z], axis=-1)))
    for i in range(self.num_blocks):
      r = nn.relu(nn.Dense(self.features * 4, name=f"block{i}_fc1")(y))
      r = nn.Dense(self.features * 4, name=f"block{i}_fc2")(r)
      y = nn.relu(y + r)
    out = nn.Dense(flat.shape[-1], name="fc_out")(y)
    return x + out.reshape(x.shape)


class PixelDACritic(nn.Module):
  """PixelDA discriminator: real target vs generated, one logit per input.

  Images: conv 3x3 with strides 1, 2, 2, 2 and 64, 128, 256, 512 filters,
  LeakyReLU(0.2) and dropout after each (Bousmalis et al., CVPR 2017: the
  same pattern, leaky ReLU and dropout with keep probability 0.9), then one
  dense logit. Vectors: an MLP with ``hidden`` widths.
  """
  features: Sequence[int] = (64, 128, 256, 512)
  hidden: Sequence[int] = (512, 512)
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    if x.ndim == 4:
      for i, f in enumerate(self.features):
        x = Conv(int(f), (3, 3), strides=1 if i == 0 else 2,
                 name=f"conv{i + 1}")(x)
        x = nn.leaky_relu(x, 0.2)
        if self.dropout > 0:
          x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = _flatten(x)
    else:
      x = _flatten(x)
      for i, width in enumerate(self.hidden):
        x = nn.leaky_relu(nn.Dense(int(width), name=f"fc{i + 1}")(x), 0.2)
        if self.dropout > 0:
          x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(1, name="out")(x)[:, 0]
