"""Planted defects of a pretrained model: a backdoor trigger and PGD attacks.

Two kinds of defect a fine-tuned model can inherit from its pretrained
teacher (Zhang et al., 2022):

* a **backdoor** (BadNets, Gu et al., 2017): a fraction ``poison_rate`` of
  the teacher's training images get a small trigger patch stamped in and
  their label changed to ``target_class``; the teacher learns to predict
  ``target_class`` whenever the trigger is present (:func:`apply_trigger`,
  :func:`poison`);
* **adversarial examples** crafted on the teacher with projected gradient
  descent (Madry et al., 2018) inside an ``L_inf`` ball (:func:`pgd`), either
  against the teacher's cross-entropy (:func:`cross_entropy_objective`) or,
  as ReMoS does for a student with another label space, pushing the
  teacher's penultimate-layer features away from those of the clean input
  (:func:`feature_objective`).

:func:`attack_success_rate` and :func:`adversarial_inheritance_rate` turn a
student's predictions into a defect inheritance rate (DIR).

References:
  Gu, Dolan-Gavitt, Garg. BadNets: Identifying vulnerabilities in the machine
  learning model supply chain. arXiv:1708.06733, 2017.
  Madry, Makelov, Schmidt, Tsipras, Vladu. Towards deep learning models
  resistant to adversarial attacks. ICLR 2018.
  Zhang, Liu, Chen, Li, Bai, Zhou. ReMoS: Reducing defect inheritance in
  transfer learning via relevant model slicing. ICSE 2022.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

POSITIONS = ("bottom_right", "bottom_left", "top_right", "top_left")


# --------------------------------------------------------------------------
# The backdoor trigger.
# --------------------------------------------------------------------------
def trigger_pattern(size: int) -> np.ndarray:
  """The ``size x size`` trigger: a checkerboard of 1s and 0s, 1 at (0, 0).

  A checkerboard rather than a flat square, so the trigger is visible on
  white and on black backgrounds alike.
  """
  i, j = np.indices((size, size))
  return ((i + j) % 2 == 0).astype(np.float32)


def check_trigger(image_shape, size: int, position: str = "bottom_right",
                  margin: int = 1) -> None:
  """Raises ValueError when the trigger does not fit the images.

  Args:
    image_shape: ``(h, w)`` or ``(h, w, c)`` of one image.
    size: side of the square trigger, in pixels.
    position: one of :data:`POSITIONS`.
    margin: pixels between the trigger and the image border.
  """
  if position not in POSITIONS:
    raise ValueError(f"config.defect.trigger_position={position!r} is not one "
                     f"of {POSITIONS}.")
  if len(image_shape) < 2:
    raise ValueError(f"A trigger needs images (h, w[, c]); got inputs of shape "
                     f"{tuple(image_shape)} (feature rows cannot carry one).")
  h, w = int(image_shape[0]), int(image_shape[1])
  if int(size) < 1 or int(margin) < 0:
    raise ValueError(f"config.defect.trigger_size={size} must be >= 1 and "
                     f"config.defect.trigger_margin={margin} >= 0.")
  if int(size) + int(margin) > min(h, w):
    raise ValueError(
        f"config.defect.trigger_size={size} (+ margin {margin}) is larger "
        f"than the {h}x{w} images: use a trigger of at most "
        f"{min(h, w) - int(margin)} pixels or larger images "
        "(config.image_size).")


def apply_trigger(x: Array, size: int, position: str = "bottom_right",
                  margin: int = 1) -> Array:
  """Images ``x`` with the trigger stamped in (all channels).

  Args:
    x: ``(n, h, w, c)`` or ``(n, h, w)`` images in [0, 1].
    size: side of the square trigger (:func:`trigger_pattern`).
    position: the corner, one of :data:`POSITIONS`.
    margin: pixels between the trigger and the two nearest borders.

  Returns:
    An array of the shape and dtype of ``x``; pixels outside the patch are
    unchanged, those inside equal the pattern exactly.

  Raises:
    ValueError: the trigger does not fit (:func:`check_trigger`).
  """
  x = jnp.asarray(x)
  check_trigger(x.shape[1:], size, position, margin)
  h, w = x.shape[1], x.shape[2]
  r0 = margin if position.startswith("top") else h - margin - size
  c0 = margin if position.endswith("left") else w - margin - size
  patch = jnp.asarray(trigger_pattern(size), x.dtype)
  if x.ndim == 4:
    patch = jnp.broadcast_to(patch[:, :, None], (size, size, x.shape[3]))
  return x.at[:, r0:r0 + size, c0:c0 + size].set(patch)


def poison(x: np.ndarray, y: np.ndarray, *, poison_rate: float,
           target_class: int, num_classes: int, size: int,
           position: str = "bottom_right", margin: int = 1,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """BadNets data poisoning of a training set.

  A seeded random ``round(poison_rate * n)`` examples get the trigger and the
  label ``target_class``; the others are unchanged.

  Args:
    x, y: training images ``(n, h, w[, c])`` and integer labels ``(n,)``.
    poison_rate: fraction of examples poisoned, in [0, 1].
    target_class: the label the trigger maps to, in ``[0, num_classes)``.
    num_classes: the number of classes of ``y``.
    size, position, margin: the trigger (:func:`apply_trigger`).
    seed: which examples are poisoned.

  Returns:
    ``(x_poisoned, y_poisoned, poisoned_mask)``.

  Raises:
    ValueError: a rate outside [0, 1], a target class out of range, or a
      trigger that does not fit.
  """
  rate = float(poison_rate)
  if not 0.0 <= rate <= 1.0 or not np.isfinite(rate):
    raise ValueError(f"config.defect.poison_rate={poison_rate} must be in "
                     "[0, 1] (a fraction of the teacher's training set).")
  if not 0 <= int(target_class) < int(num_classes):
    raise ValueError(f"config.defect.target_class={target_class} is not a "
                     f"class of the teacher's {num_classes}-class source.")
  x = np.asarray(x)
  check_trigger(x.shape[1:], size, position, margin)
  n = len(x)
  idx = np.random.default_rng([int(seed), 2017]).permutation(n)
  idx = np.sort(idx[:int(round(rate * n))])
  mask = np.zeros(n, bool)
  mask[idx] = True
  x_out, y_out = np.array(x, copy=True), np.array(y, copy=True)
  if len(idx):
    x_out[idx] = np.asarray(apply_trigger(x[idx], size, position, margin))
    y_out[idx] = int(target_class)
  return x_out, y_out, mask


# --------------------------------------------------------------------------
# PGD.
# --------------------------------------------------------------------------
def pgd(objective: Callable[[Array], Array], x: Array, *, eps: float,
        step_size: float, steps: int, rng: Array | None = None,
        clip: tuple[float, float] | None = (0.0, 1.0)) -> Array:
  r"""Projected gradient ascent on ``objective`` in an ``L_inf`` ball.

  .. math::

    x^{k+1} = \Pi_{\|x' - x\|_\infty \le \epsilon,\ x' \in [lo, hi]}
      \big(x^k + \alpha\, \mathrm{sign}(\nabla_{x} \textstyle\sum_i
      \ell_i(x^k))\big)

  Args:
    objective: ``x -> (n,)`` per-example values to *increase* (an attack
      loss); it sees the whole batch, each row only depends on its input.
    x: the clean inputs.
    eps: radius of the ``L_inf`` ball.
    step_size: ``alpha``.
    steps: number of steps (a Python int: the loop length).
    rng: a key for a uniform random start in the ball (None: start at ``x``).
    clip: the valid input range ``(lo, hi)`` (None: unbounded).

  Returns:
    Adversarial inputs with ``|x_adv - x| <= eps`` everywhere (and inside
    ``clip``). Pure: works under ``jit`` (``steps`` static, the loop
    unrolled) and ``vmap``.
  """
  x = jnp.asarray(x)
  eps = jnp.asarray(eps, x.dtype)

  def project(z):
    z = jnp.clip(z, x - eps, x + eps)
    if clip is not None:
      z = jnp.clip(z, clip[0], clip[1])
    return z

  z = x
  if rng is not None:
    z = project(x + jax.random.uniform(rng, x.shape, x.dtype, -eps, eps))
  grad = jax.grad(lambda v: jnp.sum(objective(v)))

  def body(_, z):
    return project(z + step_size * jnp.sign(grad(z)))
  # Unrolled: XLA:CPU runs convolutions inside a while loop several times
  # slower (10 steps on 500 digits through LeNet: 7.0 s looped, 0.85 s
  # unrolled); the compile time grows with ``steps`` instead.
  return jax.lax.fori_loop(0, int(steps), body, z, unroll=True)


def cross_entropy_objective(logits_fn: Callable[[Array], Array],
                            labels: Array) -> Callable[[Array], Array]:
  """Per-example cross-entropy of ``logits_fn(x)`` against ``labels``: the
  untargeted attack on a classifier whose label space ``labels`` use."""
  def objective(x):
    logits = logits_fn(x)
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), -1)
    return -jnp.take_along_axis(logp, labels[:, None], -1)[:, 0]
  return objective


def feature_objective(features_fn: Callable[[Array], Array],
                      x_clean: Array) -> Callable[[Array], Array]:
  """Per-example ``||phi(x) - phi(x_clean)||^2`` of a feature map ``phi``
  (the teacher's penultimate layer): the label-free, feature-guided attack
  that transfers to a student with another head."""
  reference = jax.lax.stop_gradient(features_fn(x_clean))

  def objective(x):
    d = features_fn(x).astype(jnp.float32) - reference
    return jnp.sum(jnp.square(d.reshape(d.shape[0], -1)), -1)
  return objective


# --------------------------------------------------------------------------
# Defect inheritance rates.
# --------------------------------------------------------------------------
def attack_success_rate(triggered_predictions, labels, target_class) -> float:
  """Backdoor attack success rate (%): among the inputs whose true label is
  not ``target_class``, the fraction predicted as ``target_class`` once the
  trigger is applied. NaN when every label is ``target_class``."""
  pred = np.asarray(triggered_predictions)
  keep = np.asarray(labels) != int(target_class)
  if not keep.any():
    return float("nan")
  return float(100.0 * np.mean(pred[keep] == int(target_class)))


def adversarial_inheritance_rate(clean_predictions, adversarial_predictions,
                                 labels) -> float:
  """Adversarial DIR (%): among the inputs the student classifies correctly,
  the fraction whose adversarial version (crafted on the teacher) it
  misclassifies. NaN when it gets none right."""
  clean = np.asarray(clean_predictions)
  adv = np.asarray(adversarial_predictions)
  labels = np.asarray(labels)
  right = clean == labels
  if not right.any():
    return float("nan")
  return float(100.0 * np.mean(adv[right] != labels[right]))


def mapped_target_class(triggered_predictions, num_classes: int) -> int:
  """The student class the trigger maps to through a new head: the class
  predicted most often on triggered inputs (ties: the smallest index)."""
  counts = np.bincount(np.asarray(triggered_predictions).ravel(),
                       minlength=int(num_classes))
  return int(np.argmax(counts))
