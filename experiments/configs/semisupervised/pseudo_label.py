r"""Classic semi-supervised learning: pseudo_label.

Pseudo-labelling (Lee, 2013): confident own predictions (tau = 0.95) on the
weak view, weight ramped up linearly over the first 40% of the run.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/pseudo_label.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/pseudo_label/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/pseudo_label.py:labels=4 \
    --tasks=ssl --seeds=0,1,2 --root=runs/ssl/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssl_config('pseudo_label', arg, tau=0.95, lambda_u=1.0)
