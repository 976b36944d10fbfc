"""Image-folder domains: any ``root/<domain>/<class>/<image>`` tree.

The layout of Office-31, Office-Home, DomainNet, VisDA-2017 and PACS as
their authors distribute them. Every sub-folder of ``root`` is a domain and
every sub-folder of a domain a class; classes are numbered in sorted order of
their folder names, which must be the same in every domain of the tree. A
domain folder holding nothing but an ``images/`` folder (Office-31's
``amazon/images/<class>/``) is read through it.

Names (:mod:`tlax.data.domains`):

* ``imagefolder/<domain>`` with the option ``root=<tree>``: any tree;
* ``pacs/<domain>`` (art_painting, cartoon, photo, sketch),
  ``office31/<domain>`` (amazon, dslr, webcam) and ``office_home/<domain>``
  (Art, Clipart, Product, Real_World): the tree ``<data_dir>/pacs``,
  ``<data_dir>/office31``, ``<data_dir>/office_home``.

Images are decoded with Pillow, converted to RGB and resized to
``image_size`` (bilinear, antialiased, the whole image without cropping, as
DomainBed's evaluation transform), then kept in [0, 1]. The resized arrays are
cached as ``uint8`` under ``$TLAX_CACHE_DIR/image_folder`` (default
``~/.cache/tlax``), keyed by the tree's path, the file list (names, sizes,
modification times) and the size, so a second load reads one file. The
ImageNet normalisation and the training-time augmentation (random resized
crop, flip) run on device in the backbone models (:mod:`tlax.models.preprocess`).

Splits: by default the domain is one set used for training and testing (the
transductive protocol of the deep domain-adaptation tables, where the whole
target domain is the unlabelled training data and the test set); the option
``holdout=f`` makes a seeded stratified held-out test split instead
(DomainBed holds out 20 % of every domain).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Sequence

import numpy as np

from tlax.data import domains

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm",
                    ".tif", ".tiff", ".webp")

# collection -> (folder under data_dir, domains, where the public files are)
COLLECTIONS = {
    "pacs": ("pacs", ("art_painting", "cartoon", "photo", "sketch"),
             "PACS (Li et al., ICCV 2017), e.g. DomainBed's download script "
             "(domainbed/scripts/download.py) or the authors' page "
             "https://domaingeneralization.github.io/"),
    "office31": ("office31", ("amazon", "dslr", "webcam"),
                 "Office-31 (Saenko et al., ECCV 2010), "
                 "domain_adaptation_images.tar.gz from the authors' page "
                 "https://faculty.cc.gatech.edu/~judy/domainadapt/"),
    "office_home": ("office_home", ("Art", "Clipart", "Product",
                                    "Real_World"),
                    "Office-Home (Venkateswara et al., CVPR 2017), "
                    "OfficeHomeDataset_10072016 from "
                    "https://www.hemanthdv.org/officeHomeDataset.html"),
}


class ImageFolderError(ValueError):
  """An image tree that cannot be read as domains (the message names the
  folder or file)."""


def cache_dir() -> pathlib.Path:
  """``$TLAX_CACHE_DIR/image_folder`` (default ``~/.cache/tlax``)."""
  return pathlib.Path(os.environ.get("TLAX_CACHE_DIR") or
                      "~/.cache/tlax").expanduser() / "image_folder"


def _domain_dir(root: pathlib.Path, domain: str) -> pathlib.Path:
  d = root / domain
  subdirs = [p for p in d.iterdir() if p.is_dir()] if d.is_dir() else []
  if len(subdirs) == 1 and subdirs[0].name == "images":
    return subdirs[0]
  return d


def class_folders(root: str | os.PathLike, domain: str) -> list[str]:
  """The sorted class folder names of ``root/<domain>``."""
  d = _domain_dir(pathlib.Path(root), domain)
  return sorted(p.name for p in d.iterdir()
                if p.is_dir() and not p.name.startswith("."))


def list_domain_folders(root: str | os.PathLike) -> list[str]:
  """The domain folders of a tree (sub-folders of ``root``)."""
  return sorted(p.name for p in pathlib.Path(root).iterdir()
                if p.is_dir() and not p.name.startswith("."))


def check_classes(root: str | os.PathLike, domain: str) -> list[str]:
  """``domain``'s class folders, checked against every other domain of the
  tree.

  Raises:
    ImageFolderError: naming the folders one domain has and another lacks.
  """
  root = pathlib.Path(root)
  mine = class_folders(root, domain)
  if not mine:
    raise ImageFolderError(f"{root / domain} has no class folders; expected "
                           f"{root}/<domain>/<class>/<image>.")
  problems = []
  for other in list_domain_folders(root):
    if other == domain:
      continue
    theirs = class_folders(root, other)
    if theirs == mine:
      continue
    only_mine = sorted(set(mine) - set(theirs))
    only_theirs = sorted(set(theirs) - set(mine))
    problems.append(
        f"{root / other}: " + "; ".join(
            ([f"lacks {', '.join(only_mine)}"] if only_mine else []) +
            ([f"has {', '.join(only_theirs)} that {domain} lacks"]
             if only_theirs else [])))
  if problems:
    raise ImageFolderError(
        f"The domains of {root} have different class folders (classes are "
        f"numbered by folder name, so every domain needs the same ones); "
        f"compared with {root / domain}:\n  " + "\n  ".join(problems))
  return mine


def _list_files(d: pathlib.Path, classes: Sequence[str],
                max_per_class: int | None) -> list[tuple[str, int]]:
  files = []
  for label, c in enumerate(classes):
    names = sorted(p.name for p in (d / c).iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not names:
      raise ImageFolderError(f"Class folder {d / c} holds no image "
                             f"({', '.join(IMAGE_EXTENSIONS)}).")
    if max_per_class is not None:
      names = names[:int(max_per_class)]
    files.extend((f"{c}/{n}", label) for n in names)
  return files


def _cache_key(d: pathlib.Path, files, size) -> str:
  h = hashlib.sha256()
  h.update(json.dumps([str(d.resolve()), list(size)]).encode())
  for rel, label in files:
    st = (d / rel).stat()
    h.update(f"{rel}\0{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return h.hexdigest()[:20]


def decode_image(path: str | os.PathLike, size: Sequence[int]) -> np.ndarray:
  """One image as ``uint8 (H, W, 3)`` RGB, resized to ``size = (H, W)``.

  Raises:
    ImageFolderError: the file cannot be decoded (named, with the reason).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(path) as img:
      img = img.convert("RGB")
      img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
      return np.asarray(img, dtype=np.uint8)
  except Exception as e:  # pylint: disable=broad-except
    raise ImageFolderError(f"Cannot read image {path}: {e}") from e


