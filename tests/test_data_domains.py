"""Domains: embedded domains, options, determinism, errors."""

import numpy as np
import pytest

import tlax.data as td
from tlax.data import domains
from tlax.data import synthetic

SMALL = {"n_train": 120, "n_test": 40}  # rendered domains, kept tiny


def _check_domain(dom, num_classes, input_shape):
  assert dom.num_classes == num_classes
  assert dom.input_shape == input_shape
  assert len(dom.class_names) == num_classes
  for x, y in dom.splits.values():
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.shape[1:] == input_shape and len(x) == len(y)
    assert y.min() >= 0 and y.max() < num_classes
    if dom.kind == "image":
      assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("name,options,shape,ncls", [
    ("digits/sklearn", {}, (16, 16, 1), 10),
    ("digits/mnistm", {}, (16, 16, 3), 10),
    ("digits/syndigits", SMALL, (16, 16, 3), 10),
    ("fonts/letters", SMALL, (16, 16, 3), 26),
    ("digits/fonts", SMALL, (16, 16, 1), 10),
])
def test_embedded_domains_shapes_dtypes_labels(name, options, shape, ncls):
  dom = td.load_domain(name, **options)
  _check_domain(dom, ncls, shape)
  assert dom.kind == "image" and dom.name == name
  assert not dom.transductive
  assert set(np.unique(dom.splits["train"][1])) == set(range(ncls))


def test_sklearn_digits_split_is_stratified_and_disjoint():
  dom = td.load_domain("digits/sklearn")
  (xtr, ytr), (xte, yte) = dom.splits["train"], dom.splits["test"]
  assert len(xtr) + len(xte) == 1797
  assert abs(len(xte) / 1797 - 0.2) < 0.01
  assert set(np.unique(yte)) == set(range(10))
  flat = {r.tobytes() for r in xtr.reshape(len(xtr), -1)}
  overlap = sum(r.tobytes() in flat for r in xte.reshape(len(xte), -1))
  assert overlap <= 2  # load_digits has a few exact duplicate images


@pytest.mark.parametrize("size,channels", [(28, 3), ((8, 12), 1), (16, 1)])
def test_image_size_and_channels_options(size, channels):
  dom = td.load_domain("digits/mnistm", image_size=size, channels=channels)
  hw = (size, size) if isinstance(size, int) else size
  _check_domain(dom, 10, (*hw, channels))


def test_syndigits_native_size_and_flatten():
  dom = td.load_domain("digits/syndigits", image_size=24, **SMALL)
  assert dom.input_shape == (24, 24, 3)
  flat = td.load_domain("digits/sklearn", flatten=True)
  assert flat.kind == "features" and flat.input_shape == (256,)


def test_rendered_domains_deterministic_per_seed_and_differ_across_seeds():
  a = synthetic.load_syndigits("digits/syndigits", seed=3, **SMALL)
  b = synthetic.load_syndigits("digits/syndigits", seed=3, **SMALL)
  c = synthetic.load_syndigits("digits/syndigits", seed=4, **SMALL)
  for split in ("train", "test"):
    np.testing.assert_array_equal(a.splits[split][0], b.splits[split][0])
    np.testing.assert_array_equal(a.splits[split][1], b.splits[split][1])
    assert not np.allclose(a.splits[split][0], c.splits[split][0])
  # Train and test come from different streams.
  assert not np.allclose(a.splits["train"][0][:40], a.splits["test"][0])


