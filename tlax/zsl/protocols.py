"""Zero-shot evaluation protocols: conventional ZSL, generalised ZSL, calibration.

Conventional zero-shot learning (ZSL) asks which unseen class a test image of
an unseen class belongs to; generalised ZSL (GZSL) lets the test images come
from seen and unseen classes and searches all classes. Following Xian et al.
(TPAMI 2018) accuracies are averaged per class (top-1 of each class, then the
mean over classes), and GZSL reports the seen accuracy ``acc_s``, the unseen
accuracy ``acc_u`` and their harmonic mean ``H = 2 acc_s acc_u / (acc_s +
acc_u)``.

Models trained on seen classes score seen classes higher: calibrated stacking
(Chao et al., ECCV 2016) subtracts a constant ``gamma`` from the scores of
the seen classes. ``gamma`` is chosen here on held-out seen classes only
(:func:`validation_split`): part of the seen classes plays the unseen ones,
so no unseen label is ever used.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from tlax.zsl import semantic


class ZSLDataError(ValueError):
  """A zero-shot split that cannot be evaluated (names the class or file)."""


@dataclasses.dataclass(frozen=True)
class ZSLSplit:
  """A seen/unseen split with image features and class embeddings.

  Labels are global class indices into ``class_embeddings`` (and
  ``class_names``). ``x_train`` holds images of seen classes only;
  ``x_test_seen`` held-out images of seen classes; ``x_test_unseen`` images
  of unseen classes.
  """
  x_train: np.ndarray
  y_train: np.ndarray
  x_test_seen: np.ndarray
  y_test_seen: np.ndarray
  x_test_unseen: np.ndarray
  y_test_unseen: np.ndarray
  class_embeddings: np.ndarray
  seen: np.ndarray
  unseen: np.ndarray
  class_names: tuple[str, ...]
  name: str = "split"

  def check(self) -> "ZSLSplit":
    """Validates the split; returns it. Raises :class:`ZSLDataError`."""
    names = self.class_names
    semantic.check_class_embeddings(self.class_embeddings, names,
                                    source=f"{self.name}: class embeddings")
    c = len(names)
    for what, x, y in (("training", self.x_train, self.y_train),
                       ("seen test", self.x_test_seen, self.y_test_seen),
                       ("unseen test", self.x_test_unseen,
                        self.y_test_unseen)):
      if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ZSLDataError(f"{self.name}: {what} features {x.shape} and "
                           f"labels {y.shape} do not match.")
      if x.shape[1] != self.x_train.shape[1]:
        raise ZSLDataError(
            f"{self.name}: {what} features are {x.shape[1]}-d but training "
            f"features are {self.x_train.shape[1]}-d; extract both with the "
            "same network.")
      if y.size and (y.min() < 0 or y.max() >= c):
        raise ZSLDataError(f"{self.name}: {what} labels outside 0..{c - 1}.")
    overlap = set(self.seen.tolist()) & set(self.unseen.tolist())
    if overlap:
      raise ZSLDataError(f"{self.name}: classes "
                         f"{[names[i] for i in sorted(overlap)]} are both "
                         "seen and unseen.")
    if not len(self.unseen):
      raise ZSLDataError(f"{self.name}: no unseen classes.")
    for what, y, classes in (("training", self.y_train, self.seen),
                             ("unseen test", self.y_test_unseen, self.unseen)):
      present = set(np.unique(y).tolist())
      missing = [names[i] for i in classes if i not in present]
      if missing:
        raise ZSLDataError(
            f"{self.name}: {'seen' if what == 'training' else 'unseen'} "
            f"class(es) {missing} have no {what} images, so their accuracy "
            "is undefined; add images of them or drop them from the split.")
      stray = sorted(present - set(classes.tolist()))
      if stray:
        raise ZSLDataError(
            f"{self.name}: {what} images of classes "
            f"{[names[i] for i in stray]} that are not "
            f"{'seen' if what == 'training' else 'unseen'}.")
    return self


def per_class_accuracy(pred: np.ndarray, labels: np.ndarray,
                       classes: Sequence[int] | None = None) -> float:
  """Mean over classes of the top-1 accuracy within each class (percent).

  Args:
    pred: (n,) predicted class indices.
    labels: (n,) true class indices.
    classes: the classes to average over (default: those in ``labels``).

  Raises:
    ZSLDataError: a class with no test images.
  """
  pred, labels = np.asarray(pred), np.asarray(labels)
  classes = np.unique(labels) if classes is None else np.asarray(classes)
  accs = []
  for c in classes:
    mask = labels == c
    if not mask.any():
      raise ZSLDataError(f"class {int(c)} has no test images; its accuracy "
                         "is undefined.")
    accs.append(np.mean(pred[mask] == c))
  return 100.0 * float(np.mean(accs))


def harmonic_mean(acc_seen: float, acc_unseen: float) -> float:
  """``H = 2 a_s a_u / (a_s + a_u)`` (0 when both are 0)."""
  total = acc_seen + acc_unseen
  return 0.0 if total <= 0 else 2.0 * acc_seen * acc_unseen / total


def calibrated_predictions(scores: np.ndarray, seen_mask: np.ndarray,
                           gamma: float) -> np.ndarray:
  """Argmax of ``scores - gamma * 1[class is seen]`` (calibrated stacking)."""
  return np.argmax(np.asarray(scores) - gamma * seen_mask[None, :], axis=1)


def gzsl_accuracies(scores_seen, y_seen, scores_unseen, y_unseen, seen, unseen,
                    num_classes, gamma=0.0) -> dict:
  """GZSL per-class accuracies (percent) with calibration ``gamma``.

  ``scores_*`` are (n, num_classes) scores against all classes.
  """
  mask = np.zeros(num_classes, np.float32)
  mask[np.asarray(seen)] = 1.0
  acc_s = per_class_accuracy(
      calibrated_predictions(scores_seen, mask, gamma), y_seen, seen)
  acc_u = per_class_accuracy(
      calibrated_predictions(scores_unseen, mask, gamma), y_unseen, unseen)
  return {"gzsl_seen": acc_s, "gzsl_unseen": acc_u,
          "gzsl_h": harmonic_mean(acc_s, acc_u)}


def zsl_accuracy(scores_unseen: np.ndarray, y_unseen: np.ndarray,
                 unseen: Sequence[int]) -> float:
  """Conventional ZSL: per-class top-1 among the unseen classes (percent).

  ``scores_unseen`` are (n, num_classes) scores against all classes; only
  the columns of ``unseen`` compete.
  """
  unseen = np.asarray(unseen)
  pred = unseen[np.argmax(np.asarray(scores_unseen)[:, unseen], axis=1)]
  return per_class_accuracy(pred, y_unseen, unseen)


def gamma_candidates(scores: np.ndarray, seen_mask: np.ndarray,
                     num: int = 200) -> np.ndarray:
  """Calibration values worth trying: 0 and the margins where predictions flip.

  For each image the prediction moves from a seen to an unseen class when
  ``gamma`` passes ``max_seen score - max_unseen score``; quantiles of these
  margins (and 0) cover every distinct outcome up to ``num`` values.
  """
  scores = np.asarray(scores, np.float64)
  seen = seen_mask.astype(bool)
  margin = scores[:, seen].max(1) - scores[:, ~seen].max(1)
  qs = np.quantile(margin, np.linspace(0.0, 1.0, num))
  eps = 1e-6 * max(1.0, float(np.abs(margin).max(initial=0.0)))
  return np.unique(np.concatenate([[0.0], qs + eps, qs - eps]))


def choose_gamma(folds) -> tuple[float, float]:
  """The calibration maximising the mean H over validation folds.

  Args:
    folds: a sequence of ``(scores_seen, y_seen, scores_unseen, y_unseen,
      seen, unseen, num_classes)``, each made on held-out seen classes only
      (see :func:`validation_split`); several folds with different held-out
      classes make the choice less dependent on which classes played the
      unseen ones.

  Returns:
    ``(gamma, mean H)``; ties go to the ``gamma`` closest to 0.
  """
  cands, masks = [], []
  for ss, _, su, _, seen, _, c in folds:
    mask = np.zeros(c, np.float32)
    mask[np.asarray(seen)] = 1.0
    masks.append(mask)
    cands.append(gamma_candidates(np.concatenate([ss, su]), mask))
  cands = np.unique(np.concatenate(cands))
  cands = cands[np.argsort(np.abs(cands), kind="stable")]
  best = (0.0, -1.0)
  for g in cands:
    h = float(np.mean([
        gzsl_accuracies(ss, ys, su, yu, seen, unseen, c, g)["gzsl_h"]
        for ss, ys, su, yu, seen, unseen, c in folds]))
    if h > best[1] + 1e-9:
      best = (float(g), h)
  return best


def validation_split(split: ZSLSplit, *, num_val_classes: int,
                     seen_val_fraction: float = 0.2,
                     seed: int = 0) -> ZSLSplit:
  """A split made of the training images only: held-out seen classes.

  ``num_val_classes`` seen classes (chosen by ``seed``) play the unseen
  classes; of the other seen classes a ``seen_val_fraction`` of the images
  (per class) is held out as their seen test images. Hyperparameters and the
  calibration ``gamma`` chosen on it use no unseen label.
  """
  rng = np.random.default_rng(seed)
  seen = np.asarray(split.seen)
  if not 1 <= num_val_classes < len(seen):
    raise ValueError(f"num_val_classes={num_val_classes} must be in "
                     f"1..{len(seen) - 1} (there are {len(seen)} seen "
                     "classes).")
  val_unseen = np.sort(rng.choice(seen, num_val_classes, replace=False))
  val_seen = np.setdiff1d(seen, val_unseen)
  y = split.y_train
  train_idx, test_idx = [], []
  for c in val_seen:
    idx = rng.permutation(np.nonzero(y == c)[0])
    k = int(round(seen_val_fraction * len(idx)))
    k = min(max(k, 1), len(idx) - 1) if len(idx) > 1 else 0
    test_idx.append(idx[:k])
    train_idx.append(idx[k:])
  train_idx = np.sort(np.concatenate(train_idx))
  test_idx = np.sort(np.concatenate(test_idx))
  unseen_idx = np.nonzero(np.isin(y, val_unseen))[0]
  return ZSLSplit(
      x_train=split.x_train[train_idx], y_train=y[train_idx],
      x_test_seen=split.x_train[test_idx], y_test_seen=y[test_idx],
      x_test_unseen=split.x_train[unseen_idx], y_test_unseen=y[unseen_idx],
      class_embeddings=split.class_embeddings, seen=val_seen,
      unseen=val_unseen, class_names=split.class_names,
      name=f"{split.name} (validation on seen classes)")


def class_split(num_classes: int, num_unseen: int, seed: int
                ) -> tuple[np.ndarray, np.ndarray]:
  """``(seen, unseen)`` class indices, the unseen ones drawn by ``seed``."""
  if not 1 <= num_unseen < num_classes:
    raise ValueError(f"num_unseen={num_unseen} must be in 1..{num_classes - 1}.")
  unseen = np.sort(np.random.default_rng(seed).choice(num_classes, num_unseen,
                                                      replace=False))
  return np.setdiff1d(np.arange(num_classes), unseen), unseen


def fit_and_evaluate(method, split: ZSLSplit, rng, *, gamma: float = 0.0):
  """Fits ``method`` on the split's training images and evaluates it.

  Returns:
    ``(metrics, params, scores)``: ``zsl_accuracy``, ``gzsl_seen``,
    ``gzsl_unseen``, ``gzsl_h`` (percent, calibrated with ``gamma``) and the
    uncalibrated ``gzsl_*_uncalibrated``; the fitted parameters; and the
    scores ``{"seen": (n_s, C), "unseen": (n_u, C)}`` against all classes.
  """
  seen = np.asarray(split.seen)
  pos = np.full(len(split.class_names), -1)
  pos[seen] = np.arange(len(seen))
  params = method.fit(rng, split.x_train, pos[split.y_train],
                      split.class_embeddings[seen])
  s_seen = np.asarray(method.scores(params, split.x_test_seen,
                                    split.class_embeddings))
  s_unseen = np.asarray(method.scores(params, split.x_test_unseen,
                                      split.class_embeddings))
  c = len(split.class_names)
  metrics = {"zsl_accuracy": zsl_accuracy(s_unseen, split.y_test_unseen,
                                          split.unseen)}
  raw = gzsl_accuracies(s_seen, split.y_test_seen, s_unseen,
                        split.y_test_unseen, seen, split.unseen, c, 0.0)
  metrics.update(gzsl_accuracies(s_seen, split.y_test_seen, s_unseen,
                                 split.y_test_unseen, seen, split.unseen, c,
                                 gamma))
  metrics.update({f"{k}_uncalibrated": v for k, v in raw.items()})
  return metrics, params, {"seen": s_seen, "unseen": s_unseen}
