"""Raw readers for the public domain-adaptation benchmark files.

The files are never shipped with tlax. They are read from a directory the
user gives (argument ``data_dir``, else ``$TLAX_DATA_DIR``), laid out as::

    <data_dir>/office_caltech10_surf/{amazon,caltech,dslr,webcam}_SURF_L10.mat
    <data_dir>/mnist_usps/MNIST_vs_USPS.mat
    <data_dir>/coil20/COIL1_vs_COIL2.mat

Public origin of every file: the GitHub repository ``chamwen/JPDA``, folder
``data/`` (https://github.com/chamwen/JPDA/tree/master/data), the MATLAB files
used by the JDA / BDA / MEDA / JPDA line of papers. Every file is checked
against its SHA-256 and expected array shapes before use.

This module returns plain NumPy arrays (float64 features, int labels starting
at 0). The TFDS builders in :mod:`tlax.data.tfds_builders` and the closed-form
methods in :mod:`tlax.shallow` both read through it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib

import numpy as np

ENV_VAR = "TLAX_DATA_DIR"
PUBLIC_SOURCE = "https://github.com/chamwen/JPDA/tree/master/data"


class DataFileError(RuntimeError):
  """A benchmark file is missing, corrupt or not what tlax expects."""


@dataclasses.dataclass(frozen=True)
class _FileSpec:
  relpath: str
  sha256: str
  fmt: str  # "mat5" (scipy.io.loadmat) or "hdf5" (MATLAB v7.3, h5py)


FILES = {
    "office_caltech10/amazon": _FileSpec(
        "office_caltech10_surf/amazon_SURF_L10.mat",
        "df32548b994e18d364c99e1f317e1fae100597259f0423a41b90f4f68187bb1f",
        "mat5"),
    "office_caltech10/caltech": _FileSpec(
        "office_caltech10_surf/caltech_SURF_L10.mat",
        "4f9334c8ced489d5054de97a5fd51a61f017f3bcd1f38c9a85c6d78cb9d7bda5",
        "mat5"),
    "office_caltech10/dslr": _FileSpec(
        "office_caltech10_surf/dslr_SURF_L10.mat",
        "44d673c68e1d07b837893aa74dba3b986e4a6cc3fd66f0dd357683bdef059216",
        "mat5"),
    "office_caltech10/webcam": _FileSpec(
        "office_caltech10_surf/webcam_SURF_L10.mat",
        "a6a9c78b4b7181dfbb58bcfd351d4ebd737f171c31247b8884948aa156d3f700",
        "mat5"),
    "mnist_usps": _FileSpec(
        "mnist_usps/MNIST_vs_USPS.mat",
        "7fbb67f14af7236e18a38dc8a0a836142361e9e720e4b763a5e2db511d306d6c",
        "hdf5"),
    "coil20": _FileSpec(
        "coil20/COIL1_vs_COIL2.mat",
        "8579073db70b133ce9f4c7a0c76ca1d9c54e6d398a955a087ca5a60e3063a316",
        "hdf5"),
}

# Expected (n, d) of every domain, and the number of classes.
SHAPES = {
    "office_caltech10/amazon": (958, 800),
    "office_caltech10/caltech": (1123, 800),
    "office_caltech10/dslr": (157, 800),
    "office_caltech10/webcam": (295, 800),
    "mnist_usps/mnist": (2000, 256),
    "mnist_usps/usps": (1800, 256),
    "coil20/coil1": (720, 1024),
    "coil20/coil2": (720, 1024),
}
NUM_CLASSES = {"office_caltech10": 10, "mnist_usps": 10, "coil20": 20}
# Which file and which arrays hold each two-domain collection's domains.
_HDF5_KEYS = {
    "mnist_usps/mnist": ("mnist_usps", "Xs", "Ys"),
    "mnist_usps/usps": ("mnist_usps", "Xt", "Yt"),
    "coil20/coil1": ("coil20", "Xs", "Ys"),
    "coil20/coil2": ("coil20", "Xt", "Yt"),
}
OFFICE_CALTECH10_CLASSES = ("back_pack", "bike", "calculator", "headphones",
                            "keyboard", "laptop_computer", "monitor", "mouse",
                            "mug", "projector")

FILE_DOMAINS = tuple(SHAPES)


def default_data_dir(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The directory that holds the benchmark files.

  Args:
    data_dir: explicit directory; if None, ``$TLAX_DATA_DIR``.

  Raises:
    DataFileError: if neither is set.
  """
  if data_dir is None:
    data_dir = os.environ.get(ENV_VAR)
  if not data_dir:
    raise DataFileError(
        f"No benchmark data directory given: pass data_dir= or set "
        f"${ENV_VAR} to the folder holding office_caltech10_surf/, "
        f"mnist_usps/ and coil20/. The public files are at {PUBLIC_SOURCE} "
        f"(see tlax/data/files.py for the layout).")
  path = pathlib.Path(data_dir).expanduser()
  if path.exists() and not path.is_dir():
    raise DataFileError(
        f"The benchmark data directory {str(path)!r} (from data_dir= or "
        f"${ENV_VAR}) is a file, not a folder; point it at the folder holding "
        "office_caltech10_surf/, mnist_usps/ and coil20/.")
  return path