def test_font_digits_deterministic_grey_and_sized():
  a = synthetic.load_font_digits("digits/fonts", seed=3, **SMALL)
  b = synthetic.load_font_digits("digits/fonts", seed=3, **SMALL)
  c = synthetic.load_font_digits("digits/fonts", seed=4, **SMALL)
  for split in ("train", "test"):
    np.testing.assert_array_equal(a.splits[split][0], b.splits[split][0])
    np.testing.assert_array_equal(a.splits[split][1], b.splits[split][1])
    assert not np.allclose(a.splits[split][0], c.splits[split][0])
  assert not np.allclose(a.splits["train"][0][:40], a.splits["test"][0])
  x, y = a.splits["train"]
  assert x.shape == (120, 16, 16, 1) and len(a.splits["test"][1]) == 40
  counts = np.bincount(y, minlength=10)
  assert counts.max() - counts.min() <= 1
  # Bright strokes on black, as digits/sklearn: dark borders, a bright
  # centre.
  assert x[:, 0].mean() < 0.15 and x[:, 6:10, 6:10].mean() > 0.3
  big = td.load_domain("digits/fonts", image_size=28, channels=3, **SMALL)
  assert big.input_shape == (28, 28, 3)
  np.testing.assert_array_equal(big.splits["train"][0][..., 0],
                                big.splits["train"][0][..., 2])
  with pytest.raises(ValueError, match="n_train"):
    synthetic.load_font_digits("digits/fonts", n_train=0)


def test_default_task_pairs_fonts_with_sklearn_digits():
  from experiments.configs import common  # pylint: disable=g-import-not-at-top
  task = td.make_task(common.DEFAULT_SOURCE, common.DEFAULT_TARGET,
                      channels=3, domain_options={"source": SMALL})
  assert task.input_shape == (16, 16, 3) and task.num_classes == 10


def test_syndigits_smaller_request_is_a_prefix():
  x1, y1 = synthetic.generate("digits/syndigits", "0123456789", 50, 0, 0,
                              (16, 16))
  x2, y2 = synthetic.generate("digits/syndigits", "0123456789", 1100, 0, 0,
                              (16, 16))
  np.testing.assert_array_equal(x1, x2[:50])
  np.testing.assert_array_equal(y1, y2[:50])
  # Classes are balanced to within one in any prefix.
  for m in (50, 1100):
    counts = np.bincount(y2[:m], minlength=10)
    assert counts.max() - counts.min() <= 1


def test_mnistm_deterministic_per_seed_and_differs_across_seeds():
  a = synthetic.load_mnistm("digits/mnistm", seed=1)
  b = synthetic.load_mnistm("digits/mnistm", seed=1)
  c = synthetic.load_mnistm("digits/mnistm", seed=2)
  np.testing.assert_array_equal(a.splits["train"][0], b.splits["train"][0])
  assert a.splits["train"][0].shape[-1] == 3
  assert not np.array_equal(a.splits["train"][1], c.splits["train"][1])


def test_mnistm_follows_the_recipe():
  digits = np.zeros((4, 16, 16, 1), np.float32)
  digits[:, 4:12, 7:9] = 1.0  # a bright bar
  rng = np.random.default_rng(0)
  out = synthetic.blend_mnistm(digits, rng)
  patches = synthetic.blend_mnistm(np.zeros_like(digits),
                                   np.random.default_rng(0))
  np.testing.assert_allclose(out, np.abs(patches - digits), atol=1e-6)


def test_mnistm_uses_the_same_digits_as_sklearn():
  s = td.load_domain("digits/sklearn", seed=5)
  m = td.load_domain("digits/mnistm", seed=5)
  np.testing.assert_array_equal(s.splits["test"][1], m.splits["test"][1])


def test_loaded_domains_are_cached_and_read_only():
  a = td.load_domain("digits/sklearn", seed=0)
  b = td.load_domain("digits/sklearn", seed=0)
  assert a is b
  with pytest.raises(ValueError):
    a.splits["train"][0][0, 0, 0, 0] = 1.0


def test_list_domains_has_every_family():
  names = td.list_domains()
  for n in ("office_caltech10/amazon", "office_caltech10/caltech",
            "office_caltech10/dslr", "office_caltech10/webcam",
            "mnist_usps/mnist", "mnist_usps/usps", "coil20/coil1",
            "coil20/coil2", "digits/sklearn", "digits/mnistm",
            "digits/syndigits", "fonts/letters", "digits/fonts"):
    assert n in names


