"""Losses of reconstruction- and confusion-based adaptation (DSN, SDT).

* :func:`scale_invariant_mse` and :func:`difference_loss`: the
  reconstruction and soft-orthogonality terms of Domain Separation Networks.
* :func:`domain_confusion_loss` and :func:`soft_label_loss`: the domain
  confusion and soft-label terms of Simultaneous Deep Transfer (SDT).

All are pure functions of arrays (jit, vmap and grad work); half-precision
inputs are computed in float32.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from tlax.losses import _validation as val

Array = jax.Array


def scale_invariant_mse(x: Any, x_hat: Any) -> Array:
  r"""Scale-invariant mean squared error, averaged over examples.

  For each example with residual :math:`r = x - \hat x` of :math:`k`
  entries (all trailing axes flattened):

  .. math:: \frac{1}{k}\|r\|^2 - \frac{1}{k^2}\Big(\sum_j r_j\Big)^2,

  i.e. the variance of the residual: a constant offset of the whole
  reconstruction costs nothing. It is DSN's reconstruction loss.

  Args:
    x: (batch, ...) inputs.
    x_hat: reconstructions, same shape.

  Returns:
    Scalar.

  References:
    Eigen, Puhrsch & Fergus, Depth Map Prediction from a Single Image using
    a Multi-Scale Deep Network, NeurIPS 2014; Bousmalis et al., Domain
    Separation Networks, NeurIPS 2016.
  """
  fn = "scale_invariant_mse"
  x, x_hat = jnp.asarray(x), jnp.asarray(x_hat)
  if x.shape != x_hat.shape:
    raise ValueError(f"{fn}: x and x_hat must have the same shape; got "
                     f"{tuple(x.shape)} and {tuple(x_hat.shape)}.")
  if x.ndim < 2 or x.shape[0] == 0 or val.prod(x.shape[1:]) == 0:
    raise ValueError(f"{fn}: need a non-empty (batch, ...) array; got shape "
                     f"{tuple(x.shape)}.")
  dt = val.compute_dtype(x, x_hat)
  d = (x.astype(dt) - x_hat.astype(dt)).reshape(x.shape[0], -1)
  k = d.shape[1]
  return jnp.mean(jnp.sum(d * d, -1) / k - jnp.square(jnp.sum(d, -1)) / k**2)


def difference_loss(shared: Any, private: Any, eps: float = 1e-12) -> Array:
  r"""DSN's soft subspace orthogonality between shared and private codes.

  .. math:: \frac{1}{d_c d_p}\big\|\tilde H_c^\top \tilde H_p\big\|_F^2,

  where :math:`\tilde H` is the batch of codes centred over the batch and
  with every row scaled to unit norm (as the released DSN code normalises
  before the product; the paper writes the unnormalised
  :math:`\|H_c^\top H_p\|_F^2`). Zero when the two codes are orthogonal
  over the batch.

  Args:
    shared: (batch, d_c) shared codes.
    private: (batch, d_p) private codes of the same examples.
    eps: added under the row-norm square root.

  Returns:
    Non-negative scalar.

  References:
    Bousmalis et al., Domain Separation Networks, NeurIPS 2016.
  """
  fn = "difference_loss"
  shared = val.as_features(shared, "shared", fn)
  private = val.as_features(private, "private", fn)
  if shared.shape[0] != private.shape[0]:
    raise ValueError(f"{fn}: shared and private must be codes of the same "
                     f"examples; got batches {shared.shape[0]} and "
                     f"{private.shape[0]}.")
  dt = val.compute_dtype(shared, private)

  def prep(h):
    h = h.astype(dt)
    h = h - jnp.mean(h, axis=0, keepdims=True)
    return h / jnp.sqrt(jnp.sum(h * h, axis=1, keepdims=True) + eps)

  corr = prep(shared).T @ prep(private)
  return jnp.mean(jnp.square(corr))


def domain_confusion_loss(domain_logits: Any) -> Array:
  r"""Cross-entropy of a domain classifier's prediction with the uniform one.

  .. math:: -\frac{1}{n}\sum_i \frac{1}{D}\sum_{d=1}^{D} \log q_{id},
     \qquad q_i = \mathrm{softmax}(\text{logits}_i),

  minimal (:math:`\log D`) when every prediction is uniform. SDT trains the
  features with it (maximal confusion) instead of reversing the domain
  classifier's gradient.

  Args:
    domain_logits: (batch, D) logits, D >= 2 domains.

  Returns:
    Scalar.

  References:
    Tzeng, Hoffman, Darrell & Saenko, Simultaneous Deep Transfer Across
    Domains and Tasks, ICCV 2015.
  """
  fn = "domain_confusion_loss"
  z = val.as_features(domain_logits, "domain_logits", fn)
  if z.shape[1] < 2:
    raise ValueError(f"{fn}: need logits over >= 2 domains; got shape "
                     f"{tuple(z.shape)}.")
  logq = jax.nn.log_softmax(z.astype(val.compute_dtype(z)), axis=-1)
  return -jnp.mean(jnp.mean(logq, axis=-1))


def soft_label_loss(logits: Any, labels: Any, soft_labels: Any,
                    temperature: float = 2.0, mask: Any = None) -> Array:
  r"""SDT's soft-label loss: tempered predictions against per-class averages.

  .. math:: -\frac{1}{\sum_i m_i}\sum_i m_i \sum_k l^{(y_i)}_k
     \log \mathrm{softmax}(z_i / \tau)_k,

  where row :math:`l^{(c)}` of ``soft_labels`` is the average tempered
  source prediction of class :math:`c`.

  Args:
    logits: (batch, C) class logits of (labelled or pseudo-labelled) target
      examples.
    labels: (batch,) int labels in [0, C).
    soft_labels: (C, C) rows of per-class soft labels (each sums to 1).
    temperature: tau > 0.
    mask: optional (batch,) 0/1 weights (e.g. confident pseudo-labels); the
      mean is over the selected rows (0 when none is selected).

  Returns:
    Scalar.

  References:
    Tzeng, Hoffman, Darrell & Saenko, Simultaneous Deep Transfer Across
    Domains and Tasks, ICCV 2015; Hinton, Vinyals & Dean, Distilling the
    Knowledge in a Neural Network, 2015.
  """
  fn = "soft_label_loss"
  z = val.as_features(logits, "logits", fn)
  soft = val.as_features(soft_labels, "soft_labels", fn)
  labels = jnp.asarray(labels)
  c = z.shape[1]
  if soft.shape != (c, c):
    raise ValueError(f"{fn}: soft_labels must be ({c}, {c}) for {c} classes; "
                     f"got {tuple(soft.shape)}.")
  if labels.shape != (z.shape[0],):
    raise ValueError(f"{fn}: labels must have shape ({z.shape[0]},); got "
                     f"{tuple(labels.shape)}.")
  if val.is_concrete(temperature) and not float(temperature) > 0:
    raise ValueError(f"{fn}: temperature must be > 0; got {temperature!r}.")
  dt = val.compute_dtype(z, soft)
  logp = jax.nn.log_softmax(z.astype(dt) / temperature, axis=-1)
  ce = -jnp.sum(soft.astype(dt)[labels] * logp, axis=-1)
  if mask is None:
    return jnp.mean(ce)
  mask = jnp.asarray(mask).astype(dt)
  return jnp.sum(mask * ce) / jnp.maximum(jnp.sum(mask), 1.0)
