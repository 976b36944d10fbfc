"""Shared settings of the zero-shot configs (runner ``tlax.zsl.run:run``).

Each method config is ``zsl_config(<method>, <grid>, **options)``. The task
is ``source``/``target`` (:mod:`tlax.zsl.data`): the digits default to
MNIST seen digits -> USPS unseen digits with the seven-segment table, three
unseen digits drawn by ``seed`` (one split per seed), HOG features of the
images (fixed, not learned on any class; feature-vector domains such as
Office-Caltech10 SURF are used as stored). ``zsl.grid`` lists
method options chosen on held-out seen classes (never on unseen labels).
The argument ``quick`` shrinks the run to seconds (tests); other arguments
``<option>=<number>`` set ``method.<option>``.
"""

import ml_collections
from ml_collections import config_dict


def zsl_config(method: str, grid: dict | None = None,
               **options) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.runner = "tlax.zsl.run:run"
  c.source = "mnist_usps/mnist"
  c.target = "mnist_usps/usps"
  c.seed = 0
  c.data_dir = config_dict.placeholder(str)  # None: $TLAX_DATA_DIR
  c.method = ml_collections.ConfigDict({"name": method, **options})
  c.zsl = ml_collections.ConfigDict()
  c.zsl.num_unseen = 3
  c.zsl.unseen = ""           # comma-separated class names: a fixed split
  c.zsl.seen_test_fraction = 0.2
  c.zsl.semantic = "auto"     # attributes (digits) | word_vectors
  c.zsl.normalise_embeddings = True  # unit-L2 class embeddings
  c.zsl.features = "auto"     # auto: hog for images, vectors as stored | raw
  c.zsl.hog_cells = 4
  c.zsl.preprocess = "center_l2"
  c.zsl.image_size = 32       # PACS
  c.zsl.val_classes = 0       # 0: a fifth of the seen classes (at least 2)
  c.zsl.val_folds = 3         # validation splits for the calibration
  c.zsl.calibrate = True
  c.zsl.grid = ml_collections.ConfigDict(grid or {})
  c.plots = ""                # "tsne": tsne.png and calibration.png
  c.quick = False
  return c


def apply_arg(c: ml_collections.ConfigDict, arg: str | None
              ) -> ml_collections.ConfigDict:
  """``quick`` and ``<option>=<number>`` items, comma-separated."""
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    if item == "quick":
      c.quick = True
      for k in ("steps",):
        if k in c.method:
          c.method[k] = 20
      c.zsl.grid = ml_collections.ConfigDict(
          {k: list(v)[:1] for k, v in c.zsl.grid.items()})
      continue
    key, sep, value = item.partition("=")
    key = key.strip()
    if not sep or key not in c.method or key == "name":
      known = sorted(k for k in c.method.keys() if k != "name")
      raise ValueError(f"Unknown config argument {item!r}; valid: 'quick' or "
                       f"'<option>=<number>' for {', '.join(known) or 'none'}.")
    try:
      c.method[key] = type(c.method[key])(float(value))
    except ValueError:
      raise ValueError(f"Config argument {item!r}: {value!r} is not a "
                       "number.") from None
  return c
