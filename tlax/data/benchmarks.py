"""The benchmark-file domains, read through the TFDS builders.

* ``office_caltech10/{amazon,caltech,dslr,webcam}``: 800-d SURF features,
  10 classes, kind ``"features"``. Option ``preprocess``: ``"standard"``
  (default; rows divided by their sum, then columns z-scored within the
  domain), ``"l2"`` (standard, then unit-L2 rows) or ``"none"`` (raw counts).
* ``mnist_usps/{mnist,usps}``: 16x16 grey digits in [0, 1], 10 classes.
* ``coil20/{coil1,coil2}``: 32x32 grey objects in [0, 1], 20 classes.

Splits follow the published protocol (JDA, BDA, MEDA, ...), which is
transductive: every target example is unlabelled training data and test data.
So by default ``splits["train"]`` and ``splits["test"]`` are the same full set
(``info["transductive"] = True``). The option ``holdout=f`` (0 < f < 1) makes a
seeded stratified held-out test split of fraction ``f`` instead.
"""

from __future__ import annotations

import numpy as np

from tlax.data import domains
from tlax.data import files
from tlax.data import tfds_builders


def _surf_stats(raw: np.ndarray) -> dict:
  """Summary statistics of the standard SURF preprocessing of one domain."""
  s = raw.sum(axis=1)
  rows = raw / np.where(s == 0, 1.0, s)[:, None]
  mu, sd = rows.mean(axis=0), rows.std(axis=0)
  return {
      "steps": "x / x.sum(axis=1) per row (rows summing to 0 are left at 0), "
               "then (x - mean) / std per column with the population std "
               "(MATLAB zscore(X, 1)) computed on this domain alone; constant "
               "columns become 0",
      "row_sum": {"min": float(s.min()), "median": float(np.median(s)),
                  "max": float(s.max()), "zero_rows": int((s == 0).sum())},
      "column_mean": {"min": float(mu.min()), "mean": float(mu.mean()),
                      "max": float(mu.max())},
      "column_std": {"min": float(sd.min()), "median": float(np.median(sd)),
                     "max": float(sd.max()), "constant_columns":
                         int((sd == 0).sum())},
  }


def load_benchmark(name, *, image_size=None, channels=None, data_dir=None,
                   seed=0, holdout: float = 0.0, preprocess: str = "standard"):
  """A benchmark-file domain (see module docstring)."""
  del image_size, channels  # handled by load_domain
  collection = name.split("/")[0]
  if preprocess not in ("standard", "l2", "none"):
    raise ValueError(f"preprocess must be 'standard', 'l2' or 'none', got "
                     f"{preprocess!r}.")
  if preprocess != "standard" and collection != "office_caltech10":
    raise ValueError(f"{name}: the preprocess option applies to the "
                     "office_caltech10 features only; images are raw pixels "
                     "in [0, 1].")
  arrays, path = tfds_builders.load(name, files_dir=data_dir)
  y = arrays["label"].astype(np.int32)
  info = {
      "source": f"{files.FILES.get(name, files.FILES.get(collection)).relpath}"
                f" from {files.PUBLIC_SOURCE}",
      "tfds_dir": path,
      "seed": seed,
  }
  if collection == "office_caltech10":
    kind = "features"
    class_names = files.OFFICE_CALTECH10_CLASSES
    if preprocess == "none":
      x = arrays["raw"].astype(np.float32)
    else:
      x = arrays["features"]
      if preprocess == "l2":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    info["preprocess"] = preprocess
    info["preprocessing"] = _surf_stats(arrays["raw"].astype(np.float64))
  else:
    kind = "image"
    x = arrays["image"]
    if collection == "mnist_usps":
      class_names = tuple(str(i) for i in range(10))
    else:  # COIL-20 objects are numbered 1..20
      class_names = tuple(f"object_{i + 1}" for i in range(20))
    info["preprocessing"] = ("raw pixels in [0, 1] as stored; rows reshaped "
                             "to upright images" + (
                                 " (transposed)" if collection == "coil20"
                                 else ""))
  if holdout:
    rng = domains.domain_rng(name, seed, 2)
    tr, te = domains.stratified_split(y, float(holdout), rng)
    info["split"] = (f"seeded stratified held-out test split, holdout="
                     f"{holdout}")
    info["transductive"] = False
    train, test = (x[tr], y[tr]), (x[te], y[te])
  else:
    info["split"] = ("transductive: train and test are the same full set "
                     "(published protocol); holdout=f for a held-out split")
    info["transductive"] = True
    train = test = (x, y)
  return domains.make_domain(name, train, test,
                             num_classes=files.NUM_CLASSES[collection],
                             kind=kind, class_names=class_names, info=info)
