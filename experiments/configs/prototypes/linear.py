"""Semantic-bias family: ``source_only`` (see ``common.py`` of this folder).

COMMAND:
  python -m experiments.run --config=experiments/configs/prototypes/linear.py \
    --config.seed=0 --workdir=runs/prototypes/source_only/colourdigits/0

Quick (tests): ``--config=experiments/configs/prototypes/linear.py:quick``.
"""

from experiments.configs.prototypes import common


def get_config(arg: str | None = None):
  """The ``source_only`` config; ``arg``: ``quick`` and numeric hparams."""
  return common.family_config("source_only", arg)
