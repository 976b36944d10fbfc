"""Reader of the GBU benchmark files of Xian et al. (TPAMI 2018).

"Zero-shot learning - the good, the bad and the ugly" released, per data set
(AWA1, AWA2, CUB, SUN, APY), two MATLAB files in ``xlsa17/data/<NAME>/``:

* ``res101.mat``: ``features`` (2048, N) ResNet-101 image features and
  ``labels`` (N, 1), 1-based class numbers;
* ``att_splits.mat``: ``att`` (attributes, classes) class embeddings with
  L2-normalised columns, ``original_att``, ``allclasses_names`` (classes, 1)
  cell array, and the proposed split as 1-based image indices into
  ``res101.mat``: ``trainval_loc``, ``test_seen_loc``, ``test_unseen_loc``
  (and ``train_loc``, ``val_loc`` in most copies).

:func:`load_gbu` reads both into a :class:`tlax.zsl.protocols.ZSLSplit`. The
attribute files are small and circulate on their own (the tlax data folder
keeps them as ``zsl_xlsa17/<NAME>_att_splits.mat``); the feature files come
only with the public release (the ``xlsa17.zip`` archive of the paper's
project page at the Max Planck Institute for Informatics).
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from tlax.zsl import protocols

DATASETS = ("AWA1", "AWA2", "CUB", "SUN", "APY")
RELEASE = ("the xlsa17 release of Xian et al., 'Zero-shot learning - the "
           "good, the bad and the ugly' (TPAMI 2018), file xlsa17.zip from "
           "the paper's project page at the Max Planck Institute for "
           "Informatics (mpi-inf.mpg.de)")


class GBUFileError(protocols.ZSLDataError):
  """A GBU file that is missing or not laid out as the release."""


def _loadmat(path):
  import scipy.io  # pylint: disable=g-import-not-at-top
  try:
    return scipy.io.loadmat(os.fspath(path))
  except FileNotFoundError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise GBUFileError(f"Cannot read {str(path)!r} as a MATLAB v5 file: "
                       f"{e}") from e


def _field(mat, key, path):
  if key not in mat:
    have = sorted(k for k in mat if not k.startswith("__"))
    raise GBUFileError(f"{str(path)!r} has no {key!r}; it has {have}. Is it "
                       "the right file of the GBU release?")
  return mat[key]


def _names(cell) -> tuple[str, ...]:
  out = []
  for item in np.asarray(cell, dtype=object).reshape(-1):
    while isinstance(item, np.ndarray) and item.dtype == object:
      item = item.reshape(-1)[0]
    out.append(str(np.asarray(item).reshape(-1)[0]) if isinstance(
        item, np.ndarray) else str(item))
  return tuple(out)


def find_files(dataset: str, data_dir=None) -> tuple[pathlib.Path,
                                                      pathlib.Path]:
  """``(att_splits.mat, res101.mat)`` paths of ``dataset`` under ``data_dir``.

  Looked up in the release layout ``xlsa17/data/<NAME>/{att_splits,res101}.mat``
  and in ``zsl_xlsa17/<NAME>_{att_splits,res101}.mat``; ``data_dir`` defaults
  to ``$TLAX_DATA_DIR``.

  Raises:
    GBUFileError: an unknown data set, or a file found nowhere (the message
      lists where it was looked for and where the release is).
  """
  if dataset not in DATASETS:
    raise GBUFileError(f"Unknown GBU data set {dataset!r}; valid: "
                       f"{', '.join(DATASETS)}.")
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  root = files.default_data_dir(data_dir)
  found = []
  for kind in ("att_splits", "res101"):
    options = [root / "xlsa17" / "data" / dataset / f"{kind}.mat",
               root / "zsl_xlsa17" / f"{dataset}_{kind}.mat"]
    path = next((p for p in options if p.is_file()), None)
    if path is None:
      raise GBUFileError(
          f"GBU {dataset}: {kind}.mat not found; looked for "
          f"{', '.join(repr(str(p)) for p in options)}. The files are part "
          f"of {RELEASE}: unpack it so that xlsa17/data/{dataset}/ is in "
          f"{str(root)!r} (or set TLAX_DATA_DIR).")
    found.append(path)
  return found[0], found[1]


def load_gbu(att_path, res_path, *, name: str = "gbu",
             embeddings: str = "att") -> protocols.ZSLSplit:
  """The proposed split of a GBU data set as a :class:`ZSLSplit`.

  Args:
    att_path: ``att_splits.mat``.
    res_path: ``res101.mat``.
    name: a name for messages.
    embeddings: ``"att"`` (the L2-normalised attributes the paper uses) or
      ``"original_att"``.

  Returns:
    The split: training = ``trainval_loc``, seen test = ``test_seen_loc``,
    unseen test = ``test_unseen_loc``; seen classes are those of the
    training images, unseen those of the unseen test images; labels and
    class embeddings in the release's class order (0-based).

  Raises:
    GBUFileError: missing keys, features and labels of different lengths,
      indices out of range, or an attribute table whose class count differs
      from the labels (each message names the file).
  """
  att = _loadmat(att_path)
  res = _loadmat(res_path)
  s = np.asarray(_field(att, embeddings, att_path), np.float32).T
  names = _names(_field(att, "allclasses_names", att_path))
  feats = np.asarray(_field(res, "features", res_path))
  labels = np.asarray(_field(res, "labels", res_path)).reshape(-1)
  if feats.ndim != 2 or feats.shape[1] != labels.size:
    raise GBUFileError(
        f"{str(res_path)!r}: 'features' has shape {feats.shape} and 'labels' "
        f"{labels.size} entries; expected features (dims, N) with one label "
        "per column.")
  x = feats.T.astype(np.float32)
  y = labels.astype(np.int64) - 1
  if len(names) != s.shape[0]:
    raise GBUFileError(f"{str(att_path)!r}: {s.shape[0]} classes in "
                       f"{embeddings!r} but {len(names)} class names.")
  if y.min() < 0 or y.max() >= s.shape[0]:
    raise GBUFileError(
        f"{str(res_path)!r}: labels run {y.min() + 1}..{y.max() + 1} but "
        f"{str(att_path)!r} describes {s.shape[0]} classes (attribute "
        "dimension mismatch: are both files of the same data set?).")

  def loc(key):
    idx = np.asarray(_field(att, key, att_path)).reshape(-1).astype(np.int64)
    if idx.size and (idx.min() < 1 or idx.max() > x.shape[0]):
      raise GBUFileError(
          f"{str(att_path)!r}: {key} indexes images {idx.min()}..{idx.max()} "
          f"but {str(res_path)!r} has {x.shape[0]} images.")
    return idx - 1

  tr, ts, tu = loc("trainval_loc"), loc("test_seen_loc"), loc("test_unseen_loc")
  return protocols.ZSLSplit(
      x_train=x[tr], y_train=y[tr], x_test_seen=x[ts], y_test_seen=y[ts],
      x_test_unseen=x[tu], y_test_unseen=y[tu], class_embeddings=s,
      seen=np.unique(y[tr]), unseen=np.unique(y[tu]), class_names=names,
      name=name).check()


def write_synthetic_res101(att_path, out_path, *, images_per_class: int = 6,
                           dim: int = 2048, seed: int = 0,
                           signal: float = 3.0) -> None:
  """Writes a ``res101.mat`` of the release's layout for an ``att_splits.mat``.

  For tests and for trying the pipeline without the release: features are a
  fixed random linear image of each class's attributes plus noise (so the
  zero-shot methods have something to learn), ``features`` (dim, N) float64,
  ``labels`` (N, 1) 1-based, ``image_files`` (N, 1) cell. The split indices of
  ``att_path`` are NOT consistent with it; :func:`write_synthetic_att_splits`
  writes a matching one.
  """
  import scipy.io  # pylint: disable=g-import-not-at-top
  att = _loadmat(att_path)
  s = np.asarray(_field(att, "att", att_path), np.float64).T
  rng = np.random.default_rng(seed)
  proj = rng.normal(size=(s.shape[1], dim)) / np.sqrt(s.shape[1])
  labels = np.repeat(np.arange(s.shape[0]), images_per_class)
  feats = signal * s[labels] @ proj + rng.normal(size=(labels.size, dim))
  feats = np.maximum(feats, 0.0)  # ResNet features are post-ReLU averages
  files = np.empty((labels.size, 1), dtype=object)
  for i in range(labels.size):
    files[i, 0] = np.array([f"images/{labels[i] + 1:03d}/{i:06d}.jpg"])
  scipy.io.savemat(os.fspath(out_path), {
      "features": feats.T, "labels": (labels + 1)[:, None].astype(np.float64),
      "image_files": files})


def write_synthetic_att_splits(att_path, out_path, *, images_per_class: int = 6,
                               seed: int = 0) -> None:
  """Copies ``att_path`` with split indices matching the synthetic res101.mat.

  A fixed random fifth of the classes (at least two, chosen by ``seed``) is
  unseen; of each seen class's images one third is ``test_seen_loc``; all images of unseen
  classes are ``test_unseen_loc``.
  """
  import scipy.io  # pylint: disable=g-import-not-at-top
  raw = _loadmat(att_path)
  att = {k: v for k, v in raw.items() if not k.startswith("__")}
  n_cls = np.asarray(att["att"]).shape[1]
  rng = np.random.default_rng(seed)
  unseen = np.sort(rng.choice(n_cls, max(2, n_cls // 5), replace=False))
  labels = np.repeat(np.arange(n_cls), images_per_class)
  idx = np.arange(labels.size) + 1
  is_unseen = np.isin(labels, unseen)
  pos = np.tile(np.arange(images_per_class), n_cls)
  test_seen = ~is_unseen & (pos % 3 == 0)
  att["trainval_loc"] = idx[~is_unseen & ~test_seen][:, None]
  att["test_seen_loc"] = idx[test_seen][:, None]
  att["test_unseen_loc"] = idx[is_unseen][:, None]
  for k in ("train_loc", "val_loc"):
    att.pop(k, None)
  scipy.io.savemat(os.fspath(out_path), att)
