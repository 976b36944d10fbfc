"""N-way K-shot episodes and few-shot evaluation of a frozen encoder.

An episode draws ``n_way`` classes, ``k_shot`` support and ``n_query`` query
examples of each (without overlap). Two classifiers are fitted on the
support embeddings of each episode and scored on its queries:

* ``prototype``: nearest class mean in Euclidean distance (prototypical
  networks, Snell et al., 2017);
* ``linear_probe``: multinomial logistic regression on the same (L2
  normalised) embeddings, fitted by full-batch gradient descent with a small
  L2 penalty.

Accuracy is reported as the mean over episodes with the 95% interval of the
mean, ``1.96 * std / sqrt(episodes)`` (the convention of the few-shot
literature).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from tlax.losses import contrastive


def check_prototypes(counts, class_names: Sequence[str] | None = None) -> None:
  """Raises ValueError when a class has no example to average.

  Args:
    counts: (C,) examples per class (from
      :func:`tlax.losses.class_prototypes`).
    class_names: optional names for the message.
  """
  counts = np.asarray(counts)
  empty = np.flatnonzero(counts <= 0)
  if empty.size:
    names = [class_names[i] if class_names else str(i) for i in empty]
    raise ValueError(
        f"A prototype head needs at least one example of every class; "
        f"class(es) {', '.join(names)} have none. Give examples of these "
        "classes or drop them from num_classes.")


def sample_episodes(labels: np.ndarray, *, n_way: int, k_shot: int,
                    n_query: int, n_episodes: int, seed: int = 0):
  """Indices of ``n_episodes`` N-way K-shot episodes.

  Args:
    labels: (n,) integer labels of the pool.
    n_way, k_shot, n_query: classes per episode, support and query examples
      per class.
    n_episodes: number of episodes.
    seed: seed of the draw.

  Returns:
    ``(support, query, classes)``: (E, n_way * k_shot) and
    (E, n_way * n_query) int indices into ``labels`` (class-major: the
    episode label of column ``j`` is ``j // k_shot`` resp. ``j // n_query``)
    and (E, n_way) the pool classes of each episode.

  Raises:
    ValueError: fewer than ``n_way`` classes have ``k_shot + n_query``
      examples; the message gives the counts and how to fix it.
  """
  labels = np.asarray(labels)
  for name, v in (("n_way", n_way), ("k_shot", k_shot), ("n_query", n_query),
                  ("n_episodes", n_episodes)):
    if int(v) < 1:
      raise ValueError(f"{name} must be at least 1, got {v!r}.")
  classes, counts = np.unique(labels, return_counts=True)
  need = k_shot + n_query
  usable = classes[counts >= need]
  if len(usable) < n_way:
    raise ValueError(
        f"A {n_way}-way {k_shot}-shot episode with {n_query} queries needs "
        f"{need} examples in each of {n_way} classes, but only "
        f"{len(usable)} of {len(classes)} classes have that many (the "
        f"smallest has {counts.min()}, the largest {counts.max()}). Ask for "
        "fewer shots, queries or ways.")
  by_class = {c: np.flatnonzero(labels == c) for c in usable}
  rng = np.random.default_rng(seed)
  sup = np.empty((n_episodes, n_way * k_shot), np.int64)
  qry = np.empty((n_episodes, n_way * n_query), np.int64)
  cls = np.empty((n_episodes, n_way), labels.dtype)
  for e in range(n_episodes):
    cls[e] = rng.choice(usable, n_way, replace=False)
    for j, c in enumerate(cls[e]):
      pick = rng.choice(by_class[c], need, replace=False)
      sup[e, j * k_shot:(j + 1) * k_shot] = pick[:k_shot]
      qry[e, j * n_query:(j + 1) * n_query] = pick[k_shot:]
  return sup, qry, cls


@functools.partial(jax.jit, static_argnames=("n_way", "probe_steps"))
def _episode_accuracies(fs, fq, ys, yq, *, n_way, probe_steps, probe_lr,
                        probe_l2):
  def one(fs, fq):
    protos, _ = contrastive.class_prototypes(fs, ys, n_way)
    acc_p = jnp.mean(jnp.argmax(contrastive.prototype_logits(fq, protos), -1)
                     == yq)
    xs, xq = contrastive.l2_normalize(fs), contrastive.l2_normalize(fq)
    onehot = jax.nn.one_hot(ys, n_way)

    def risk(wb):
      w, b = wb
      logits = xs @ w + b
      ce = -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits), -1))
      return ce + probe_l2 * jnp.sum(w * w)

    def step(wb, _):
      g = jax.grad(risk)(wb)
      return jax.tree.map(lambda p, d: p - probe_lr * d, wb, g), None
    w0 = (jnp.zeros((xs.shape[1], n_way)), jnp.zeros((n_way,)))
    (w, b), _ = jax.lax.scan(step, w0, None, length=probe_steps)
    acc_l = jnp.mean(jnp.argmax(xq @ w + b, -1) == yq)
    return acc_p, acc_l
  return jax.vmap(one)(fs, fq)


def few_shot_accuracy(features: np.ndarray, labels: np.ndarray, *,
                      n_way: int = 5, k_shot: int = 1, n_query: int = 15,
                      n_episodes: int = 600, seed: int = 0,
                      probe_steps: int = 100, probe_lr: float = 10.0,
                      probe_l2: float = 1e-3) -> dict:
  """Few-shot accuracy of fixed embeddings (module docstring).

  Args:
    features: (n, d) embeddings of the pool (classes never trained on).
    labels: (n,) their labels.
    n_way, k_shot, n_query, n_episodes, seed: see :func:`sample_episodes`.
    probe_steps, probe_lr, probe_l2: gradient descent of the linear probe.

  Returns:
    A dict: ``prototype`` (mean accuracy, percent), ``prototype_ci95``
    (its 95% half-width), ``linear_probe`` and ``linear_probe_ci95`` (the
    same for the probe) and ``episodes``.
  """
  features = np.asarray(features, np.float32)
  sup, qry, _ = sample_episodes(labels, n_way=n_way, k_shot=k_shot,
                                n_query=n_query, n_episodes=n_episodes,
                                seed=seed)
  ys = np.repeat(np.arange(n_way), k_shot)
  yq = np.repeat(np.arange(n_way), n_query)
  acc_p, acc_l = _episode_accuracies(
      jnp.asarray(features[sup]), jnp.asarray(features[qry]), jnp.asarray(ys),
      jnp.asarray(yq), n_way=n_way, probe_steps=int(probe_steps),
      probe_lr=float(probe_lr), probe_l2=float(probe_l2))
  out = {"episodes": int(n_episodes)}
  for name, acc in (("prototype", acc_p), ("linear_probe", acc_l)):
    acc = 100.0 * np.asarray(acc, np.float64)
    out[name] = float(acc.mean())
    out[name + "_ci95"] = float(1.96 * acc.std(ddof=1 if len(acc) > 1 else 0)
                                / np.sqrt(len(acc)))
  return out
