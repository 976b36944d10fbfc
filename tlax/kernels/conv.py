"""Opt-in CPU forms of the convolution: im2col, Winograd, native conv + pool.

The tlax models use flax's ``nn.Conv`` (see :mod:`tlax.models.layers`).
:class:`Conv` here is a drop-in for it (2-D, NHWC, same parameters
``kernel`` (HWIO) and ``bias``) that computes the convolution, or its
backward pass, as im2col + matmul, by Winograd's minimal filtering, or with
the native C++ kernel of :mod:`tlax.kernels.native`, instead of XLA's
convolution. Models use it only when asked: ``conv_impl`` other than
``"xla"`` (e.g. ``--config.model.kwargs.conv_impl=native``); nothing here is
imported, and nothing compiled, otherwise. All forms compute the same values
to float32 rounding, so the choice is one of speed on the CPU; the
``"auto"`` rules below choose by the backend, which only this opt-in module
does.

Why: XLA:CPU was reported to compute the *input* gradient of a 5x5
convolution (a correlation of the output gradient with the spatially
flipped, in/out-swapped kernel) slowly. :func:`conv2d_im2col_grad` keeps the
forward ``lax.conv_general_dilated`` and writes that gradient as im2col
(shifted windows of the padded, stride-dilated output gradient) times the
kernel, i.e. matmuls.

``impl`` selects the implementation:

* ``"xla"``: plain ``lax.conv_general_dilated`` and its built-in gradients
  (what ``nn.Conv`` does);
* ``"patches"``: :func:`conv2d_patches`, the forward pass as one matmul of
  the im2col patch matrix (the ``kh * kw`` shifted windows concatenated
  along channels), gradients by JAX's autodiff (matmuls, and pads for the
  input);
* ``"im2col"``: the :func:`conv2d_im2col_grad` custom VJP: XLA's forward,
  input gradient by im2col + matmul, and the weight gradient by im2col +
  matmul as well (``weight_grad="im2col"``) or by XLA's conv weight
  gradient (``weight_grad="xla"``);
* ``"winograd"``: :func:`conv2d_winograd`, Winograd's minimal filtering
  F(4x4, r x r) (stride 1, kernels up to 5x5): about 6x fewer
  multiplications than the direct convolution for 5x5 kernels, all of it
  (forward, both gradients by autodiff) matmuls and slices;
* ``"native"`` (with ``Conv(...)(x, pool=2)`` only): the convolution, its
  bias and the 2x2 max-pool in one pass of a C++ kernel
  (:func:`tlax.kernels.native.conv_pool`, an XLA FFI custom call built
  with the host's compiler on first use, run on XLA's CPU thread pool), its
  gradients by two more; float32, stride 1, reverse-mode autodiff only;
* ``"auto"`` (default): ``"xla"`` off the CPU; on the CPU ``"winograd"``
  where it was measured faster (float32, stride 1, 5x5 kernels, at least
  :data:`WINOGRAD_MIN_CHANNELS` input channels, output maps of at most
  :data:`WINOGRAD_MAX_TILES` tiles, i.e. 8x8, or 16x16 with the native
  kernels), ``"patches"`` for
  convolutions with fewer than :data:`PATCHES_MAX_CHANNELS` input channels
  whose patch matrix (the whole batch's) has at most
  :data:`PATCHES_MAX_ELEMENTS` entries, and ``"xla"`` for the rest; where
  the layer pools (``pool=2``) and would take ``"patches"``, ``"native"``
  when the kernels are available (:func:`native_pool_ok`; ``TLAX_NATIVE=0``
  turns them off). The LeNet's conv1 is that case: its train step spent
  about a fifth of its time in the patch matrix, the bias add over the
  16x16x32 output and the pooling's mask and gradient, memory passes that
  the fused kernel does not make (profiled with
  ``experiments/bench_train_step.py``).

tlax compiles its programs on the CPU with
:func:`tlax.train.xla.compiler_options`, which keeps XLA's convolutions off YNNPACK
(jax 0.10's XLA:CPU default; through Eigen they were 1.4-2.3x faster on
eight of nine layer shapes measured), and the ``"auto"`` rules above were
measured that way. The paragraphs below record the earlier measurements
that shaped them.

Measured (jax 0.10.2, XLA:CPU, 2 shared cores): the im2col *gradients* were slower than XLA's for every shape tlax
uses (LeNet step 63 ms with XLA's vs 241 ms (im2col dx) and 403 ms (dx and
dw), ``experiments/bench_conv.py``). The whole convolution as a patch-matrix
matmul (``"patches"``) is faster where the patch matrix is small: the
source-only step of Transfer-Learning-Library's LeNet (28x28, convs 20 / 50
VALID, batch 64) takes 13.4 ms against 24.8 ms with ``"xla"``
(``experiments/bench_train_step.py --net=tll``). Above about 8 MiB of patch
matrix the step time grows faster than the batch (the same step at batch
128: 38-44 ms) and XLA's own convolution is as fast or faster (DANN's LeNet
at 16x16, DANN step at batch 64 + 64: 55 ms with ``"patches"`` on both
convolutions, 38 ms with ``"xla"``), hence the limit. What did make the
LeNet step slow was max-pooling's gradient (``select_and_scatter``), which
:func:`max_pool` avoids (225 -> 63 ms, 3.6x).

Winograd (same machine; forward and both gradients of one
convolution, batch 64, 5x5; ``experiments/bench_conv_layers.py --batch
64``): DANN LeNet's conv2 (8x8, 32 -> 48, SAME) 3.7 ms against 9.1 ms with
``"xla"`` and 7.8 ms with ``"patches"`` (PyTorch: 3.7); TLL's conv2 (12x12
-> 8x8, 20 -> 50) 3.7 ms against 12.8 and 5.6 ms (PyTorch: 6.5); at 14x14
(28x28 digits) 24.0 ms against 29.8 and 49.3 ms (PyTorch: 11.9), and the
LeNet step there is no faster than with ``"xla"``. For one input channel
the transforms cost more than they save (2.9 ms against 1.2 ms with
``"patches"``), hence :data:`WINOGRAD_MIN_CHANNELS`; a 3x3 convolution on
32x32 maps was 4x slower than ``"xla"`` (one-off timing, see
:data:`WINOGRAD_MAX_ELEMENTS`), hence that limit (the 14x14 conv2 at batch
64 is just at it, and keeps Winograd).

All give the same values to float32 rounding, Winograd to a few units of
1e-6 relative (its transforms enlarge the rounding). The ``"im2col"`` custom VJP is
reverse-mode only: ``jax.jvp`` / ``jax.jacfwd`` through an ``"im2col"``
convolution raise.
"""

