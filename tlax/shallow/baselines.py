"""No-adaptation baselines: 1-NN and a linear SVM on the raw features.

They share the estimator API of the transfer methods (``fit(Xs, ys, Xt)``,
``predict``, ``fit_predict``); ``Xt`` is accepted and ignored by ``fit`` so a
table script can treat every method alike.
"""

from __future__ import annotations

import numpy as np

from tlax.shallow import base

__all__ = ["NearestNeighbor", "LinearSVM", "make_linear_svm"]


def make_linear_svm(C: float = 1.0, max_iter: int = 10000):
  """The linear SVM used by the baselines and CORAL.

  ``sklearn.svm.LinearSVC`` (liblinear): one-vs-rest, squared hinge loss,
  L2 penalty, intercept fitted; deterministic (``random_state=0``).
  """
  from sklearn.svm import LinearSVC  # pylint: disable=g-import-not-at-top
  return LinearSVC(C=C, max_iter=max_iter, random_state=0)


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
    C: regularisation constant of :func:`make_linear_svm` (liblinear).
  """

  def __init__(self, C: float = 1.0):
    self.C = C

  def fit(self, xs, ys, xt=None):
    xt_ = xs if xt is None else xt
    xs, ys_idx, _, classes = base.check_inputs(xs, ys, xt_, name="LinearSVM")
    if not self.C > 0:
      raise base.ShallowInputError(f"LinearSVM: C must be > 0, got {self.C}.")
    self.classifier_ = make_linear_svm(self.C).fit(xs, ys_idx)
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
