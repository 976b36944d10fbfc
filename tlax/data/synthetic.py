"""Embedded domains that need no download.

* ``digits/sklearn``: scikit-learn's ``load_digits`` (1,797 real handwritten
  8x8 digits, grey), upsampled to ``image_size`` (default 16).
* ``digits/mnistm``: the same digits blended with random patches of
  scikit-learn's two sample photographs following the MNIST-M recipe of
  Ganin et al. (2016): ``out = |patch - digit|`` per colour channel (RGB).
* ``digits/syndigits``: digits rendered from the fonts bundled with matplotlib
  (DejaVu families) with random scale, aspect, rotation, shear, position,
  stroke thickness, colours, background gradient, neighbouring digits, blur
  and noise, in the spirit of the SynDigits/SynNumbers domain of Ganin &
  Lempitsky (2015). Any size and count; deterministic per seed.
* ``fonts/letters``: the same renderer for the 26 capital letters.
* ``digits/fonts``: the same renderer without colours or neighbour digits:
  white digits on black, one grey channel, like ``digits/sklearn``. The
  default task is ``digits/fonts`` -> ``digits/sklearn`` (typeset ->
  handwritten).

Rendering is vectorised: every (font, character, stroke) glyph is drawn once
with PIL into a small bank, then each image is one affine bilinear lookup into
that bank, so tens of thousands of images take a few seconds. Generated arrays
are cached in memory by :func:`tlax.data.load_domain` and, when the ``cache``
option is on (the default for 50,000 images or more), on disk under
``$TLAX_CACHE_DIR/synthetic`` (default ``~/.cache/tlax``).

References:
  Ganin & Lempitsky, Unsupervised Domain Adaptation by Backpropagation, ICML
  2015. Ganin et al., Domain-Adversarial Training of Neural Networks, JMLR
  2016.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import tempfile

import numpy as np

from tlax.data import domains

DIGIT_NAMES = tuple(str(i) for i in range(10))
LETTER_NAMES = tuple(chr(ord("A") + i) for i in range(26))
DEFAULT_IMAGE_SIZE = 16
# Bump when the renderer changes, so on-disk caches are not reused.
RENDER_VERSION = 1
_CHUNK = 512  # about this many images per random stream (see generate)


def cache_dir() -> pathlib.Path:
  """``$TLAX_CACHE_DIR`` (default ``~/.cache/tlax``)."""
  return pathlib.Path(os.environ.get("TLAX_CACHE_DIR") or
                      "~/.cache/tlax").expanduser()


def _size(image_size) -> tuple[int, int]:
  return tuple(image_size) if image_size is not None else (
      DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)


# ---------------------------------------------------------------------------
# scikit-learn digits and MNIST-M.


@functools.lru_cache(maxsize=1)
def _sklearn_digits():
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  d = load_digits()
  x = (d.images.astype(np.float32) / 16.0)[..., None]  # (1797, 8, 8, 1)
  return x, d.target.astype(np.int32)


def _digits_split(seed: int, test_fraction: float):
  """The seeded stratified train/test split shared by sklearn and mnistm."""
  _, y = _sklearn_digits()
  rng = domains.domain_rng("digits/sklearn", seed, 0)
  return domains.stratified_split(y, test_fraction, rng)


def load_sklearn_digits(name, *, image_size=None, channels=None, data_dir=None,
                        seed=0, test_fraction: float = 0.2):
  """scikit-learn's handwritten digits as a domain (see module docstring)."""
  del channels, data_dir  # handled by load_domain
  x, y = _sklearn_digits()
  x = domains.resize_images(x, _size(image_size))
  tr, te = _digits_split(seed, test_fraction)
  info = {
      "source": "sklearn.datasets.load_digits (UCI optical recognition of "
                "handwritten digits, test set), 1,797 images 8x8, values "
                "0..16 divided by 16",
      "native_shape": (8, 8, 1),
      "upsampled_to": _size(image_size),
      "split": f"seeded stratified, test_fraction={test_fraction}",
      "seed": seed,
      "transductive": False,
  }
  return domains.make_domain(name, (x[tr], y[tr]), (x[te], y[te]),
                             num_classes=10, kind="image",
                             class_names=DIGIT_NAMES, info=info)


