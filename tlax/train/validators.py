r"""Label-free validators: scores of a model on unlabelled target data.

Each validator scores one trained model from what it predicts on unlabelled
target examples (and, for some, on labelled source-validation examples);
HIGHER is better for every score returned here, so a model is selected by
the maximum. None of them reads a target label. Importance-weighted
validation (DEV) lives in :mod:`tlax.train.selection`.

* ``entropy``: minus the mean prediction entropy (confident predictions).
* ``bnm``: the batch nuclear norm of the prediction matrix divided by the
  number of examples (Cui et al., "Towards Discriminability and Diversity:
  Batch Nuclear-norm Maximization under Label Insufficient Situations",
  CVPR 2020): confident and diverse predictions.
* ``snd``: soft neighbourhood density (Saito et al., "Tune it the Right
  Way: Unsupervised Validation of Domain Adaptation via Soft Neighborhood
  Density", ICCV 2021): the mean entropy of each example's softmax
  similarity distribution over the other examples.
* ``class_ami``: adjusted mutual information between k-means clusters of
  the target features and the predicted classes (ClassAMI, Musgrave et al.,
  "Three New Validators and a Large-Scale Benchmark Ranking for Unsupervised
  Domain Adaptation", 2022).
* ``mixval``: accuracy of the model on mixed target examples against the
  pseudo-label of the dominant example (Hu et al., "Mixed Samples as Probes
  for Unsupervised Model Selection in Domain Adaptation", NeurIPS 2023),
  over pairs with different (inter-cluster) and equal (intra-cluster)
  pseudo-labels.
* ``reverse``: reverse (circular) validation (Zhong et al., "Cross
  Validation Framework to Choose amongst Models and Datasets for Transfer
  Learning", ECML-PKDD 2010): a linear classifier trained on the target
  features with the model's pseudo-labels, scored on the labelled source
  validation features.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

VALIDATORS = ("entropy", "bnm", "snd", "class_ami", "mixval", "reverse")


def _probs(probs) -> np.ndarray:
  p = np.asarray(probs, np.float64)
  if p.ndim != 2 or len(p) == 0:
    raise ValueError(f"Expected (n, C) probabilities, got shape {p.shape}.")
  if not np.all(np.isfinite(p)):
    raise ValueError("Probabilities must be finite (the model output NaN or "
                     "inf).")
  return p


def softmax(logits) -> np.ndarray:
  """Row-wise softmax in float64."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=1, keepdims=True)


def entropy_score(probs) -> float:
  """``-mean_i H(p_i)`` with ``H(p) = -sum_c p_c log p_c``."""
  p = _probs(probs)
  h = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), 1)
  return float(-np.mean(h))


def bnm_score(probs) -> float:
  """``||P||_* / n``: the sum of singular values of the ``(n, C)`` matrix."""
  p = _probs(probs)
  return float(np.linalg.svd(p, compute_uv=False).sum() / len(p))


def snd_score(probs, temperature: float = 0.05) -> float:
  """Soft neighbourhood density of the L2-normalised predictions.

  ``s_ij = <p_i, p_j> / (|p_i| |p_j|)`` for ``j != i``; each row is turned
  into a distribution ``softmax_j(s_ij / temperature)`` and the score is the
  mean entropy of those distributions (Saito et al., ICCV 2021, with their
  temperature 0.05).
  """
  p = _probs(probs)
  if len(p) < 3:
    raise ValueError("snd needs at least 3 examples.")
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature!r}.")
  f = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
  s = f @ f.T / temperature
  np.fill_diagonal(s, -np.inf)
  q = softmax(s)
  h = -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), 1)
  return float(np.mean(h))


def class_ami_score(features, probs, *, seed: int = 0) -> float:
  """AMI between k-means clusters (k = number of classes) of the
  L2-normalised features and the predicted classes."""
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
  from sklearn.metrics import adjusted_mutual_info_score  # pylint: disable=g-import-not-at-top
  p = _probs(probs)
  f = np.asarray(features, np.float64).reshape(len(p), -1)
  if not np.all(np.isfinite(f)):
    raise ValueError("Features must be finite.")
  f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
  k = min(p.shape[1], len(np.unique(f, axis=0)))
  if k < 2:
    return 0.0
  clusters = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(f)
  return float(adjusted_mutual_info_score(clusters, p.argmax(1)))


