"""Semantic-bias family: ``protonet`` (see ``common.py`` of this folder).

COMMAND:
  python -m experiments.run --config=experiments/configs/prototypes/protonet.py \
    --config.seed=0 --workdir=runs/prototypes/protonet/colourdigits/0

Quick (tests): ``--config=experiments/configs/prototypes/protonet.py:quick``.
"""

from experiments.configs.prototypes import common


def get_config(arg: str | None = None):
  """The ``protonet`` config; ``arg``: ``quick`` and numeric hparams."""
  return common.family_config("protonet", arg)
