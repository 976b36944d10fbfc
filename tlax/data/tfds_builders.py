"""TFDS builders over the public benchmark files, with no TensorFlow.

One ``tfds.core.GeneratorBasedBuilder`` per collection, one ``BuilderConfig``
per domain:

=====================  ==============================  ======================
builder (TFDS name)    configs                         features
=====================  ==============================  ======================
tlax_office_caltech10  amazon, caltech, dslr, webcam   ``features`` float64
                                                       (800,) standard SURF
                                                       preprocessing, ``raw``
                                                       uint16 (800,) counts
tlax_mnist_usps        mnist, usps                     ``image`` float32
                                                       (16, 16, 1), upright
tlax_coil20            coil1, coil2                    ``image`` float32
                                                       (32, 32, 1), upright
=====================  ==============================  ======================

Every record also has ``label`` (ClassLabel) and ``index`` (the row in the
file). The single split ``"full"`` holds the whole domain in file order; the
train/test protocol is applied by :mod:`tlax.data.benchmarks`.

The examples come from :func:`tlax.data.files.load_features` and
:func:`tlax.data.files.load_raw` + :func:`tlax.data.files.to_images`, which
check the file's SHA-256 and shapes. Datasets are written as ``array_record``
under ``$TLAX_CACHE_DIR/tfds`` (default ``~/.cache/tlax/tfds``) and read back
with ``builder.as_data_source()``.

Why this needs no TensorFlow: in TFDS 4.9.10, ``GeneratorBasedBuilder``
serialises examples with its own NumPy feature encoders into the vendored
``tf.train.Example`` protobuf (``tensorflow_datasets.core.proto``) and writes
``array_record`` shards with the ``array_record`` package; reading through
``as_data_source()`` (``ArrayRecordDataSource``) parses records with the NumPy
example parser. The builders avoid the only TF-bound paths: encoded image
features (``tfds.features.Image`` encodes PNGs) and ``as_dataset``
(``tf.data``). (TFDS 4.9.10 also needs the ``importlib_resources`` package
to build, which it forgets to declare: see :mod:`tlax.data._tfds_compat`.)
The builders are not registered in the TFDS catalogue
(``skip_registration=True``), so their names never clash with catalogue
datasets; use :func:`builder` to get one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil

import numpy as np
import tensorflow_datasets as tfds

from tlax.data import _tfds_compat
from tlax.data import files

_tfds_compat.ensure_importlib_resources()

_HOMEPAGE = files.PUBLIC_SOURCE
_CITATION = """\
@inproceedings{long2013jda,
  title={Transfer Feature Learning with Joint Distribution Adaptation},
  author={Long, Mingsheng and Wang, Jianmin and Ding, Guiguang and Sun, Jiaguang
          and Yu, Philip S.},
  booktitle={ICCV}, year={2013}}"""
SPLIT = "full"


def tfds_dir() -> pathlib.Path:
  """Where the builders write: ``$TLAX_CACHE_DIR/tfds``."""
  root = os.environ.get("TLAX_CACHE_DIR") or "~/.cache/tlax"
  return pathlib.Path(root).expanduser() / "tfds"


class _FileBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared part: a builder reading one benchmark file per config."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  # Bump VERSION when the stored features change; old caches are then unused.
  COLLECTION = ""

  def __init__(self, *, files_dir=None, **kwargs):
    self._files_dir = files_dir
    super().__init__(**kwargs)

  @property
  def domain_name(self) -> str:
    return f"{self.COLLECTION}/{self.builder_config.name}"

  def _features(self) -> dict:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    ncls = files.NUM_CLASSES[self.COLLECTION]
    names = (files.OFFICE_CALTECH10_CLASSES if
             self.COLLECTION == "office_caltech10" else None)
    feats = dict(self._features())
    feats["label"] = (tfds.features.ClassLabel(names=list(names)) if names
                      else tfds.features.ClassLabel(num_classes=ncls))
    feats["index"] = tfds.features.Scalar(dtype=np.int64)
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict(feats),
        supervised_keys=None,
        disable_shuffling=True,  # keep the file's order
        homepage=_HOMEPAGE,
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # the file is local, in files_dir / $TLAX_DATA_DIR
    return {SPLIT: self._generate_examples()}

  def _arrays(self) -> dict:
    raise NotImplementedError

  def _generate_examples(self):
    arrays = self._arrays()
    for i in range(len(arrays["label"])):
      ex = {k: v[i] for k, v in arrays.items()}
      ex["index"] = i
      yield i, ex


class TlaxOfficeCaltech10(_FileBuilder, skip_registration=True):
  """Office-Caltech10 SURF bag-of-words (800-d) features, 10 classes.

  ``features``: rows divided by their sum, then columns z-scored with the
  population std within the domain (the JDA/BDA/MEDA protocol,
  :func:`tlax.data.files.surf_preprocess`); ``raw``: the stored counts.
  """
  COLLECTION = "office_caltech10"
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name=d, description=f"Office-Caltech10 {d}")
      for d in ("amazon", "caltech", "dslr", "webcam")
  ]

  def _features(self):
    d = files.SHAPES[self.domain_name][1]
    # BYTES keeps float64 exact (an Example's float_list is float32).
    return {"features": tfds.features.Tensor(
                shape=(d,), dtype=np.float64,
                encoding=tfds.features.Encoding.BYTES),
            "raw": tfds.features.Tensor(shape=(d,), dtype=np.uint16)}

  def _arrays(self):
    x, y = files.load_features(self.domain_name, self._files_dir)
    raw, _ = files.load_raw(self.domain_name, self._files_dir)
    return {"features": x, "raw": raw.astype(np.uint16), "label": y}


class _ImageBuilder(_FileBuilder, skip_registration=True):
  SIDE = 0

  def _features(self):
    return {"image": tfds.features.Tensor(shape=(self.SIDE, self.SIDE, 1),
                                          dtype=np.float32)}

  def _arrays(self):
    x, y = files.load_raw(self.domain_name, self._files_dir)
    img = files.to_images(self.domain_name, x)[..., None].astype(np.float32)
    return {"image": img, "label": y}


class TlaxMnistUsps(_ImageBuilder, skip_registration=True):
  """MNIST (2,000) and USPS (1,800) 16x16 grey digits, upright, in [0, 1].

  Labels 0..9 are the digits (the file's labels 1..10 minus one).
  """
  COLLECTION = "mnist_usps"
  SIDE = 16
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="mnist", description="MNIST 16x16 (Xs)"),
      tfds.core.BuilderConfig(name="usps", description="USPS 16x16 (Xt)"),
  ]


class TlaxCoil20(_ImageBuilder, skip_registration=True):
  """COIL-20 32x32 grey objects, upright, in [0, 1]: two halves of the poses.

  Labels 0..19 are the objects (the file's labels 1..20 minus one).
  """
  COLLECTION = "coil20"
  SIDE = 32
  BUILDER_CONFIGS = [
      tfds.core.BuilderConfig(name="coil1", description="COIL1 (Xs)"),
      tfds.core.BuilderConfig(name="coil2", description="COIL2 (Xt)"),
  ]


BUILDERS = {
    "office_caltech10": TlaxOfficeCaltech10,
    "mnist_usps": TlaxMnistUsps,
    "coil20": TlaxCoil20,
}


def builder(name: str, *, files_dir=None, data_dir=None) -> _FileBuilder:
  """The builder of one benchmark domain ``<collection>/<domain>``.

  Args:
    name: e.g. ``"office_caltech10/amazon"``.
    files_dir: folder of the benchmark files (default ``$TLAX_DATA_DIR``).
    data_dir: where TFDS writes (default :func:`tfds_dir`).
  """
  if name not in files.SHAPES:
    raise KeyError(f"Unknown benchmark domain {name!r}; valid names: "
                   f"{', '.join(files.FILE_DOMAINS)}.")
  collection, config = name.split("/")
  return BUILDERS[collection](
      config=config, files_dir=files_dir,
      data_dir=str(data_dir or tfds_dir()), file_format="array_record")


@contextlib.contextmanager
def _quiet():
  from tensorflow_datasets.core.utils import tqdm_utils  # pylint: disable=g-import-not-at-top
  old = getattr(tqdm_utils, "_active", True)
  tfds.display_progress_bar(False)
  try:
    yield
  finally:
    tfds.display_progress_bar(old)


def _read(b: _FileBuilder) -> dict:
  """Every record of the ``full`` split, stacked, in file order."""
  source = b.as_data_source(split=SPLIT)
  n = len(source)
  records = source.__getitems__(list(range(n)))
  out = {k: np.stack([r[k] for r in records]) for k in records[0]}
  order = np.argsort(out["index"], kind="stable")
  out = {k: v[order] for k, v in out.items()}
  want = files.SHAPES[b.domain_name][0]
  if n != want or not np.array_equal(out["index"], np.arange(want)):
    raise ValueError(f"{b.data_dir}: {n} records, expected {want}.")
  return out


def load(name: str, *, files_dir=None, data_dir=None) -> tuple[dict, str]:
  """Builds (once) and reads one benchmark domain through TFDS.

  The benchmark file is looked up and checksummed first (once per process),
  even when the TFDS copy exists, so a missing or changed file is always
  reported (:class:`tlax.data.DataFileError` naming the file, the folder
  searched and the public source). A cache that cannot be read is deleted and
  built again.

  Returns:
    ``(arrays, path)``: the stacked features (``features``/``raw`` or
    ``image``, ``label``, ``index``) and the TFDS dataset folder.
  """
  collection = name.split("/")[0]
  key = name if collection == "office_caltech10" else collection
  files.file_path(key, files_dir)  # missing / wrong checksum -> DataFileError
  b = builder(name, files_dir=files_dir, data_dir=data_dir)
  with _quiet(), _build_lock(pathlib.Path(b.data_dir).parent):
    for attempt in range(2):
      try:
        if not b.is_prepared():
          b.download_and_prepare()
        return _read(b), str(b.data_dir)
      except files.DataFileError:
        raise
      except Exception:  # pylint: disable=broad-except
        if attempt:
          raise
        # A corrupt or partial cache: remove this version and rebuild.
        shutil.rmtree(b.data_dir, ignore_errors=True)
        b = builder(name, files_dir=files_dir, data_dir=data_dir)
  raise AssertionError("unreachable")


@contextlib.contextmanager
def _build_lock(folder: pathlib.Path):
  """An exclusive lock per config folder, so parallel processes (pytest-xdist,
  several runs) build a dataset once and never read or delete a half-built
  one."""
  import fcntl  # pylint: disable=g-import-not-at-top
  folder.mkdir(parents=True, exist_ok=True)
  with open(folder / ".tlax_build.lock", "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