@functools.lru_cache(maxsize=1)
def _photo_pyramid():
  """scikit-learn's two sample photos at scales 1, 1/2, 1/3, 1/4 (float32)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_sample_images  # pylint: disable=g-import-not-at-top
  photos = load_sample_images().images
  levels = []
  for f in (1, 2, 3, 4):
    lv = []
    for p in photos:
      h, w = p.shape[:2]
      im = Image.fromarray(p).resize((w // f, h // f), Image.Resampling.BOX)
      lv.append(np.asarray(im, dtype=np.float32) / 255.0)
    levels.append(np.stack(lv))  # (2, h, w, 3)
  return levels


def blend_mnistm(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """The MNIST-M recipe: ``|patch - digit|`` per channel.

  Args:
    digits: ``(N, H, W, 1)`` grey digits in [0, 1] (bright strokes).
    rng: random generator for the patches.

  Returns:
    ``(N, H, W, 3)`` float32 in [0, 1]: each digit blended with a random
    ``H x W`` patch of one of the sample photos, taken at a random scale among
    1, 1/2, 1/3, 1/4 so that patches hold some texture.
  """
  n, h, w, _ = digits.shape
  levels = _photo_pyramid()
  lvl = rng.integers(len(levels), size=n)
  img = rng.integers(2, size=n)
  u = rng.random(n)
  v = rng.random(n)
  out = np.empty((n, h, w, 3), dtype=np.float32)
  for li, photos in enumerate(levels):
    sel = np.flatnonzero(lvl == li)
    if not len(sel):
      continue
    ph, pw = photos.shape[1:3]
    top = (u[sel] * (ph - h + 1)).astype(np.int64)
    left = (v[sel] * (pw - w + 1)).astype(np.int64)
    rows = top[:, None, None] + np.arange(h)[None, :, None]
    cols = left[:, None, None] + np.arange(w)[None, None, :]
    out[sel] = photos[img[sel][:, None, None], rows, cols]
  return np.abs(out - digits).astype(np.float32)


def load_mnistm(name, *, image_size=None, channels=None, data_dir=None, seed=0,
                test_fraction: float = 0.2):
  """MNIST-M-style blend of the scikit-learn digits (see module docstring)."""
  del channels, data_dir
  x, y = _sklearn_digits()
  x = domains.resize_images(x, _size(image_size))
  x = blend_mnistm(x, domains.domain_rng(name, seed, 1))
  tr, te = _digits_split(seed, test_fraction)
  info = {
      "source": "sklearn load_digits blended with patches of sklearn "
                "load_sample_images (china.jpg, flower.jpg), MNIST-M recipe "
                "|patch - digit| (Ganin et al. 2016)",
      "native_shape": (*_size(image_size), 3),
      "split": f"seeded stratified, test_fraction={test_fraction}; the same "
               "digits as digits/sklearn with the same seed",
      "seed": seed,
      "transductive": False,
  }
  return domains.make_domain(name, (x[tr], y[tr]), (x[te], y[te]),
                             num_classes=10, kind="image",
                             class_names=DIGIT_NAMES, info=info)


# ---------------------------------------------------------------------------
# Font rendering.

# DejaVu families bundled with matplotlib ("Display" fonts hold few glyphs).
_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
          "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf",
          "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf",
          "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf",
          "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf",
          "DejaVuSerif-BoldItalic.ttf")
_STROKES = (0.0, 0.02, 0.045)  # stroke width, fraction of the font size
_GLYPH_HEIGHT = 0.62  # cap height as a fraction of the bank canvas


def font_paths() -> list[str]:
  """Paths of the bundled fonts the renderer uses."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(matplotlib.get_data_path()) / "fonts" / "ttf"
  return [str(root / f) for f in _FONTS if (root / f).is_file()]


