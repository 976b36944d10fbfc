"""Semantic-bias family: ``supcon`` (see ``common.py`` of this folder).

COMMAND:
  python -m experiments.run --config=experiments/configs/prototypes/supcon.py \
    --config.seed=0 --workdir=runs/prototypes/supcon/colourdigits/0

Quick (tests): ``--config=experiments/configs/prototypes/supcon.py:quick``.
"""

from experiments.configs.prototypes import common


def get_config(arg: str | None = None):
  """The ``supcon`` config; ``arg``: ``quick`` and numeric hparams."""
  return common.family_config("supcon", arg)
