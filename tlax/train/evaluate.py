"""Evaluation: accuracy and per-class accuracy with one compiled shape.

Inputs are cut into batches of a fixed size and the last batch is padded, so
every call of the jitted prediction function sees the same shape and
evaluation compiles once per method and input shape.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tlax.train.xla import compiler_options as cpu_compiler_options

_PREDICT_FNS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def make_predict_fn(method):
  """Jitted ``(params, state, x) -> predicted labels`` of a method.

  Cached per ``method.predict`` function (a method record is a tuple, which
  cannot be weakly referenced), so repeated evaluations reuse the
  compilation.
  """
  key = getattr(method, "predict", method)
  try:
    return _PREDICT_FNS[key]
  except (KeyError, TypeError):
    pass

  @functools.partial(jax.jit, compiler_options=cpu_compiler_options())
  def predict(params, state, x):
    return jnp.argmax(method.predict(params, state, x), axis=-1)

  try:
    _PREDICT_FNS[key] = predict
  except TypeError:  # not weak-referenceable: no cache
    pass
  return predict


def batched_apply(fn, x, batch_size: int = 256):
  """``fn`` over host array ``x`` in batches of ``batch_size``.

  The last batch is zero-padded, so a jitted ``fn`` compiles once per input
  shape. ``fn`` returns an array or a tuple of arrays (leading axis = batch);
  the result has the same structure, cut back to ``len(x)`` rows.
  """
  x = np.asarray(x)
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
  outs = []
  for start in range(0, x.shape[0], batch_size):
    xb = x[start:start + batch_size]
    m = xb.shape[0]
    if m < batch_size:  # pad to keep one compiled shape
      pad = np.zeros((batch_size - m,) + x.shape[1:], x.dtype)
      xb = np.concatenate([xb, pad], axis=0)
    out = fn(xb)
    single = not isinstance(out, (tuple, list))
    outs.append([np.asarray(o)[:m] for o in ((out,) if single else out)])
  if not outs:
    return None
  parts = [np.concatenate(p, axis=0) for p in zip(*outs)]
  return parts[0] if single else tuple(parts)


def predict_labels(method, params, state, x, *, batch_size: int = 256
                   ) -> np.ndarray:
  """Predicted labels of ``x`` (host array), in batches of ``batch_size``."""
  predict = make_predict_fn(method)
  out = batched_apply(lambda xb: predict(params, state, xb), x, batch_size)
  return np.zeros((0,), np.int32) if out is None else out


def classification_metrics(pred, y, num_classes: int | None = None) -> dict:
  """Accuracy (percent), per-class accuracy and their mean from labels.

  Classes absent from ``y`` get ``None`` in ``per_class_accuracy`` and do not
  count in ``mean_class_accuracy``.
  """
  pred = np.asarray(pred).reshape(-1)
  y = np.asarray(y).reshape(-1)
  if pred.shape != y.shape:
    raise ValueError(f"{pred.shape[0]} predictions for {y.shape[0]} labels.")
  if num_classes is None:
    num_classes = int(max(y.max(initial=-1), pred.max(initial=-1))) + 1
  if y.size == 0:
    return {"accuracy": None, "per_class_accuracy": [None] * num_classes,
            "mean_class_accuracy": None, "num_examples": 0}
  correct = pred == y
  per_class = []
  for c in range(num_classes):
    mask = y == c
    per_class.append(float(100.0 * correct[mask].mean()) if mask.any()
                     else None)
  present = [a for a in per_class if a is not None]
  return {"accuracy": float(100.0 * correct.mean()),
          "per_class_accuracy": per_class,
          "mean_class_accuracy": float(np.mean(present)),
          "num_examples": int(y.size)}


def evaluate(method, params, state, x, y, batch_size: int = 256,
             num_classes: int | None = None) -> dict:
  """Evaluates a method's classifier on ``(x, y)``.

  Args:
    method: a :class:`tlax.methods.Method`.
    params, state: the method's parameters and non-trainable state.
    x, y: inputs and integer labels (host arrays).
    batch_size: evaluation batch size (the last batch is padded).
    num_classes: number of classes (default ``method.num_classes``).

  Returns:
    A dict with ``accuracy`` (percent), ``per_class_accuracy`` (a list of
    percent, None for an absent class), ``mean_class_accuracy`` (percent)
    and ``num_examples``; the accuracies are None when ``x`` is empty.
  """
  if num_classes is None:
    num_classes = getattr(method, "num_classes", None)
  pred = predict_labels(method, params, state, x, batch_size=batch_size)
  return classification_metrics(pred, y, num_classes)