@functools.lru_cache(maxsize=4)
def glyph_bank(chars: str, res: int) -> tuple[np.ndarray, np.ndarray]:
  """Every (font, stroke, character) glyph, white on black, ``res x res``.

  Glyphs are drawn with PIL at 4x the resolution, centred on their ink's
  bounding box with a common cap height per font, then reduced with a box
  filter.

  Returns:
    ``(bank, char_index)``: float32 ``(K, res, res)`` and int ``(K,)``, the
    index in ``chars`` of each glyph.
  """
  from PIL import Image, ImageDraw, ImageFont  # pylint: disable=g-import-not-at-top
  big = 4 * res
  bank, which = [], []
  for path in font_paths():
    probe = ImageFont.truetype(path, 100)
    x0, y0, x1, y1 = probe.getbbox("0123456789ABCDEFHX")
    size = max(4, int(round(100 * _GLYPH_HEIGHT * big / max(y1 - y0, 1))))
    font = ImageFont.truetype(path, size)
    for stroke in _STROKES:
      sw = int(round(stroke * size))
      for ci, ch in enumerate(chars):
        im = Image.new("L", (2 * big, 2 * big), 0)
        draw = ImageDraw.Draw(im)
        draw.text((big // 2, big // 2), ch, fill=255, font=font,
                  stroke_width=sw, stroke_fill=255)
        arr = np.asarray(im)
        ys, xs = np.nonzero(arr)
        cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
        top, left = int(round(cy - big / 2)), int(round(cx - big / 2))
        crop = np.zeros((big, big), np.uint8)
        src = arr[max(top, 0):top + big, max(left, 0):left + big]
        crop[max(-top, 0):max(-top, 0) + src.shape[0],
             max(-left, 0):max(-left, 0) + src.shape[1]] = src
        small = Image.fromarray(crop).resize((res, res), Image.Resampling.BOX)
        bank.append(np.asarray(small, dtype=np.float32) / 255.0)
        which.append(ci)
  return np.stack(bank), np.asarray(which)


@functools.lru_cache(maxsize=4)
def _padded_bank(chars: str, res: int):
  """Flat zero-padded bank, number of styles and ink half-widths."""
  bank, _ = glyph_bank(chars, res)
  flat = np.pad(bank, ((0, 0), (1, 1), (1, 1))).reshape(-1)
  flat.setflags(write=False)
  cols = np.flatnonzero  # ink extent per glyph, in canvas units [-1, 1]
  half = np.empty(len(bank), np.float32)
  for i, g in enumerate(bank):
    ink = cols(g.max(axis=0) > 0.2)
    half[i] = (ink.max() - ink.min() + 1) / res if len(ink) else 0.3
  return flat, len(bank) // len(chars), half  # styles = fonts x strokes


def _luminance(c):
  return c @ np.asarray([0.299, 0.587, 0.114], dtype=np.float32)


def _colours(rng, n, min_contrast=0.35):
  """Background and foreground RGB colours with a luminance contrast."""
  bg = rng.random((n, 3), dtype=np.float32)
  fg = rng.random((n, 3), dtype=np.float32)
  for _ in range(4):
    bad = np.abs(_luminance(fg) - _luminance(bg)) < min_contrast
    if not bad.any():
      break
    fg[bad] = rng.random((int(bad.sum()), 3), dtype=np.float32)
  bad = np.abs(_luminance(fg) - _luminance(bg)) < min_contrast
  fg[bad] = np.where(_luminance(bg[bad])[:, None] > 0.5, 0.0, 1.0)
  return bg, fg


def _sample_glyphs(bank_flat, res, k, inv, offset, h, w):
  """Bilinear lookup of glyph ``k[i]`` under the inverse affine ``inv[i]``.

  Output pixel centres are in [-1, 1]^2 (x right, y down); ``offset`` shifts
  the glyph in those units before the inverse map. Returns ``(n, h, w)``.
  """
  ys = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
  xs = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
  gx = xs[None, None, :] - offset[:, 0, None, None]
  gy = ys[None, :, None] - offset[:, 1, None, None]
  u = inv[:, 0, 0, None, None] * gx + inv[:, 0, 1, None, None] * gy
  v = inv[:, 1, 0, None, None] * gx + inv[:, 1, 1, None, None] * gy
  # Glyph canvas: [-1, 1]^2 -> pixel coordinates of the 1-padded bank.
  p = res + 2
  px = (u + 1) * (res / 2) - 0.5 + 1
  py = (v + 1) * (res / 2) - 0.5 + 1
  np.clip(px, 0, p - 1.001, out=px)
  np.clip(py, 0, p - 1.001, out=py)
  x0 = px.astype(np.int32)
  y0 = py.astype(np.int32)
  fx = px - x0
  fy = py - y0
  base = (k.astype(np.int64) * p * p)[:, None, None] + y0 * p + x0
  a = np.take(bank_flat, base)
  b = np.take(bank_flat, base + 1)
  c = np.take(bank_flat, base + p)
  d = np.take(bank_flat, base + p + 1)
  top = a + fx * (b - a)
  bot = c + fx * (d - c)
  return top + fy * (bot - top)


def render_chars(labels: np.ndarray, rng: np.random.Generator, chars: str,
                 size=(16, 16), *, max_rotation: float = 15.0,
                 distractors: float = 0.5, noise: float = 0.08,
                 blur: float = 1.0, colour: bool = True) -> np.ndarray:
  """Renders one image per label with random style (vectorised).

  Args:
    labels: ``(n,)`` indices into ``chars``.
    rng: random generator; the same state gives the same images.
    chars: the character set.
    size: ``(H, W)`` of the output.
    max_rotation: largest rotation in degrees (uniform in +-).
    distractors: probability of a partly visible neighbour character on each
      side, as in a rendered number.
    noise: largest standard deviation of the additive Gaussian noise.
    blur: largest strength of a 3x3 box blur (0 disables).
    colour: True: random foreground and background colours with a linear
      background gradient; False: white glyphs on black, one channel.

  Returns:
    ``(n, H, W, 3)`` (``(n, H, W, 1)`` when ``colour`` is False) float32 in
    [0, 1].
  """
  h, w = size
  res = max(h, w) + 4
  bank_flat, n_styles, half_width = _padded_bank(chars, res)
  n = len(labels)
  style = rng.integers(n_styles, size=n)
  # Bank order is (font, stroke, char): glyph = char + style * len(chars).
  k = np.asarray(labels, np.int64) + style * len(chars)
  # Affine: scale, aspect, rotation, shear; then translation.
  scale = rng.uniform(0.85, 1.25, size=n).astype(np.float32)
  aspect = np.exp(rng.uniform(-0.15, 0.15, size=n)).astype(np.float32)
  theta = np.deg2rad(rng.uniform(-max_rotation, max_rotation, size=n))
  shear = rng.uniform(-0.2, 0.2, size=n)
  cos, sin = np.cos(theta), np.sin(theta)
  sx, sy = scale * aspect, scale / aspect
  fwd = np.empty((n, 2, 2), np.float32)
  # fwd = R @ Shear @ S
  fwd[:, 0, 0] = cos * sx
  fwd[:, 0, 1] = (cos * shear - sin) * sy
  fwd[:, 1, 0] = sin * sx
  fwd[:, 1, 1] = (sin * shear + cos) * sy
  inv = np.linalg.inv(fwd).astype(np.float32)
  shift = rng.uniform(-0.12, 0.12, size=(n, 2)).astype(np.float32)
  alpha = _sample_glyphs(bank_flat, res, k, inv, shift, h, w)
  # Neighbouring characters of the same style, partly in view.
  for side in (-1.0, 1.0):
    on = rng.random(n) < distractors
    other = rng.integers(len(chars), size=n)
    space = rng.uniform(0.12, 0.35, size=n).astype(np.float32)
    if not on.any():
      continue
    idx = np.flatnonzero(on)
    kk = other[idx].astype(np.int64) + style[idx] * len(chars)
    # Centre distance: both half-widths plus a gap, in output units.
    gap = (half_width[k[idx]] + half_width[kk] + space[idx]) * sx[idx]
    off = shift[idx] + side * gap[:, None] * np.stack(
        [cos[idx], sin[idx]], axis=1).astype(np.float32)
    a2 = _sample_glyphs(bank_flat, res, kk, inv[idx], off, h, w)
    alpha[idx] = np.maximum(alpha[idx], a2)
  np.clip(alpha, 0.0, 1.0, out=alpha)
  if colour:  # colours and a linear background gradient
    bg, fg = _colours(rng, n)
    ang = rng.uniform(0, 2 * np.pi, size=n)
    amp = rng.uniform(-0.25, 0.25, size=(n, 3)).astype(np.float32)
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h - 0.5
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w - 0.5
    ramp = (np.cos(ang)[:, None, None] * xs[None, None, :] +
            np.sin(ang)[:, None, None] * ys[None, :, None]).astype(np.float32)
    img = bg[:, None, None, :] + ramp[..., None] * amp[:, None, None, :]
    img += alpha[..., None] * (fg[:, None, None, :] - img)  # composite
  else:
    img = alpha[..., None]
  if blur > 0:  # blend towards a separable 3x3 box blur
    pad = np.pad(img, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    rows = pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]
    box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
    box *= 1.0 / 9.0
    box -= img
    box *= (rng.random(n, dtype=np.float32) * blur)[:, None, None, None]
    img += box
  if noise > 0:
    sigma = (rng.random(n, dtype=np.float32) * noise)[:, None, None, None]
    z = rng.standard_normal(img.shape, dtype=np.float32)
    z *= sigma
    img += z
  np.clip(img, 0.0, 1.0, out=img)
  return img


def generate(name: str, chars: str, n: int, seed: int, stream: int, size,
             **style) -> tuple[np.ndarray, np.ndarray]:
  """``n`` rendered images and labels, classes balanced to within one.

  Images are made in chunks of about 512 (a multiple of the number of
  classes); chunk ``j`` is always rendered whole from
  ``domain_rng(name, seed, stream, j)``, so the first ``n`` images of a larger
  request are the same images. Every run of ``len(chars)`` consecutive images
  holds each class once, in random order.
  """
  c = len(chars)
  chunk = c * max(1, round(_CHUNK / c))
  xs, ys = [], []
  for j in range(0, max(n, 0), chunk):
    rng = domains.domain_rng(name, seed, stream, j // chunk)
    y = np.argsort(rng.random((chunk // c, c)), axis=1).ravel()
    x = render_chars(y, rng, chars, size, **style)
    m = min(chunk, n - j)
    xs.append(x[:m])
    ys.append(y[:m])
  if not xs:
    channels = 3 if style.get("colour", True) else 1
    return (np.zeros((0, *size, channels), np.float32),
            np.zeros((0,), np.int32))
  return np.concatenate(xs), np.concatenate(ys).astype(np.int32)


def _disk_cached(key: dict, make):
  """Loads arrays from the disk cache or makes and stores them."""
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
  path = cache_dir() / "synthetic" / f"{digest[:24]}.npz"
  if path.is_file():
    try:
      with np.load(path) as z:
        return {k: z[k] for k in z.files}
    except Exception:  # pylint: disable=broad-except
      path.unlink(missing_ok=True)  # corrupt: make it again
  arrays = make()
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp",
                                   delete=False) as f:
    np.savez(f, **arrays)
  os.replace(f.name, path)
  return arrays


def _load_rendered(name, chars, class_names, *, image_size, seed, n_train,
                   n_test, max_rotation, distractors, noise, blur, cache):
  size = _size(image_size)
  style = dict(max_rotation=float(max_rotation), distractors=float(distractors),
               noise=float(noise), blur=float(blur))
  if n_train < 1 or n_test < 0:
    raise ValueError(f"{name}: n_train must be >= 1 and n_test >= 0, got "
                     f"{n_train} and {n_test}.")

  def make():
    xtr, ytr = generate(name, chars, n_train, seed, 0, size, **style)
    xte, yte = generate(name, chars, n_test, seed, 1, size, **style)
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}

  if cache is None:
    cache = n_train + n_test >= 50_000
  if cache:
    import PIL  # pylint: disable=g-import-not-at-top
    key = dict(name=name, size=size, seed=seed, n_train=n_train,
               n_test=n_test, version=RENDER_VERSION, pil=PIL.__version__,
               **style)
    arrays = _disk_cached(key, make)
  else:
    arrays = make()
  info = {
      "source": "rendered from matplotlib's bundled DejaVu fonts with PIL "
                f"({len(font_paths())} fonts x {len(_STROKES)} stroke widths)",
      "style": style,
      "seed": seed,
      "split": "train and test drawn from independent random streams",
      "transductive": False,
      "renderer_version": RENDER_VERSION,
  }
  return domains.make_domain(
      name, (arrays["xtr"], arrays["ytr"]), (arrays["xte"], arrays["yte"]),
      num_classes=len(chars), kind="image", class_names=class_names, info=info)


def load_syndigits(name, *, image_size=None, channels=None, data_dir=None,
                   seed=0, n_train: int = 20000, n_test: int = 2000,
                   max_rotation: float = 15.0, distractors: float = 0.5,
                   noise: float = 0.08, blur: float = 1.0, cache=None):
  """Synthetic digits rendered from fonts (see module docstring).

  Options:
    n_train, n_test: number of images per split.
    max_rotation: degrees; distractors: probability of a neighbour digit on
      each side; noise: largest Gaussian noise std; blur: largest blur
      strength; cache: store on disk under ``$TLAX_CACHE_DIR/synthetic``
      (None: when n_train + n_test >= 50,000).
  """
  del channels, data_dir
  return _load_rendered(name, "0123456789", DIGIT_NAMES, image_size=image_size,
                        seed=seed, n_train=n_train, n_test=n_test,
                        max_rotation=max_rotation, distractors=distractors,
                        noise=noise, blur=blur, cache=cache)


def load_letters(name, *, image_size=None, channels=None, data_dir=None,
                 seed=0, n_train: int = 26000, n_test: int = 2600,
                 max_rotation: float = 15.0, distractors: float = 0.5,
                 noise: float = 0.08, blur: float = 1.0, cache=None):
  """Synthetic capital letters A..Z rendered like ``digits/syndigits``."""
  del channels, data_dir
  return _load_rendered(name, "".join(LETTER_NAMES), LETTER_NAMES,
                        image_size=image_size, seed=seed, n_train=n_train,
                        n_test=n_test, max_rotation=max_rotation,
                        distractors=distractors, noise=noise, blur=blur,
                        cache=cache)


def load_font_digits(name, *, image_size=None, channels=None, data_dir=None,
                     seed=0, n_train: int = 10000, n_test: int = 2000,
                     max_rotation: float = 15.0, noise: float = 0.05,
                     blur: float = 1.0, cache=None):
  """Digits rendered from fonts, white on black (see module docstring).

  The renderer of ``digits/syndigits`` without its colours, background
  gradient and neighbour digits: one grey channel, bright strokes on black,
  like ``digits/sklearn``, so that the two differ in how the digits were made
  (typeset glyphs against handwriting), not in colour.

  Options:
    n_train, n_test: number of images per split.
    max_rotation: degrees; noise: largest Gaussian noise std; blur: largest
      blur strength; cache: store on disk under ``$TLAX_CACHE_DIR/synthetic``
      (None: when n_train + n_test >= 50,000).
  """
  del channels, data_dir
  size = _size(image_size)
  style = dict(max_rotation=float(max_rotation), distractors=0.0,
               noise=float(noise), blur=float(blur), colour=False)
  if n_train < 1 or n_test < 0:
    raise ValueError(f"{name}: n_train must be >= 1 and n_test >= 0, got "
                     f"{n_train} and {n_test}.")

  def make():
    xtr, ytr = generate(name, "0123456789", n_train, seed, 0, size, **style)
    xte, yte = generate(name, "0123456789", n_test, seed, 1, size, **style)
    return {"xtr": xtr, "ytr": ytr, "xte": xte, "yte": yte}

  if cache is None:
    cache = n_train + n_test >= 50_000
  if cache:
    import PIL  # pylint: disable=g-import-not-at-top
    arrays = _disk_cached(
        dict(name=name, size=size, seed=seed, n_train=n_train, n_test=n_test,
             version=RENDER_VERSION, pil=PIL.__version__, **style), make)
  else:
    arrays = make()
  info = {
      "source": "rendered from matplotlib's bundled DejaVu fonts with PIL "
                f"({len(font_paths())} fonts x {len(_STROKES)} stroke "
                "widths), white on black",
      "style": style,
      "seed": seed,
      "split": "train and test drawn from independent random streams",
      "transductive": False,
      "renderer_version": RENDER_VERSION,
  }
  return domains.make_domain(
      name, (arrays["xtr"], arrays["ytr"]), (arrays["xte"], arrays["yte"]),
      num_classes=10, kind="image", class_names=DIGIT_NAMES, info=info)