def _sha256(path: pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()


_VERIFIED: dict[tuple[str, float], bool] = {}


def file_path(key: str, data_dir=None, *, verify: bool = True) -> pathlib.Path:
  """Path of the file behind ``key`` (a key of :data:`FILES`), verified.

  Raises:
    DataFileError: naming the file, the directory searched and the public
      source when the file is missing; when its SHA-256 differs.
  """
  spec = FILES[key]
  root = default_data_dir(data_dir)
  path = root / spec.relpath
  if not path.is_file():
    raise DataFileError(
        f"Benchmark file {spec.relpath!r} not found in data directory "
        f"{str(root)!r} (from data_dir= or ${ENV_VAR}). Download "
        f"{pathlib.Path(spec.relpath).name} from {PUBLIC_SOURCE} and place it "
        f"at {str(path)!r}.")
  if verify:
    stamp = (str(path.resolve()), path.stat().st_mtime)
    if not _VERIFIED.get(stamp):
      digest = _sha256(path)
      if digest != spec.sha256:
        raise DataFileError(
            f"Benchmark file {str(path)!r} is corrupt or a different version: "
            f"sha256 {digest}, expected {spec.sha256}. Download it again from "
            f"{PUBLIC_SOURCE}.")
      _VERIFIED[stamp] = True
  return path


def _check_shape(name: str, x: np.ndarray, y: np.ndarray, path) -> None:
  want = SHAPES[name]
  if x.shape != want or y.shape != (want[0],):
    raise DataFileError(
        f"{str(path)!r}: domain {name!r} has features {x.shape} and labels "
        f"{y.shape}; expected {want} and ({want[0]},).")
  ncls = NUM_CLASSES[name.split("/")[0]]
  if y.min() < 0 or y.max() >= ncls:
    raise DataFileError(f"{str(path)!r}: labels of {name!r} outside 1..{ncls}.")


def load_raw(name: str, data_dir=None, *, verify: bool = True):
  """Reads one domain's raw features and labels from its benchmark file.

  Args:
    name: ``<collection>/<domain>``, one of :data:`FILE_DOMAINS`.
    data_dir: folder with the files (default ``$TLAX_DATA_DIR``).
    verify: check the file's SHA-256 (once per file and process).

  Returns:
    ``(x, y)``: float64 array (n, d) as stored (SURF histograms; for the
    image collections, rows in the file's order, see :func:`to_images`),
    int64 labels in ``0..C-1``.
  """
  if name not in SHAPES:
    raise KeyError(f"Unknown benchmark domain {name!r}; valid names: "
                   f"{', '.join(FILE_DOMAINS)}.")
  if name.startswith("office_caltech10/"):
    import scipy.io  # pylint: disable=g-import-not-at-top
    path = file_path(name, data_dir, verify=verify)
    try:
      mat = scipy.io.loadmat(path)
      x = np.asarray(mat["fts"], dtype=np.float64)
      y = np.asarray(mat["labels"]).reshape(-1).astype(np.int64) - 1
    except Exception as e:  # pylint: disable=broad-except
      raise DataFileError(f"Cannot read {str(path)!r} as a MATLAB v5 file with "
                          f"'fts' and 'labels': {e}") from e
  else:
    import h5py  # pylint: disable=g-import-not-at-top
    key, xk, yk = _HDF5_KEYS[name]
    path = file_path(key, data_dir, verify=verify)
    try:
      with h5py.File(path, "r") as f:
        x = np.asarray(f[xk], dtype=np.float64)
        y = np.asarray(f[yk]).reshape(-1).astype(np.int64) - 1
    except Exception as e:  # pylint: disable=broad-except
      raise DataFileError(f"Cannot read {str(path)!r} as an HDF5 (MATLAB v7.3) "
                          f"file with {xk!r} and {yk!r}: {e}") from e
  _check_shape(name, x, y, path)
  return x, y


def surf_preprocess(x: np.ndarray) -> np.ndarray:
  """Standard SURF preprocessing of the JDA/BDA/MEDA papers, per domain.

  Each row is divided by its sum (an L1-normalised histogram), then each
  column is z-scored with the population standard deviation (MATLAB
  ``zscore(X, 1)``); a constant column becomes 0 instead of NaN.
  """
  x = np.asarray(x, dtype=np.float64)
  s = x.sum(axis=1, keepdims=True)
  x = x / np.where(s == 0, 1.0, s)
  mu = x.mean(axis=0, keepdims=True)
  sd = x.std(axis=0, keepdims=True)
  return (x - mu) / np.where(sd == 0, 1.0, sd)


def to_images(name: str, x: np.ndarray) -> np.ndarray:
  """Rows of an image collection as upright (n, H, W) images.

  mnist_usps rows reshaped to 16x16 are upright as h5py reads them; coil20
  rows reshaped to 32x32 must be transposed.
  """
  collection = name.split("/")[0]
  if collection == "mnist_usps":
    return x.reshape(-1, 16, 16)
  if collection == "coil20":
    return x.reshape(-1, 32, 32).transpose(0, 2, 1)
  raise ValueError(f"{name!r} is not an image collection.")


def load_features(name: str, data_dir=None, *, preprocess: str = "standard"):
  """A domain as a feature matrix, with the papers' standard preprocessing.

  Args:
    name: ``<collection>/<domain>``.
    data_dir: folder with the files (default ``$TLAX_DATA_DIR``).
    preprocess: ``"standard"`` (SURF: :func:`surf_preprocess`; digits and
      COIL: raw pixels in [0, 1]), ``"l2"`` (unit-L2 rows after the standard
      step) or ``"none"`` (as stored).

  Returns:
    ``(x, y)`` float64 (n, d), int64 (n,).
  """
  x, y = load_raw(name, data_dir)
  if preprocess not in ("standard", "l2", "none"):
    raise ValueError(f"preprocess must be 'standard', 'l2' or 'none', got "
                     f"{preprocess!r}.")
  if preprocess != "none" and name.startswith("office_caltech10/"):
    x = surf_preprocess(x)
  if preprocess == "l2":
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  return x, y


def available(data_dir=None) -> bool:
  """True when every benchmark file is present in the data directory."""
  try:
    root = default_data_dir(data_dir)
  except DataFileError:
    return False
  return all((root / s.relpath).is_file() for s in FILES.values())