from __future__ import annotations

from fractions import Fraction
import functools
from typing import Any, Callable, Sequence, Union

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from tlax.models.pooling import _pair
from tlax.models.pooling import max_pool

Array = jax.Array
PaddingLike = Union[str, int, Sequence[Union[int, tuple[int, int]]]]

_DIMS = ("NHWC", "HWIO", "NHWC")
IMPLS = ("auto", "xla", "im2col", "patches", "winograd", "native")
# What impl="auto" uses on the CPU backend besides Winograd and XLA's own
# convolution (measured with experiments/bench_conv_layers.py and
# experiments/bench_train_step.py, see the module docstring): "patches" for
# convolutions with fewer than PATCHES_MAX_CHANNELS input channels whose
# batch's patch matrix has at most PATCHES_MAX_ELEMENTS entries (8 MiB of
# float32), "xla" otherwise. Forward and both gradients, batch 64, "patches"
# against XLA's convolution through Eigen, ms (`python
# experiments/bench_conv_layers.py --batch 64`): one input channel, 5x5 ->
# 32, 16x16 2.46 / 5.16 and 28x28 8.68 / 13.75; 32 -> 48 on 8x8 17.03 /
# 9.97 and on 14x14 61.40 / 25.04; TLL's 20 -> 50 10.07 / 9.80.
CPU_IMPL = "patches"
PATCHES_MAX_ELEMENTS = 1 << 21
PATCHES_MAX_CHANNELS = 8
# Winograd F(m x m, r x r) convolutions (conv2d_winograd): the output tile m,
# the kernels it takes (r <= WINOGRAD_MAX_KERNEL in each dimension, stride 1)
# and the input channels from which "auto" prefers it on the CPU (below, the
# transforms cost more than the matmul they save: a 1-channel 5x5 conv took
# 2.9 ms with Winograd against 1.2 ms with "patches", forward and both
# gradients, batch 64, 16x16).
WINOGRAD_TILE = 4
WINOGRAD_MAX_KERNEL = 5
WINOGRAD_MIN_CHANNELS = 8
# "auto" takes Winograd only for kernels of at least WINOGRAD_MIN_KERNEL
# and output maps of at most WINOGRAD_MAX_TILES tiles (8 x 8 for m = 4).
# Forward and both gradients, batch 64, Winograd against XLA's convolution
# through Eigen (tlax.train.xla.compiler_options), ms (`python
# experiments/bench_conv_layers.py --batch 64 --extra --impls=winograd`):
# 5x5 on 8x8 maps, 32 -> 48 (LeNet conv2) 5.34 / 6.30; TLL's conv2 (12x12
# -> 8x8, 20 -> 50) 4.35 / 9.39; 14x14, 32 -> 48 24.53 / 16.99; 10x10
# 11.00 / 8.65; 12x12 10.99 / 13.26 (the one map size where runs
# disagreed); 3x3, 32 -> 32, on 8x8 2.18 / 1.88 and on 16x16 9.81 / 8.21.
WINOGRAD_MIN_KERNEL = 5
WINOGRAD_MAX_TILES = 4
# ... and up to this many entries of transformed input (a * a * batch *
# tiles * cin, a = tile + r - 1): a bound on the transforms' memory for
# large batch x channel counts. It was set from 3x3 timings through
# YNNPACK (batch 64, 32x32 maps, 16 -> 16: 43.8 ms with Winograd against
# 11.0 ms with "xla"); since then the kernel and tile limits above
# already exclude those shapes, and the bound itself was not re-measured.
WINOGRAD_MAX_ELEMENTS = 1 << 21
# With tlax's native kernels (tlax/kernels: Winograd's channel products by a
# batched matmul about 2x XLA:CPU's) Winograd also wins on larger maps, so
# "auto" takes it up to these limits when the kernels are available: the
# DANN LeNet's conv2 on 14x14 maps (16 tiles; 28x28 digits), its
# source-only step 19.4 -> 12.8 ms (medians, interleaved A/B on the 2-core
# CPU, ; the DANN step unchanged). The element bound admits that
# layer at batch 128 and was not measured beyond.
WINOGRAD_MAX_TILES_NATIVE = 16
WINOGRAD_MAX_ELEMENTS_NATIVE = 1 << 22
def resolve_impl(impl: str, patch_elements: int | None = None,
                 winograd_ok: bool = False,
                 in_channels: int | None = None) -> str:
  """The implementation ``impl`` stands for.

  ``"auto"`` is ``"xla"`` off the CPU backend. On the CPU it is
  ``"winograd"`` when ``winograd_ok`` (the convolution is float32, stride 1,
  kernel between :data:`WINOGRAD_MIN_KERNEL` and
  :data:`WINOGRAD_MAX_KERNEL`, at least :data:`WINOGRAD_MIN_CHANNELS` input
  channels, at most :data:`WINOGRAD_MAX_TILES` output tiles per image and
  :data:`WINOGRAD_MAX_ELEMENTS` of transformed input, or
  :data:`WINOGRAD_MAX_TILES_NATIVE` and :data:`WINOGRAD_MAX_ELEMENTS_NATIVE`
  when tlax's native kernels are available), else
  :data:`CPU_IMPL` (``"patches"``) for fewer than
  :data:`PATCHES_MAX_CHANNELS` input channels (``in_channels``; ``None``:
  few) and a patch matrix (``patch_elements`` entries: batch times output
  pixels times ``kh * kw * cin``) of at most :data:`PATCHES_MAX_ELEMENTS`,
  else ``"xla"``.
  """
  if impl not in IMPLS:
    raise ValueError(f"Unknown conv impl {impl!r}; expected one of {IMPLS}.")
  if impl == "auto":
    if jax.default_backend() != "cpu":
      return "xla"
    if winograd_ok:
      return "winograd"
    if CPU_IMPL == "patches" and (
        (patch_elements is not None and patch_elements > PATCHES_MAX_ELEMENTS)
        or (in_channels is not None and in_channels >= PATCHES_MAX_CHANNELS)):
      return "xla"
    return CPU_IMPL
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


