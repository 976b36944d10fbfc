"""The wheel and sdist build offline, install, and import without the repo."""

import os
import pathlib
import subprocess
import sys
import tarfile
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_and_sdist_install_and_import(tmp_path):
  out = tmp_path / "dist"
  proc = subprocess.run(
      [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
       str(REPO)], capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  wheel = next(out.glob("tlax-*.whl"))
  sdist = next(out.glob("tlax-*.tar.gz"))
  names = zipfile.ZipFile(wheel).namelist()
  assert "tlax/kernels/conv_pool.cc" in names
  assert not any(n.endswith((".mat", ".npz", ".h5")) for n in names)
  with tarfile.open(sdist) as tar:
    members = tar.getnames()
  assert any(m.endswith("/LICENSE") for m in members)
  site = tmp_path / "site"
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
       "--target", str(site), str(wheel)], capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  smoke = ("import numpy as np, tlax; "
           "assert tlax.__file__.startswith(%r), tlax.__file__; "
           "x = np.random.default_rng(0).normal(size=(40, 5)); "
           "y = (x[:, 0] > 0).astype(int); "
           "m = tlax.shallow.CORAL().fit(x, y, x + 1.0); "
           "print(tlax.__version__, float(tlax.losses.coral(x, x + 1.0)))"
           % str(site))
  env = dict(os.environ, PYTHONPATH=str(site))
  proc = subprocess.run([sys.executable, "-c", smoke], cwd=tmp_path, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  import tlax  # pylint: disable=g-import-not-at-top
  assert proc.stdout.split()[0] == tlax.__version__
