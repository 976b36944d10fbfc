r"""Semi-supervised domain adaptation: dann_align.

Semi-supervised DA, alignment only: labelled source and few labelled target
examples plus DANN's domain classifier (1024-1024, dropout 0.5) behind a
gradient reversal on the source and target embeddings (strength lambda = 1,
ramped up over the first fifth of the run).

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/ssda_dann.py:labels=4 \
    --config.seed=0 --workdir=runs/ssda/4/dann_align/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/ssda_dann.py:labels=4 \
    --tasks=ssda --seeds=0,1,2 --root=runs/ssda/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssda_config('dann_align', arg, align_rampup=0.2)
