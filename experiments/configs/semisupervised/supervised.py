r"""Classic semi-supervised learning: supervised.

Labelled-only baseline: the k labelled examples per class, weak augmentation.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/supervised.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/supervised/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/supervised.py:labels=4 \
    --tasks=ssl --seeds=0,1,2 --root=runs/ssl/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssl_config('supervised', arg)
