"""A semantic-bias benchmark: coloured digits whose colour predicts the class.

The source material's example of semantic bias: colour is a feature shared by
chickens, ducks, cats and dogs, and "yellow" separates chickens from ducks but
says nothing about cats and dogs; a classifier that learned "yellow means
chicken" carries that meaning into the target as noise. Here the images are
scikit-learn's handwritten digits (``digits/sklearn``) drawn in one of ten
colours (white background removed: ``x_rgb = grey * colour``):

* ``colourdigits/source``: the digits' training split. With probability
  ``correlation`` (default 0.95) a digit of class ``k`` is drawn in colour
  ``k`` (:data:`PALETTE`), otherwise in a colour drawn uniformly from the ten.
  Colour alone then predicts the class with accuracy about
  ``correlation + (1 - correlation) / 10``.
* ``colourdigits/target``: the digits' test split (the same ten classes, a
  transductive target: its unlabelled training set is its test set) with the
  colour-class link set by ``pairing``: ``"random"`` (absent, default),
  ``"aligned"`` (every digit in its class colour), ``"reversed"`` (class ``k``
  in colour ``(k + 5) mod 10``, a colour the source gives to another class).

:func:`recoloured` draws the same target images with another colouring, for
the bias measures of :mod:`tlax.prototypes.bias`.
"""

from __future__ import annotations

import numpy as np

from tlax.data import domains

# Ten well-separated colours (RGB in [0, 1]): class k's colour in the source.
PALETTE = np.array([
    [1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.3, 0.4, 1.0], [1.0, 1.0, 0.2],
    [1.0, 0.3, 1.0], [0.2, 1.0, 1.0], [1.0, 0.6, 0.1], [0.6, 0.3, 1.0],
    [1.0, 1.0, 1.0], [0.5, 0.8, 0.3]], np.float32)
PAIRINGS = ("random", "aligned", "reversed")
_REVERSE_SHIFT = 5


def colour_indices(labels: np.ndarray, pairing: str, rng: np.random.Generator,
                   correlation: float = 1.0) -> np.ndarray:
  """The colour index of each image.

  Args:
    labels: (n,) class labels in 0..9.
    pairing: ``"aligned"`` (class ``k`` in colour ``k`` with probability
      ``correlation``, otherwise a uniformly random colour), ``"reversed"``
      (colour ``(k + 5) mod 10``) or ``"random"`` (uniform, independent of the
      class).
    rng: the random stream.
    correlation: in [0, 1], used by ``"aligned"``.

  Returns:
    (n,) int colour indices into :data:`PALETTE`.
  """
  if pairing not in PAIRINGS:
    raise ValueError(f"Unknown colour pairing {pairing!r}; use one of "
                     f"{', '.join(PAIRINGS)}.")
  if not 0.0 <= float(correlation) <= 1.0:
    raise ValueError(f"correlation must be in [0, 1], got {correlation!r}.")
  labels = np.asarray(labels) % len(PALETTE)
  random = rng.integers(0, len(PALETTE), size=labels.shape)
  if pairing == "random":
    return random
  if pairing == "reversed":
    return (labels + _REVERSE_SHIFT) % len(PALETTE)
  keep = rng.random(labels.shape) < float(correlation)
  return np.where(keep, labels, random)


def colourize(grey: np.ndarray, colours: np.ndarray) -> np.ndarray:
  """``(n, h, w, 1)`` grey digits drawn in ``PALETTE[colours]``: (n, h, w, 3).
  """
  return (np.asarray(grey, np.float32)
          * PALETTE[np.asarray(colours)][:, None, None, :])


def _grey_digits(seed: int, image_size, test: bool):
  from tlax.data import synthetic  # pylint: disable=g-import-not-at-top
  x, y = synthetic._sklearn_digits()  # pylint: disable=protected-access
  tr, te = synthetic._digits_split(seed, 0.2)  # pylint: disable=protected-access
  idx = te if test else tr
  size = domains._normalise_size(image_size) or (16, 16)  # pylint: disable=protected-access
  return domains.resize_images(x[idx], size), y[idx]


def recoloured(pairing: str, *, seed: int = 0, image_size=None,
               stream: int = 3, correlation: float = 1.0):
  """The ``colourdigits/target`` images and labels with another colouring.

  Args:
    pairing: see :func:`colour_indices`.
    seed: the domain seed (the same digits as the target of that seed).
    image_size: as for the domain.
    stream: the random stream of the colours (``"random"`` with a stream
      other than the target's gives the counterfactual: same digits, new
      colours).
    correlation: for ``"aligned"``.

  Returns:
    ``(x, y)``: (n, h, w, 3) float32 images, (n,) int32 labels.
  """
  grey, y = _grey_digits(seed, image_size, test=True)
  rng = domains.domain_rng("colourdigits/target", seed, stream)
  c = colour_indices(y, pairing, rng, correlation)
  return colourize(grey, c), y.astype(np.int32)


def load_colour_digits(name, *, image_size=None, channels=None, data_dir=None,
                       seed=0, correlation: float | None = None,
                       pairing: str | None = None):
  """``colourdigits/source`` or ``colourdigits/target`` (module docstring)."""
  del channels, data_dir
  source = name.endswith("/source")
  if source and pairing is not None:
    raise TypeError(f"{name}: the source's colours are set by 'correlation' "
                    "(pairing is a target option).")
  if not source and correlation is not None and pairing != "aligned":
    raise TypeError(f"{name}: 'correlation' applies to the source or to "
                    "pairing='aligned'.")
  info = {"source": "sklearn.datasets.load_digits drawn in ten colours "
                    "(tlax.data.semantic_bias)", "seed": seed}
  if source:
    correlation = 0.95 if correlation is None else float(correlation)
    grey, y = _grey_digits(seed, image_size, test=False)
    c = colour_indices(y, "aligned", domains.domain_rng(name, seed, 1),
                       correlation)
    x = colourize(grey, c)
    tr, te = domains.stratified_split(y, 0.2, domains.domain_rng(name, seed, 2))
    info.update(correlation=correlation, transductive=False)
    return domains.make_domain(name, (x[tr], y[tr]), (x[te], y[te]),
                               num_classes=10, kind="image",
                               class_names=tuple(map(str, range(10))),
                               info=info)
  pairing = pairing or "random"
  x, y = recoloured(pairing, seed=seed, image_size=image_size, stream=1,
                    correlation=1.0 if correlation is None else correlation)
  info.update(pairing=pairing, transductive=True)
  return domains.make_domain(name, (x, y), (x, y), num_classes=10,
                             kind="image",
                             class_names=tuple(map(str, range(10))),
                             info=info)
