"""Bias measures on the ``colourdigits`` benchmark.

For a trained classifier ``predict`` and the target digits of a seed:

* ``bias_gap``: accuracy on the target digits drawn in their source class
  colour (``aligned``) minus accuracy on the same digits drawn in another
  class's source colour (``reversed``), in percentage points: the target
  accuracy the nuisance can add or take away. 0 for a classifier that
  ignores colour.
* ``counterfactual_consistency``: the share (percent) of target digits whose
  prediction stays the same when only their colour is redrawn at random.
* ``accuracy_aligned``, ``accuracy_reversed``, ``accuracy_recoloured``: the
  accuracies behind them.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from tlax.data import semantic_bias


def bias_measures(predict_labels: Callable[[np.ndarray], np.ndarray], *,
                  seed: int = 0, image_size=None) -> dict:
  """The measures of the module docstring.

  Args:
    predict_labels: maps (n, h, w, 3) images to (n,) predicted labels.
    seed: the domain seed of ``colourdigits/target``.
    image_size: the image size the classifier was trained on.

  Returns:
    A dict of floats (percent / percentage points).
  """
  x, y = semantic_bias.recoloured("random", seed=seed, image_size=image_size,
                                  stream=1)  # the target domain's colours
  x_cf, _ = semantic_bias.recoloured("random", seed=seed,
                                     image_size=image_size, stream=4)
  x_al, _ = semantic_bias.recoloured("aligned", seed=seed,
                                     image_size=image_size)
  x_rev, _ = semantic_bias.recoloured("reversed", seed=seed,
                                      image_size=image_size)
  p, p_cf = predict_labels(x), predict_labels(x_cf)
  acc = lambda pred: 100.0 * float(np.mean(np.asarray(pred) == y))
  a_al, a_rev = acc(predict_labels(x_al)), acc(predict_labels(x_rev))
  return {"bias_gap": a_al - a_rev, "accuracy_aligned": a_al,
          "accuracy_reversed": a_rev, "accuracy_random": acc(p),
          "accuracy_recoloured": acc(p_cf),
          "counterfactual_consistency":
              100.0 * float(np.mean(np.asarray(p) == np.asarray(p_cf)))}
