r"""Semi-supervised domain adaptation: coral_align.

Semi-supervised DA, alignment only: labelled source and few labelled target
examples plus Deep CORAL (lambda = 1, ramped up over the first fifth of
the run) between source and target embeddings.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/ssda_coral.py:labels=4 \
    --config.seed=0 --workdir=runs/ssda/4/coral_align/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/ssda_coral.py:labels=4 \
    --tasks=ssda --seeds=0,1,2 --root=runs/ssda/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssda_config('coral_align', arg, align_rampup=0.2)
