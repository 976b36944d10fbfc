"""Semantic-bias family: ``prototype_head`` (see ``common.py`` of this folder).

COMMAND:
  python -m experiments.run --config=experiments/configs/prototypes/prototype_head.py \
    --config.seed=0 --workdir=runs/prototypes/prototype_head/colourdigits/0

Quick (tests): ``--config=experiments/configs/prototypes/prototype_head.py:quick``.
"""

from experiments.configs.prototypes import common


def get_config(arg: str | None = None):
  """The ``prototype_head`` config; ``arg``: ``quick`` and numeric hparams."""
  return common.family_config("prototype_head", arg)
