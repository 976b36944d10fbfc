"""Benchmark domains through the TF-free TFDS builders; TFDS catalogue domains.

Tests that need the public benchmark files use the ``data_dir`` fixture and
are skipped (with the reason shown) when the files are absent.
"""

import pathlib
import shutil
import sys

import numpy as np
import pytest

import tlax.data as td
from tlax.data import domains
from tlax.data import files
from tlax.data import tfds_builders

EXPECTED = {
    "office_caltech10/amazon": ("features", (800,), 10, 958),
    "office_caltech10/caltech": ("features", (800,), 10, 1123),
    "office_caltech10/dslr": ("features", (800,), 10, 157),
    "office_caltech10/webcam": ("features", (800,), 10, 295),
    "mnist_usps/mnist": ("image", (16, 16, 1), 10, 2000),
    "mnist_usps/usps": ("image", (16, 16, 1), 10, 1800),
    "coil20/coil1": ("image", (32, 32, 1), 20, 720),
    "coil20/coil2": ("image", (32, 32, 1), 20, 720),
}


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_domains(data_dir, name):
  kind, shape, ncls, n = EXPECTED[name]
  dom = td.load_domain(name, data_dir=data_dir)
  assert dom.kind == kind and dom.input_shape == shape
  assert dom.num_classes == ncls and len(dom.class_names) == ncls
  x, y = dom.splits["train"]
  assert x.dtype == np.float32 and y.dtype == np.int32 and len(x) == n
  assert set(np.unique(y)) == set(range(ncls))
  # Transductive protocol by default: train and test are the same set.
  assert dom.transductive and dom.splits["test"][0] is x
  if kind == "image":
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw, _ = files.load_raw(name, data_dir)
    np.testing.assert_array_equal(
        x[..., 0], files.to_images(name, raw).astype(np.float32))
  assert "tensorflow" not in sys.modules


@pytest.mark.data
def test_tfds_round_trip_equals_files(data_dir):
  arrays, _ = tfds_builders.load("office_caltech10/dslr", files_dir=data_dir)
  x, y = files.load_features("office_caltech10/dslr", data_dir)
  raw, _ = files.load_raw("office_caltech10/dslr", data_dir)
  np.testing.assert_array_equal(arrays["features"], x)
  np.testing.assert_array_equal(arrays["raw"], raw)
  np.testing.assert_array_equal(arrays["label"], y)
  arrays, _ = tfds_builders.load("coil20/coil2", files_dir=data_dir)
  raw, y = files.load_raw("coil20/coil2", data_dir)
  np.testing.assert_array_equal(  # images are stored as float32
      arrays["image"][..., 0],
      files.to_images("coil20/coil2", raw).astype(np.float32))
  np.testing.assert_array_equal(arrays["label"], y)


@pytest.mark.data
def test_surf_preprocessing_options_and_statistics(data_dir):
  std = td.load_domain("office_caltech10/webcam", data_dir=data_dir)
  x = std.splits["train"][0]
  np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
  stats = std.info["preprocessing"]
  assert stats["row_sum"]["zero_rows"] == 0 and stats["row_sum"]["min"] > 0
  raw = td.load_domain("office_caltech10/webcam", data_dir=data_dir,
                       preprocess="none").splits["train"][0]
  np.testing.assert_array_equal(raw, files.load_raw(
      "office_caltech10/webcam", data_dir)[0].astype(np.float32))
  l2 = td.load_domain("office_caltech10/webcam", data_dir=data_dir,
                      preprocess="l2").splits["train"][0]
  np.testing.assert_allclose(np.linalg.norm(l2, axis=1), 1.0, rtol=1e-5)


@pytest.mark.data
def test_holdout_gives_a_seeded_stratified_test_split(data_dir):
  a = td.load_domain("mnist_usps/usps", data_dir=data_dir, holdout=0.2, seed=1)
  b = td.load_domain("mnist_usps/usps", data_dir=data_dir, holdout=0.2, seed=2)
  (xtr, ytr), (xte, yte) = a.splits["train"], a.splits["test"]
  assert not a.transductive
  assert len(xtr) + len(xte) == 1800 and abs(len(xte) - 360) <= 10
  assert set(np.unique(yte)) == set(range(10))
  tr_rows = {r.tobytes() for r in xtr.reshape(len(xtr), -1)}
  assert not any(r.tobytes() in tr_rows for r in xte.reshape(len(xte), -1))
  assert not np.array_equal(yte, b.splits["test"][1])


