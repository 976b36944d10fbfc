"""Shared settings of the domain-generalisation configs (DomainBed protocol).

``get_config`` of every file here takes a comma-separated argument: an
algorithm name (``erm``, ``irm``, ``vrex``, ``group_dro``, ``mixup``,
``mldg``, ``coral_dg``, ``mmd_dg``, ``dann_dg``, ``cdann``, ``mixstyle``,
``fishr``, ``rsc``, ``selfreg``; default ``erm``), ``quick`` (a two-domain
run of a few steps on a small MLP, for tests) and ``<hparam>=<number>``
items setting ``config.method.<hparam>`` (e.g. ``irm,lambda=100``).

The training domains are ``config.source`` joined by ``+``; the held-out test
domain ``config.target`` is never trained on. ``result.json`` holds
``test_domain_accuracy`` and ``selections`` (training-domain validation,
leave-one-domain-out validation and the test-domain oracle).
"""

import ml_collections

from experiments.configs import common
from tlax.methods import generalization

# Batches hold the same number of examples of every training domain: 60 is a
# multiple of 2, 3, 4 and 5 training domains.
BATCH_SIZE = 60


def dg_config(source: str, target: str, arg: str | None,
              **overrides) -> ml_collections.ConfigDict:
  """A DG config on ``source`` (``a+b+...``) -> ``target``; see module doc."""
  c = common.base_config()
  c.source, c.target = source, target
  c.source_val_fraction = 0.2  # DomainBed's in-domain holdout fraction
  c.iw_validation = False  # needs target inputs: none in DG
  c.target_batch_size = 1  # the unlabelled stream is not used
  c.batch_size = BATCH_SIZE
  c.method.name = "erm"
  for key, value in overrides.items():
    common.set_dotted(c, key, value)
  items = [i.strip() for i in (arg or "").split(",") if i.strip()]
  for item in items:
    if item == "quick":
      common.make_quick(c)
      c.batch_size = BATCH_SIZE
      c.optimizer.schedule = "constant"
    elif item in generalization.DG_METHODS:
      c.method.name = item
    elif "=" in item:
      key, value = (s.strip() for s in item.split("=", 1))
      try:
        c.method[key] = float(value)
      except ValueError:
        raise ValueError(f"Config argument {item!r}: {value!r} is not a "
                         "number.") from None
    else:
      raise ValueError(
          f"Unknown config argument {item!r}; valid: 'quick', an algorithm "
          f"({', '.join(generalization.DG_METHODS)}) or '<hparam>=<number>'.")
  return c
