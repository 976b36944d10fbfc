"""Fixed image features for zero-shot benchmarks without a pretrained network.

A zero-shot method maps image features into a semantic space learned from
seen classes only, so the features must describe parts that unseen classes
share (the strokes of a digit, a segment of a display). Features learned on
the seen classes' labels would discard what does not separate the seen
classes; fixed features avoid that bias and need no training:

* :func:`hog`: histograms of oriented gradients (Dalal & Triggs, CVPR 2005)
  over a grid of cells, the classic descriptor of stroke directions by
  position;
* :func:`random_fourier`: random Fourier features (Rahimi & Recht, NeurIPS
  2007) of any features, so the linear compatibility models become kernel
  models of an RBF kernel.
"""

from __future__ import annotations

import numpy as np


def _grey(images: np.ndarray) -> np.ndarray:
  x = np.asarray(images, np.float32)
  if x.ndim == 4:
    x = x.mean(-1)
  if x.ndim != 3:
    raise ValueError(f"hog expects images (n, H, W) or (n, H, W, C), got "
                     f"shape {x.shape}.")
  return x


def hog(images: np.ndarray, *, cells: int = 4, orientations: int = 9,
        signed: bool = False, block_norm: bool = True) -> np.ndarray:
  """Histograms of oriented gradients on a ``cells x cells`` grid.

  Central-difference gradients; each pixel votes its gradient magnitude into
  ``orientations`` bins of its direction (unsigned: modulo 180 degrees) with
  linear interpolation between the two nearest bins, in the cell it falls
  in; each cell's histogram is L2-normalised when ``block_norm``.

  Args:
    images: (n, H, W) or (n, H, W, C) (colour is averaged to grey).
    cells: the grid is ``cells x cells`` (H and W are split evenly; a
      remainder goes to the last cell).
    orientations: bins per cell.
    signed: bins over 360 degrees instead of 180.
    block_norm: L2-normalise each cell's histogram.

  Returns:
    (n, cells * cells * orientations) float32.
  """
  x = _grey(images)
  n, h, w = x.shape
  gy = np.zeros_like(x)
  gx = np.zeros_like(x)
  gy[:, 1:-1] = x[:, 2:] - x[:, :-2]
  gx[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
  mag = np.hypot(gx, gy)
  period = 2 * np.pi if signed else np.pi
  ang = np.mod(np.arctan2(gy, gx), period) / period * orientations
  lo = np.floor(ang).astype(np.int64) % orientations
  hi = (lo + 1) % orientations
  frac = ang - np.floor(ang)
  ry = np.minimum(np.arange(h) * cells // h, cells - 1)
  rx = np.minimum(np.arange(w) * cells // w, cells - 1)
  cell = (ry[:, None] * cells + rx[None, :])[None]
  width = cells * cells * orientations
  offset = (np.arange(n) * width)[:, None, None]
  out = np.zeros(n * width, np.float64)
  for b, wgt in ((lo, mag * (1 - frac)), (hi, mag * frac)):
    out += np.bincount((offset + cell * orientations + b).ravel(),
                       weights=wgt.ravel(), minlength=n * width)
  out = out.reshape(n, cells * cells, orientations)
  if block_norm:
    out /= np.sqrt(np.sum(out ** 2, -1, keepdims=True) + 1e-6)
  return out.reshape(n, -1).astype(np.float32)


def random_fourier(x: np.ndarray, *, dim: int = 1024, bandwidth=None,
                   seed: int = 0, reference: np.ndarray | None = None
                   ) -> np.ndarray:
  """Random Fourier features ``sqrt(2/D) cos(x W / sigma + b)`` of an RBF kernel.

  Args:
    x: (n, d) features.
    dim: D.
    bandwidth: sigma; default the median distance between rows of
      ``reference`` (or ``x``), the usual heuristic.
    seed: draws ``W ~ N(0, I)`` and ``b ~ U[0, 2 pi)``.
    reference: features that fix the default bandwidth (the training set),
      so train and test features use the same map.

  Returns:
    (n, D) float32.
  """
  x = np.asarray(x, np.float64)
  ref = x if reference is None else np.asarray(reference, np.float64)
  if bandwidth is None:
    sub = ref[np.random.default_rng(seed).permutation(len(ref))[:500]]
    d2 = np.sum((sub[:, None] - sub[None]) ** 2, -1)
    bandwidth = float(np.sqrt(np.median(d2[np.triu_indices(len(sub), 1)])))
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(x.shape[1], dim))
  b = rng.uniform(0, 2 * np.pi, size=dim)
  return (np.sqrt(2.0 / dim) * np.cos(x @ w / bandwidth + b)).astype(
      np.float32)
