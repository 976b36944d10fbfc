"""The self-taught learning protocol (Raina et al., 2007).

1. A feature learner (:mod:`tlax.selftaught.learners`) is fitted on
   unlabelled source data, which need not share the target's classes or
   distribution.
2. ``k`` labelled examples per class are drawn from the target (seeded).
3. Both the labelled examples and the target test examples are encoded with
   the learned representation, each feature standardised by its mean and
   standard deviation over the ``k * C`` encoded labelled examples
   (:class:`Standardiser`, fitted with the classifier, as a scaler in a
   scikit-learn pipeline would be).
4. A linear classifier (L2 logistic regression, or a linear SVM) is trained
   on the ``k * C`` standardised examples; its accuracy on the target test
   examples is reported.

Why the labelled examples' statistics and not the unlabelled source's: the
source may have other statistics than the target (MNIST's border pixels are
always 0, the font letters' vary), and features scaled by the source's
spread then reach tens of standard deviations on the target; the logistic
regression fitted to them ran into its iteration limit (a 16x16 raw-pixel
run of MNIST -> letters took 93 s in its four fits, against a few seconds
with the labelled examples' statistics).

For a transductive target (train and test are the same set) the test set is
every target example not drawn as labelled.

    from tlax.selftaught import protocol, learners
    acc = protocol.self_taught_accuracy(
        learners.SparseCoding(128, 0.2), x_unlabelled, target_train,
        target_test, ks=(1, 5, 10), seed=0)    # {1: 61.2, 5: ..., 10: ...}
"""

from __future__ import annotations

import time

import numpy as np

from tlax.selftaught import learners as learners_lib


class ProtocolInputError(ValueError):
  """Bad input to the self-taught protocol (k, labels, shapes)."""


def draw_labelled(y: np.ndarray, k: int, rng: np.random.Generator, *,
                  leave_one: bool = True) -> np.ndarray:
  """Indices of ``k`` examples of every class of ``y`` (seeded, sorted).

  Args:
    y: integer labels ``(N,)``.
    k: examples per class.
    rng: numpy generator.
    leave_one: require at least one example per class to be left over (for
      a transductive test set).

  Raises:
    ProtocolInputError: ``k < 1``, or ``k`` (plus one when ``leave_one``)
      larger than the smallest class.
  """
  y = np.asarray(y)
  if int(k) != k or k < 1:
    raise ProtocolInputError(f"k (labels per class) must be an integer >= 1, "
                             f"got {k!r}.")
  classes, counts = np.unique(y, return_counts=True)
  need = k + (1 if leave_one else 0)
  if counts.min() < need:
    c = classes[np.argmin(counts)]
    raise ProtocolInputError(
        f"k={k} labels per class is larger than the target allows: class {c} "
        f"has {counts.min()} examples"
        + (" and one must be left for testing" if leave_one else "")
        + f"; use k <= {counts.min() - (1 if leave_one else 0)} (config "
        "field ks).")
  idx = [rng.choice(np.flatnonzero(y == c), k, replace=False) for c in classes]
  return np.sort(np.concatenate(idx))


def make_classifier(name: str = "logistic", C: float = 1.0, seed: int = 0):
  """A scikit-learn linear classifier: ``logistic`` or ``linear_svm``."""
  from sklearn import linear_model, svm  # pylint: disable=g-import-not-at-top
  if name == "logistic":
    return linear_model.LogisticRegression(C=C, max_iter=2000)
  if name == "linear_svm":
    return svm.LinearSVC(C=C, max_iter=5000, random_state=seed)
  raise ValueError(f"Unknown classifier {name!r}; valid: logistic, "
                   "linear_svm.")


class Standardiser:
  """Per-feature standardisation with statistics of one reference set.

  Each feature is centred by its reference mean and divided by its reference
  standard deviation, floored at a tenth of the mean standard deviation: a
  feature (nearly) constant on the reference set (a border pixel, or any
  feature of a reference of one example per class) is not blown up on the
  test examples where it varies.
  """

  def __init__(self, reference: np.ndarray):
    self.mean = reference.mean(axis=0)
    self.std = learners_lib.floored_std(reference)

  def __call__(self, z):
    return (z - self.mean) / self.std


def self_taught_accuracy(learner, x_unlabelled, target_train, target_test, *,
                         ks=(1, 5, 10, 50), seed: int = 0,
                         transductive: bool = False,
                         classifier: str = "logistic", C: float = 1.0,
                         fitted: bool = False) -> dict:
  """Runs the protocol for every ``k`` and returns accuracies (percent).

  Args:
    learner: a feature learner (``fit``/``transform``).
    x_unlabelled: source data ``(N, D)``, unlabelled.
    target_train: ``(x, y)`` the labelled examples are drawn from.
    target_test: ``(x, y)`` of the test examples (ignored when
      ``transductive``: the test set is every undrawn train example).
    ks: labels per class.
    seed: the draws (``k`` draws are independent streams of this seed).
    transductive: see module docstring.
    classifier, C: the linear classifier.
    fitted: the learner is already fitted (skip ``fit``).

  Returns:
    ``{"accuracy": {k: percent}, "fit_time_s": ..., "n_features": ...}``.
  """
  x_unlabelled = learners_lib.check_unlabelled(
      x_unlabelled, name="self-taught protocol", what="unlabelled source")
  xtr, ytr = (np.asarray(a) for a in target_train)
  xte, yte = (np.asarray(a) for a in target_test)
  if xtr.ndim != 2 or xtr.shape[1:] != x_unlabelled.shape[1:]:
    raise ProtocolInputError(
        f"The target has {xtr.shape[1]} features per example and the "
        f"unlabelled source {x_unlabelled.shape[1]}; a representation "
        "learned on one must encode the other (same image size and "
        "channels).")
  n_classes = len(np.unique(ytr))
  for k in ks:  # fail before any fitting
    draw_labelled(ytr, k, np.random.default_rng(0), leave_one=transductive)
  t0 = time.time()
  if not fitted:
    learner.fit(x_unlabelled)
  fit_time = time.time() - t0
  ztr = learner.transform(xtr)
  zte = ztr if transductive else learner.transform(xte)
  accuracy = {}
  for k in ks:
    rng = np.random.default_rng([seed, int(k)])
    idx = draw_labelled(ytr, k, rng, leave_one=transductive)
    scale = Standardiser(ztr[idx])
    clf = make_classifier(classifier, C, seed)
    clf.fit(scale(ztr[idx]), ytr[idx])
    if transductive:
      test = np.setdiff1d(np.arange(len(ytr)), idx)
      pred, truth = clf.predict(scale(zte[test])), ytr[test]
    else:
      pred, truth = clf.predict(scale(zte)), yte
    accuracy[int(k)] = float(100.0 * np.mean(pred == truth))
  return {"accuracy": accuracy, "fit_time_s": fit_time,
          "n_features": int(ztr.shape[1]), "num_classes": int(n_classes)}
