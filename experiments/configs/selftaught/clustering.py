r"""Self-taught clustering (Dai et al., ICML 2008) against k-means and spectral.

The target (``config.target``) is clustered into its number of classes with
the source (``config.source``) as unlabelled auxiliary data. Reported per
algorithm: NMI and Hungarian-matched accuracy (percent), ``nmi.<alg>`` and
``acc.<alg>`` in ``result.json``, for ``stc`` (self-taught clustering on
non-negative data: raw SURF counts for Office-Caltech10; for images, visual
words: the pooled window codes of ``conv_sparse_coding`` learned on the
auxiliary images, as in ``classification.py``), ``kmeans`` and ``spectral``
(k-nearest-neighbour graph) on the target's own features (z-scored SURF,
pixels), and ``kmeans_selftaught`` and ``spectral_selftaught`` on sparse
codes learned from the auxiliary data. Image tasks add ``stc_pixels`` (STC
on pixel intensities) and ``kmeans_words`` (k-means on the visual words).

Settings (a priori, every task): 64 shared feature clusters, lambda = 1, at
most 20 iterations from each of 10 k-means initialisations, keeping the run
with the lowest STC objective (the k-means baseline likewise keeps the best
of 10 initialisations by its own objective); digit targets are cut to a
class-balanced subset of 500 examples (``clustering.target_size``); sparse
coding as in ``classification.py`` (128 atoms, alpha = 0.2).

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/selftaught/clustering.py \
    --config.source=office_caltech10/amazon \
    --config.target=office_caltech10/dslr --config.seed=0 \
    --workdir=runs/selftaught/stc/office_caltech10_amazon--office_caltech10_dslr/0

Quick mode (seconds, embedded digits; used by tests):
  python -m experiments.run \
    --config=experiments/configs/selftaught/clustering.py:quick \
    --workdir=/tmp/tlax_quick_stc
"""

import ml_collections

from experiments.configs.selftaught import classification


def get_config(arg: str | None = None):
  """The self-taught clustering config; ``arg``: ``quick`` or None."""
  c = classification.base()
  c.protocol = "clustering"
  c.method.name = "stc"
  c.source = "digits/sklearn[5-9]"
  c.target = "digits/sklearn[0-4]"
  c.clustering = ml_collections.ConfigDict({
      "n_feature_clusters": 64, "lam": 1.0, "n_iter": 20, "n_init": 10,
      # Class-balanced target subsets per collection (0 or absent: all).
      "target_size": {"mnist_usps": 500},
      # Image tasks: STC on visual words learned from the auxiliary images
      # ("visual_words") or on pixel intensities ("pixels").
      "image_features": "visual_words",
  })
  c.plots = False
  if arg == "quick":
    c.quick = True
    c.clustering.n_feature_clusters = 8
    c.clustering.n_iter = 3
    c.clustering.n_init = 2
    c.clustering.target_size = {"digits": 100}
    c.learner.sparse_coding.update({"n_atoms": 16, "n_iter": 3,
                                    "code_steps": 5, "transform_steps": 10})
    c.learner.conv_sparse_coding.update({"n_atoms": 16, "n_patches": 2000,
                                         "n_iter": 3, "code_steps": 5})
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; valid: 'quick'.")
  return c