def read_images(d: pathlib.Path, files, size) -> np.ndarray:
  """``uint8 (N, H, W, 3)`` of ``files`` under ``d``; every unreadable file
  is named in one error."""
  out = np.empty((len(files), size[0], size[1], 3), np.uint8)
  bad = []
  for i, (rel, _) in enumerate(files):
    try:
      out[i] = decode_image(d / rel, size)
    except ImageFolderError as e:
      bad.append(str(e))
  if bad:
    raise ImageFolderError(
        f"{len(bad)} unreadable image(s) in {d} (remove or replace them):\n  "
        + "\n  ".join(bad[:10]) + ("\n  ..." if len(bad) > 10 else ""))
  return out


def load_tree(root: str | os.PathLike, domain: str, image_size, *,
              max_per_class: int | None = None, cache: bool = True
              ) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
  """``(images uint8 (N, H, W, 3), labels int32, class names, info)`` of
  ``root/<domain>``, through the cache."""
  root = pathlib.Path(root)
  d = _domain_dir(root, domain)
  if not d.is_dir():
    have = list_domain_folders(root) if root.is_dir() else []
    raise ImageFolderError(
        f"No domain folder {root / domain}" + (
            f"; the domains of {root} are: {', '.join(have)}" if have else
            f" ({root} is not a folder)") + ".")
  classes = check_classes(root, domain)
  files = _list_files(d, classes, max_per_class)
  size = tuple(int(s) for s in image_size)
  path = None
  if cache:
    key = _cache_key(d, files, size)
    path = cache_dir() / f"{domain}-{size[0]}x{size[1]}-{key}.npz"
    if path.exists():
      with np.load(path) as f:
        return (f["x"], f["y"], classes,
                {"cache": str(path), "files": len(files)})
  x = read_images(d, files, size)
  y = np.asarray([label for _, label in files], np.int32)
  if cache:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, x=x, y=y)
    os.replace(tmp, path)
  return x, y, classes, {"cache": str(path) if path else None,
                         "files": len(files)}


def load_image_folder(name, *, image_size=None, channels=None, data_dir=None,
                      seed=0, root: str | None = None, holdout: float = 0.0,
                      max_per_class: int | None = None, cache: bool = True):
  """An image-folder domain (see the module docstring).

  Options:
    root: the tree (``imagefolder/<domain>``; the named collections read
      ``<data_dir>/<collection folder>`` unless ``root`` is given).
    holdout: fraction of a seeded stratified held-out test split (0: the
      transductive protocol, train = test = the whole domain).
    max_per_class: read only the first ``k`` files of each class (in sorted
      order): quick runs and tests.
    cache: keep the resized arrays on disk.
  """
  del channels  # handled by load_domain
  collection, _, domain = name.partition("/")
  if image_size is None:
    raise ValueError(f"{name}: image-folder domains need an image size "
                     "(config.image_size, e.g. 224 for ImageNet backbones, "
                     "32 or 64 for quick CPU runs).")
  if root is None:
    if collection not in COLLECTIONS:
      raise ValueError(f"{name}: give the tree with the domain option root="
                       f"<folder holding {domain}/<class>/<image>> "
                       "(--config.domain_options.root=...).")
    folder, valid, public = COLLECTIONS[collection]
    if data_dir is None:
      data_dir = os.environ.get("TLAX_DATA_DIR")
    if not data_dir:
      raise ValueError(f"{name}: set TLAX_DATA_DIR (or config.data_dir) to "
                       f"the folder holding {folder}/.")
    root = os.path.join(os.fspath(data_dir), folder)
    if not os.path.isdir(root):
      raise FileNotFoundError(
          f"{name}: no folder {root}. Put the {public} images there as "
          f"{folder}/<domain>/<class>/<image> (domains: {', '.join(valid)}).")
  x, y, classes, info = load_tree(root, domain, domains._normalise_size(  # pylint: disable=protected-access
      image_size), max_per_class=max_per_class, cache=cache)
  x = x.astype(np.float32) / 255.0
  info = dict(info, root=str(root), seed=seed,
              preprocessing="RGB, resized (bilinear, antialiased) to "
                            f"{tuple(x.shape[1:3])}, values in [0, 1]")
  if holdout:
    rng = domains.domain_rng(name, seed, 2)
    tr, te = domains.stratified_split(y, float(holdout), rng)
    info.update(split=f"seeded stratified held-out test split, holdout="
                      f"{holdout}", transductive=False)
    train, test = (x[tr], y[tr]), (x[te], y[te])
  else:
    info.update(split="transductive: train and test are the whole domain; "
                      "holdout=f for a held-out split", transductive=True)
    train = test = (x, y)
  return domains.make_domain(name, train, test, num_classes=len(classes),
                             kind="image", class_names=classes, info=info)
