"""Semantic-bias family: ``coral`` (cross-entropy + CORAL, the baseline of ``supcon`` with ``align=coral``) (see ``common.py`` of this folder).

COMMAND:
  python -m experiments.run --config=experiments/configs/prototypes/coral.py \
    --config.seed=0 --workdir=runs/prototypes/coral/colourdigits/0

Quick (tests): ``--config=experiments/configs/prototypes/coral.py:quick``.
"""

from experiments.configs.prototypes import common


def get_config(arg: str | None = None):
  """The ``coral`` config; ``arg``: ``quick`` and numeric hparams."""
  return common.family_config("coral", arg)
