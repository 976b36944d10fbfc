"""Ranking losses of the compatibility (label-embedding) zero-shot methods.

The compatibility methods score an image ``x`` against a class ``y`` through
its class embedding ``s_y``, ``F(x, y) = theta(x)^T W s_y``, and train ``W``
(and possibly ``theta``) so that the true class scores highest. They differ
only in how the wrong classes' scores are penalised. Each loss here takes the
scores of one or more examples against the C seen classes and returns a loss
per example (the caller weights and averages); all are pure and work under
``jit``, ``vmap`` and ``grad``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def compatibility_scores(x: Array, w: Array, class_embeddings: Array) -> Array:
  """Bilinear compatibility ``F(x, y) = x^T W s_y`` for every class.

  Args:
    x: (..., d) image features theta(x).
    w: (d, a) compatibility matrix.
    class_embeddings: (C, a) class embeddings ``s_y``.

  Returns:
    (..., C) scores.
  """
  return (x @ w) @ class_embeddings.T


def _true_score(scores: Array, labels: Array) -> Array:
  return jnp.take_along_axis(scores, labels[..., None], axis=-1)


def structured_hinge_loss(scores: Array, labels: Array,
                          margin: float | Array = 1.0) -> Array:
  r"""Structured max-margin loss of SJE and of attribute embedding.

  .. math::
    \ell(x_n, y_n) = \max\big(0,\; k - F(x_n, y_n)
                      + \max_{y \ne y_n} F(x_n, y)\big)

  the multi-class SVM loss of Crammer and Singer on compatibility scores: the
  true class must beat the best wrong class by the margin ``k``. Training
  only ``||f(x) - g(y)||`` down would collapse images and classes to one
  point; the margin against the other classes prevents it.

  Args:
    scores: (..., C) compatibility scores.
    labels: (...) integer true classes in ``0..C-1``.
    margin: ``k``.

  Returns:
    (...) per-example losses.

  References:
    Akata et al., `Evaluation of Output Embeddings for Fine-Grained Image
    Classification <https://arxiv.org/abs/1409.8403>`_, CVPR 2015 (SJE).
  """
  true = _true_score(scores, labels)[..., 0]
  is_true = jax.nn.one_hot(labels, scores.shape[-1], dtype=bool)
  wrong = jnp.max(jnp.where(is_true, -jnp.inf, scores), axis=-1)
  return jax.nn.relu(margin - true + wrong)


def rank_weights(max_rank: int) -> Array:
  r"""ALE's rank weights ``beta_r / r`` for ``r = 0..max_rank`` (0 at r=0).

  ``beta_r = sum_{i=1}^r 1/i`` (Usunier et al., 2009): the loss puts more
  weight on the top of the ranking than a plain sum of hinges does.
  """
  r = jnp.arange(max_rank + 1, dtype=jnp.float32)
  beta = jnp.cumsum(jnp.where(r > 0, 1.0 / jnp.maximum(r, 1.0), 0.0))
  return jnp.where(r > 0, beta / jnp.maximum(r, 1.0), 0.0)


def weighted_rank_loss(scores: Array, labels: Array,
                       margin: float | Array = 1.0) -> Array:
  r"""ALE's weighted approximate ranking loss.

  .. math::
    \ell(x_n, y_n) = \frac{\beta_{r_n}}{r_n} \sum_{y \ne y_n}
        \max\big(0,\; k + F(x_n, y) - F(x_n, y_n)\big),
    \quad r_n = \sum_{y \ne y_n} [k + F(x_n, y) > F(x_n, y_n)],
    \quad \beta_r = \sum_{i=1}^{r} \frac{1}{i}

  (0 when no class violates the margin). The rank weight is piecewise
  constant in the scores, so gradients flow through the hinges only.

  Args:
    scores: (..., C) compatibility scores.
    labels: (...) integer true classes.
    margin: ``k``.

  Returns:
    (...) per-example losses.

  References:
    Akata et al., `Label-Embedding for Image Classification
    <https://arxiv.org/abs/1503.08677>`_, TPAMI 2016 (ALE).
  """
  c = scores.shape[-1]
  is_true = jax.nn.one_hot(labels, c, dtype=bool)
  hinge = jnp.where(is_true, 0.0,
                    jax.nn.relu(margin + scores - _true_score(scores, labels)))
  rank = jnp.sum(hinge > 0, axis=-1)
  weight = jax.lax.stop_gradient(rank_weights(c - 1)[rank])
  return weight * jnp.sum(hinge, axis=-1)


def hinge_rank_loss(scores: Array, labels: Array,
                    margin: float | Array = 0.1) -> Array:
  r"""DeViSE's hinge rank loss, summed over the wrong classes.

  .. math::
    \ell(x_n, y_n) = \sum_{j \ne y_n}
       \max\big(0,\; k - t_{y_n}^\top M v(x_n) + t_j^\top M v(x_n)\big)

  with ``scores[j] = t_j^T M v(x)`` (``t_j`` the unit word vector of class
  ``j``, ``M`` the linear map from image features into the word space).

  Args:
    scores: (..., C) scores.
    labels: (...) integer true classes.
    margin: ``k`` (0.1 in the paper, for unit-norm word vectors).

  Returns:
    (...) per-example losses.

  References:
    Frome et al., `DeViSE: A Deep Visual-Semantic Embedding Model
    <https://papers.nips.cc/paper/5204>`_, NeurIPS 2013.
  """
  is_true = jax.nn.one_hot(labels, scores.shape[-1], dtype=bool)
  hinge = jax.nn.relu(margin - _true_score(scores, labels) + scores)
  return jnp.sum(jnp.where(is_true, 0.0, hinge), axis=-1)


LOSSES = {
    "sje": structured_hinge_loss,
    "ale": weighted_rank_loss,
    "devise": hinge_rank_loss,
}