def _taps(xp: Array, kh: int, kw: int, out_h: int, out_w: int,
          sh: int = 1, sw: int = 1):
  """The ``kh * kw`` shifted (strided) windows of a padded NHWC array.

  Window ``(i, j)`` is ``xp[:, i::sh, j::sw, :]`` cut to ``(out_h, out_w)``;
  concatenated along channels they would be the im2col patch matrix.
  """
  for i in range(kh):
    for j in range(kw):
      yield i, j, lax.slice(
          xp, (0, i, j, 0),
          (xp.shape[0], i + (out_h - 1) * sh + 1, j + (out_w - 1) * sw + 1,
           xp.shape[3]),
          (1, sh, sw, 1))


def _input_grad_im2col(g: Array, w: Array, in_shape, strides, padding):
  """d(conv(x, w))/dx applied to ``g``, as im2col + matmul.

  The input gradient is the stride-1 VALID correlation of the stride-dilated,
  padded output gradient with the flipped kernel (in/out swapped). The
  im2col matmul ``patches @ kernel`` is summed tap by tap (one
  ``(n*h*w, cout) @ (cout, cin)`` matmul per kernel position) rather than
  through the materialised ``kh*kw``-times larger patch matrix, whose
  concatenation alone was several times slower than the matmuls on XLA:CPU.
  """
  kh, kw, cin, cout = w.shape
  _, h, wd, _ = in_shape
  cfg = [(0, 0, 0)]
  for size, k, s, (lo, hi), out in zip((h, wd), (kh, kw), strides, padding,
                                       g.shape[1:3]):
    rest = size + lo + hi - k - (out - 1) * s  # input rows the conv never read
    cfg.append((k - 1 - lo, k - 1 - hi + rest, s - 1))
  cfg.append((0, 0, 0))
  gp = lax.pad(g, jnp.zeros((), g.dtype), cfg)
  dx = None
  for i, j, tap in _taps(gp, kh, kw, h, wd):
    term = lax.dot_general(tap, w[kh - 1 - i, kw - 1 - j],
                           (((3,), (1,)), ((), ())))
    dx = term if dx is None else dx + term
  return dx


