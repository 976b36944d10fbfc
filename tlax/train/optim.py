"""Optimisers and learning-rate schedules from a config.

The learning rate is a sweepable hyper-parameter (``TrainState.hparams["lr"]``,
a float32 array), so it is not baked into the optax transformation:
:func:`make_optimizer` returns the *descent direction for a learning rate of
1* (sign included), and the train step multiplies it by

    lr(step) = hparams["lr"] * schedule(step)

with :func:`make_schedule`. With the same settings this is exactly
``optax.sgd`` / ``optax.adam`` / ``optax.adamw`` with that learning rate.

Config fields (``config.optimizer``): ``name`` (``sgd``, ``adam``, ``adamw``),
``lr``, ``momentum``, ``nesterov`` (sgd), ``b1``, ``b2``, ``eps`` (adam,
adamw), ``weight_decay`` (L2 added to the gradient for sgd and adam, decoupled
for adamw), ``clip_norm`` (clip gradients to this global norm; 0 or None
disables), ``schedule`` (``constant``, ``cosine``, ``dann``),
``warmup_steps`` (linear warm-up, then the schedule over the remaining steps).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np
import optax

OPTIMIZERS = ("sgd", "adam", "adamw", "lamb")
SCHEDULES = ("constant", "cosine", "dann")


def _check_choice(field: str, value, valid) -> None:
  if value not in valid:
    raise ValueError(f"Unknown {field} {value!r}; valid values: "
                     f"{', '.join(valid)}.")


def _number(field: str, value, *, low: float, high: float = math.inf,
            low_open: bool = False, high_open: bool = False) -> float:
  """``value`` as a float in the given range, or a ValueError naming it."""
  if isinstance(value, bool) or not isinstance(value, (int, float,
                                                        np.number)):
    raise ValueError(f"config.{field} must be a number, got {value!r}; "
                     f"set --config.{field}=<number>.")
  value = float(value)
  too_low = value <= low if low_open else value < low
  too_high = value >= high if high_open else value > high
  if not math.isfinite(value) or too_low or too_high:
    lo, hi = "(" if low_open else "[", ")" if high_open else "]"
    raise ValueError(
        f"config.{field} must be a finite number in {lo}{low:g}, {high:g}{hi}, "
        f"got {value!r}; set --config.{field}=<number>.")
  return value


def validate_optimizer(config) -> None:
  """Checks every optimiser field of ``config.optimizer`` up front.

  NaN or infinite values and values outside their range are refused, each
  error naming the field: ``lr >= 0``; ``momentum``, ``b1``, ``b2`` in
  ``[0, 1)``; ``eps >= 0``; ``weight_decay >= 0``; ``clip_norm >= 0`` (0 or
  None: no clipping); ``warmup_steps`` a non-negative integer; ``nesterov``
  a boolean.

  Raises:
    ValueError: naming the field, the value and the valid range.
  """
  opt = config.optimizer
  _check_choice("optimizer.name", opt.get("name"), OPTIMIZERS)
  if opt.get("lr") is not None:
    _number("optimizer.lr", opt.lr, low=0.0)
  for field in ("momentum", "b1", "b2"):
    if opt.get(field) is not None:
      _number(f"optimizer.{field}", opt[field], low=0.0, high=1.0,
              high_open=True)
  for field in ("eps", "weight_decay", "clip_norm"):
    if opt.get(field) is not None:
      _number(f"optimizer.{field}", opt[field], low=0.0)
  warmup = opt.get("warmup_steps")
  if warmup is not None and (isinstance(warmup, bool) or not isinstance(
      warmup, int) or warmup < 0):
    raise ValueError(f"config.optimizer.warmup_steps must be an integer >= "
                     f"0, got {warmup!r}.")
  nesterov = opt.get("nesterov")
  if nesterov is not None and not isinstance(nesterov, bool):
    raise ValueError(f"config.optimizer.nesterov must be True or False, got "
                     f"{nesterov!r}.")


def make_optimizer(config, params: Any = None, *, weight_decay: Any = None
                   ) -> optax.GradientTransformation:
  """The optimiser of ``config.optimizer``, for a learning rate of 1.

  Args:
    config: the experiment config (reads ``config.optimizer``).
    params: the parameters to optimise. Unused for now; the fine-tuning rules
      (per-path freezing and learning-rate multipliers through
      ``optax.multi_transform``) will label them here.
    weight_decay: a float32 scalar array used instead of
      ``config.optimizer.weight_decay`` (a traced value when runs that
      differ in weight decay are trained together under ``jax.vmap``); the
      decay term is then part of the chain even where the value is 0 (it
      adds ``0 * params``). Not for ``lamb``, whose decay is inside it.

  Returns:
    An optax transformation whose updates are to be multiplied by the
    learning rate of the step (see the module docstring) and added to the
    parameters.

  Raises:
    ValueError: an unknown optimiser name or an invalid setting.
  """
  opt = config.optimizer
  validate_optimizer(config)
  decay_array = weight_decay is not None
  if decay_array and opt.name == "lamb":
    raise ValueError("optimizer.name='lamb' keeps its weight decay inside "
                     "optax.lamb, so runs trained together cannot differ in "
                     "optimizer.weight_decay; give them one value.")
  if not decay_array:
    weight_decay = float(opt.get("weight_decay") or 0.0)
    if weight_decay < 0:
      raise ValueError(f"optimizer.weight_decay must be >= 0, got "
                       f"{weight_decay}.")
  clip_norm = opt.get("clip_norm") or 0.0
  parts = []
  if clip_norm:
    if clip_norm < 0:
      raise ValueError(f"optimizer.clip_norm must be >= 0, got {clip_norm}.")
    parts.append(optax.clip_by_global_norm(float(clip_norm)))
  if opt.name == "lamb":
    # LAMB (You et al., ICLR 2020) for large batches: optax.lamb at a
    # learning rate of 1 ends with scale(-1) itself; weight_decay is its
    # decoupled decay, applied before the trust ratio.
    parts.append(optax.lamb(
        1.0, b1=float(opt.get("b1", 0.9)), b2=float(opt.get("b2", 0.999)),
        eps=float(opt.get("eps", 1e-6)), weight_decay=weight_decay))
  elif opt.name == "sgd":
    if decay_array or weight_decay:
      parts.append(optax.add_decayed_weights(weight_decay))
    momentum = float(opt.get("momentum") or 0.0)
    if not 0.0 <= momentum < 1.0:
      raise ValueError(f"optimizer.momentum must be in [0, 1), got {momentum}.")
    if momentum:
      parts.append(optax.trace(decay=momentum,
                               nesterov=bool(opt.get("nesterov", False))))
  else:
    if opt.name == "adam" and (decay_array or weight_decay):
      parts.append(optax.add_decayed_weights(weight_decay))
    parts.append(optax.scale_by_adam(b1=float(opt.get("b1", 0.9)),
                                     b2=float(opt.get("b2", 0.999)),
                                     eps=float(opt.get("eps", 1e-8))))
    if opt.name == "adamw" and (decay_array or weight_decay):
      parts.append(optax.add_decayed_weights(weight_decay))
  if opt.name != "lamb":
    parts.append(optax.scale(-1.0))
  tx = optax.chain(*parts)
  # Fine-tuning rules (tlax/train/finetune.py): per-path freezing
  # and learning-rate multipliers from config.finetune, via optax.partition.
  # A no-op without a finetune block or without params.
  if params is not None:
    from tlax.train import finetune  # pylint: disable=g-import-not-at-top
    tx = finetune.finetune_optimizer(tx, params, config)
  return tx


def make_schedule(config) -> Callable[[Any], Any]:
  """The learning-rate multiplier of each step, ``step -> factor``.

  ``p = step / total`` is the training progress (``total = config.steps``):

  * ``constant``: 1;
  * ``cosine``: ``(1 + cos(pi p)) / 2``;
  * ``dann``: ``(1 + 10 p) ** -0.75``, the annealing of Ganin & Lempitsky
    (ICML 2015) and Ganin et al. (JMLR 2016), used with SGD, momentum 0.9 and
    ``lr = 0.01``.

  With ``warmup_steps = w > 0`` the factor rises linearly over the first
  ``w`` steps and the schedule then runs over the remaining ``total - w``.
  """
  opt = config.optimizer
  name = opt.get("schedule") or "constant"
  _check_choice("optimizer.schedule", name, SCHEDULES)
  total = int(config.steps)
  warmup = int(opt.get("warmup_steps") or 0)
  if warmup < 0 or (warmup and warmup >= total):
    raise ValueError(f"optimizer.warmup_steps must be in [0, steps), got "
                     f"{warmup} with steps={total}.")

  def schedule(step):
    step = jnp.asarray(step, jnp.float32)
    p = jnp.clip((step - warmup) / max(total - warmup, 1), 0.0, 1.0)
    if name == "constant":
      factor = jnp.ones_like(p)
    elif name == "cosine":
      factor = 0.5 * (1.0 + jnp.cos(math.pi * p))
    else:  # dann
      factor = (1.0 + 10.0 * p) ** -0.75
    if warmup:
      factor = factor * jnp.minimum(1.0, (step + 1.0) / warmup)
    return factor

  return schedule
