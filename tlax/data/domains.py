"""Domains: one labelled dataset, named ``<collection>/<domain>``.

A :class:`Domain` holds plain NumPy arrays: images ``(N, H, W, C)`` float32 in
[0, 1] or feature vectors ``(N, D)`` float32, labels int32 in ``0..C-1``, for a
``"train"`` and a ``"test"`` split. :func:`load_domain` builds one by name::

    dom = tlax.data.load_domain("digits/mnistm", image_size=16, channels=1)
    x, y = dom.splits["train"]

Three families of names (see ``docs/domains.md``):

* benchmark files read from ``$TLAX_DATA_DIR`` through TFDS builders:
  ``office_caltech10/{amazon,caltech,dslr,webcam}``, ``mnist_usps/{mnist,usps}``,
  ``coil20/{coil1,coil2}`` (:mod:`tlax.data.benchmarks`);
* embedded domains that need no file: ``digits/sklearn``, ``digits/mnistm``,
  ``digits/syndigits``, ``digits/fonts``, ``fonts/letters``
  (:mod:`tlax.data.synthetic`);
* any TFDS catalogue dataset as ``tfds/<name>`` or ``tfds/<name>:<config>``
  (:mod:`tlax.data.catalog`).

Loaders are looked up lazily in :data:`REGISTRY` (a plain dict of names to
``"module:function"`` strings), so importing :mod:`tlax.data` imports neither
TFDS nor the renderers. Loaded domains are cached in memory per process; their
arrays are read-only so that the shared copy cannot be changed by accident.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import zlib
from typing import Any, Mapping

import numpy as np

# name -> "module:function". Every function is called as
# fn(name, *, image_size, channels, data_dir, seed, **options) -> Domain.
REGISTRY: dict[str, str] = {
    "digits/sklearn": "tlax.data.synthetic:load_sklearn_digits",
    "digits/mnistm": "tlax.data.synthetic:load_mnistm",
    "digits/syndigits": "tlax.data.synthetic:load_syndigits",
    "fonts/letters": "tlax.data.synthetic:load_letters",
    "digits/fonts": "tlax.data.synthetic:load_font_digits",
    "colourdigits/source": "tlax.data.semantic_bias:load_colour_digits",
    "colourdigits/target": "tlax.data.semantic_bias:load_colour_digits",
    "office_caltech10/amazon": "tlax.data.benchmarks:load_benchmark",
    "office_caltech10/caltech": "tlax.data.benchmarks:load_benchmark",
    "office_caltech10/dslr": "tlax.data.benchmarks:load_benchmark",
    "office_caltech10/webcam": "tlax.data.benchmarks:load_benchmark",
    "mnist_usps/mnist": "tlax.data.benchmarks:load_benchmark",
    "mnist_usps/usps": "tlax.data.benchmarks:load_benchmark",
    "coil20/coil1": "tlax.data.benchmarks:load_benchmark",
    "coil20/coil2": "tlax.data.benchmarks:load_benchmark",
}
# Image-folder trees (tlax.data.image_folder): the named collections under
# data_dir, and "imagefolder/<domain>" for any tree given as the root option.
_IMAGE_FOLDER_LOADER = "tlax.data.image_folder:load_image_folder"
REGISTRY.update({
    f"{collection}/{domain}": _IMAGE_FOLDER_LOADER
    for collection, domain_names in (
        ("pacs", ("art_painting", "cartoon", "photo", "sketch")),
        ("office31", ("amazon", "dslr", "webcam")),
        ("office_home", ("Art", "Clipart", "Product", "Real_World")))
    for domain in domain_names})
# Domain-generalisation environments built from the MNIST-USPS digits.
REGISTRY.update({f"colored_mnist/{env}": "tlax.data.dg_domains:load_colored_mnist"
                 for env in ("plus90", "plus80", "minus90")})
REGISTRY.update({f"rotated_mnist/{angle}": "tlax.data.dg_domains:load_rotated_mnist"
                 for angle in (0, 15, 30, 45, 60, 75)})
IMAGE_FOLDER_PREFIX = "imagefolder/"
TFDS_PREFIX = "tfds/"
_TFDS_LOADER = "tlax.data.catalog:load_tfds_domain"

# Options every loader understands, handled here rather than by the loader.
_COMMON_OPTIONS = ("flatten", "resize_method")


class DomainShapeError(ValueError):
  """Two domains that must be paired have different input shapes."""


@dataclasses.dataclass(frozen=True, repr=False)
class Domain:
  """One labelled dataset with a train and a test split.

  Attributes:
    name: ``"<collection>/<domain>"``.
    splits: ``{"train": (x, y), "test": (x, y)}``; ``x`` float32, images
      ``(N, H, W, C)`` in [0, 1] or features ``(N, D)``; ``y`` int32 in
      ``0..num_classes-1``. For the transductive benchmark collections both
      splits are the same full set unless the ``holdout`` option is given.
    num_classes: number of classes ``C``.
    kind: ``"image"`` or ``"features"``.
    class_names: one name per class.
    info: provenance, preprocessing statistics, the options used, and
      ``"transductive"`` (True when train and test are the same set).
  """
  name: str
  splits: Mapping[str, tuple[np.ndarray, np.ndarray]]
  num_classes: int
  kind: str
  class_names: tuple[str, ...]
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def input_shape(self) -> tuple[int, ...]:
    """Shape of one input, ``x.shape[1:]``."""
    return tuple(self.splits["train"][0].shape[1:])

  @property
  def transductive(self) -> bool:
    """True when the train and test splits are the same examples."""
    return bool(self.info.get("transductive", False))

  def __repr__(self) -> str:
    sizes = ", ".join(f"{k}={len(v[1])}" for k, v in self.splits.items())
    return (f"Domain({self.name!r}, kind={self.kind!r}, input_shape="
            f"{self.input_shape}, num_classes={self.num_classes}, {sizes})")


def list_domains() -> list[str]:
  """Every valid domain name except the TFDS catalogue ones.

  Any TFDS catalogue dataset is also accepted as ``"tfds/<name>"`` or
  ``"tfds/<name>:<config>"`` (see :mod:`tlax.data.catalog`).
  """
  return sorted(REGISTRY)


class UnknownDomainError(KeyError):
  """A domain name that no loader knows (the message lists the valid ones)."""

  def __str__(self):
    return str(self.args[0]) if self.args else ""


def _unknown_name_error(name: str) -> KeyError:
  return UnknownDomainError(
      f"Unknown domain {name!r}. Valid names: {', '.join(list_domains())}; "
      f"or 'tfds/<name>[:<config>]' for any TFDS catalogue dataset; or "
      f"'imagefolder/<domain>' with the option root=<tree> for any "
      f"<tree>/<domain>/<class>/<image> folder.")


def _resolve(name: str):
  if not isinstance(name, str):
    raise TypeError(f"A domain name is a string, got {name!r}.")
  if name.startswith(TFDS_PREFIX) and len(name) > len(TFDS_PREFIX):
    path = _TFDS_LOADER
  elif (name.startswith(IMAGE_FOLDER_PREFIX)
        and len(name) > len(IMAGE_FOLDER_PREFIX)):
    path = _IMAGE_FOLDER_LOADER
  elif name in REGISTRY:
    path = REGISTRY[name]
  else:
    raise _unknown_name_error(name)
  module, fn = path.split(":")
  return getattr(importlib.import_module(module), fn)


def load_domain(name: str, *, image_size=None, channels=None, data_dir=None,
                seed: int = 0, **options) -> Domain:
  """Loads a domain by name.

  Args:
    name: ``"<collection>/<domain>"``, one of :func:`list_domains`, or
      ``"tfds/<name>[:<config>]"``.
    image_size: output image size, an int (square) or ``(H, W)``; None keeps
      the domain's default (16 for ``digits/*``, native size otherwise). Images
      are resized with antialiased bilinear interpolation. Ignored for feature
      domains.
    channels: 1 or 3; None keeps the domain's native number. Grey images are
      repeated to RGB; RGB images become grey by luminance
      (0.299 R + 0.587 G + 0.114 B). Ignored for feature domains.
    data_dir: folder of the benchmark files (default ``$TLAX_DATA_DIR``), or of
      the TFDS catalogue data for ``tfds/`` names.
    seed: seed of everything random in the domain (generated images, seeded
      train/test splits); the same seed gives the same arrays.
    **options: domain options, e.g. ``holdout=0.2`` (benchmark files),
      ``n_train``/``n_test`` (synthetic), ``flatten=True`` (any image domain:
      return ``(N, H*W*C)`` features); see ``docs/domains.md``.

  Returns:
    A :class:`Domain` (cached per process; its arrays are read-only).

  Raises:
    KeyError: unknown name; the message lists the valid names.
    TypeError: an option the domain does not take; the message lists those
      it does.
    tlax.data.DataFileError: a benchmark file is missing or corrupt.
  """
  _resolve(name)  # fail early on an unknown name
  image_size = _normalise_size(image_size)
  if channels is not None and channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
  data_dir = None if data_dir is None else str(data_dir)
  try:
    key = tuple(sorted(options.items()))
    hash(key)
  except TypeError:  # unhashable option values: do not cache
    return _load(name, image_size, channels, data_dir, int(seed), options)
  return _load_cached(name, image_size, channels, data_dir, int(seed), key)


@functools.lru_cache(maxsize=8)
def _load_cached(name, image_size, channels, data_dir, seed, key):
  return _load(name, image_size, channels, data_dir, seed, dict(key))


def clear_cache() -> None:
  """Forgets the domains cached in memory."""
  _load_cached.cache_clear()


def _load(name, image_size, channels, data_dir, seed, options) -> Domain:
  fn = _resolve(name)
  common = {k: options.pop(k) for k in _COMMON_OPTIONS if k in options}
  accepted = [p.name for p in inspect.signature(fn).parameters.values()
              if p.kind == p.KEYWORD_ONLY]
  unknown = sorted(set(options) - set(accepted))
  if unknown:
    own = [a for a in accepted
           if a not in ("image_size", "channels", "data_dir", "seed")]
    raise TypeError(
        f"Domain {name!r} takes no option(s) {', '.join(unknown)}; its options "
        f"are: {', '.join(own + list(_COMMON_OPTIONS)) or 'none'}.")
  dom = fn(name, image_size=image_size, channels=channels, data_dir=data_dir,
           seed=seed, **options)
  dom = adapt_images(dom, image_size, channels,
                     method=common.get("resize_method", "linear"))
  if common.get("flatten"):
    dom = flatten(dom)
  for x, y in dom.splits.values():
    x.setflags(write=False)
    y.setflags(write=False)
  return dom


def _normalise_size(image_size):
  if image_size is None:
    return None
  if isinstance(image_size, (int, np.integer)):
    size = (int(image_size), int(image_size))
  else:
    size = tuple(int(s) for s in image_size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"image_size must be an int or (H, W), got {image_size!r}.")
  return size


def stable_id(text: str) -> int:
  """A stable 32-bit integer for a string (for seeding, unlike ``hash``)."""
  return zlib.crc32(text.encode("utf-8"))


def domain_rng(name: str, seed: int, *streams: int) -> np.random.Generator:
  """The random generator of one domain, seed and stream."""
  return np.random.default_rng([int(seed), stable_id(name), *streams])


# ---------------------------------------------------------------------------
# Image helpers.


@functools.lru_cache(maxsize=64)
def _resize_matrix(n_in: int, n_out: int, method: str) -> np.ndarray:
  """Matrix M (n_out, n_in) such that ``M @ v`` resizes a 1-D signal.

  Same weights as ``jax.image.resize(..., antialias=True)``, which is
  separable and linear in its input: for "linear", a triangle kernel widened
  by the shrink factor when downsampling, normalised per output sample,
  computed here in NumPy (no JAX import); other methods take the matrix from
  ``jax.image.resize`` applied to the identity.
  """
  if method in ("linear", "bilinear"):
    inv_scale = n_in / n_out
    kernel_scale = max(inv_scale, 1.0)
    sample = (np.arange(n_out) + 0.5) * inv_scale - 0.5
    dist = np.abs(sample[:, None] - np.arange(n_in)[None, :]) / kernel_scale
    w = np.maximum(0.0, 1.0 - dist)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps,
                 w / np.where(total == 0, 1, total), 0.0)
    inside = (sample >= -0.5) & (sample <= n_in - 0.5)
    return np.where(inside[:, None], w, 0.0).astype(np.float32)
  import jax  # pylint: disable=g-import-not-at-top
  eye = np.eye(n_in, dtype=np.float32)
  m = jax.image.resize(eye, (n_out, n_in), method=method, antialias=True)
  return np.asarray(m, dtype=np.float32)


def resize_images(x: np.ndarray, size, method: str = "linear") -> np.ndarray:
  """Resizes ``(N, H, W, C)`` images to ``size`` (an int or ``(H, W)``).

  Args:
    x: images, float.
    size: output size.
    method: any ``jax.image.resize`` method ("linear", "cubic", "lanczos3",
      "nearest"); the output is clipped to [0, 1].

  Returns:
    float32 ``(N, H', W', C)``.
  """
  h2, w2 = _normalise_size(size)
  n, h, w, c = x.shape
  if (h, w) == (h2, w2):
    return np.asarray(x, dtype=np.float32)
  mh = _resize_matrix(h, h2, method)
  mw = _resize_matrix(w, w2, method)
  out = np.empty((n, h2, w2, c), dtype=np.float32)
  for i in range(0, n, 4096):  # bounded temporaries
    out[i:i + 4096] = np.einsum("ah,nhwc,bw->nabc", mh,
                                np.asarray(x[i:i + 4096], np.float32), mw,
                                optimize=True)
  return np.clip(out, 0.0, 1.0, out=out)


def convert_channels(x: np.ndarray, channels: int) -> np.ndarray:
  """Converts ``(N, H, W, C)`` images to 1 or 3 channels."""
  c = x.shape[-1]
  if c == channels:
    return x
  if c == 1 and channels == 3:
    return np.repeat(x, 3, axis=-1)
  if c == 3 and channels == 1:
    lum = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(x @ lum, 0.0, 1.0)[..., None].astype(np.float32)
  raise ValueError(f"Cannot convert {c}-channel images to {channels} channels.")


def adapt_images(dom: Domain, image_size=None, channels=None,
                 method: str = "linear") -> Domain:
  """The domain with its images resized and converted (no-op for features)."""
  if dom.kind != "image" or (image_size is None and channels is None):
    return dom
  splits, changed, done = {}, False, {}
  for split, (x, y) in dom.splits.items():
    if id(x) in done:  # transductive: train and test are the same array
      splits[split] = (done[id(x)], y)
      continue
    x2 = x
    if image_size is not None and tuple(x.shape[1:3]) != tuple(image_size):
      x2 = resize_images(x2, image_size, method)
    if channels is not None and x2.shape[-1] != channels:
      x2 = convert_channels(x2, channels)
    changed |= x2 is not x
    done[id(x)] = x2
    splits[split] = (x2, y)
  if not changed:
    return dom
  info = dict(dom.info)
  info["resized_from"] = dom.input_shape
  info["resize_method"] = method
  return dataclasses.replace(dom, splits=splits, info=info)


def flatten(dom: Domain) -> Domain:
  """An image domain as a feature domain: each image becomes a row."""
  if dom.kind != "image":
    return dom
  flat = {id(x): x.reshape(len(x), -1) for x, _ in dom.splits.values()}
  splits = {k: (flat[id(x)], y) for k, (x, y) in dom.splits.items()}
  info = dict(dom.info, flattened_from=dom.input_shape)
  return dataclasses.replace(dom, splits=splits, kind="features", info=info)


def stratified_split(y: np.ndarray, fraction: float,
                     rng: np.random.Generator, *,
                     name: str = "the held-out fraction"
                     ) -> tuple[np.ndarray, np.ndarray]:
  """Seeded stratified split of indices ``0..len(y)-1``.

  Takes ``round(fraction * n_c)`` examples of each class ``c`` (at least one
  when ``fraction > 0`` and the class has two or more, never all of a class).

  Returns:
    ``(keep, held)``: sorted index arrays.
  """
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"{name} must be in [0, 1), got {fraction!r}.")
  held = []
  for c in np.unique(y):
    idx = np.flatnonzero(y == c)
    k = 0
    if fraction > 0 and len(idx) >= 2:
      k = min(max(int(round(fraction * len(idx))), 1), len(idx) - 1)
    held.append(rng.permutation(idx)[:k])
  held = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
  keep = np.setdiff1d(np.arange(len(y)), held)
  return keep, held


def make_domain(name: str, train, test, *, num_classes: int, kind: str,
                class_names, info) -> Domain:
  """Builds a :class:`Domain`, casting arrays to float32 / int32."""
  def cast(xy):
    x, y = xy
    return (np.ascontiguousarray(x, dtype=np.float32),
            np.ascontiguousarray(y, dtype=np.int32))
  splits = {"train": cast(train), "test": cast(test)}
  if test[0] is train[0]:  # the transductive protocol: literally the same set
    splits["test"] = splits["train"]
  return Domain(name=name, splits=splits, num_classes=int(num_classes),
                kind=kind, class_names=tuple(class_names), info=dict(info))
