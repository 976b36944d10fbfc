r"""Classic semi-supervised learning: scikit-learn's LabelSpreading.

The same task (the k labelled examples per class, the unlabelled rest, the
test split) on raw pixels: ``LabelSpreading(kernel="knn", n_neighbors=10,
alpha=0.2)`` fitted on labelled and unlabelled examples, scored on the test
split (``experiments/semisupervised.py:run_label_spreading``).

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/label_spreading.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/label_spreading/0
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  config = base.ssl_config("label_spreading", arg, kernel="knn",
                           n_neighbors=10, alpha=0.2, gamma=20.0)
  config.runner = "experiments.semisupervised:run_label_spreading"
  return config
