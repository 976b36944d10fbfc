"""Any TFDS catalogue dataset as a domain: ``tfds/<name>[:<config>]``.

    dom = load_domain("tfds/mnist", image_size=16)            # prepared data
    dom = load_domain("tfds/svhn_cropped", download=True)      # with a network
    dom = load_domain("tfds/emnist:digits", train_split="train[:20000]")

Data are read with ``tfds.data_source`` (array_record files, no TensorFlow)
from ``data_dir`` (default: TFDS's own, ``$TFDS_DATA_DIR`` or
``~/tensorflow_datasets``). Nothing is downloaded unless ``download=True``;
TFDS's catalogue datasets that must be generated from raw files may need
TensorFlow to prepare; reading prepared array_record data never does.

Images become float32 in [0, 1] (uint8 divided by 255) with shape
``(N, H, W, C)``; :func:`tlax.data.load_domain` then applies ``image_size`` and
``channels``. Datasets whose images differ in size need ``image_size``.
"""

from __future__ import annotations

import numpy as np

from tlax.data import _tfds_compat
from tlax.data import domains
from tlax.data import files


def _parse(name: str) -> str:
  rest = name[len(domains.TFDS_PREFIX):]
  ds, _, config = rest.partition(":")
  if not ds:
    raise KeyError(f"{name!r}: write 'tfds/<name>' or 'tfds/<name>:<config>'.")
  return f"{ds}/{config}" if config else ds


def _read_all(source) -> list:
  """All records of a data source (batched reads where supported)."""
  n = len(source)
  try:
    out = []
    for i in range(0, n, 4096):
      out.extend(source.__getitems__(list(range(i, min(n, i + 4096)))))
    return out
  except (TypeError, AttributeError):  # e.g. tfds.testing.mock_data sources
    return [source[i] for i in range(n)]


def _to_float_images(values: list, key: str, image_size) -> np.ndarray:
  imgs = [np.asarray(v) for v in values]
  imgs = [i[..., None] if i.ndim == 2 else i for i in imgs]
  scale = 255.0 if imgs and imgs[0].dtype == np.uint8 else 1.0
  shapes = {i.shape for i in imgs}
  if len(shapes) > 1:
    if image_size is None:
      raise domains.DomainShapeError(
          f"feature {key!r} holds images of {len(shapes)} different shapes "
          f"(e.g. {sorted(shapes)[:3]}): set image_size=... to resize them.")
    return np.concatenate([
        domains.resize_images(i[None].astype(np.float32) / scale, image_size)
        for i in imgs])
  if not imgs:
    return np.zeros((0, 1, 1, 1), np.float32)
  return np.stack(imgs).astype(np.float32) / scale


def load_tfds_domain(name, *, image_size=None, channels=None, data_dir=None,
                     seed=0, download: bool = False, train_split: str = "train",
                     test_split: str | None = "test", label_key: str = "label",
                     image_key: str | None = None, holdout: float = 0.0):
  """A TFDS catalogue dataset as a domain (see module docstring).

  Options:
    download: let TFDS download and prepare the dataset (needs a network).
    train_split, test_split: TFDS split names (slices like ``"train[:10%]"``
      work); ``test_split=None``, or a dataset without that split, makes a
      seeded stratified held-out test split of ``holdout`` (default 0.2).
    label_key: the ``ClassLabel`` feature (default ``"label"``).
    image_key: the input feature (default: the first image feature, else the
      first 1-D tensor, which gives a feature domain).
    holdout: fraction of ``train_split`` held out as the test split.
  """
  del channels  # handled by load_domain
  _tfds_compat.ensure_importlib_resources()
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  tfds_name = _parse(name)
  try:
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    info = builder.info
  except Exception as e:  # pylint: disable=broad-except
    first = str(e).splitlines()[0] if str(e) else type(e).__name__
    raise KeyError(f"{name!r}: no TFDS dataset {tfds_name!r} ({first}). See "
                   "https://www.tensorflow.org/datasets/catalog/overview for "
                   "the names.") from e
  feats = info.features
  if label_key not in feats or not isinstance(feats[label_key],
                                              tfds.features.ClassLabel):
    raise ValueError(
        f"{name}: no ClassLabel feature {label_key!r}; features are "
        f"{list(feats.keys())}: set the label_key option.")
  num_classes = feats[label_key].num_classes
  class_names = tuple(feats[label_key].names)
  if image_key is None:
    for k, f in feats.items():
      if isinstance(f, tfds.features.Image):
        image_key = k
        break
    else:
      for k, f in feats.items():
        if k != label_key and len(getattr(f, "shape", ())) == 1:
          image_key = k
          break
  if image_key is None or image_key not in feats:
    raise ValueError(f"{name}: no image or 1-D feature found (features: "
                     f"{list(feats.keys())}): set the image_key option.")
  kind = "image" if len(feats[image_key].shape) == 3 else "features"

  known = set(info.splits.keys()) if info.splits else set()
  if test_split is not None and known and test_split.split("[")[0] not in known:
    test_split = None
  if test_split is None and not holdout:
    holdout = 0.2

  def read(split):
    try:
      source = tfds.data_source(tfds_name, split=split, data_dir=data_dir,
                                download=download)
    except Exception as e:  # pylint: disable=broad-except
      where = str(builder.data_dir)
      if not download and not builder.is_prepared():
        why = f"it is not prepared in {where}"
      else:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise files.DataFileError(
          f"Cannot read TFDS dataset {tfds_name!r} split {split!r} (data_dir "
          f"{data_dir or '(TFDS default)'!r}): {why}. Pass the domain option "
          f"download=True (needs a network), or prepare it as array_record: "
          f"`tfds build {tfds_name} --file_format=array_record`.") from e
    recs = _read_all(source)
    y = np.asarray([r[label_key] for r in recs], np.int64)
    vals = [r[image_key] for r in recs]
    if kind == "image":
      x = _to_float_images(vals, image_key, image_size)
    else:
      x = np.asarray(vals, np.float32).reshape(len(vals), -1)
    return x, y

  x, y = read(train_split)
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ValueError(f"{name}: labels outside 0..{num_classes - 1}.")
  meta = {
      "source": f"TFDS catalogue dataset {tfds_name!r}",
      "tfds_version": str(info.version),
      "features": {"input": image_key, "label": label_key},
      "seed": seed,
      "transductive": False,
  }
  if holdout:
    tr, te = domains.stratified_split(y, float(holdout),
                                      domains.domain_rng(name, seed, 2))
    train, test = (x[tr], y[tr]), (x[te], y[te])
    meta["split"] = (f"{train_split!r} with a seeded stratified held-out test "
                     f"split, holdout={holdout}")
  else:
    train, test = (x, y), read(test_split)
    meta["split"] = f"train={train_split!r}, test={test_split!r}"
  return domains.make_domain(name, train, test, num_classes=num_classes,
                             kind=kind, class_names=class_names, info=meta)
