"""Feature-embedding plots and learning curves (tlax.viz)."""

import json
import os

import numpy as np

from tlax.viz import curves
from tlax.viz import embedding


def test_embed_2d_pca_and_tsne():
  x = np.random.RandomState(0).randn(40, 6)
  assert embedding.embed_2d(x, "pca").shape == (40, 2)
  assert embedding.embed_2d(x, "tsne").shape == (40, 2)


def test_plot_embeddings_writes_png(tmp_path):
  r = np.random.RandomState(0)
  panel = (r.randn(30, 5), r.randint(0, 3, 30), r.randn(20, 5) + 1,
           r.randint(0, 3, 20))
  path = embedding.plot_embeddings({"before": panel, "after": panel},
                                   str(tmp_path / "e.png"), method="pca")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_learning_curves_from_metrics(tmp_path):
  m = tmp_path / "metrics.jsonl"
  recs = []
  for s in range(10, 60, 10):
    recs.append({"type": "train", "step": s, "cls_loss": 1.0 / s,
                 "align_loss": 0.5, "mu": 0.1 * s / 60, "align_weight": 1.0})
    recs.append({"type": "eval", "step": s, "target_accuracy": s,
                 "source_val_accuracy": s + 5})
  m.write_text("".join(json.dumps(r) + "\n" for r in recs))
  path = curves.plot_learning_curves(str(m), str(tmp_path / "c.png"))
  assert os.path.getsize(path) > 1000
  path = curves.plot_runs({"a": str(m)}, str(tmp_path / "r.png"))
  assert os.path.getsize(path) > 1000
