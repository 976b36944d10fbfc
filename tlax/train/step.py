"""The one train step: a pure function of the state and a batch.

``train_step(state, batch) -> (state, metrics)`` runs the method's loss, its
gradient and the optimiser update. Everything static (the method, the
optimiser, the schedule) is bound with ``functools.partial`` by
:func:`make_train_step`, which jits the step once with the state donated
(and, on the CPU, with :func:`tlax.models.layers.cpu_compiler_options`).
The step's randomness comes from ``state.rng``, split inside the step, so a
restored state continues with exactly the same random numbers.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from tlax.models.layers import cpu_compiler_options
from tlax.train.state import TrainState


def train_step(state: TrainState, batch: Mapping[str, Any], *, method,
               tx: optax.GradientTransformation,
               schedule: Callable[[Any], Any]) -> tuple[TrainState, dict]:
  """One optimiser update.

  Args:
    state: the :class:`TrainState`.
    batch: a dict of arrays from :class:`tlax.data.PairedBatches`.
    method: a :class:`tlax.methods.Method` (static).
    tx: the optimiser from :func:`tlax.train.make_optimizer` (static).
    schedule: ``step -> factor`` from :func:`tlax.train.make_schedule`; the
      learning rate of the step is ``state.hparams["lr"] * schedule(step)``.

  Returns:
    ``(new_state, metrics)``; metrics are float32 scalars: the method's
    metrics plus ``loss``, ``lr`` and ``grad_norm``.
  """
  key = jax.random.wrap_key_data(state.rng)
  key, step_key = jax.random.split(key)
  if getattr(method, "update", None) is not None:
    # The method owns its update (several optimisers, alternating phases).
    lr = state.hparams["lr"] * schedule(state.step)
    params, new_method_state, opt_state, metrics = method.update(
        state.params, state.state, state.opt_state, batch, step_key,
        state.step, state.hparams, tx=tx, lr=lr)
    if "loss" not in metrics:
      raise KeyError("A method's update must return a 'loss' metric (the "
                     "value checked for NaN and logged); got "
                     f"{sorted(metrics)}.")
    metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
    metrics.setdefault("lr", jnp.asarray(lr, jnp.float32))
    new_state = state.replace(step=state.step + 1, params=params,
                              state=new_method_state, opt_state=opt_state,
                              rng=jax.random.key_data(key))
    return new_state, metrics

  def loss_fn(params):
    return method.loss(params, state.state, batch, step_key, state.step,
                       state.hparams)

  (loss, (metrics, new_method_state)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  lr = state.hparams["lr"] * schedule(state.step)
  updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
  params = optax.apply_updates(state.params, updates)
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  metrics.update(loss=jnp.asarray(loss, jnp.float32),
                 lr=jnp.asarray(lr, jnp.float32),
                 grad_norm=_global_norm(grads))
  new_state = state.replace(step=state.step + 1, params=params,
                            state=new_method_state, opt_state=opt_state,
                            rng=jax.random.key_data(key))
  return new_state, metrics


def _global_norm(tree) -> jax.Array:
  leaves = [jnp.sum(jnp.square(x.astype(jnp.float32)))
            for x in jax.tree.leaves(tree)]
  return jnp.sqrt(sum(leaves)) if leaves else jnp.zeros((), jnp.float32)


def make_train_step(method, tx: optax.GradientTransformation,
                    schedule: Callable[[Any], Any]):
  """:func:`train_step` with the static arguments bound, jitted once.

  The state argument is donated: do not use a state after passing it in.
  """
  return jax.jit(functools.partial(train_step, method=method, tx=tx,
                                   schedule=schedule), donate_argnums=0,
                 compiler_options=cpu_compiler_options())
