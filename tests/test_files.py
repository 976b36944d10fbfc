"""The raw benchmark-file readers: shapes, labels, preprocessing, errors."""

import hashlib
import shutil

import numpy as np
import pytest

from tlax.data import files


@pytest.mark.parametrize("name", files.FILE_DOMAINS)
def test_every_domain_loads_with_expected_shape(data_dir, name):
  x, y = files.load_features(name, data_dir)
  assert x.shape == files.SHAPES[name]
  assert y.shape == (x.shape[0],)
  ncls = files.NUM_CLASSES[name.split("/")[0]]
  assert set(np.unique(y)) == set(range(ncls))
  assert np.isfinite(x).all()


def test_surf_preprocessing_matches_matlab_zscore(data_dir):
  raw, _ = files.load_raw("office_caltech10/dslr", data_dir)
  x, _ = files.load_features("office_caltech10/dslr", data_dir)
  rows = raw / raw.sum(1, keepdims=True)
  sd = rows.std(0)  # population std, as MATLAB zscore(X, 1)
  keep = sd > 0
  np.testing.assert_allclose(x[:, keep], ((rows - rows.mean(0)) / sd)[:, keep])
  np.testing.assert_allclose(x.mean(0), 0, atol=1e-12)


def test_images_are_upright_orientation_convention(data_dir):
  x, _ = files.load_raw("coil20/coil1", data_dir)
  img = files.to_images("coil20/coil1", x[:1])[0]
  np.testing.assert_array_equal(img, x[0].reshape(32, 32).T)
  x, _ = files.load_raw("mnist_usps/usps", data_dir)
  np.testing.assert_array_equal(files.to_images("mnist_usps/usps", x[:1])[0],
                                x[0].reshape(16, 16))


def test_missing_file_names_file_directory_and_source(tmp_path):
  with pytest.raises(files.DataFileError) as e:
    files.load_raw("office_caltech10/amazon", tmp_path)
  msg = str(e.value)
  assert "amazon_SURF_L10.mat" in msg and str(tmp_path) in msg
  assert files.PUBLIC_SOURCE in msg


def test_no_data_dir_explains_env_var(monkeypatch):
  monkeypatch.delenv("TLAX_DATA_DIR", raising=False)
  with pytest.raises(files.DataFileError, match="TLAX_DATA_DIR"):
    files.default_data_dir(None)


def test_corrupt_file_is_refused(tmp_path, data_dir):
  spec = files.FILES["office_caltech10/dslr"]
  dst = tmp_path / spec.relpath
  dst.parent.mkdir(parents=True)
  shutil.copy(f"{data_dir}/{spec.relpath}", dst)
  with open(dst, "r+b") as f:
    f.seek(200)
    f.write(b"\x00\x01\x02")
  assert hashlib.sha256(dst.read_bytes()).hexdigest() != spec.sha256
  with pytest.raises(files.DataFileError, match="corrupt"):
    files.load_raw("office_caltech10/dslr", tmp_path)


def test_unknown_domain_lists_valid_names():
  with pytest.raises(KeyError, match="office_caltech10/amazon"):
    files.load_raw("office_caltech10/amazonn")
