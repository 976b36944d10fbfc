r"""Classic semi-supervised learning: freematch.

FreeMatch (Wang et al., 2023): self-adaptive global and per-class thresholds
(EMA momentum 0.999) and the self-adaptive fairness term (weight 0.01).

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/freematch.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/freematch/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/freematch.py:labels=4 \
    --tasks=ssl --seeds=0,1,2 --root=runs/ssl/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssl_config('freematch', arg, lambda_u=1.0, momentum=0.999, fairness_weight=0.01)
