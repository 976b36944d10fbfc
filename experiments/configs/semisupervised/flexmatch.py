r"""Classic semi-supervised learning: flexmatch.

FlexMatch (Zhang et al., 2021): per-class curriculum thresholds, upper tau = 0.95,
convex mapping, warm-up; a buffer of the last 1500 unlabelled predictions.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/flexmatch.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/flexmatch/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/flexmatch.py:labels=4 \
    --tasks=ssl --seeds=0,1,2 --root=runs/ssl/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssl_config('flexmatch', arg, tau=0.95, lambda_u=1.0, memory=1500)
