"""The quick source-only config that the trainer and fault tests share."""

from experiments.configs import source_only


def quick_config(**overrides):
  """``source_only.py:quick`` with dotted overrides (``optimizer.lr=0.1``)."""
  config = source_only.get_config("quick")
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config
