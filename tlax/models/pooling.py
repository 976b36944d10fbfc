"""Max pooling as reshape + max: :func:`max_pool`.

The values and gradients of ``nn.max_pool`` (ties included), in plain
``jax.numpy`` whose gradient is elementwise; used by the tlax models and by
the opt-in convolution forms of :mod:`tlax.kernels.conv`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def _pair(v, name) -> tuple[int, int]:
  if isinstance(v, int):
    return (v, v)
  v = tuple(int(a) for a in v)
  if len(v) != 2:
    raise ValueError(f"{name} must be an int or a pair, got {v!r}.")
  return v


def _first_max_mask(x6: Array, y: Array) -> Array:
  """Where each window's first maximum is (row-major order in the window).

  ``x6``: ``(n, ho, ph, wo, pw, c)``; ``y``: its max over axes 2 and 4.
  The window is at most a few entries, so the running "already taken" mask
  is unrolled into elementwise ops that XLA fuses.
  """
  eq = x6 == y[:, :, None, :, None, :]
  ph, pw = x6.shape[2], x6.shape[4]
  taken, rows = None, []
  for i in range(ph):
    cols = []
    for j in range(pw):
      e = eq[:, :, i:i + 1, :, j:j + 1, :]
      cols.append(e if taken is None else e & ~taken)
      taken = e if taken is None else taken | e
    rows.append(cols[0] if pw == 1 else jnp.concatenate(cols, axis=4))
  return rows[0] if ph == 1 else jnp.concatenate(rows, axis=2)


@jax.custom_jvp
def _window_max(x6: Array) -> Array:
  """Max over axes 2 and 4 of ``(n, ho, ph, wo, pw, c)``."""
  return jnp.max(x6, axis=(2, 4))


@_window_max.defjvp
def _window_max_jvp(primals, tangents):
  # The tangent (and, transposed, the gradient) goes to the first maximum of
  # each window, as with lax.reduce_window's max (nn.max_pool); JAX's own
  # rule for jnp.max would split it between tied maxima.
  (x6,), (t6,) = primals, tangents
  y = jnp.max(x6, axis=(2, 4))
  mask = _first_max_mask(x6, y)
  return y, jnp.sum(jnp.where(mask, t6, jnp.zeros((), t6.dtype)), axis=(2, 4))


def max_pool(x: Array, window: int | Sequence[int] = 2,
             strides: int | Sequence[int] | None = None) -> Array:
  """VALID max pooling over the spatial dims of an NHWC array.

  Same values and gradients as ``nn.max_pool(x, window, strides)`` (default
  ``strides = window``), ties included: the gradient of each window goes
  to its first maximum. Non-overlapping windows (``strides == window``,
  the LeNet case) are computed as a reshape + ``max`` with that rule as a
  custom JVP (so forward and reverse mode, any order), whose gradient is
  elementwise, while ``reduce_window``'s gradient (``select_and_scatter``)
  dominated the LeNet train step on XLA:CPU (the whole source-only step of
  a 16x16 LeNet, batch 128, took 1.8x longer with ``nn.max_pool``; the
  gradients were bitwise equal).
  """
  window = _pair(window, "window")
  strides = window if strides is None else _pair(strides, "strides")
  if tuple(strides) != tuple(window):
    return nn.max_pool(x, window, strides=strides, padding="VALID")
  n, h, w, c = x.shape
  (ph, pw), ho, wo = window, h // window[0], w // window[1]
  x = x[:, :ho * ph, :wo * pw, :]
  return _window_max(x.reshape(n, ho, ph, wo, pw, c))
