r"""Classic semi-supervised learning: mean_teacher.

Mean teacher (Tarvainen and Valpola, 2017): softmax MSE to the EMA teacher
(decay 0.99) on another weak view, weight 10 ramped up over 40% of the run.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/mean_teacher.py:labels=4 \
    --config.seed=0 --workdir=runs/ssl/4/mean_teacher/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/mean_teacher.py:labels=4 \
    --tasks=ssl --seeds=0,1,2 --root=runs/ssl/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssl_config('mean_teacher', arg, lambda_u=10.0)