def _weight_grad_im2col(x: Array, g: Array, kshape, strides, padding):
  """d(conv(x, w))/dw applied to ``g``: ``patches(x)^T @ g``, tap by tap."""
  kh, kw, _, _ = kshape
  xp = lax.pad(x, jnp.zeros((), x.dtype),
               [(0, 0, 0), (*padding[0], 0), (*padding[1], 0), (0, 0, 0)])
  rows = [lax.dot_general(tap, g, (((0, 1, 2), (0, 1, 2)), ((), ())))
          for _, _, tap in _taps(xp, kh, kw, g.shape[1], g.shape[2],
                                 *strides)]
  return jnp.stack(rows).reshape(kshape)


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


def _out_size(n: int, k: int, s: int, pad: tuple[int, int]) -> int:
  return (n + pad[0] + pad[1] - k) // s + 1


def conv2d_patches(x: Array, w: Array, strides: tuple[int, int],
                   padding: tuple[tuple[int, int], ...]) -> Array:
  """NHWC/HWIO 2-D convolution as one matmul of the im2col patch matrix.

  The patch matrix is the ``kh * kw`` shifted windows of the padded input
  concatenated along channels (order ``(i, j, cin)``, the row order of the
  HWIO kernel reshaped to ``(kh * kw * cin, cout)``). Its gradients are
  JAX's own: a matmul for the kernel, and for the input a matmul followed by
  the sum of the windows' transposes (pads), all fusible elementwise work.
  """
  kh, kw = w.shape[:2]
  sh, sw = strides
  oh = _out_size(x.shape[1], kh, sh, padding[0])
  ow = _out_size(x.shape[2], kw, sw, padding[1])
  xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
  cols = [t for _, _, t in _taps(xp, kh, kw, oh, ow, sh, sw)]
  patches = cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)
  y = jnp.dot(patches.reshape(-1, patches.shape[-1]),
              w.reshape(-1, w.shape[-1]))
  return y.reshape(x.shape[0], oh, ow, w.shape[-1])


