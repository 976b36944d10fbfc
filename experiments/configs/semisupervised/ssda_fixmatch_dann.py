r"""Semi-supervised domain adaptation: fixmatch_dann.

Semi-supervised DA: FixMatch plus DANN's domain classifier (1024-1024,
dropout 0.5) behind a gradient reversal on the source and target embeddings
(strength lambda = 1, ramped up over the first fifth of the run), against
each part alone (ssda_fixmatch, ssda_dann).

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/ssda_fixmatch_dann.py:labels=4 \
    --config.seed=0 --workdir=runs/ssda/4/fixmatch_dann/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/ssda_fixmatch_dann.py:labels=4 \
    --tasks=ssda --seeds=0,1,2 --root=runs/ssda/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssda_config('fixmatch_dann', arg, tau=0.95, lambda_u=1.0,
                          align_rampup=0.2)
