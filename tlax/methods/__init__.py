"""Transfer methods: factories of :class:`tlax.methods.contract.Method`.

A method is a function ``fn(model, num_classes, *, total_steps, **options)``
returning a record of pure functions (:mod:`tlax.methods.contract`); a
config names it in ``config.method.name`` and sets its options in
``config.method.<option>``. :data:`METHODS` maps the names users type to
the factories; :func:`get_method` also takes ``"package.module:factory"``
for a method of your own.
"""

from typing import Callable

from tlax.methods import adda as _adda
from tlax.methods import cdan as _cdan
from tlax.methods import conservative as _conservative
from tlax.methods import contract
from tlax.methods import dann as _dann
from tlax.methods import ddan as _ddan
from tlax.methods import discrepancy as _discrepancy
from tlax.methods import dsn as _dsn
from tlax.methods import mcd as _mcd
from tlax.methods import mdd as _mdd
from tlax.methods import multitask as _multitask
from tlax.methods import pixelda as _pixelda
from tlax.methods import prototypes as _prototypes
from tlax.methods import sdt as _sdt
from tlax.methods import source_only as _source_only
from tlax.methods.contract import Method
from tlax.methods.contract import accuracy
from tlax.methods.contract import weighted_cross_entropy

# The names users type in ``config.method.name`` -> factories.
METHODS: dict[str, Callable[..., Method]] = {
    "source_only": _source_only.source_only,
    # Discrepancy: one method with the loss named in the config, and the
    # published methods as its presets.
    "discrepancy": _discrepancy.discrepancy,
    "ddc": _discrepancy.ddc,
    "dan": _discrepancy.dan,
    "jan": _discrepancy.jan,
    "coral": _discrepancy.coral,
    "cmd": _discrepancy.cmd,
    "ddan": _ddan.ddan,
    # Adversarial.
    "dann": _dann.dann,
    "cdan": _cdan.cdan,
    "cdan_e": _cdan.cdan_e,
    "mdd": _mdd.mdd,
    "sdt": _sdt.sdt,
    "dsn": _dsn.dsn,
    "pixelda": _pixelda.pixelda,
    # Owning their update: alternating phases, several optimiser states.
    "mcd": _mcd.mcd,
    "adda": _adda.adda,
    # Fine-tuning and multitask.
    "finetune": _conservative.finetune,
    "l2sp": _conservative.l2sp,
    "output_kl": _conservative.output_kl,
    "lora": _conservative.lora,
    "multitask": _multitask.multitask,
    # Classification by comparison.
    "prototype_head": _prototypes.prototype_head,
    "protonet": _prototypes.protonet,
    "supcon": _prototypes.supcon,
}

from tlax.methods import semisupervised as _semisupervised  # pylint: disable=g-import-not-at-top,wrong-import-position
METHODS.update(_semisupervised.METHODS)
from tlax.methods import generalization as _generalization  # pylint: disable=g-import-not-at-top,wrong-import-position
METHODS.update(_generalization.DG_METHODS)
from tlax.methods import safe as _safe  # pylint: disable=g-import-not-at-top,wrong-import-position
# Safe transfer: fine-tuning that reduces inherited defects.
METHODS.update({"delta": _safe.delta, "magnitude_prune": _safe.magnitude_prune,
                "fine_prune": _safe.fine_prune, "remos": _safe.remos,
                "clean_distill": _safe.clean_distill,
                "peer_distill": _safe.peer_distill})


def get_method(name: str) -> Callable[..., Method]:
  """The method factory registered under ``name``, or ``"package.module:factory"``.

  Raises:
    KeyError: an unknown name; the message lists the registered ones.
  """
  if name in METHODS:
    return METHODS[name]
  if isinstance(name, str) and name.count(":") == 1:
    from tlax import utils  # pylint: disable=g-import-not-at-top
    return utils.import_object(name, what="method")
  raise KeyError(f"Unknown method {name!r}; registered methods: "
                 f"{', '.join(sorted(METHODS))}, or 'package.module:factory' "
                 "for a method of your own.")
