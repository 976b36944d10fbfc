"""Semantic spaces for zero-shot learning: class-attribute tables and word vectors.

A zero-shot classifier never sees images of the unseen classes; it knows each
class only by a vector in a semantic space shared by all classes, the rows of
a class-embedding matrix ``S`` (classes x dimensions). Two kinds are provided:

* attribute tables (Lampert et al., 2009; Farhadi et al., 2009): one row of
  binary or continuous attributes per class, e.g. :data:`SEVEN_SEGMENT` for the
  ten digits (the seven segments of a display give every digit its own code);
* word vectors of the class names (Frome et al., 2013; Norouzi et al., 2014),
  made offline from the 256-d token embeddings that the ``wordllama`` package
  ships inside its wheel (:func:`word_vectors`), or any vectors the user
  passes as a mapping from class name to vector.

A table whose rows coincide for two classes cannot tell them apart: every
method would give the two classes the same score. :func:`check_class_embeddings`
rejects such tables naming the classes.
"""

from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

import numpy as np

# Segments of a seven-segment display, in the usual order: a (top), b (upper
# right), c (lower right), d (bottom), e (lower left), f (upper left),
# g (middle).
SEGMENTS = ("top", "upper_right", "lower_right", "bottom", "lower_left",
            "upper_left", "middle")
SEVEN_SEGMENT = np.array([
    # a  b  c  d  e  f  g
    [1, 1, 1, 1, 1, 1, 0],  # 0
    [0, 1, 1, 0, 0, 0, 0],  # 1
    [1, 1, 0, 1, 1, 0, 1],  # 2
    [1, 1, 1, 1, 0, 0, 1],  # 3
    [0, 1, 1, 0, 0, 1, 1],  # 4
    [1, 0, 1, 1, 0, 1, 1],  # 5
    [1, 0, 1, 1, 1, 1, 1],  # 6
    [1, 1, 1, 0, 0, 0, 0],  # 7
    [1, 1, 1, 1, 1, 1, 1],  # 8
    [1, 1, 1, 1, 0, 1, 1],  # 9
], dtype=np.float32)
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven",
               "eight", "nine")

# Class names of the benchmark collections, in label order, written as words
# (the word-vector encoders read them as text).
CLASS_NAMES = {
    "mnist_usps": DIGIT_NAMES,
    "office_caltech10": ("backpack", "bike", "calculator", "headphones",
                         "keyboard", "laptop computer", "monitor", "mouse",
                         "mug", "projector"),
    "pacs": ("dog", "elephant", "giraffe", "guitar", "horse", "house",
             "person"),
}


class SemanticSpaceError(ValueError):
  """A class-embedding table that cannot serve zero-shot recognition."""


def check_class_embeddings(embeddings, class_names: Sequence[str] | None = None,
                           *, source: str = "class embeddings") -> np.ndarray:
  """Validates a class-embedding matrix and returns it as float32.

  Args:
    embeddings: (C, D) array, one row per class.
    class_names: C names for error messages (default ``class 0``, ...).
    source: where the table came from (a file name), for error messages.

  Returns:
    The (C, D) float32 array.

  Raises:
    SemanticSpaceError: not a finite 2-D array, a name count that differs
      from the row count, an all-zero row, or two classes with identical rows
      (the attribute-based classifier's failure case: nothing can separate
      them), naming the classes and ``source``.
  """
  s = np.asarray(embeddings, dtype=np.float32)
  if s.ndim != 2 or s.shape[0] < 2 or s.shape[1] < 1:
    raise SemanticSpaceError(
        f"{source}: expected a (classes, dimensions) matrix with at least two "
        f"classes, got shape {s.shape}.")
  names = list(class_names) if class_names is not None else [
      f"class {i}" for i in range(s.shape[0])]
  if len(names) != s.shape[0]:
    raise SemanticSpaceError(
        f"{source}: {s.shape[0]} rows but {len(names)} class names; give one "
        "row per class, in label order.")
  if not np.all(np.isfinite(s)):
    bad = names[int(np.nonzero(~np.isfinite(s).all(1))[0][0])]
    raise SemanticSpaceError(f"{source}: the row of {bad!r} is not finite.")
  for i in np.nonzero(~s.any(axis=1))[0]:
    raise SemanticSpaceError(
        f"{source}: the row of {names[i]!r} is all zeros, so no method can "
        "score it; give the class at least one attribute.")
  _, first, inverse = np.unique(s, axis=0, return_index=True,
                                return_inverse=True)
  inverse = inverse.reshape(-1)
  for i in range(s.shape[0]):
    j = int(first[inverse[i]])
    if j != i:
      raise SemanticSpaceError(
          f"{source}: classes {names[j]!r} and {names[i]!r} have identical "
          "rows, so no zero-shot method can tell them apart; add an "
          "attribute that differs between them or merge the two classes.")
  return s


def l2_normalise(s: np.ndarray) -> np.ndarray:
  """Rows scaled to unit Euclidean norm (zero rows stay zero)."""
  s = np.asarray(s, dtype=np.float32)
  return s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), 1e-12)


