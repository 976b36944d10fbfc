r"""Classic semi-supervised learning: softmatch.

SoftMatch (Chen et al., 2023): truncated-Gaussian weights (EMA momentum
0.999, n_sigma = 2) with uniform alignment.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/softmatch.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/softmatch/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/softmatch.py:labels=4 \
    --tasks=ssl --seeds=0,1,2 --root=runs/ssl/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssl_config('softmatch', arg, lambda_u=1.0, momentum=0.999, n_sigma=2.0)