# Points of the Toom-Cook construction (with the point at infinity): F(m, r)
# takes the first m + r - 2. Small integers and their reciprocals keep the
# transforms' entries small, hence float32 rounding close to direct
# convolution's (Lavin & Gray, 2016).
_WINOGRAD_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))


def _exact_inverse(rows: list[list[Fraction]]) -> list[list[Fraction]]:
  """Gauss-Jordan inverse of a small invertible matrix of Fractions."""
  n = len(rows)
  a = [list(r) + [Fraction(int(i == j)) for j in range(n)]
       for i, r in enumerate(rows)]
  for col in range(n):
    piv = next(i for i in range(col, n) if a[i][col] != 0)
    a[col], a[piv] = a[piv], a[col]
    p = a[col][col]
    a[col] = [v / p for v in a[col]]
    for i in range(n):
      if i != col and a[i][col] != 0:
        f = a[i][col]
        a[i] = [v - f * u for v, u in zip(a[i], a[col])]
  return [r[n:] for r in a]


@functools.lru_cache(maxsize=None)
def winograd_matrices(m: int, r: int):
  """``(A^T, G, B^T)`` of the 1-D Winograd correlation F(m, r), float64.

  For a length ``a = m + r - 1`` input ``d`` and a length ``r`` filter
  ``g``, ``A^T @ ((G @ g) * (B^T @ d))`` is the ``m`` outputs
  ``y_i = sum_k g_k d_{i+k}``. Construction: linear convolution of a length
  ``m`` and a length ``r`` sequence by evaluation at ``a - 1`` points and
  infinity, then interpolation (Vandermonde ``V_m``, ``V_r``, ``V_a``);
  correlation is its transpose: ``A^T = V_m^T``, ``G = V_r``,
  ``B^T = V_a^{-T}`` (computed exactly in rationals).
  """
  a = m + r - 1
  if m < 1 or r < 1 or a - 1 > len(_WINOGRAD_POINTS):
    raise ValueError(f"No Winograd F({m}, {r}): m + r - 2 must be at most "
                     f"{len(_WINOGRAD_POINTS)}.")
  pts = [Fraction(p) for p in _WINOGRAD_POINTS[:a - 1]]

  def vandermonde(cols):
    rows = [[p ** j for j in range(cols)] for p in pts]
    return rows + [[Fraction(0)] * (cols - 1) + [Fraction(1)]]

  v_inv = _exact_inverse(vandermonde(a))
  f64 = lambda rows: np.array([[float(v) for v in r] for r in rows])
  at = f64(vandermonde(m)).T
  g = f64(vandermonde(r))
  bt = f64(v_inv).T
  return at, g, bt


def _overlapping_tiles(x: Array, size: int, step: int, count: int,
                       axis: int) -> Array:
  """``count`` windows of ``size`` every ``step`` along ``axis``, stacked
  on a new leading axis."""
  return jnp.stack([lax.slice_in_dim(x, t * step, t * step + size, axis=axis)
                    for t in range(count)])


# Up to this many tiles, conv2d_winograd cuts each input tile out of the
# unpadded input on its own (one lax.pad with negative edges per tile,
# transposed to (a_h, a_w, n, cin)) and stacks them: XLA fuses that into
# one pass, and autodiff's transpose (a padded copy per tile, summed) into
# another. Above it (larger maps, where a per-tile op count would grow
# compile time), the padded input is sliced into rows and columns of tiles
# and transposed. Same values either way (tests/test_models.py); the
# per-tile form took the 16x16 LeNet's source-only train step from 7.89 to
# 6.71 ms (medians, interleaved A/B on the 2-core CPU,
# experiments/bench_train_step.py).
WINOGRAD_PER_TILE_MAX = 16