def seven_segment_table() -> np.ndarray:
  """The (10, 7) binary seven-segment attribute table of the digits 0-9."""
  return check_class_embeddings(SEVEN_SEGMENT.copy(), DIGIT_NAMES,
                                source="seven-segment table")


def binarise(s: np.ndarray, threshold=None) -> tuple[np.ndarray, np.ndarray]:
  """A binary attribute table and the per-attribute thresholds used.

  A table whose entries are already 0 or 1, or whose rows are binary rows
  scaled to unit norm (every non-zero entry of a row equal), is returned as
  its 0/1 pattern (thresholds 0.5 and 0). Otherwise an attribute is on for a class when its value exceeds
  ``threshold`` (default: the attribute's mean over the classes given), as
  DAP's binary predicate matrices are made from continuous ones.
  """
  s = np.asarray(s, dtype=np.float32)
  if threshold is None:
    top = s.max(axis=1, keepdims=True)
    if np.all((s == 0) | (s == 1)):
      threshold = np.full(s.shape[1], 0.5, np.float32)
    elif np.all(top > 0) and np.all((s == 0) | np.isclose(s, top)):
      threshold = np.zeros(s.shape[1], np.float32)
    else:
      threshold = s.mean(axis=0)
  threshold = np.asarray(threshold, np.float32)
  return (s > threshold).astype(np.float32), threshold


# ---------------------------------------------------------------------------
# Word vectors of class names.
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def _wordllama(dim: int):
  try:
    import wordllama  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "Class-name word vectors need the 'wordllama' package (pip install "
        "'tlax[zsl]' or pip install wordllama), or pass your own vectors as "
        "a mapping {class name: vector}.") from e
  folder = os.path.dirname(wordllama.__file__)
  # The wheel ships its weights and tokenizer inside the package; pointing the
  # cache at the package folder finds both there, and nothing is downloaded.
  return wordllama.WordLlama.load(cache_dir=folder, dim=dim,
                                  disable_download=True)


def _known_tokens(encoder, name: str) -> list[str]:
  tok = encoder.tokenizer.encode(name, add_special_tokens=False)
  unk = getattr(encoder.tokenizer.model, "unk_token", None)
  return [t for t in tok.tokens if t != unk and t.strip("▁ ")]


def word_vectors(class_names: Sequence[str], *,
                 vectors: Mapping[str, Sequence[float]] | None = None,
                 dim: int = 256, normalise: bool = True) -> np.ndarray:
  """Word vectors of class names: the semantic space without attributes.

  With ``vectors`` (the user's own, e.g. word2vec or GloVe rows read from a
  file) each class name is looked up in that mapping. Without, the name is
  encoded offline by WordLlama (Miller, 2024): token embeddings distilled from
  a large language model's input layer, average-pooled over the name's
  tokens; the 256-d weights ship inside the ``wordllama`` wheel. Underscores
  in names are read as spaces (``laptop_computer``).

  Args:
    class_names: the C class names, in label order.
    vectors: optional mapping from class name to a vector (all one length).
    dim: leading WordLlama dimensions kept (its embeddings are trained as
      Matryoshka truncations, so 64 or 128 also work); at most the 256 of
      the packaged weights.
    normalise: scale each row to unit L2 norm.

  Returns:
    (C, D) float32 class embeddings.

  Raises:
    KeyError: a class name missing from ``vectors`` (all missing ones are
      named) or a name with no known token.
    SemanticSpaceError: two names with identical vectors.
  """
  names = [str(n) for n in class_names]
  if vectors is not None:
    missing = [n for n in names if n not in vectors]
    if missing:
      raise KeyError(
          f"No word vector for class name(s) {missing}; the given vectors "
          f"have {len(vectors)} names (e.g. {sorted(vectors)[:5]}). Add the "
          "missing names or rename the classes.")
    rows = [np.asarray(vectors[n], np.float32).reshape(-1) for n in names]
    if len({r.shape for r in rows}) != 1:
      raise SemanticSpaceError(
          "The given word vectors have different lengths: "
          + ", ".join(f"{n}: {r.size}" for n, r in zip(names, rows)))
    s = np.stack(rows)
  else:
    if dim > 256:
      raise ValueError(f"dim={dim}: the packaged WordLlama weights are 256-d; "
                       "use dim <= 256 or pass your own vectors.")
    encoder = _wordllama(256)
    text = [n.replace("_", " ").strip() for n in names]
    empty = [n for n, t in zip(names, text) if not _known_tokens(encoder, t)]
    if empty:
      raise KeyError(
          f"Class name(s) {empty} have no known word token, so they have no "
          "word vector; write the class names as words (e.g. 'laptop "
          "computer') or pass your own vectors.")
    s = np.asarray(encoder.embed(text, norm=False), np.float32)[:, :dim]
  if normalise:
    s = l2_normalise(s)
  return check_class_embeddings(s, names, source="word vectors")
