"""The one train step: a pure function of the state and a batch.

``train_step(state, batch) -> (state, metrics)`` runs the method's loss, its
gradient and the optimiser update. Everything static (the method, the
optimiser, the schedule) is bound with ``functools.partial`` by
:func:`make_train_step`, which jits the step once with the state donated
(and, on the CPU, with :func:`tlax.train.xla.compiler_options`).
Under ``jax.pmap`` (:mod:`tlax.train.devices`) the step takes the axis name:
gradients, the non-trainable state and the metrics are averaged over it.
The step's randomness comes from ``state.rng``, split inside the step, so a
restored state continues with exactly the same random numbers.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from tlax.train.state import TrainState
from tlax.train.xla import compiler_options


def train_step(state: TrainState, batch: Mapping[str, Any], *, method,
               tx: optax.GradientTransformation,
               schedule: Callable[[Any], Any], axis_name: str | None = None
               ) -> tuple[TrainState, dict]:
  """One optimiser update.

  Args:
    state: the :class:`TrainState`.
    batch: a dict of arrays from :class:`tlax.data.PairedBatches`.
    method: a :class:`tlax.methods.Method` (static).
    tx: the optimiser from :func:`tlax.train.make_optimizer` (static).
    schedule: ``step -> factor`` from :func:`tlax.train.make_schedule`; the
      learning rate of the step is ``state.hparams["lr"] * schedule(step)``.
    axis_name: under ``jax.pmap``, the devices' axis: the step key is folded
      with the device index, gradients (for a method's own update: what it
      hands to ``tx``), the floating non-trainable state and the metrics are
      averaged over it. None on one device.

  Returns:
    ``(new_state, metrics)``; metrics are float32 scalars: the method's
    metrics plus ``loss``, ``lr`` and ``grad_norm``.
  """
  key = jax.random.wrap_key_data(state.rng)
  key, step_key = jax.random.split(key)
  if axis_name is not None:
    step_key = jax.random.fold_in(step_key, jax.lax.axis_index(axis_name))
  if getattr(method, "update", None) is not None:
    if axis_name is not None:
      tx = _pmean_gradients(tx, axis_name)
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
    if axis_name is not None:
      new_method_state, metrics = _pmean_state(new_method_state, metrics,
                                               axis_name)
    new_state = state.replace(step=state.step + 1, params=params,
                              state=new_method_state, opt_state=opt_state,
                              rng=jax.random.key_data(key))
    return new_state, metrics

  def loss_fn(params):
    return method.loss(params, state.state, batch, step_key, state.step,
                       state.hparams)

  (loss, (metrics, new_method_state)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  lr = state.hparams["lr"] * schedule(state.step)
  updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
  params = optax.apply_updates(state.params, updates)
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  metrics.update(loss=jnp.asarray(loss, jnp.float32),
                 lr=jnp.asarray(lr, jnp.float32),
                 grad_norm=_global_norm(grads))
  if axis_name is not None:
    new_method_state, metrics = _pmean_state(new_method_state, metrics,
                                             axis_name)
  new_state = state.replace(step=state.step + 1, params=params,
                            state=new_method_state, opt_state=opt_state,
                            rng=jax.random.key_data(key))
  return new_state, metrics


def _pmean_gradients(tx: optax.GradientTransformation, axis_name: str
                     ) -> optax.GradientTransformation:
  """``tx`` that first averages its input over ``axis_name``; its state is
  ``tx``'s own, so checkpoints move between one device and several."""
  def update(updates, opt_state, params=None, **extra):
    return tx.update(jax.lax.pmean(updates, axis_name), opt_state, params,
                     **extra)
  return optax.GradientTransformation(tx.init, update)


def _pmean_state(method_state, metrics, axis_name: str):
  """The floating leaves of the method's state and the metrics averaged
  over devices (BatchNorm statistics of models without an axis name, EMAs),
  so replicas never drift."""
  def mean(x):
    x = jnp.asarray(x)
    return jax.lax.pmean(x, axis_name) if jnp.issubdtype(
        x.dtype, jnp.floating) else x
  return jax.tree.map(mean, method_state), jax.lax.pmean(metrics, axis_name)


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
                 compiler_options=compiler_options())
