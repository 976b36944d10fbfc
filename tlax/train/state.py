"""The train state: everything a run depends on, in one checkpointable pytree.

Exact resumability holds because the step, the parameters, the
method's non-trainable state, the optimiser state and the PRNG key all live
here, and the data pipeline needs only the step (``PairedBatches.batch(step)``
is a pure function of the seed and the step).

Per-run quantities that researchers sweep (the learning rate, a method's
alignment weight lambda, ...) are float32 scalars in ``hparams`` rather than
Python constants, so many runs can later be trained in one program with
``jax.vmap`` over stacked states.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from tlax.train.optim import make_optimizer

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """The state of one training run.

  Attributes:
    step: int32 scalar, the number of optimiser updates done so far.
    params: the method's trainable pytree, ``{"model": ..., <extra nets>}``.
    state: the method's non-trainable pytree (BatchNorm statistics, EMAs).
    opt_state: the optax state of the optimiser.
    rng: raw ``uint32`` key data (``jax.random.key_data``) so that the state
      is a plain array pytree that orbax saves and restores as is; the step
      wraps it into a typed key.
    hparams: dict of float32 scalars: ``"lr"`` (the base learning rate) and
      the method's ``hparams`` (e.g. ``"lambda"``).
  """
  step: jax.Array
  params: PyTree
  state: PyTree
  opt_state: PyTree
  rng: jax.Array
  hparams: Mapping[str, jax.Array]


def init_hparams(config, method) -> dict[str, jax.Array]:
  """The run's sweepable hyper-parameters as float32 scalars.

  ``"lr"`` comes from ``config.optimizer.lr``; the others are the method's
  ``hparams`` (its factory took them from ``config.method``).

  Raises:
    ValueError: a hyper-parameter value that is not a finite number, or
      is negative (every swept quantity is a weight, rate or threshold).
  """
  values = {"lr": config.optimizer.lr, **dict(method.hparams)}
  out = {}
  for key, value in values.items():
    try:
      value = float(value)
    except (TypeError, ValueError):
      raise ValueError(f"Hyper-parameter {key!r} must be a number, got "
                       f"{value!r}.") from None
    if not np.isfinite(value) or not np.isfinite(np.float32(value)):
      raise ValueError(f"Hyper-parameter {key!r} must be finite in float32, "
                       f"got {value}.")
    if value < 0:  # weights, rates and thresholds: a sign flip is a typo
      raise ValueError(f"Hyper-parameter {key!r} must be >= 0, got {value} "
                       f"(config.method.{key} or config.optimizer.lr).")
    out[key] = jnp.asarray(value, jnp.float32)
  return out


def create_train_state(config, method, batch
                       ) -> tuple[TrainState, optax.GradientTransformation]:
  """A fresh :class:`TrainState` for a config, and its optimiser.

  Args:
    config: the experiment config (``seed``, ``optimizer``, ``method``).
    method: a :class:`tlax.methods.contract.Method`.
    batch: a sample batch (only shapes matter).

  Returns:
    ``(state, tx)``: the state at step 0 and the optimiser of
    :func:`tlax.train.make_optimizer`. The initialisation key and the
    training key are both derived from ``config.seed``.
  """
  key = jax.random.key(int(config.seed))
  init_key, train_key = jax.random.split(key)
  params, state = jax.jit(method.init)(init_key, batch)
  # Pretrained backbone weights (config.model.pretrained): a no-op without.
  from tlax.models import convert  # pylint: disable=g-import-not-at-top
  params, state = convert.load_into_state(config, params, state)
  tx = make_optimizer(config, params)
  train_state = TrainState(
      step=jnp.asarray(0, jnp.int32),
      params=params,
      state=state,
      opt_state=(method.init_opt(tx, params)
                 if getattr(method, "init_opt", None) is not None
                 else tx.init(params)),
      rng=jax.random.key_data(train_key),
      hparams=init_hparams(config, method),
  )
  return train_state, tx
