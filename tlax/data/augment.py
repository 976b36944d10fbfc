r"""Image augmentations on device: pure JAX functions of ``(key, images)``.

Every function takes a PRNG key and a batch of images ``(n, h, w, c)`` with
values in [0, 1] and returns a batch of the same shape and dtype. They are
pure (the same key gives the same images), run inside a jitted train step,
and work under ``jax.vmap`` (over keys, e.g. one stream per seed). Each image
of a batch draws its own random numbers from ``jax.random.split(key, n)``.

* :func:`weak_augment` -- FixMatch's weak view: a random horizontal flip
  (off by default: flipping changes the meaning of digits) and a random
  translation by up to ``pad`` pixels (reflect padding + random crop).
* :func:`rand_augment` -- RandAugment-style: ``num_ops`` operations drawn
  uniformly per image from :data:`RAND_AUGMENT_OPS`, each with a magnitude
  drawn uniformly in ``[0, max_magnitude]`` (RandAugment with random
  magnitude, as FixMatch's RA variant), each applied with probability
  ``op_prob``.
* :func:`cutout` -- one square of side ``round(size * h)`` set to grey
  (0.5), at a uniformly drawn centre (clipped at the borders).
* :func:`strong_augment` -- weak flip and translation, then
  :func:`rand_augment`, then :func:`cutout` (FixMatch's strong view).

Geometric operations (rotate, shear, translate) resample with bilinear
interpolation and fill from the nearest edge pixel.

References:
  Cubuk et al., RandAugment: Practical automated data augmentation with a
  reduced search space, CVPR Workshops 2020.
  DeVries and Taylor, Improved regularization of convolutional neural
  networks with Cutout, arXiv:1708.04552, 2017.
  Sohn et al., FixMatch: Simplifying semi-supervised learning with
  consistency and confidence, NeurIPS 2020.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array


def _check(images) -> Array:
  images = jnp.asarray(images)
  if images.ndim != 4:
    raise ValueError(
        f"augmentations take images of shape (n, h, w, c), got shape "
        f"{images.shape}; reshape flat rows to images first.")
  return images


# ---------------------------------------------------------------------------
# Weak augmentation.
# ---------------------------------------------------------------------------
def random_flip(key: Array, images: Array) -> Array:
  """Flips each image left-right with probability 1/2."""
  images = _check(images)
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def random_translate(key: Array, images: Array, pad: int = 2) -> Array:
  """Translates each image by up to ``pad`` pixels in each direction.

  Reflect padding by ``pad`` followed by a random ``h x w`` crop, the weak
  augmentation of FixMatch (12.5% of 32 pixels there; 2 of 16 here).
  """
  images = _check(images)
  if pad < 0:
    raise ValueError(f"pad must be >= 0, got {pad}.")
  if pad == 0:
    return images
  n, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)),
                   mode="reflect")
  offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)

  def crop(img, off):
    return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, c))
  return jax.vmap(crop)(padded, offsets)


def weak_augment(key: Array, images: Array, *, flip: bool = False,
                 pad: int = 2) -> Array:
  """FixMatch's weak augmentation: optional flip, then a translation.

  Args:
    key: PRNG key.
    images: ``(n, h, w, c)`` in [0, 1].
    flip: random horizontal flips (meaningful for natural images, not for
      digits or text).
    pad: largest translation in pixels.

  Returns:
    The augmented batch, same shape and dtype.
  """
  images = _check(images)
  k_flip, k_shift = jax.random.split(key)
  if flip:
    images = random_flip(k_flip, images)
  return random_translate(k_shift, images, pad)


# ---------------------------------------------------------------------------
# Strong augmentation: RandAugment-style operations on one image (h, w, c),
# magnitude m in [0, 1].
# ---------------------------------------------------------------------------
def _affine(img: Array, matrix: Array) -> Array:
  """Resamples ``img`` at ``matrix @ (row, col, 1)`` about the centre."""
  h, w, _ = img.shape
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                            jnp.arange(w, dtype=jnp.float32), indexing="ij")
  cr, cc = (h - 1) / 2.0, (w - 1) / 2.0
  pts = jnp.stack([rows - cr, cols - cc, jnp.ones_like(rows)])
  src = jnp.einsum("ij,jhw->ihw", matrix, pts)
  coords = [src[0] + cr, src[1] + cc]

  def channel(ch):
    return jax.scipy.ndimage.map_coordinates(ch, coords, order=1,
                                             mode="nearest")
  return jax.vmap(channel, in_axes=2, out_axes=2)(img)


def _signed(key, magnitude):
  return jnp.where(jax.random.bernoulli(key), magnitude, -magnitude)


def _geometric(matrix_fn):
  def op(key, img, m):
    return _affine(img, matrix_fn(key, m, img.shape[0], img.shape[1]))
  return op


def _blend(a, b, factor):
  return jnp.clip(b + factor * (a - b), 0.0, 1.0)


def _grey(img):
  return jnp.mean(img, axis=-1, keepdims=True) * jnp.ones_like(img)


def _brightness(key, img, m):
  return _blend(img, jnp.zeros_like(img), 1.0 + _signed(key, 0.9 * m))


def _contrast(key, img, m):
  return _blend(img, jnp.full_like(img, jnp.mean(_grey(img))),
                1.0 + _signed(key, 0.9 * m))


def _color(key, img, m):
  return _blend(img, _grey(img), 1.0 + _signed(key, 0.9 * m))


def _sharpness(key, img, m):
  kernel = jnp.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13
  padded = jnp.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
  h, w, _ = img.shape
  smooth = sum(kernel[i, j] * padded[i:i + h, j:j + w]
               for i in range(3) for j in range(3))
  return _blend(img, smooth, 1.0 + _signed(key, 0.9 * m))


def _posterize(key, img, m):
  del key
  bits = jnp.round(8.0 - 4.0 * m)  # 8 .. 4 bits
  levels = 2.0 ** bits
  return jnp.floor(img * (levels - 1) + 0.5) / (levels - 1)


def _solarize(key, img, m):
  del key
  threshold = 1.0 - m
  return jnp.where(img >= threshold, 1.0 - img, img)


def _autocontrast(key, img, m):
  del key, m
  lo = jnp.min(img, axis=(0, 1), keepdims=True)
  hi = jnp.max(img, axis=(0, 1), keepdims=True)
  scale = jnp.where(hi > lo, 1.0 / jnp.maximum(hi - lo, 1e-6), 1.0)
  return jnp.where(hi > lo, (img - lo) * scale, img)


def _equalize(key, img, m):
  """Histogram equalisation per channel (256 bins)."""
  del key, m
  q = jnp.clip(jnp.floor(img * 255.0 + 0.5), 0, 255).astype(jnp.int32)

  def channel(ch):
    hist = jnp.zeros(256, jnp.float32).at[ch.reshape(-1)].add(1.0)
    cdf = jnp.cumsum(hist)
    lo = cdf[jnp.argmax(hist > 0)]
    denom = jnp.maximum(cdf[-1] - lo, 1.0)
    return jnp.clip((cdf[ch] - lo) / denom, 0.0, 1.0)
  return jax.vmap(channel, in_axes=2, out_axes=2)(q)


def _invert(key, img, m):
  del key, m
  return 1.0 - img


def _identity(key, img, m):
  del key, m
  return img


# name -> op(key, image (h, w, c), magnitude in [0, 1]) -> image
RAND_AUGMENT_OPS = {
    "identity": _identity,
    "autocontrast": _autocontrast,
    "equalize": _equalize,
    "rotate": _geometric(lambda *a: _rotate_matrix(*a)),
    "solarize": _solarize,
    "color": _color,
    "posterize": _posterize,
    "contrast": _contrast,
    "brightness": _brightness,
    "sharpness": _sharpness,
    "shear_x": _geometric(lambda *a: _shear_x_matrix(*a)),
    "shear_y": _geometric(lambda *a: _shear_y_matrix(*a)),
    "translate_x": _geometric(lambda *a: _translate_x_matrix(*a)),
    "translate_y": _geometric(lambda *a: _translate_y_matrix(*a)),
    "invert": _invert,
}
# FixMatch's RandAugment list (no invert).
DEFAULT_OPS = tuple(k for k in RAND_AUGMENT_OPS if k != "invert")


# The geometric operations as affine maps (one resampling per applied
# operation): name -> (key, magnitude, h, w) -> (2, 3) matrix.
def _rotate_matrix(key, m, h, w):
  del h, w
  theta = jnp.deg2rad(_signed(key, 30.0 * m))
  c, s = jnp.cos(theta), jnp.sin(theta)
  return jnp.array([[c, -s, 0.0], [s, c, 0.0]])


def _shear_x_matrix(key, m, h, w):
  del h, w
  return jnp.array([[1.0, 0.0, 0.0], [_signed(key, 0.3 * m), 1.0, 0.0]])


def _shear_y_matrix(key, m, h, w):
  del h, w
  return jnp.array([[1.0, _signed(key, 0.3 * m), 0.0], [0.0, 1.0, 0.0]])


def _translate_x_matrix(key, m, h, w):
  del h
  return jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, _signed(key, 0.3 * m * w)]])


def _translate_y_matrix(key, m, h, w):
  del w
  return jnp.array([[1.0, 0.0, _signed(key, 0.3 * m * h)], [0.0, 1.0, 0.0]])


_GEOMETRIC = {"rotate": _rotate_matrix, "shear_x": _shear_x_matrix,
              "shear_y": _shear_y_matrix, "translate_x": _translate_x_matrix,
              "translate_y": _translate_y_matrix}


def rand_augment(key: Array, images: Array, *, num_ops: int = 2,
                 max_magnitude: float = 1.0, op_prob: float = 1.0,
                 ops: tuple[str, ...] = DEFAULT_OPS) -> Array:
  """RandAugment-style: ``num_ops`` random operations per image.

  Each image applies, ``num_ops`` times in sequence, an operation drawn
  uniformly from ``ops`` with a magnitude drawn uniformly in
  ``[0, max_magnitude]`` (1 is each operation's strongest setting), each
  with probability ``op_prob``. The geometric operations are one affine
  resampling each (the identity map for the others), so a batch costs
  ``num_ops`` resamplings per image whatever operations are drawn.

  Args:
    key: PRNG key.
    images: ``(n, h, w, c)`` in [0, 1].
    num_ops: operations per image.
    max_magnitude: largest magnitude in [0, 1].
    op_prob: probability that a drawn operation is applied.
    ops: names from :data:`RAND_AUGMENT_OPS`.

  Returns:
    The augmented batch, same shape and dtype, in [0, 1].
  """
  images = _check(images)
  unknown = [o for o in ops if o not in RAND_AUGMENT_OPS]
  if unknown or not ops:
    raise ValueError(f"Unknown RandAugment operation(s) {unknown}; valid: "
                     f"{', '.join(RAND_AUGMENT_OPS)}.")
  _, h, w, _ = images.shape
  identity = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  # Per op: an affine matrix (identity for colour ops) and a colour op
  # (identity for geometric ones).
  matrices = [(_GEOMETRIC[o] if o in _GEOMETRIC else
               (lambda k, m, h, w: identity)) for o in ops]
  colours = [(_identity if o in _GEOMETRIC else RAND_AUGMENT_OPS[o])
             for o in ops]
  matrices = [functools.partial(f, h=h, w=w) for f in matrices]
  dtype = images.dtype

  def one(k, img):
    img = img.astype(jnp.float32)
    for kk in jax.random.split(k, num_ops):
      k_op, k_mag, k_apply, k_sign = jax.random.split(kk, 4)
      index = jax.random.randint(k_op, (), 0, len(ops))
      m = jax.random.uniform(k_mag, (), maxval=max_magnitude)
      matrix = jax.lax.switch(index, matrices, k_sign, m)
      out = jax.lax.switch(index, colours, k_sign, _affine(img, matrix), m)
      img = jnp.where(jax.random.bernoulli(k_apply, op_prob), out, img)
    return jnp.clip(img, 0.0, 1.0)

  keys = jax.random.split(key, images.shape[0])
  return jax.vmap(one)(keys, images).astype(dtype)


def cutout(key: Array, images: Array, size: float = 0.5,
           fill: float = 0.5) -> Array:
  """Cutout: one square of side ``round(size * h)`` per image set to ``fill``.

  The centre is uniform over the image; the square is clipped at the
  borders (DeVries and Taylor, 2017). FixMatch draws ``size`` up to 0.5.
  """
  images = _check(images)
  n, h, w, _ = images.shape
  side = jnp.round(size * h)
  centre = jax.random.randint(key, (n, 2), 0, jnp.array([h, w]))
  rows = jnp.arange(h)[None, :, None]
  cols = jnp.arange(w)[None, None, :]
  r0 = centre[:, 0, None, None] - side // 2
  c0 = centre[:, 1, None, None] - side // 2
  inside = ((rows >= r0) & (rows < r0 + side) & (cols >= c0)
            & (cols < c0 + side))
  return jnp.where(inside[..., None], jnp.asarray(fill, images.dtype), images)


def strong_augment(key: Array, images: Array, *, flip: bool = False,
                   pad: int = 2, num_ops: int = 2, max_magnitude: float = 1.0,
                   cutout_size: float = 0.5) -> Array:
  """FixMatch's strong view: weak flip/translate, RandAugment, Cutout.

  Each image draws its Cutout side uniformly in ``[0, cutout_size]`` of the
  image height, as FixMatch's RandAugment variant does.

  Args:
    key: PRNG key.
    images: ``(n, h, w, c)`` in [0, 1].
    flip, pad: as :func:`weak_augment`.
    num_ops, max_magnitude: as :func:`rand_augment`.
    cutout_size: largest Cutout side as a fraction of the height (0: none).

  Returns:
    The augmented batch, same shape and dtype.
  """
  images = _check(images)
  k_weak, k_ra, k_size, k_cut = jax.random.split(key, 4)
  images = weak_augment(k_weak, images, flip=flip, pad=pad)
  images = rand_augment(k_ra, images, num_ops=num_ops,
                        max_magnitude=max_magnitude)
  if cutout_size > 0:
    sizes = jax.random.uniform(k_size, (images.shape[0],),
                               maxval=cutout_size)
    keys = jax.random.split(k_cut, images.shape[0])
    images = jax.vmap(lambda k, im, s: cutout(k, im[None], s)[0])(
        keys, images, sizes)
  return images
