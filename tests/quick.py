"""The quick source-only config that the trainer and fault tests share."""

from experiments.configs import common
from experiments.configs import source_only


def quick_config(**overrides):
  """``source_only.py:quick`` with dotted overrides (``optimizer.lr=0.1``)."""
  config = source_only.get_config("quick")
  for key, value in overrides.items():
    common.set_dotted(config, key, value)
  return config
