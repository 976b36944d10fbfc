r"""Classic semi-supervised learning: the fully supervised ceiling.

Every label of the training split (``labels_per_class = -1``), the same
network, augmentation, schedule and test split as the semi-supervised runs.
The ``labels=<k>`` argument is accepted and ignored, so the ceiling sits in
the same sweep as the methods.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/fully_supervised.py \
    --config.seed=0 --workdir=runs/ssl/all/fully_supervised/0
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ... (see ``base.apply_arg``)."""
  config = base.ssl_config("fully_supervised", arg)
  config.labels_per_class = -1
  return config