def _winograd_input_tiles(x: Array, padding, m: int, ah: int, aw: int,
                          th: int, tw: int) -> Array:
  """The ``th x tw`` overlapping ``ah x aw`` input tiles of ``x`` (NHWC,
  zero-padded by ``padding`` and cut to the tiles' extent), as
  ``(ah * aw, n * th * tw * cin)`` with rows ``(a_h, a_w)`` and columns
  ``(n, t_h, t_w, cin)``."""
  n, h, wd, cin = x.shape
  zero = jnp.zeros((), x.dtype)
  if th * tw <= WINOGRAD_PER_TILE_MAX:
    blocks = []
    for i in range(th):
      for j in range(tw):
        lo_h, lo_w = padding[0][0] - i * m, padding[1][0] - j * m
        block = lax.pad(x, zero, [(0, 0, 0), (lo_h, ah - h - lo_h, 0),
                                  (lo_w, aw - wd - lo_w, 0), (0, 0, 0)])
        blocks.append(block.transpose(1, 2, 0, 3))   # (ah, aw, n, cin)
    return jnp.stack(blocks, axis=3).reshape(ah * aw, n * th * tw * cin)
  # Pad (or crop) to exactly the th * m + ah - m rows (columns) the tiles
  # read; rows past the conv's own padding only feed outputs cut later.
  xp = lax.pad(x, zero, [(0, 0, 0),
                         (padding[0][0], th * m + ah - m - h - padding[0][0],
                          0),
                         (padding[1][0], tw * m + aw - m - wd - padding[1][0],
                          0),
                         (0, 0, 0)])
  d = _overlapping_tiles(xp, ah, m, th, 1)     # (th, n, ah, w', cin)
  d = _overlapping_tiles(d, aw, m, tw, 3)      # (tw, th, n, ah, aw, cin)
  return d.transpose(3, 4, 2, 1, 0, 5).reshape(ah * aw, n * th * tw * cin)


def _kron_apply(a_h: np.ndarray, a_w: np.ndarray, z: Array) -> Array:
  """``kron(a_h, a_w) @ z`` for ``z`` of shape ``(q_h * q_w, r)``, one 1-D
  matrix at a time: ``a_h`` on the leading axis (a matmul), then ``a_w`` on
  the second (a matmul batched over the first), ``2 * q_h * q_w * (p_h +
  p_w) * r`` multiply-adds where the Kronecker product takes ``p_h * p_w *
  q_h * q_w * r`` (a quarter for Winograd's 8-point input transform)."""
  (ph, qh), (pw, qw) = a_h.shape, a_w.shape
  r = z.shape[1]
  t = (jnp.asarray(a_h, z.dtype) @ z.reshape(qh, qw * r)).reshape(ph, qw, r)
  b = jnp.broadcast_to(jnp.asarray(a_w, z.dtype), (ph, pw, qw))
  return lax.dot_general(b, t, (((2,), (1,)), ((0,), (0,)))).reshape(
      ph * pw, r)


def _batched_products(v: Array, u: Array) -> Array:
  """``v[e] @ u[e]`` for every transformed element ``e``: the native batched
  matmul on the CPU when the kernels are available and both are float32
  (:func:`tlax.kernels.native.bmm`: about 2x XLA:CPU's library call on
  LeNet's conv2, forward and both gradients), else XLA's
  ``dot_general``."""
  if v.dtype == jnp.float32 and u.dtype == jnp.float32:
    from tlax.kernels import native  # pylint: disable=g-import-not-at-top
    if native.available():
      return native.bmm(v, u)
  return lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))


