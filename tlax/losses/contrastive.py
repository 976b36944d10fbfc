"""Classification by comparison: prototypes and contrastive losses.

Pure functions over embedding arrays. Per-example losses return per-example
values together with a mask of the examples they are defined for; the caller
averages over that mask (:func:`masked_mean`). Everything works under
``jax.jit``, ``jax.vmap`` and ``jax.grad`` and stays finite when a class
appears once in a batch (an anchor without positives contributes zero and is
left out of the mask) or not at all.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

Array = jax.Array

_NEG = -1e9  # a finite "minus infinity": exp underflows, gradients stay 0


def _f32(x) -> Array:
  x = jnp.asarray(x)
  return x.astype(jnp.float32) if x.dtype != jnp.float64 else x


def l2_normalize(x: Array, eps: float = 1e-8) -> Array:
  """Rows of ``x`` divided by their Euclidean norm (``eps`` keeps zero rows
  finite, with finite gradients)."""
  x = _f32(x)
  return x * jax.lax.rsqrt(jnp.sum(x * x, -1, keepdims=True) + eps * eps)


def masked_mean(values: Array, mask: Array) -> Array:
  """``sum(mask * values) / max(sum(mask), 1)``: 0 when nothing is masked in.
  """
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _check_labels(fn: str, labels, n: int) -> None:
  if jnp.shape(labels) != (n,):
    raise ValueError(f"{fn}: labels must have shape ({n},), one per "
                     f"embedding; got {jnp.shape(labels)}.")


def class_prototypes(embeddings: Array, labels: Array, num_classes: int,
                     weights: Array | None = None) -> tuple[Array, Array]:
  r"""Class means of the embeddings: the prototypes of Snell et al. (2017).

  .. math::
    c_k = \frac{1}{|S_k|} \sum_{i \in S_k} f(x_i), \quad
    S_k = \{i : y_i = k\}

  Args:
    embeddings: (n, d) embeddings.
    labels: (n,) integer labels in ``[0, num_classes)``.
    num_classes: number of classes ``C`` (static).
    weights: optional (n,) weights (0 leaves an example out).

  Returns:
    ``(prototypes, counts)``: (C, d) class means (a zero row for a class with
    no example) and (C,) the (weighted) number of examples per class. Use
    :func:`tlax.prototypes.episodes.check_prototypes` to reject empty classes
    with a clear error on concrete arrays.
  """
  if isinstance(num_classes, bool) or not isinstance(
      num_classes, numbers.Integral) or num_classes < 1:
    raise ValueError(f"class_prototypes: num_classes must be an int >= 1; "
                     f"got {num_classes!r}.")
  e = _f32(embeddings)
  _check_labels("class_prototypes", labels, e.shape[0])
  onehot = jax.nn.one_hot(labels, num_classes, dtype=e.dtype)
  if weights is not None:
    onehot = onehot * _f32(weights)[:, None]
  counts = jnp.sum(onehot, 0)
  sums = onehot.T @ e
  return sums / jnp.maximum(counts, 1e-12)[:, None], counts


def prototype_logits(queries: Array, prototypes: Array,
                     metric: str = "euclidean",
                     temperature: float = 1.0) -> Array:
  r"""Scores of queries against class prototypes.

  ``metric="euclidean"``: :math:`-\|q - c_k\|^2 / \tau` (prototypical
  networks, Snell et al., 2017); ``metric="cosine"``:
  :math:`\cos(q, c_k) / \tau` (cosine / normalised classifiers).

  Args:
    queries: (m, d) embeddings.
    prototypes: (C, d) class prototypes.
    metric: ``"euclidean"`` or ``"cosine"``.
    temperature: :math:`\tau > 0`.

  Returns:
    (m, C) logits.
  """
  q, p = _f32(queries), _f32(prototypes)
  if metric == "euclidean":
    d2 = (jnp.sum(q * q, -1)[:, None] - 2.0 * q @ p.T
          + jnp.sum(p * p, -1)[None, :])
    return -d2 / temperature
  if metric == "cosine":
    return (l2_normalize(q) @ l2_normalize(p).T) / temperature
  raise ValueError(f"Unknown prototype metric {metric!r}; use 'euclidean' or "
                   "'cosine'.")


def prototypical_loss(embeddings: Array, labels: Array, is_support: Array,
                      num_classes: int, *, metric: str = "euclidean",
                      temperature: float = 1.0,
                      class_mask: Array | None = None
                      ) -> tuple[Array, Array]:
  r"""The episodic loss of prototypical networks on one batch.

  The batch is split into a support set (``is_support``) and a query set
  (the rest). Prototypes are the support class means (:func:`class_prototypes`);
  each query is classified by a softmax over the scores of
  :func:`prototype_logits` restricted to the episode's classes (present in the
  support and, when given, in ``class_mask``):

  .. math::
    \ell_i = -\log \frac{\exp(s(q_i, c_{y_i}))}
                        {\sum_{k \in K} \exp(s(q_i, c_k))}

  Args:
    embeddings: (n, d) embeddings of the whole batch.
    labels: (n,) integer labels.
    is_support: (n,) bool, True for the support examples.
    num_classes: ``C`` (static).
    metric, temperature: as in :func:`prototype_logits`.
    class_mask: optional (C,) bool, the classes of the episode (N-way).

  Returns:
    ``(loss, valid)``: (n,) per-example losses (0 where not valid) and the
    (n,) bool mask of the queries whose class is in the episode. Average
    with :func:`masked_mean`.

  References:
    Snell, Swersky & Zemel, Prototypical Networks for Few-shot Learning,
    NeurIPS 2017.
  """
  is_support = jnp.asarray(is_support, bool)
  protos, counts = class_prototypes(embeddings, labels, num_classes,
                                    weights=is_support)
  in_episode = counts > 0
  if class_mask is not None:
    in_episode = in_episode & jnp.asarray(class_mask, bool)
  logits = prototype_logits(embeddings, protos, metric, temperature)
  logits = jnp.where(in_episode[None, :], logits, _NEG)
  logp = jax.nn.log_softmax(logits, -1)
  valid = (~is_support) & in_episode[labels]
  picked = jnp.take_along_axis(logp, labels[:, None], -1)[:, 0]
  return jnp.where(valid, -picked, 0.0), valid


def supervised_contrastive(embeddings: Array, labels: Array,
                           temperature: float = 0.1,
                           valid: Array | None = None
                           ) -> tuple[Array, Array]:
  r"""Supervised contrastive loss (SupCon, the "out" form), per anchor.

  With :math:`z_i` the L2-normalised embeddings, :math:`A(i)` all other
  valid examples and :math:`P(i) \subset A(i)` those with label
  :math:`y_i`:

  .. math::
    \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
      \log \frac{\exp(z_i \cdot z_p / \tau)}
                {\sum_{a \in A(i)} \exp(z_i \cdot z_a / \tau)}

  An anchor whose class appears once (:math:`P(i) = \emptyset`) is not
  defined: its loss is 0 and it is left out of the returned mask, so a batch
  with singleton classes gives no NaN (values or gradients).

  Args:
    embeddings: (n, d) embeddings (normalised here).
    labels: (n,) integer labels; two views of one image share a label
      (:func:`nt_xent` uses this for the self-supervised form).
    temperature: :math:`\tau > 0`.
    valid: optional (n,) bool; invalid examples are neither anchors nor
      contrasted against.

  Returns:
    ``(loss, has_positive)``: (n,) per-anchor losses and the (n,) bool mask
    of anchors with at least one positive. Average with :func:`masked_mean`.

  References:
    Khosla et al., Supervised Contrastive Learning, NeurIPS 2020.
  """
  from tlax.losses import _validation as val  # pylint: disable=g-import-not-at-top
  val.check_finite_positive(temperature, "temperature",
                            "supervised_contrastive")
  z = l2_normalize(embeddings)
  n = z.shape[0]
  _check_labels("supervised_contrastive", labels, n)
  valid = jnp.ones((n,), bool) if valid is None else jnp.asarray(valid, bool)
  sim = (z @ z.T) / temperature
  others = (~jnp.eye(n, dtype=bool)) & valid[None, :] & valid[:, None]
  logits = jnp.where(others, sim, _NEG)
  log_den = jax.nn.logsumexp(logits, -1, keepdims=True)
  log_prob = jnp.where(others, logits - log_den, 0.0)
  pos = others & (labels[:, None] == labels[None, :])
  n_pos = jnp.sum(pos, -1)
  has_positive = (n_pos > 0) & valid
  mean_pos = jnp.sum(jnp.where(pos, log_prob, 0.0), -1) / jnp.maximum(
      n_pos, 1)
  return jnp.where(has_positive, -mean_pos, 0.0), has_positive


def nt_xent(view1: Array, view2: Array, temperature: float = 0.1,
            valid: Array | None = None) -> tuple[Array, Array]:
  r"""Self-supervised contrastive loss (NT-Xent / InfoNCE) of two views.

  Each of the ``2n`` embeddings is an anchor whose single positive is the
  other view of the same image and whose negatives are the other ``2n - 2``
  embeddings: :func:`supervised_contrastive` with the image index as label.

  Args:
    view1, view2: (n, d) embeddings of two augmentations of the same images
      (e.g. source and target images together).
    temperature: :math:`\tau > 0`.
    valid: optional (n,) bool mask of the images to use.

  Returns:
    ``(loss, mask)``: (2n,) per-anchor losses (view 1 first) and their mask.

  References:
    Chen et al., A Simple Framework for Contrastive Learning of Visual
    Representations (SimCLR), ICML 2020.
  """
  from tlax.losses import _validation as val  # pylint: disable=g-import-not-at-top
  val.check_finite_positive(temperature, "temperature", "nt_xent")
  if jnp.shape(view1) != jnp.shape(view2):
    raise ValueError(f"nt_xent: view1 and view2 must have the same shape "
                     f"(two views of the same images); got "
                     f"{jnp.shape(view1)} and {jnp.shape(view2)}.")
  n = view1.shape[0]
  ids = jnp.arange(n)
  z = jnp.concatenate([_f32(view1), _f32(view2)], 0)
  v = None if valid is None else jnp.concatenate([valid, valid], 0)
  return supervised_contrastive(z, jnp.concatenate([ids, ids]), temperature,
                                valid=v)