def test_unknown_domain_lists_valid_names():
  with pytest.raises(KeyError) as e:
    td.load_domain("digits/svhn")
  msg = str(e.value)
  assert "digits/svhn" in msg
  for n in td.list_domains():
    assert n in msg
  assert "tfds/" in msg


def test_unknown_option_lists_the_domain_options():
  with pytest.raises(TypeError, match="n_train.*test_fraction"):
    td.load_domain("digits/sklearn", n_train=10)


def test_bad_channels_is_refused():
  with pytest.raises(ValueError, match="channels must be 1 or 3"):
    td.load_domain("digits/sklearn", channels=2)


def test_resize_is_exact_on_constant_images_and_identity_at_same_size():
  x = np.full((2, 8, 8, 1), 0.25, np.float32)
  np.testing.assert_allclose(domains.resize_images(x, 20), 0.25, atol=1e-6)
  np.testing.assert_allclose(domains.resize_images(x, (5, 3)), 0.25, atol=1e-6)
  y = np.random.default_rng(0).random((3, 7, 7, 3)).astype(np.float32)
  np.testing.assert_array_equal(domains.resize_images(y, 7), y)


def test_channel_conversion():
  g = np.random.default_rng(0).random((2, 4, 4, 1)).astype(np.float32)
  rgb = domains.convert_channels(g, 3)
  np.testing.assert_array_equal(rgb[..., 1], g[..., 0])
  np.testing.assert_allclose(domains.convert_channels(rgb, 1), g, atol=1e-6)


def test_stratified_split_counts():
  y = np.repeat(np.arange(3), [10, 5, 1])
  keep, held = domains.stratified_split(y, 0.2, np.random.default_rng(0))
  assert np.bincount(y[held], minlength=3).tolist() == [2, 1, 0]
  assert len(np.intersect1d(keep, held)) == 0
  assert len(keep) + len(held) == len(y)


@pytest.mark.parametrize("n_in,n_out", [(8, 16), (32, 16), (7, 5), (16, 28)])
def test_numpy_resize_weights_match_jax(n_in, n_out):
  import jax  # pylint: disable=g-import-not-at-top
  want = jax.image.resize(np.eye(n_in, dtype=np.float32), (n_out, n_in),
                          "linear", antialias=True)
  np.testing.assert_allclose(domains._resize_matrix(n_in, n_out, "linear"),
                             np.asarray(want), atol=1e-6)


def test_rendered_arrays_disk_cache(tmp_path, monkeypatch):
  monkeypatch.setenv("TLAX_CACHE_DIR", str(tmp_path))
  opts = dict(n_train=30, n_test=10, cache=True)
  a = synthetic.load_syndigits("digits/syndigits", seed=9, **opts)
  stored = list((tmp_path / "synthetic").glob("*.npz"))
  assert len(stored) == 1
  b = synthetic.load_syndigits("digits/syndigits", seed=9, **opts)
  np.testing.assert_array_equal(a.splits["train"][0], b.splits["train"][0])
  stored[0].write_bytes(b"not an npz")  # a corrupt cache is made again
  c = synthetic.load_syndigits("digits/syndigits", seed=9, **opts)
  np.testing.assert_array_equal(a.splits["test"][0], c.splits["test"][0])


def test_domain_grid_png(tmp_path):
  from tlax.viz.grids import plot_domain_grid  # pylint: disable=g-import-not-at-top
  path = tmp_path / "grid.png"
  plot_domain_grid(td.load_domain("digits/sklearn"), n=9, path=path)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="image domain"):
    plot_domain_grid(td.load_domain("digits/sklearn", image_size=(4, 5),
                                    flatten=True), n=4)


def test_unknown_domain_is_a_key_error_with_a_plain_message():
  with pytest.raises(domains.UnknownDomainError) as e:
    domains.load_domain("digits/nope")
  assert isinstance(e.value, KeyError)
  assert str(e.value).startswith("Unknown domain 'digits/nope'. Valid names:")
