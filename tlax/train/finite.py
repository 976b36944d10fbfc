"""Non-finite values in training: found before anything is saved or evaluated.

The training loop hands each step's loss to a :class:`FiniteCheck` (no host
transfer) and calls :meth:`FiniteCheck.check` before every log record,
evaluation, checkpoint and result. ``check`` fetches the window's losses and
one fused on-device reduction, "every floating array of the parameters, the
optimiser state and the method's state is finite", in a single transfer, so
the cost is one small reduction per logging window, not a host sync per
step. A non-finite state is therefore never checkpointed, evaluated or
written into ``result.json``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteLossError(FloatingPointError):
  """The training loss, the parameters or the optimiser state became NaN or
  infinite. The message names the step, likely causes, the last (finite)
  checkpoint and that a changed config needs a new workdir."""


@jax.jit
def all_finite(tree: Any) -> jax.Array:
  """True if every floating-point leaf of ``tree`` is finite (one fused
  reduction on the device)."""
  flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
           if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  if not flags:
    return jnp.asarray(True)
  return jnp.all(jnp.stack(flags))


class FiniteCheck:
  """Collects per-step losses; checks them and the state at boundaries.

  Args:
    describe: a short description of the run (method and task) for messages.
    last_checkpoint: a function returning the last saved step or None.
    checkpoint_dir: where checkpoints are, for messages.
    hints: the settings to suggest changing (e.g. the learning rate).
  """

  def __init__(self, describe: str, last_checkpoint, checkpoint_dir: str,
               hints: str = ""):
    self.describe = describe
    self.last_checkpoint = last_checkpoint
    self.checkpoint_dir = checkpoint_dir
    self.hints = hints
    self.losses: list[tuple[int, Any]] = []
    self.checked_step: int | None = None

  def add(self, step: int, loss: Any) -> None:
    """Records the loss of the update that ended at ``step`` (no sync)."""
    self.losses.append((step, loss))

  def check(self, train_state, step: int) -> None:
    """Raises :class:`NonFiniteLossError` if a loss since the last check or
    the state after ``step`` holds NaN/inf."""
    if self.checked_step == step and not self.losses:
      return
    trees = (train_state.params, train_state.opt_state, train_state.state)
    losses, ok = jax.device_get(([l for _, l in self.losses],
                                 all_finite(trees)))
    for (s, _), value in zip(self.losses, losses):
      if not np.isfinite(value):
        self._raise(f"The training loss is {float(value)} at step {s}", s)
    if not bool(ok):
      first = self.losses[0][0] if self.losses else step
      self._raise(
          "The parameters or the optimiser state hold NaN or inf after step "
          f"{step} (the loss was finite; the overflow happened in an update "
          f"between steps {first} and {step})", step)
    self.losses.clear()
    self.checked_step = step

  def _raise(self, what: str, step: int) -> None:
    last = self.last_checkpoint()
    kept = (f"The last good checkpoint is step {last} in "
            f"{self.checkpoint_dir} (checkpoints are checked before they are "
            "saved); rerunning the same command resumes from it."
            if last is not None else "No checkpoint was saved before it.")
    raise NonFiniteLossError(
        f"{what} ({self.describe}). Likely causes: a learning rate or a loss "
        "weight too large for this model, or NaN/inf in the data. "
        f"{kept} Try {self.hints}. A run with a changed config needs a new "
        "--workdir (a workdir keeps the config it was started with).")
