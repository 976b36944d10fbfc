r"""Semi-supervised domain adaptation: lmmd_align.

Semi-supervised DA, alignment only: labelled source and few labelled target
examples plus DSAN's class-conditional MMD (lambda = 1, ramped up over the
first fifth of the run) between source and target embeddings, the target's
classes weighted by its softmax.

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/ssda_lmmd.py:labels=4 \
    --config.seed=0 --workdir=runs/ssda/4/lmmd_align/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/ssda_lmmd.py:labels=4 \
    --tasks=ssda --seeds=0,1,2 --root=runs/ssda/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssda_config('lmmd_align', arg, align_rampup=0.2)
