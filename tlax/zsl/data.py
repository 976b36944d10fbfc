"""Zero-shot splits of the benchmark collections.

A zero-shot task is named like a transfer task, ``source`` and ``target``
domains of one collection, plus a split seed:

* ``mnist_usps/mnist``, ``mnist_usps/usps``: 16x16 digits with the
  seven-segment attribute table (:data:`tlax.zsl.semantic.SEVEN_SEGMENT`);
* ``office_caltech10/<amazon|caltech|dslr|webcam>``: 800-d SURF features
  with word vectors of the class names;
* ``pacs/<photo|art_painting|cartoon|sketch>``: images (resized, cached)
  with word vectors of the class names;
* ``gbu/<AWA1|AWA2|CUB|SUN|APY>`` (source = target): the GBU release files
  (:mod:`tlax.zsl.gbu`), with the proposed split.

For the collections, ``num_unseen`` classes drawn by the seed are unseen.
Training images are the source domain's images of seen classes. When source
and target are the same domain, ``seen_test_fraction`` of each seen class's
images is held out as seen test images and the unseen test images are the
domain's images of unseen classes; across domains (train on MNIST, test on
USPS) the seen and unseen test images are the target domain's.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile

import numpy as np

from tlax.zsl import gbu
from tlax.zsl import protocols
from tlax.zsl import semantic

PACS_DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
COLLECTIONS = ("mnist_usps", "office_caltech10", "pacs", "gbu")


def _cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("TLAX_CACHE_DIR") or
                      "~/.cache/tlax").expanduser()


def load_pacs(domain: str, *, image_size: int = 32, data_dir=None
              ) -> tuple[np.ndarray, np.ndarray]:
  """PACS images of one domain, resized to ``image_size`` and cached.

  Reads ``<data_dir>/pacs/<domain>/<class>/<file>`` (the DomainBed layout),
  resizes with PIL's area filter and stores the arrays under
  ``$TLAX_CACHE_DIR/pacs`` (default ``~/.cache/tlax``), keyed by the file
  list and the size.

  Returns:
    ``(x, y)``: float32 (n, image_size, image_size, 3) in [0, 1], int64
    labels in the order of :data:`tlax.zsl.semantic.CLASS_NAMES` ``["pacs"]``.

  Raises:
    FileNotFoundError: the folder is missing (the message says where PACS
      is published).
  """
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  if domain not in PACS_DOMAINS:
    raise KeyError(f"Unknown PACS domain {domain!r}; valid: "
                   f"{', '.join(PACS_DOMAINS)}.")
  root = files.default_data_dir(data_dir) / "pacs" / domain
  if not root.is_dir():
    raise FileNotFoundError(
        f"PACS domain folder {str(root)!r} not found. PACS (Li et al., ICCV "
        "2017) is published with DomainBed's downloader and on GitHub "
        "(e.g. MachineLearning2020/Homework3-PACS, folder PACS/); put it so "
        "that pacs/<domain>/<class>/<image> is under TLAX_DATA_DIR.")
  names = semantic.CLASS_NAMES["pacs"]
  paths, labels = [], []
  for k, c in enumerate(names):
    folder = root / c
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
      paths.append(p)
      labels.append(k)
  key = json.dumps({"domain": domain, "size": image_size, "n": len(paths),
                    "files": [p.name for p in paths[::97]]}, sort_keys=True)
  digest = hashlib.sha256(key.encode()).hexdigest()[:24]
  cache = _cache_dir() / "pacs" / f"{domain}_{image_size}_{digest}.npz"
  if cache.is_file():
    with np.load(cache) as z:
      return z["x"], z["y"]
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x = np.empty((len(paths), image_size, image_size, 3), np.uint8)
  for i, p in enumerate(paths):
    with Image.open(p) as im:
      x[i] = np.asarray(im.convert("RGB").resize((image_size, image_size),
                                                 Image.BOX))
  y = np.asarray(labels, np.int64)
  cache.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=cache.parent, suffix=".tmp",
                                   delete=False) as f:
    np.savez(f, x=x, y=y)
  os.replace(f.name, cache)
  return x, y


def load_domain(name: str, *, data_dir=None, image_size: int = 32
                ) -> tuple[np.ndarray, np.ndarray]:
  """``(x, y)`` of a collection's domain: images or feature vectors.

  Digits come as (n, 16, 16) pixels in [0, 1], PACS as (n, s, s, 3) in
  [0, 1], Office-Caltech10 as SURF features with the standard
  preprocessing.
  """
  from tlax.data import files  # pylint: disable=g-import-not-at-top
  collection, _, domain = name.partition("/")
  if collection == "mnist_usps":
    x, y = files.load_features(name, data_dir, preprocess="none")
    return files.to_images(name, x).astype(np.float32), y
  if collection == "office_caltech10":
    x, y = files.load_features(name, data_dir)
    return x.astype(np.float32), y
  if collection == "pacs":
    x, y = load_pacs(domain, image_size=image_size, data_dir=data_dir)
    return x.astype(np.float32) / 255.0, y
  raise KeyError(f"Unknown zero-shot domain {name!r}; collections: "
                 f"{', '.join(COLLECTIONS)}.")


def class_embeddings(collection: str, semantic_space: str = "auto", *,
                     vectors=None) -> tuple[np.ndarray, tuple[str, ...]]:
  """``(S, class names)`` of a collection in a semantic space.

  ``semantic_space``: ``"attributes"`` (the seven-segment table, digits
  only), ``"word_vectors"`` (WordLlama vectors of the class names, or the
  user's ``vectors`` mapping) or ``"auto"`` (attributes where a table
  exists).
  """
  names = semantic.CLASS_NAMES[collection]
  if semantic_space == "auto":
    semantic_space = "attributes" if collection == "mnist_usps" else (
        "word_vectors")
  if semantic_space == "attributes":
    if collection != "mnist_usps":
      raise ValueError(f"No attribute table for {collection!r}; use "
                       "semantic='word_vectors'.")
    return semantic.seven_segment_table(), names
  if semantic_space == "word_vectors":
    return semantic.word_vectors(names, vectors=vectors), names
  raise ValueError(f"semantic must be 'auto', 'attributes' or "
                   f"'word_vectors', got {semantic_space!r}.")


def make_split(source: str, target: str, *, seed: int, num_unseen: int = 3,
               seen_test_fraction: float = 0.2, semantic_space: str = "auto",
               data_dir=None, image_size: int = 32,
               unseen=None) -> protocols.ZSLSplit:
  """The zero-shot split of a task (see the module doc).

  Args:
    source, target: domain names; ``gbu/<NAME>`` needs source == target.
    seed: draws the unseen classes and the held-out seen images.
    num_unseen: how many classes are unseen (collections only).
    seen_test_fraction: held-out share of each seen class when source ==
      target.
    semantic_space: see :func:`class_embeddings`.
    data_dir: the data folder (default ``$TLAX_DATA_DIR``).
    image_size: PACS image size.
    unseen: explicit unseen class names or indices (overrides the draw).

  Returns:
    A checked :class:`tlax.zsl.protocols.ZSLSplit`; images keep their shape
    (features are extracted by the caller).
  """
  collection = source.split("/")[0]
  if target.split("/")[0] != collection:
    raise ValueError(f"source {source!r} and target {target!r} are of "
                     "different collections.")
  if collection == "gbu":
    if source != target:
      raise ValueError(f"GBU tasks use one data set: source and target must "
                       f"be equal, got {source!r} and {target!r}.")
    dataset = source.split("/", 1)[1]
    att_path, res_path = gbu.find_files(dataset, data_dir)
    return gbu.load_gbu(att_path, res_path, name=source)
  s, names = class_embeddings(collection, semantic_space)
  c = len(names)
  if unseen is not None and len(unseen):
    idx = []
    for u in unseen:
      if isinstance(u, str):
        if u not in names:
          raise KeyError(f"Unseen class {u!r} is not a class of "
                         f"{collection}: {', '.join(names)}.")
        idx.append(names.index(u))
      else:
        idx.append(int(u))
    unseen_idx = np.sort(np.asarray(idx))
    seen_idx = np.setdiff1d(np.arange(c), unseen_idx)
  else:
    seen_idx, unseen_idx = protocols.class_split(c, num_unseen, seed)
  xs, ys = load_domain(source, data_dir=data_dir, image_size=image_size)
  rng = np.random.default_rng(seed + 7919)
  in_seen = np.isin(ys, seen_idx)
  if source == target:
    train, test_seen = [], []
    for k in seen_idx:
      idx = rng.permutation(np.nonzero(ys == k)[0])
      n_test = int(round(seen_test_fraction * len(idx)))
      test_seen.append(idx[:n_test])
      train.append(idx[n_test:])
    train, test_seen = np.sort(np.concatenate(train)), np.sort(
        np.concatenate(test_seen))
    test_unseen = np.nonzero(~in_seen)[0]
    xt, yt = xs, ys
  else:
    xt, yt = load_domain(target, data_dir=data_dir, image_size=image_size)
    train = np.nonzero(in_seen)[0]
    test_seen = np.nonzero(np.isin(yt, seen_idx))[0]
    test_unseen = np.nonzero(np.isin(yt, unseen_idx))[0]
  return protocols.ZSLSplit(
      x_train=xs[train], y_train=ys[train], x_test_seen=xt[test_seen],
      y_test_seen=yt[test_seen], x_test_unseen=xt[test_unseen],
      y_test_unseen=yt[test_unseen], class_embeddings=s, seen=seen_idx,
      unseen=unseen_idx, class_names=tuple(names),
      name=f"{source}->{target} split {seed}")
