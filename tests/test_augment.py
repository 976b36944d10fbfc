"""On-device augmentations: shapes, ranges, determinism per key, references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tlax.data import augment


def _images(n=6, h=8, w=8, c=1, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, h, w, c))


@pytest.mark.parametrize("fn", [
    augment.weak_augment,
    pytest.param(augment.strong_augment, marks=pytest.mark.slow),
    pytest.param(augment.rand_augment, marks=pytest.mark.slow),
    augment.cutout, augment.random_flip, augment.random_translate])
def test_shape_range_and_determinism_per_key(fn):
  x = _images(c=3)
  f = jax.jit(fn)
  a = f(jax.random.key(1), x)
  b = f(jax.random.key(1), x)
  c = f(jax.random.key(2), x)
  assert a.shape == x.shape and a.dtype == x.dtype
  assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not np.array_equal(np.asarray(a), np.asarray(c))


@pytest.mark.slow
def test_vmap_over_keys_matches_loop():
  x = _images()
  keys = jax.random.split(jax.random.key(3), 3)
  batched = jax.jit(jax.vmap(lambda k: augment.strong_augment(k, x)))(keys)
  one = jax.jit(augment.strong_augment)
  for i in range(3):
    np.testing.assert_allclose(np.asarray(batched[i]),
                               np.asarray(one(keys[i], x)), atol=1e-6)


def test_translate_is_a_crop_of_the_reflect_padded_image():
  x = np.asarray(_images(n=4))
  key = jax.random.key(5)
  out = np.asarray(augment.random_translate(key, jnp.asarray(x), pad=2))
  padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  for i in range(4):
    matches = [(r, c) for r in range(5) for c in range(5)
               if np.array_equal(padded[i, r:r + 8, c:c + 8], out[i])]
    assert matches, i
  np.testing.assert_array_equal(
      np.asarray(augment.random_translate(key, jnp.asarray(x), pad=0)), x)


def test_flip_flips_or_keeps_each_image():
  x = np.asarray(_images(n=16))
  out = np.asarray(augment.random_flip(jax.random.key(0), jnp.asarray(x)))
  flipped = [np.array_equal(out[i], x[i, :, ::-1]) for i in range(16)]
  kept = [np.array_equal(out[i], x[i]) for i in range(16)]
  assert all(f or k for f, k in zip(flipped, kept))
  assert any(flipped) and any(kept)
  # Digits are not flipped by default.
  weak = augment.weak_augment(jax.random.key(0), jnp.asarray(x), pad=0)
  np.testing.assert_array_equal(np.asarray(weak), x)


def test_cutout_sets_one_clipped_square_to_grey():
  x = jnp.zeros((20, 8, 8, 1))
  out = np.asarray(augment.cutout(jax.random.key(0), x, size=0.5))
  for img in out[..., 0]:
    rows, cols = np.nonzero(img == 0.5)
    assert len(rows) > 0
    # The grey region is one axis-aligned rectangle of side <= 4.
    assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
    assert len(rows) == (rows.max() - rows.min() + 1) * (
        cols.max() - cols.min() + 1)
  assert np.all((out == 0) | (out == 0.5))


def test_geometric_ops_identity_at_zero_magnitude():
  x = _images(n=1)[0]
  for name in ("rotate", "shear_x", "shear_y", "translate_x", "translate_y"):
    np.testing.assert_allclose(
        np.asarray(augment.RAND_AUGMENT_OPS[name](jax.random.key(0), x, 0.0)),
        np.asarray(x), atol=1e-5, err_msg=name)


def test_colour_op_references():
  x = _images(n=1)[0]
  key = jax.random.key(0)
  ops = augment.RAND_AUGMENT_OPS
  np.testing.assert_allclose(np.asarray(ops["invert"](key, x, 1.0)),
                             1 - np.asarray(x), atol=1e-6)
  sol = np.asarray(ops["solarize"](key, x, 0.5))
  xn = np.asarray(x)
  np.testing.assert_allclose(sol, np.where(xn >= 0.5, 1 - xn, xn), atol=1e-6)
  auto = np.asarray(ops["autocontrast"](key, x, 1.0))
  assert auto.min() == pytest.approx(0.0, abs=1e-6)
  assert auto.max() == pytest.approx(1.0, abs=1e-5)
  # Sampling at a 90-degree rotation of the grid turns the image clockwise.
  img = jnp.arange(16.0).reshape(4, 4, 1) / 16
  r = augment._affine(img, jnp.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]))
  np.testing.assert_allclose(np.asarray(r)[..., 0],
                             np.rot90(np.asarray(img)[..., 0], -1), atol=1e-5)


def test_bad_input():
  with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
    augment.weak_augment(jax.random.key(0), jnp.zeros((4, 64)))
  with pytest.raises(ValueError, match="Unknown RandAugment"):
    augment.rand_augment(jax.random.key(0), jnp.zeros((1, 4, 4, 1)),
                         ops=("blur",))
