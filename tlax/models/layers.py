"""Layers shared by the tlax models.

:class:`Conv` is a drop-in for :class:`flax.linen.Conv` (2-D, NHWC, same
parameters ``kernel`` (HWIO) and ``bias``) whose gradient can be computed in a
form that XLA:CPU runs much faster.

Why: XLA:CPU lowers the *input* gradient of a convolution (a correlation of
the output gradient with the spatially flipped, in/out-swapped kernel) to a
slow generic path; for the 5x5 convolutions of LeNet a plain ``nn.Conv`` train
step was about 3x slower than PyTorch eager (issue 4). Written as im2col
(shifted slices of the padded, stride-dilated output gradient, concatenated
along channels) followed by one matmul, the same gradient runs on the fast
matmul kernels. The forward pass stays ``lax.conv_general_dilated``.

``impl`` selects the implementation:

* ``"xla"``: plain ``lax.conv_general_dilated`` and its built-in gradients
  (what ``nn.Conv`` does; the right choice on GPU/TPU);
* ``"im2col"``: the :func:`conv2d_im2col_grad` custom VJP: input gradient by
  im2col + matmul, and the weight gradient by im2col + matmul as well
  (``weight_grad="im2col"``, faster on CPU in ``experiments/bench_conv.py``)
  or by XLA's conv weight gradient (``weight_grad="xla"``);
* ``"auto"`` (default): ``"im2col"`` when ``jax.default_backend() == "cpu"``
  at trace time, else ``"xla"``.

Both give the same values to float32 rounding. The custom VJP is
reverse-mode only: ``jax.jvp`` / ``jax.jacfwd`` through an ``"im2col"``
convolution raise; use ``impl="xla"`` for forward-mode differentiation.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

Array = jax.Array
PaddingLike = Union[str, int, Sequence[Union[int, tuple[int, int]]]]

_DIMS = ("NHWC", "HWIO", "NHWC")
IMPLS = ("auto", "xla", "im2col")


def resolve_impl(impl: str) -> str:
  """``"auto"`` -> ``"im2col"`` on the CPU backend, ``"xla"`` elsewhere."""
  if impl not in IMPLS:
    raise ValueError(f"Unknown conv impl {impl!r}; expected one of {IMPLS}.")
  if impl == "auto":
    return "im2col" if jax.default_backend() == "cpu" else "xla"
  return impl


def explicit_padding(padding: PaddingLike, in_spatial: Sequence[int],
                     kernel: Sequence[int], strides: Sequence[int]
                     ) -> tuple[tuple[int, int], ...]:
  """``(low, high)`` padding per spatial dim, as ``lax`` computes it.

  ``"SAME"`` pads ``max((ceil(n/s) - 1) * s + k - n, 0)`` in total, the extra
  pixel on the high side (TensorFlow/XLA convention, as ``nn.Conv``).
  """
  nd = len(in_spatial)
  if isinstance(padding, str):
    p = padding.upper()
    if p == "VALID":
      return ((0, 0),) * nd
    if p == "SAME":
      pads = []
      for n, k, s in zip(in_spatial, kernel, strides):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
      return tuple(pads)
    raise ValueError(f"Unsupported padding {padding!r}: use 'SAME', 'VALID', "
                     "an int or a sequence of (low, high) pairs.")
  if isinstance(padding, int):
    return ((padding, padding),) * nd
  pads = tuple((p, p) if isinstance(p, int) else tuple(p) for p in padding)
  if len(pads) != nd or any(len(p) != 2 for p in pads):
    raise ValueError(f"padding {padding!r} does not give one (low, high) pair "
                     f"per spatial dimension ({nd}).")
  return tuple((int(lo), int(hi)) for lo, hi in pads)


def _conv(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, window_strides=strides,
                                  padding=padding, dimension_numbers=_DIMS)


def _im2col(xp: Array, kh: int, kw: int, out_h: int, out_w: int,
            sh: int = 1, sw: int = 1) -> Array:
  """Patches ``(n, out_h, out_w, kh*kw*c)`` of an already padded NHWC array.

  Channel order of the last axis is ``(kh, kw, c)``, matching
  ``kernel.reshape(kh*kw*c, -1)`` for an HWIO kernel.
  """
  cols = []
  for i in range(kh):
    for j in range(kw):
      cols.append(lax.slice(
          xp, (0, i, j, 0),
          (xp.shape[0], i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1,
           xp.shape[3]),
          (1, sh, sw, 1)))
  return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def _input_grad_im2col(g: Array, w: Array, in_shape, strides, padding):
  """d(conv(x, w))/dx applied to ``g``, as im2col + matmul."""
  kh, kw, cin, cout = w.shape
  n, h, wd, _ = in_shape
  cfg = [(0, 0, 0)]
  for size, k, s, (lo, hi), out in zip((h, wd), (kh, kw), strides, padding,
                                       g.shape[1:3]):
    rest = size + lo + hi - k - (out - 1) * s  # input rows the conv never read
    cfg.append((k - 1 - lo, k - 1 - hi + rest, s - 1))
  cfg.append((0, 0, 0))
  # Stride-dilated output gradient, padded so that a stride-1 VALID
  # correlation with the flipped kernel gives an input-sized result.
  gp = lax.pad(g, jnp.zeros((), g.dtype), cfg)
  patches = _im2col(gp, kh, kw, h, wd)
  wf = jnp.transpose(w[::-1, ::-1], (0, 1, 3, 2)).reshape(kh * kw * cout, cin)
  dx = lax.dot_general(patches, wf, (((3,), (0,)), ((), ())))
  return dx.reshape(n, h, wd, cin)


def _weight_grad_im2col(x: Array, g: Array, kshape, strides, padding):
  """d(conv(x, w))/dw applied to ``g``, as im2col + matmul."""
  kh, kw, cin, cout = kshape
  xp = lax.pad(x, jnp.zeros((), x.dtype),
               [(0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0)])
  patches = _im2col(xp, kh, kw, g.shape[1], g.shape[2], *strides)
  dw = lax.dot_general(patches, g, (((0, 1, 2), (0, 1, 2)), ((), ())))
  return dw.reshape(kshape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def conv2d_im2col_grad(x: Array, w: Array, strides: tuple[int, int],
                       padding: tuple[tuple[int, int], ...],
                       weight_grad: str = "im2col") -> Array:
  """NHWC/HWIO 2-D convolution with an im2col + matmul backward pass.

  The forward pass is ``lax.conv_general_dilated(x, w, strides, padding)``.

  Args:
    x: ``(n, h, w, cin)`` input.
    w: ``(kh, kw, cin, cout)`` kernel.
    strides: ``(sh, sw)`` window strides (any positive ints).
    padding: explicit ``((lo_h, hi_h), (lo_w, hi_w))`` (see
      :func:`explicit_padding`); no dilation, one feature group.
    weight_grad: ``"im2col"`` (patches of ``x`` times the output gradient) or
      ``"xla"`` (XLA's convolution weight gradient).

  Returns:
    ``(n, ho, wo, cout)``.
  """
  return _conv(x, w, strides, padding)


def _fwd(x, w, strides, padding, weight_grad):
  return _conv(x, w, strides, padding), (x, w)


def _bwd(strides, padding, weight_grad, res, g):
  x, w = res
  dx = _input_grad_im2col(g, w, x.shape, strides, padding)
  if weight_grad == "im2col":
    dw = _weight_grad_im2col(x, g, w.shape, strides, padding)
  elif weight_grad == "xla":
    _, vjp = jax.vjp(lambda w_: _conv(x, w_, strides, padding), w)
    (dw,) = vjp(g)
  else:
    raise ValueError(f"weight_grad must be 'im2col' or 'xla', got "
                     f"{weight_grad!r}.")
  return dx.astype(x.dtype), dw.astype(w.dtype)


conv2d_im2col_grad.defvjp(_fwd, _bwd)


def conv2d(x: Array, w: Array, strides: Sequence[int] = (1, 1),
           padding: PaddingLike = "SAME", *, impl: str = "auto",
           weight_grad: str = "im2col") -> Array:
  """2-D NHWC convolution with a selectable gradient implementation."""
  strides = tuple(int(s) for s in strides)
  pads = explicit_padding(padding, x.shape[1:3], w.shape[:2], strides)
  if resolve_impl(impl) == "xla":
    return _conv(x, w, strides, pads)
  return conv2d_im2col_grad(x, w, strides, pads, weight_grad)


def _pair(v, name) -> tuple[int, int]:
  if isinstance(v, int):
    return (v, v)
  v = tuple(int(a) for a in v)
  if len(v) != 2:
    raise ValueError(f"{name} must be an int or a pair, got {v!r}.")
  return v


class Conv(nn.Module):
  """2-D convolution (NHWC), parameter-compatible with ``nn.Conv``.

  Same parameter names, shapes and default initialisers as
  ``nn.Conv(features, kernel_size, strides, padding)``: ``kernel`` of shape
  ``(kh, kw, cin, features)`` and ``bias`` of shape ``(features,)``, so
  checkpoints move between the two. Supports what the tlax models need: 2-D,
  no dilation, one feature group. See the module docstring for ``impl``.

  Attributes:
    features: number of output channels.
    kernel_size: int or ``(kh, kw)``.
    strides: int or ``(sh, sw)``.
    padding: ``"SAME"``, ``"VALID"``, an int, or ``(low, high)`` pairs.
    use_bias: add a bias.
    dtype: computation dtype (None: promoted from input and params).
    param_dtype: parameter dtype (float32).
    impl: ``"auto"`` | ``"im2col"`` | ``"xla"``.
    weight_grad: for ``"im2col"``: ``"im2col"`` or ``"xla"``.
  """
  features: int
  kernel_size: int | Sequence[int] = 3
  strides: int | Sequence[int] = 1
  padding: PaddingLike = "SAME"
  use_bias: bool = True
  dtype: Any = None
  param_dtype: Any = jnp.float32
  kernel_init: Callable[..., Array] = nn.initializers.lecun_normal()
  bias_init: Callable[..., Array] = nn.initializers.zeros_init()
  impl: str = "auto"
  weight_grad: str = "im2col"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if x.ndim != 4:
      raise ValueError(f"Conv expects NHWC input, got shape {x.shape}.")
    kh, kw = _pair(self.kernel_size, "kernel_size")
    strides = _pair(self.strides, "strides")
    kernel = self.param("kernel", self.kernel_init,
                        (kh, kw, x.shape[-1], self.features), self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,),
                       self.param_dtype) if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias,
                                              dtype=self.dtype)
    y = conv2d(x, kernel, strides, self.padding, impl=self.impl,
               weight_grad=self.weight_grad)
    if bias is not None:
      y = y + bias
    return y
