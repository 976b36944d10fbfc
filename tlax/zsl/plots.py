"""Pictures of a zero-shot run: a t-SNE of the semantic space, the GZSL curve."""

from __future__ import annotations

import numpy as np

from tlax.viz import embedding
from tlax.zsl import protocols


def calibration_curve(scores: dict, split: protocols.ZSLSplit, gamma: float,
                      path: str, *, title: str = "", num: int = 60) -> dict:
  """GZSL seen and unseen accuracy (and H) against the calibration ``gamma``.

  The curve is read from the test images' scores: it shows the seen-unseen
  trade-off that calibrated stacking moves along. The ``gamma`` chosen on
  held-out seen classes is marked; the curve's best point is an oracle that
  no label-free protocol may report.

  Returns:
    ``{"gamma": (num,), "seen": ..., "unseen": ..., "h": ...}``.
  """
  plt = embedding._pyplot()  # pylint: disable=protected-access
  c = len(split.class_names)
  mask = np.zeros(c, np.float32)
  mask[split.seen] = 1.0
  both = np.concatenate([scores["seen"], scores["unseen"]])
  cands = protocols.gamma_candidates(both, mask, num=num)
  lo, hi = np.quantile(cands, [0.02, 0.98])
  grid = np.unique(np.concatenate([np.linspace(min(lo, gamma, 0.0),
                                               max(hi, gamma), num), [gamma]]))
  curve = {"gamma": grid, "seen": [], "unseen": [], "h": []}
  for g in grid:
    m = protocols.gzsl_accuracies(scores["seen"], split.y_test_seen,
                                  scores["unseen"], split.y_test_unseen,
                                  split.seen, split.unseen, c, g)
    curve["seen"].append(m["gzsl_seen"])
    curve["unseen"].append(m["gzsl_unseen"])
    curve["h"].append(m["gzsl_h"])
  fig, ax = plt.subplots(figsize=(5.0, 3.4), dpi=100)
  ax.plot(grid, curve["seen"], label="seen accuracy")
  ax.plot(grid, curve["unseen"], label="unseen accuracy")
  ax.plot(grid, curve["h"], "k--", label="H")
  ax.axvline(0.0, color="grey", lw=0.8)
  ax.axvline(gamma, color="C3", lw=1.2, label="γ chosen on seen classes")
  ax.set_xlabel("calibration γ (subtracted from seen-class scores)")
  ax.set_ylabel("per-class accuracy (%)")
  ax.set_ylim(0, 100)
  ax.legend(fontsize=7, loc="best")
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
  return {k: np.asarray(v) for k, v in curve.items()}


def tsne(method, params, split: protocols.ZSLSplit, path: str, *,
         seed: int = 0, max_points: int = 600, title: str = "") -> None:
  """t-SNE of test images mapped into the semantic space, with class points.

  Images (dots, coloured by class) are ``method.embed(params, x)``; each
  class embedding is a large marker (circle: seen, star: unseen) labelled
  with the class name, embedded jointly with the images. Dims are
  L2-normalised first so images and classes share a scale.
  """
  plt = embedding._pyplot()  # pylint: disable=protected-access
  x = np.concatenate([split.x_test_seen, split.x_test_unseen])
  y = np.concatenate([split.y_test_seen, split.y_test_unseen])
  keep = embedding.subsample(len(x), max_points, seed)
  z = np.asarray(method.embed(params, x[keep]), np.float64)
  s = np.asarray(split.class_embeddings, np.float64)
  if method.name == "dap":  # images are attribute probabilities
    from tlax.zsl import semantic  # pylint: disable=g-import-not-at-top
    s = semantic.binarise(s, np.asarray(params["threshold"]))[0]
  pts = np.concatenate([z, s])
  pts = pts / np.maximum(np.linalg.norm(pts, axis=1, keepdims=True), 1e-12)
  xy = embedding.embed_2d(pts, "tsne", seed=seed)
  img, cls = xy[:len(z)], xy[len(z):]
  c = len(split.class_names)
  cmap = plt.get_cmap("tab10" if c <= 10 else "tab20")
  fig, ax = plt.subplots(figsize=(5.6, 4.6), dpi=100)
  ax.scatter(img[:, 0], img[:, 1], s=6, c=[cmap(int(k) % 20) for k in y[keep]],
             alpha=0.5, linewidths=0)
  seen = set(split.seen.tolist())
  for k in range(c):
    marker = "o" if k in seen else "*"
    ax.scatter(cls[k, 0], cls[k, 1], s=180 if marker == "*" else 90,
               marker=marker, c=[cmap(k % 20)], edgecolors="black",
               linewidths=1.0)
    ax.annotate(split.class_names[k], cls[k], fontsize=7,
                xytext=(4, 4), textcoords="offset points")
  ax.set_xticks([])
  ax.set_yticks([])
  ax.set_title((title + "\n" if title else "")
               + "dots: test images; ○ seen, ★ unseen class embeddings",
               fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
