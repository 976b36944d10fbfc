"""Multi-layer perceptron for feature inputs (e.g. Office-Caltech SURF)."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from tlax.models.common import get_activation

Array = jax.Array


class MLP(nn.Module):
  """``x -> [Dense -> act -> dropout] * len(hidden) -> [bottleneck] -> head``.

  Any dimensions after the batch dimension are flattened, so images work too.

  Features (the model contract of :mod:`tlax.methods.contract`):
    ``"fc1"``, ..., ``"fc<k>"``: hidden activations after the nonlinearity
    (before dropout); ``"bottleneck"`` (when ``bottleneck`` is set): the
    bottleneck activation; ``"embedding"``: exactly the input of the head (the
    last hidden/bottleneck activation, after dropout when training).
    With ``hidden=()`` and no bottleneck the model is linear (logistic
    regression) and ``"embedding"`` is the flattened input.

  Attributes:
    num_classes: number of classes (size of the ``head`` Dense).
    hidden: widths of the hidden layers ``fc1, fc2, ...``.
    bottleneck: optional width of a ``bottleneck`` Dense + activation before
      the head (as in DAN/JAN/CDAN).
    dropout: dropout rate after every hidden/bottleneck activation (needs a
      ``"dropout"`` rng when ``train=True`` and ``dropout > 0``).
    activation: name from :data:`tlax.models.common.ACTIVATIONS`.
    dtype: computation dtype (parameters stay ``param_dtype``); logits are
      returned in float32.
  """
  num_classes: int
  hidden: Sequence[int] = (256,)
  bottleneck: int | None = None
  dropout: float = 0.0
  activation: str = "relu"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False
               ) -> tuple[Array, dict[str, Array]]:
    bad = [w for w in tuple(self.hidden) + ((self.bottleneck,)
                                            if self.bottleneck else ())
           if isinstance(w, bool) or not isinstance(w, numbers.Integral)
           or w < 1]
    if bad:
      raise ValueError(f"MLP: hidden (and bottleneck) widths must be "
                       f"positive integers; got hidden={tuple(self.hidden)!r}"
                       f", bottleneck={self.bottleneck!r}.")
    act = get_activation(self.activation)
    x = jnp.asarray(x)
    h = x.reshape(x.shape[0], -1).astype(self.dtype)
    feats = {}
    widths = [(f"fc{i + 1}", w) for i, w in enumerate(self.hidden)]
    if self.bottleneck:
      widths.append(("bottleneck", self.bottleneck))
    for name, width in widths:
      h = act(nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype,
                       name=name)(h))
      feats[name] = h
      if self.dropout > 0:
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
    feats["embedding"] = h
    logits = nn.Dense(self.num_classes, dtype=self.dtype,
                      param_dtype=self.param_dtype, name="head")(h)
    return logits.astype(jnp.float32), feats
