"""Helpers shared by the tlax models."""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "leaky_relu": nn.leaky_relu,
    "silu": nn.silu,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """The activation function called ``name`` (see :data:`ACTIVATIONS`)."""
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ValueError(f"Unknown activation {name!r}; valid: "
                     f"{', '.join(sorted(ACTIVATIONS))}.") from None
