"""No-adaptation baselines: 1-NN and a linear SVM on the raw features.

The linear SVM (:class:`LinearSVMClassifier`) is also CORAL's classifier.

They share the estimator API of the transfer methods (``fit(Xs, ys, Xt)``,
``predict``, ``fit_predict``); ``Xt`` is accepted and ignored by ``fit`` so a
table script can treat every method alike.
"""

from __future__ import annotations

import numpy as np

from tlax.shallow import base

__all__ = ["NearestNeighbor", "LinearSVM", "LinearSVMClassifier", "C_GRID"]


# The C grid of the SA/CORAL evaluation code (libsvm, 2-fold CV on source).
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4)


class LinearSVMClassifier:
  """A multi-class linear SVM (libsvm via sklearn, one-vs-one, hinge loss).

  Trained on a precomputed linear kernel, as in the SA / CORAL evaluation
  code: ``C`` is a number, or ``"cv"``: the value of ``grid`` with the best
  ``folds``-fold stratified cross-validation accuracy on the training data
  (the smallest such C on ties; folds shuffled with ``seed``, so the result
  is deterministic).
  """

  def __init__(self, C: float | str = "cv", grid=C_GRID, folds: int = 2,
               seed: int = 0):
    self.C = C
    self.grid = grid
    self.folds = folds
    self.seed = seed

  def fit(self, x, y):
    from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top
    x = np.asarray(x, np.float64)
    y = np.asarray(y)
    gram = x @ x.T
    c = self.C
    if isinstance(c, str):
      if c != "cv":
        raise base.ShallowInputError(
            f"LinearSVM: C must be > 0 or 'cv', got {c!r}.")
      c = self._select_c(gram, y)
    elif not c > 0:
      raise base.ShallowInputError(f"LinearSVM: C must be > 0, got {c}.")
    self.C_ = float(c)
    self._svc = SVC(kernel="precomputed", C=self.C_).fit(gram, y)
    self._x = x
    return self

  def _select_c(self, gram, y):
    from sklearn.model_selection import StratifiedKFold  # pylint: disable=g-import-not-at-top
    from sklearn.svm import SVC  # pylint: disable=g-import-not-at-top
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    folds = min(self.folds, int(counts.min()))
    if folds < 2:
      return self.grid[len(self.grid) // 2]
    split = list(StratifiedKFold(folds, shuffle=True,
                                 random_state=self.seed).split(gram, y))
    best, best_c = -1, None
    for c in self.grid:
      correct = 0
      for tr, te in split:
        m = SVC(kernel="precomputed", C=c).fit(gram[np.ix_(tr, tr)], y[tr])
        correct += int(np.sum(m.predict(gram[np.ix_(te, tr)]) == y[te]))
      if correct > best:
        best, best_c = correct, c
    return best_c

  def predict(self, x):
    return self._svc.predict(np.asarray(x, np.float64) @ self._x.T)


class NearestNeighbor:
  """1-NN (Euclidean) from the source to the target, no adaptation."""

  def fit(self, xs, ys, xt=None):
    """Stores the source; ``xt`` (if given) is only validated."""
    xt_ = xs if xt is None else xt
    xs, ys_idx, _, classes = base.check_inputs(xs, ys, xt_,
                                               name="NearestNeighbor")
    self._xs, self._ys = xs, ys_idx
    self.classes_ = classes
    self.n_features_in_ = xs.shape[1]
    return self

  def transform(self, x):
    """The identity (no adaptation)."""
    return base.check_features(x, self.n_features_in_, name="NearestNeighbor")

  def predict(self, xt):
    if not hasattr(self, "_xs"):
      raise RuntimeError("NearestNeighbor: call fit() first.")
    xt = base.check_features(xt, self.n_features_in_, name="NearestNeighbor",
                             what="Xt")
    return self.classes_[base.nearest_neighbor_predict(self._xs, self._ys, xt)]

  def fit_predict(self, xs, ys, xt):
    return self.fit(xs, ys, xt).predict(xt)


class LinearSVM:
  """A linear SVM trained on the source, applied to the target as it is.

  Args:
    C: SVM constant, or ``"cv"`` (default): chosen from ``C_GRID`` by 2-fold
      cross-validation on the source (see :class:`LinearSVMClassifier`).
    seed: seed of the cross-validation folds.
  """

  def __init__(self, C: float | str = "cv", seed: int = 0):
    self.C = C
    self.seed = seed

  def fit(self, xs, ys, xt=None):
    xt_ = xs if xt is None else xt
    xs, ys_idx, _, classes = base.check_inputs(xs, ys, xt_, name="LinearSVM")
    self.classifier_ = LinearSVMClassifier(self.C, seed=self.seed).fit(
        xs, ys_idx)
    self.classes_ = classes
    self.n_features_in_ = xs.shape[1]
    return self

  def transform(self, x):
    """The identity (no adaptation)."""
    return base.check_features(x, self.n_features_in_, name="LinearSVM")

  def predict(self, xt):
    if not hasattr(self, "classifier_"):
      raise RuntimeError("LinearSVM: call fit() first.")
    xt = base.check_features(xt, self.n_features_in_, name="LinearSVM",
                             what="Xt")
    return self.classes_[np.asarray(self.classifier_.predict(xt))]

  def fit_predict(self, xs, ys, xt):
    return self.fit(xs, ys, xt).predict(xt)