@pytest.mark.data
def test_transductive_task(data_dir):
  t = td.make_task("mnist_usps/mnist", "mnist_usps/usps", data_dir=data_dir,
                   target_labeled_per_class=2)
  assert t.transductive
  assert t.xt is t.xt_test and len(t.xt) == 1800 - 20
  rows = {r.tobytes() for r in t.xt_test.reshape(len(t.xt_test), -1)}
  assert not any(r.tobytes() in rows for r in t.xtl.reshape(20, -1))
  big = td.load_domain("mnist_usps/usps", data_dir=data_dir, image_size=28,
                       channels=3)
  assert big.input_shape == (28, 28, 3)
  assert big.splits["test"][0] is big.splits["train"][0]  # still one set
  h = td.make_task("mnist_usps/mnist", "mnist_usps/usps", data_dir=data_dir,
                   domain_options={"holdout": 0.2})
  assert not h.transductive and len(h.xt) + len(h.xt_test) == 1800


@pytest.mark.data
def test_features_and_images_do_not_pair(data_dir):
  with pytest.raises(td.DomainShapeError, match="flatten=True"):
    td.make_task("office_caltech10/amazon", "mnist_usps/usps",
                 data_dir=data_dir)


def test_missing_benchmark_file_names_file_dir_and_source(tmp_path):
  with pytest.raises(td.DataFileError) as e:
    td.load_domain("coil20/coil1", data_dir=tmp_path)
  msg = str(e.value)
  assert "COIL1_vs_COIL2.mat" in msg and str(tmp_path) in msg
  assert files.PUBLIC_SOURCE in msg


@pytest.mark.data
def test_wrong_checksum_is_refused_even_with_a_built_cache(data_dir, tmp_path):
  td.load_domain("office_caltech10/dslr", data_dir=data_dir)  # cache built
  spec = files.FILES["office_caltech10/dslr"]
  dst = tmp_path / spec.relpath
  dst.parent.mkdir(parents=True)
  shutil.copy(pathlib.Path(data_dir) / spec.relpath, dst)
  with open(dst, "r+b") as f:
    f.seek(200)
    f.write(b"\x00\x01\x02\x03")
  with pytest.raises(td.DataFileError, match="sha256"):
    td.load_domain("office_caltech10/dslr", data_dir=tmp_path)


@pytest.mark.data
def test_corrupt_tfds_cache_is_rebuilt(data_dir, tmp_path):
  arrays, path = tfds_builders.load("office_caltech10/dslr",
                                    files_dir=data_dir, data_dir=tmp_path)
  shards = list(pathlib.Path(path).glob("*.array_record*"))
  assert shards
  for s in shards:
    s.write_bytes(b"garbage")
  again, _ = tfds_builders.load("office_caltech10/dslr", files_dir=data_dir,
                                data_dir=tmp_path)
  np.testing.assert_array_equal(again["features"], arrays["features"])


# TFDS catalogue domains, tested offline with tfds.testing.mock_data.


@pytest.fixture
def mock_tfds(tmp_path):
  from tlax.data import _tfds_compat  # pylint: disable=g-import-not-at-top
  _tfds_compat.ensure_importlib_resources()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  domains.clear_cache()
  with tfds.testing.mock_data(num_examples=24):
    yield str(tmp_path)
  domains.clear_cache()


def test_tfds_catalogue_domain(mock_tfds):
  dom = td.load_domain("tfds/mnist", image_size=16, data_dir=mock_tfds)
  assert dom.kind == "image" and dom.input_shape == (16, 16, 1)
  assert dom.num_classes == 10 and dom.class_names[3] == "3"
  for x, y in dom.splits.values():
    assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert len(x) == 24 and y.dtype == np.int32 and y.max() < 10
  rgb = td.load_domain("tfds/svhn_cropped", channels=1, data_dir=mock_tfds)
  assert rgb.input_shape == (32, 32, 1)


def test_tfds_catalogue_holdout_and_task(mock_tfds):
  dom = td.load_domain("tfds/mnist", data_dir=mock_tfds, test_split=None,
                       holdout=0.25)
  assert len(dom.splits["train"][0]) + len(dom.splits["test"][0]) == 24
  t = td.make_task("tfds/mnist", "digits/syndigits", image_size=16,
                   channels=1, data_dir=mock_tfds, source_val_fraction=0.0,
                   domain_options={"target": {"n_train": 40, "n_test": 10}})
  assert t.input_shape == (16, 16, 1) and len(t.xs) == 24


def test_tfds_catalogue_errors(tmp_path):
  with pytest.raises(KeyError, match="no TFDS dataset"):
    td.load_domain("tfds/no_such_dataset_xyz", data_dir=tmp_path)
  with pytest.raises(td.DataFileError, match="download=True"):
    td.load_domain("tfds/mnist", data_dir=tmp_path)