def conv2d_winograd(x: Array, w: Array,
                    padding: tuple[tuple[int, int], ...],
                    tile: int = WINOGRAD_TILE) -> Array:
  """Stride-1 NHWC/HWIO convolution by Winograd's minimal filtering.

  Winograd F(m x m, r x r) (Lavin & Gray, "Fast Algorithms for
  Convolutional Neural Networks", CVPR 2016) with ``m = tile``: the padded
  input is cut into overlapping ``a x a`` tiles (``a = m + r - 1``), each
  tile and the kernel are transformed (``B^T d B``, ``G g G^T``), the
  channel sums become ``a * a`` independent matmuls, and ``A^T M A`` gives
  an ``m x m`` output tile. For 5x5 kernels and ``m = 4`` that is 64
  multiplications per tile and channel pair instead of 400, 6.25x fewer.
  The input and output transforms apply the 1-D matrices one axis at a
  time (:func:`_kron_apply`), the kernel's transform (small) as one matmul
  with their Kronecker product, so forward and both gradients are matmuls
  and slices (JAX's autodiff, any order and mode), except that on the CPU
  the ``a * a`` channel products go to the native batched matmul where it
  is available (:func:`_batched_products`; reverse mode only there, set
  ``TLAX_NATIVE=0`` for forward mode).

  Values agree with ``lax.conv_general_dilated`` to float32 rounding times
  the transforms' growth (about 5e-6 relative for 5x5, ``m = 4``).

  Args:
    x: ``(n, h, w, cin)``.
    w: ``(kh, kw, cin, cout)``, ``kh, kw <= WINOGRAD_MAX_KERNEL`` for the
      default tile.
    padding: explicit ``((lo_h, hi_h), (lo_w, hi_w))``.
    tile: ``m``, the output tile.

  Returns:
    ``(n, ho, wo, cout)``.
  """
  n, h, wd, cin = x.shape
  kh, kw, _, cout = w.shape
  m = int(tile)
  at_h, g_h, bt_h = winograd_matrices(m, kh)
  at_w, g_w, bt_w = winograd_matrices(m, kw)
  ah, aw = m + kh - 1, m + kw - 1
  oh = _out_size(h, kh, 1, padding[0])
  ow = _out_size(wd, kw, 1, padding[1])
  if oh < 1 or ow < 1:
    raise ValueError(f"Convolution of a {h}x{wd} input with a {kh}x{kw} "
                     f"kernel and padding {padding} has no output.")
  th, tw = -(-oh // m), -(-ow // m)
  d = _winograd_input_tiles(x, padding, m, ah, aw, th, tw)
  const = lambda a_: jnp.asarray(a_, x.dtype)
  v = _kron_apply(bt_h, bt_w, d).reshape(ah * aw, n * th * tw, cin)
  u = (const(np.kron(g_h, g_w)) @ w.reshape(kh * kw, cin * cout)
       ).reshape(ah * aw, cin, cout)
  prod = _batched_products(v, u)
  y = _kron_apply(at_h, at_w, prod.reshape(ah * aw, -1))
  y = y.reshape(m, m, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(n, th * m, tw * m, cout)[:, :oh, :ow]


def _winograd_size_ok(tiles: int, elements: int) -> bool:
  if tiles <= WINOGRAD_MAX_TILES and elements <= WINOGRAD_MAX_ELEMENTS:
    return True
  if tiles > WINOGRAD_MAX_TILES_NATIVE or (
      elements > WINOGRAD_MAX_ELEMENTS_NATIVE):
    return False
  from tlax.kernels import native  # pylint: disable=g-import-not-at-top
  return native.available()


def plan_conv(x: Array, w: Array, strides: Sequence[int] = (1, 1),
              padding: PaddingLike = "SAME", impl: str = "auto"
              ) -> tuple[str, tuple[int, int], tuple[tuple[int, int], ...]]:
  """``(impl, strides, explicit padding)``: what :func:`conv2d` would run
  (``impl`` resolved by :func:`resolve_impl`)."""
  strides = tuple(int(s) for s in strides)
  pads = explicit_padding(padding, x.shape[1:3], w.shape[:2], strides)
  kh, kw, cin = w.shape[:3]
  oh = _out_size(x.shape[1], kh, strides[0], pads[0])
  ow = _out_size(x.shape[2], kw, strides[1], pads[1])
  patch_elements = x.shape[0] * kh * kw * cin * oh * ow
  m = WINOGRAD_TILE  # (only used with stride 1, where oh, ow are its sizes)
  tiles = -(-oh // m) * -(-ow // m)
  winograd_elements = (m + kh - 1) * (m + kw - 1) * x.shape[0] * cin * tiles
  winograd_ok = (strides == (1, 1) and kh <= WINOGRAD_MAX_KERNEL
                 and kw <= WINOGRAD_MAX_KERNEL
                 and min(kh, kw) >= WINOGRAD_MIN_KERNEL
                 and cin >= WINOGRAD_MIN_CHANNELS
                 and _winograd_size_ok(tiles, winograd_elements)
                 and x.dtype == jnp.float32 and w.dtype == jnp.float32)
  return resolve_impl(impl, patch_elements, winograd_ok, cin), strides, pads


def conv2d(x: Array, w: Array, strides: Sequence[int] = (1, 1),
           padding: PaddingLike = "SAME", *, impl: str = "auto",
           weight_grad: str = "im2col") -> Array:
  """2-D NHWC convolution with a selectable implementation (module doc)."""
  if impl == "native":
    raise ValueError("impl='native' is a convolution fused with its bias and "
                     "a 2x2 max-pool: use Conv(..., impl='native')(x, "
                     "pool=2) or tlax.kernels.native.conv_pool.")
  kh, kw = w.shape[:2]
  impl, strides, pads = plan_conv(x, w, strides, padding, impl)
  if impl == "xla":
    return _conv(x, w, strides, pads)
  if impl == "patches":
    return conv2d_patches(x, w, strides, pads)
  if impl == "winograd":
    if strides != (1, 1):
      raise ValueError(f"impl='winograd' needs strides (1, 1), got "
                       f"{strides}.")
    if max(kh, kw) > WINOGRAD_MAX_KERNEL:
      raise ValueError(f"impl='winograd' takes kernels up to "
                       f"{WINOGRAD_MAX_KERNEL}x{WINOGRAD_MAX_KERNEL}, got "
                       f"{kh}x{kw}.")
    return conv2d_winograd(x, w, pads)
  return conv2d_im2col_grad(x, w, strides, pads, weight_grad)


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
    impl: ``"auto"`` | ``"patches"`` | ``"im2col"`` | ``"winograd"`` |
      ``"xla"`` | ``"native"`` (called with ``pool=2`` only).
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
  def __call__(self, x: Array, *, pool: int | Sequence[int] | None = None
               ) -> Array:
    """The convolution plus bias; with ``pool``, its :func:`max_pool` by
    that window (``conv_pool``: fused in one native pass where
    :func:`native_pool_ok`)."""
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
    if pool is not None:
      pool = _pair(pool, "pool")
      if native_pool_ok(x, kernel, strides, self.padding, pool, self.impl):
        from tlax.kernels import native  # pylint: disable=g-import-not-at-top
        pads = explicit_padding(self.padding, x.shape[1:3], (kh, kw),
                                strides)
        b = bias if bias is not None else jnp.zeros((self.features,),
                                                    kernel.dtype)
        return native.conv_pool(x, kernel, b, pads)
      if self.impl == "native":
        raise ValueError(
            f"impl='native' takes float32, stride 1, pool (2, 2) and padding "
            f"below the kernel size; got {x.dtype}, strides {strides}, pool "
            f"{pool}, padding {self.padding!r} for a {kh}x{kw} kernel.")
    elif self.impl == "native":
      raise ValueError("impl='native' is the convolution fused with its bias "
                       "and a 2x2 max-pool: call the layer with pool=2.")
    y = conv2d(x, kernel, strides, self.padding, impl=self.impl,
               weight_grad=self.weight_grad)
    if bias is not None:
      y = y + bias
    return y if pool is None else max_pool(y, pool)


def native_pool_ok(x: Array, w: Array, strides: Sequence[int],
                   padding: PaddingLike, pool: Sequence[int],
                   impl: str = "auto") -> bool:
  """Whether :class:`Conv` computes ``conv + bias + max_pool`` with the
  native kernel (:func:`tlax.kernels.native.conv_pool`).

  ``impl="native"``: whenever the kernel takes the shape (float32, stride
  1, pool ``(2, 2)``, each padding below the kernel size, at least one
  pooled output). ``"auto"``: besides, where ``"auto"`` would take
  ``"patches"`` (see :func:`resolve_impl`) and the kernels are available
  (:func:`tlax.kernels.native.available`: the CPU backend and a C++
  compiler). Other ``impl`` values: never.
  """
  if impl not in ("auto", "native"):
    return False
  from tlax.kernels import native  # pylint: disable=g-import-not-at-top
  planned, strides, pads = plan_conv(x, w, strides, padding, "auto")
  fits = (tuple(pool) == (2, 2) and strides == (1, 1)
          and x.dtype == jnp.float32 and w.dtype == jnp.float32
          and native.conv_pool_problem(x.shape, w.shape, pads) is None)
  if not fits or (impl == "auto" and planned != "patches"):
    return False
  return impl == "native" or native.available()


