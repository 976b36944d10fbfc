r"""Semi-supervised domain adaptation: fixmatch_lmmd.

Semi-supervised DA: FixMatch plus DSAN's class-conditional MMD between source
and target embeddings, the target's classes weighted by its weak-view
softmax (lambda = 1, ramped up over the first fifth of the run), against
each part alone (ssda_fixmatch, ssda_lmmd).

Settings: experiments/configs/semisupervised/base.py.

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/semisupervised/ssda_fixmatch_lmmd.py:labels=4 \
    --config.seed=0 --workdir=runs/ssda/4/fixmatch_lmmd/0

Table (``ssl`` / ``ssda`` task groups, see docs/semi_supervised.md):
  python -m experiments.sweep \
    --config=experiments/configs/semisupervised/ssda_fixmatch_lmmd.py:labels=4 \
    --tasks=ssda --seeds=0,1,2 --root=runs/ssda/4 --layout=methods \
    --columns=target_accuracy
"""

from experiments.configs.semisupervised import base


def get_config(arg=None):
  """``arg``: ``quick``, ``labels=<k>``, ... (see ``base.apply_arg``)."""
  return base.ssda_config('fixmatch_lmmd', arg, tau=0.95, lambda_u=1.0,
                          align_rampup=0.2)
