"""Grids of domain examples, to look at a loader's output before trusting it.

    from tlax.viz.grids import plot_domain_grid
    plot_domain_grid(tlax.data.load_domain("digits/syndigits"), path="g.png")

Each cell shows one image with its class name in the title, so orientation
(upright, not mirrored or transposed) and label alignment can be checked by
eye.
"""

from __future__ import annotations

import math

import numpy as np


def plot_domain_grid(domain, n: int = 64, path=None, *, split: str = "train",
                     seed: int = 0, cell_inches: float = 0.75, dpi: int = 80,
                     title: str | None = None):
  """Plots ``n`` random examples of an image domain with their labels.

  Args:
    domain: a :class:`tlax.data.Domain` of kind ``"image"`` (a feature domain
      whose rows are square images, e.g. ``flatten=True``, is also accepted).
    n: number of examples (fewer when the split is smaller).
    path: if given, the figure is saved there (PNG) and closed.
    split: which split to draw from.
    seed: which examples are drawn.
    cell_inches, dpi: size of each cell and resolution of the saved figure.
    title: figure title (default: the domain name and input shape).

  Returns:
    The matplotlib figure (None when saved to ``path``).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  x, y = domain.splits[split]
  if x.ndim == 2:
    side = int(round(math.sqrt(x.shape[1])))
    if side * side != x.shape[1]:
      raise ValueError(f"{domain.name} has {x.shape[1]} features, not square "
                       "images; a grid needs an image domain.")
    x = x.reshape(-1, side, side, 1)
  n = min(n, len(x))
  idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
  cols = int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  fig, axes = plt.subplots(rows, cols, squeeze=False,
                           figsize=(cols * cell_inches, rows * cell_inches * 1.2))
  for ax in axes.ravel():
    ax.axis("off")
  names = getattr(domain, "class_names", None)
  for ax, i in zip(axes.ravel(), idx):
    img = np.clip(np.asarray(x[i], np.float32), 0, 1)
    if img.shape[-1] == 1:
      ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1,
                interpolation="nearest")
    else:
      ax.imshow(img, interpolation="nearest")
    label = int(y[i])
    ax.set_title(names[label] if names else str(label), fontsize=7, pad=1)
  top = 1.0 - 0.3 / (rows * cell_inches * 1.2 + 0.3)  # room for the title
  fig.suptitle(title or f"{domain.name} {tuple(x.shape[1:])} ({split})",
               fontsize=9, y=0.995)
  fig.tight_layout(pad=0.2, h_pad=0.1, w_pad=0.1, rect=(0, 0, 1, top))
  if path is None:
    return fig
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return None


def plot_task_grid(domains, n: int = 24, path=None, *, cols: int = 12,
                   split: str = "train", seed: int = 0,
                   cell_inches: float = 0.6, dpi: int = 80):
  """Examples of several image domains, one block of rows per domain.

  The picture of a task: its source and target domains one above the other,
  the same number of random examples of each, labelled with their class.

  Args:
    domains: :class:`tlax.data.Domain` objects of kind ``"image"``.
    n: examples per domain (fewer when a split is smaller).
    path: if given, the figure is saved there (PNG) and closed.
    cols: images per row.
    split: which split to draw from.
    seed: which examples are drawn.
    cell_inches, dpi: size of each cell and resolution of the saved figure.

  Returns:
    The matplotlib figure (None when saved to ``path``).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  blocks = []
  for dom in domains:
    x, y = dom.splits[split]
    m = min(n, len(x))
    idx = np.sort(np.random.default_rng(seed).choice(len(x), m, replace=False))
    blocks.append((dom, x[idx], y[idx], int(math.ceil(m / cols))))
  rows = sum(b[3] for b in blocks)
  fig = plt.figure(figsize=(cols * cell_inches,
                            rows * cell_inches * 1.2 + 0.35 * len(blocks)))
  grid = fig.add_gridspec(len(blocks), 1, height_ratios=[b[3] for b in blocks],
                          hspace=0.25)
  for g, (dom, x, y, r) in enumerate(blocks):
    sub = grid[g].subgridspec(r, cols, hspace=0.3)
    names = getattr(dom, "class_names", None)
    for k in range(r * cols):
      ax = fig.add_subplot(sub[k // cols, k % cols])
      ax.axis("off")
      if k >= len(x):
        continue
      img = np.clip(np.asarray(x[k], np.float32), 0, 1)
      if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
      else:
        ax.imshow(img, interpolation="nearest")
      ax.set_title(names[int(y[k])] if names else str(int(y[k])), fontsize=7,
                   pad=1)
      if k == 0:
        ax.text(0, 1.35, f"{dom.name} {tuple(x.shape[1:])}",
                transform=ax.transAxes, fontsize=9, ha="left", va="bottom")
  fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.9,
                      wspace=0.08)
  if path is None:
    return fig
  fig.savefig(path, dpi=dpi)
  plt.close(fig)
  return None
