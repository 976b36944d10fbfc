r"""Losses of semi-supervised learning: pure JAX functions over arrays.

Per-example losses return per-example values; the caller weights and
averages them (optax style). Everything works under ``jax.jit``,
``jax.vmap`` and ``jax.grad``.

* :func:`pseudo_label_cross_entropy` -- the unlabelled term of FixMatch,
  FlexMatch, FreeMatch, SoftMatch and pseudo-labelling:
  :math:`w_i\,H(\hat q_i, p(y \mid \mathcal{A}(u_i)))` with the hard
  pseudo-label :math:`\hat q_i = \arg\max q_i`.
* :func:`self_adaptive_fairness` -- FreeMatch's fairness term.
* :func:`softmax_mse` -- mean teacher's consistency cost.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def _check_same_shape(fn: str, a_name: str, a, b_name: str, b) -> None:
  if jnp.shape(a) != jnp.shape(b):
    raise ValueError(f"{fn}: {a_name} and {b_name} must have the same shape "
                     f"(batch, classes); got {jnp.shape(a)} and "
                     f"{jnp.shape(b)}.")


def pseudo_label_cross_entropy(logits: Array, probs: Array,
                               weights: Array | None = None) -> Array:
  r"""Per-example cross-entropy with hard pseudo-labels.

  .. math::
    \ell_i = w_i\,\bigl(-\log \mathrm{softmax}(z_i)_{\hat y_i}\bigr),
    \qquad \hat y_i = \arg\max_c q_{ic}

  The pseudo-labels carry no gradient (``probs`` is the prediction on the
  weak view, FixMatch Eq. 2).

  Args:
    logits: (n, C) logits on the strongly augmented view.
    probs: (n, C) class probabilities on the weak view.
    weights: optional (n,) sample weights (a 0/1 confidence mask, or
      SoftMatch's soft weights); no gradient flows into them.

  Returns:
    (n,) per-example losses; FixMatch averages them over the whole
    unlabelled batch (masked-out examples count as zeros).

  References:
    Sohn et al., FixMatch: Simplifying semi-supervised learning with
    consistency and confidence, NeurIPS 2020.
  """
  _check_same_shape("pseudo_label_cross_entropy", "logits", logits, "probs",
                    probs)
  labels = jnp.argmax(jax.lax.stop_gradient(probs), axis=-1)
  ce = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), labels)
  if weights is None:
    return ce
  return jax.lax.stop_gradient(weights).astype(ce.dtype) * ce


def self_adaptive_fairness(probs_strong: Array, mask: Array,
                           p_model: Array, label_hist: Array,
                           eps: float = 1e-12) -> Array:
  r"""FreeMatch's self-adaptive fairness loss (to be minimised).

  .. math::
    \mathcal{L}_f = -H\Bigl(\mathrm{SumNorm}\bigl(\tilde p_t /
      \tilde h_t\bigr),\ \mathrm{SumNorm}\bigl(\bar p / \bar h\bigr)\Bigr)
    = \sum_c a_c \log b_c

  with :math:`H(a, b) = -\sum_c a_c \log b_c`; :math:`\tilde p_t,
  \tilde h_t` are the running class-probability expectation and histogram
  of the weak predictions (the threshold state), :math:`\bar p, \bar h`
  the mean probability and the normalised histogram of the argmax of the
  strongly augmented predictions over the examples the mask keeps.
  Classes absent from a histogram get a zero scale (no division by zero).
  It pushes the batch's (histogram-normalised) predicted class distribution
  towards the model's, encouraging diverse predictions.

  Args:
    probs_strong: (n, C) probabilities on the strong views (carries the
      gradient).
    mask: (n,) 0/1 mask of the confident examples.
    p_model: (C,) running mean probability :math:`\tilde p_t`.
    label_hist: (C,) running histogram :math:`\tilde h_t` (sums to 1).
    eps: added inside the logarithm.

  Returns:
    Scalar loss (0 when the mask is empty).

  References:
    Wang et al., FreeMatch: Self-adaptive thresholding for semi-supervised
    learning, ICLR 2023, Eq. 11.
  """
  probs_strong = probs_strong.astype(jnp.float32)
  mask = jax.lax.stop_gradient(mask).astype(jnp.float32)
  num_classes = probs_strong.shape[-1]
  count = jnp.sum(mask)
  safe = jnp.maximum(count, 1.0)
  mean_prob = jnp.sum(mask[:, None] * probs_strong, axis=0) / safe
  onehot = jax.nn.one_hot(jnp.argmax(probs_strong, -1), num_classes)
  hist = jax.lax.stop_gradient(jnp.sum(mask[:, None] * onehot, 0) / safe)

  def inverse(h):
    return jnp.where(h > 0, 1.0 / jnp.where(h > 0, h, 1.0), 0.0)

  def sum_norm(v):
    return v / jnp.maximum(jnp.sum(v), eps)

  a = jax.lax.stop_gradient(sum_norm(p_model * inverse(label_hist)))
  b = sum_norm(mean_prob * inverse(hist))
  loss = jnp.sum(a * jnp.log(b + eps))
  return jnp.where(count > 0, loss, 0.0)


def softmax_mse(student_logits: Array, teacher_logits: Array) -> Array:
  r"""Per-example squared distance of two softmax outputs (mean teacher).

  .. math:: \ell_i = \sum_c (\sigma(z_i)_c - \sigma(z'_i)_c)^2

  The teacher's side carries no gradient.

  Args:
    student_logits: (n, C).
    teacher_logits: (n, C).

  Returns:
    (n,) per-example costs.

  References:
    Tarvainen and Valpola, Mean teachers are better role models,
    NeurIPS 2017.
  """
  _check_same_shape("softmax_mse", "student_logits", student_logits,
                    "teacher_logits", teacher_logits)
  p = jax.nn.softmax(student_logits.astype(jnp.float32), -1)
  q = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits).astype(
      jnp.float32), -1)
  return jnp.sum(jnp.square(p - q), axis=-1)