def mix_pairs(pseudo, *, seed: int = 0):
  """``(i, j, inter)``: a seeded pairing of the examples and whether each
  pair's pseudo-labels differ."""
  pseudo = np.asarray(pseudo)
  rng = np.random.default_rng([seed, 7])
  i = np.arange(len(pseudo))
  j = rng.permutation(len(pseudo))
  keep = i != j
  i, j = i[keep], j[keep]
  return i, j, pseudo[i] != pseudo[j]


def mixval_score(predict: Callable[[np.ndarray], np.ndarray], x, probs, *,
                 lam: float = 0.55, seed: int = 0) -> float:
  """Accuracy on ``lam x_i + (1 - lam) x_j`` against ``argmax p_i``.

  Args:
    predict: ``x -> logits`` of the model on a batch of inputs.
    x: target inputs ``(n, ...)``.
    probs: the model's predictions on ``x``.
    lam: the weight of the dominant example (0.5 < lam < 1).
    seed: the pairing.

  Returns:
    The mean of the inter-cluster and intra-cluster accuracies (either
    alone when only one kind of pair exists).
  """
  if not 0.5 < lam < 1.0:
    raise ValueError(f"lam must be in (0.5, 1), got {lam!r}.")
  p = _probs(probs)
  pseudo = p.argmax(1)
  i, j, inter = mix_pairs(pseudo, seed=seed)
  if len(i) == 0:
    raise ValueError("mixval needs at least 2 examples.")
  x = np.asarray(x, np.float32)
  mixed = lam * x[i] + (1.0 - lam) * x[j]
  hit = np.asarray(predict(mixed)).argmax(1) == pseudo[i]
  parts = [hit[inter].mean()] if inter.any() else []
  if (~inter).any():
    parts.append(hit[~inter].mean())
  return float(np.mean(parts))


def reverse_score(target_features, probs, source_features, source_labels
                  ) -> float:
  """Accuracy on the source validation set of a logistic regression trained
  on the target features with the model's pseudo-labels."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  p = _probs(probs)
  ft = np.asarray(target_features, np.float64).reshape(len(p), -1)
  fs = np.asarray(source_features, np.float64).reshape(len(source_labels), -1)
  pseudo = p.argmax(1)
  if len(np.unique(pseudo)) < 2:
    return float(np.mean(np.asarray(source_labels) == pseudo[0]))
  mu, sd = ft.mean(0), ft.std(0) + 1e-8
  clf = LogisticRegression(max_iter=500).fit((ft - mu) / sd, pseudo)
  return float(np.mean(clf.predict((fs - mu) / sd) == np.asarray(
      source_labels)))


def check_names(names) -> None:
  """Raises KeyError naming the known validators for an unknown name."""
  unknown = [n for n in names if n not in VALIDATORS]
  if unknown:
    raise KeyError(f"Unknown validators {unknown}; known: "
                   f"{', '.join(VALIDATORS)}.")


def scores(names, *, target_logits, target_features, target_inputs=None,
           predict=None, source_features=None, source_labels=None,
           seed: int = 0) -> dict[str, float]:
  """The validators ``names`` of one model, as ``{name: score}``.

  Args:
    names: a subset of :data:`VALIDATORS`.
    target_logits: ``(n, C)`` logits on unlabelled target examples.
    target_features: ``(n, d)`` features of the same examples.
    target_inputs: the inputs themselves (``mixval``).
    predict: ``x -> logits`` (``mixval``).
    source_features, source_labels: labelled source validation
      (``reverse``).
    seed: for k-means and the mixing pairs.

  Raises:
    KeyError: an unknown validator name (the known ones are listed).
  """
  check_names(names)
  p = softmax(target_logits)
  out = {}
  for name in names:
    if name == "entropy":
      out[name] = entropy_score(p)
    elif name == "bnm":
      out[name] = bnm_score(p)
    elif name == "snd":
      out[name] = snd_score(p)
    elif name == "class_ami":
      out[name] = class_ami_score(target_features, p, seed=seed)
    elif name == "mixval":
      out[name] = mixval_score(predict, target_inputs, p, seed=seed)
    elif name == "reverse":
      out[name] = reverse_score(target_features, p, source_features,
                                source_labels)
  return out
