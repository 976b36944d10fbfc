r"""Self-taught learning (Raina et al., ICML 2007): one feature learner.

A representation is learned on unlabelled source data, the target's ``k``
labelled examples per class are encoded with it, and a linear classifier
(L2 logistic regression, C = 1) is trained on them (tlax.selftaught.protocol).
The argument names the learner: ``raw``, ``pca``, ``sparse_coding``,
``sparse_autoencoder``, ``denoising_autoencoder`` or ``conv_sparse_coding``
(default ``sparse_coding``), optionally followed by ``,quick``.

Settings (chosen a priori, the same on every task): 16x16 grey images (32x32
for COIL-20 targets); at most 2000 unlabelled examples; PCA with 64
components; sparse coding with 128 atoms, alpha = 0.2 (inputs centred),
30 alternations of 20 FISTA steps; sparse autoencoder with 196 sigmoid units,
rho = 0.1, beta = 3, lambda = 3e-3, 200 L-BFGS iterations (the UFLDL
exercise's values, fewer iterations); denoising autoencoder with 256 ReLU
units, 30% masking noise, 1000 Adam steps of 128; convolutional sparse
coding with 128 atoms of 6x6 windows (alpha = 0.2, 50000 windows, 30
alternations), codes summed over a 2x2 grid of image regions (``PATCH``
and ``POOL``, chosen among windows of 5, 6, 8 and grids of 2, 3 on
development tasks with no target example of the reported ones:
``experiments/selftaught_dev.py``, docs/results_self_taught_dev.md). The
seed sets the learner's initialisation and the labelled draws. ``k`` values
larger than a target class allows (one example per class must remain for
testing) are skipped and listed in ``skipped_ks`` (``ks_too_large="error"``
raises instead).

COMMAND:
  python -m experiments.run \
    --config=experiments/configs/selftaught/classification.py:sparse_coding \
    --config.source=mnist_usps/mnist --config.target=fonts/letters \
    --config.seed=0 --workdir=runs/selftaught/sparse_coding/mnist_usps_mnist--fonts_letters/0

Quick mode (seconds, the embedded digits 5-9 -> 0-4 task; used by tests):
  python -m experiments.run \
    --config=experiments/configs/selftaught/classification.py:sparse_coding,quick \
    --workdir=/tmp/tlax_quick_selftaught
"""

import ml_collections
from ml_collections import config_dict

# Window side and pooling grid of conv_sparse_coding: the best average on
# the development tasks (experiments/selftaught_dev.py).
PATCH = 6
POOL = 2

LEARNERS = ("raw", "pca", "sparse_coding", "sparse_autoencoder",
            "denoising_autoencoder", "conv_sparse_coding")


def learner_settings() -> ml_collections.ConfigDict:
  """Keyword arguments of every learner (tlax.selftaught.learners)."""
  return ml_collections.ConfigDict({
      "raw": {},
      "pca": {"n_components": 64},
      "sparse_coding": {"n_atoms": 128, "alpha": 0.2, "n_iter": 30,
                        "code_steps": 20},
      "sparse_autoencoder": {"n_hidden": 196, "rho": 0.1, "beta": 3.0,
                             "weight_decay": 3e-3, "steps": 200},
      "denoising_autoencoder": {"n_hidden": 256, "noise": 0.3, "steps": 1000,
                                "batch_size": 128},
      "conv_sparse_coding": {"patch": PATCH, "pool": POOL, "n_atoms": 128,
                             "alpha": 0.2, "n_patches": 50000, "n_iter": 30,
                             "code_steps": 20},
  })


def base() -> ml_collections.ConfigDict:
  """Fields shared by the self-taught configs."""
  c = ml_collections.ConfigDict()
  c.runner = "tlax.selftaught.run:run"
  c.source = "digits/sklearn[5-9]"
  c.target = "digits/sklearn[0-4]"
  c.seed = 0
  c.data_dir = config_dict.placeholder(str)  # None: $TLAX_DATA_DIR
  c.image_size = config_dict.placeholder(int)  # None: 32 for coil20, else 16
  c.n_patches = 5000          # photos/sklearn: patches cut from the photos
  c.max_unlabelled = 2000
  # Per-domain options (key: domain name with "/" -> "_").
  c.domain_options = ml_collections.ConfigDict(
      {"fonts_letters": {"n_train": 2600, "n_test": 2600}})
  c.method = ml_collections.ConfigDict()
  c.method.name = "sparse_coding"
  c.learner = learner_settings()
  c.plots = True
  c.quick = False
  return c


def get_config(arg: str | None = None):
  """The config of one learner; ``arg``: ``<learner>[,quick]``."""
  c = base()
  c.protocol = "classification"
  c.ks = (1, 5, 10, 50)
  c.ks_too_large = "skip"     # or "error"
  c.classifier = "logistic"   # or "linear_svm"
  c.C = 1.0
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    if item == "quick":
      make_quick(c)
    elif item in LEARNERS:
      c.method.name = item
    else:
      raise ValueError(f"Unknown config argument {item!r}; valid: 'quick' or "
                       f"a learner ({', '.join(LEARNERS)}).")
  return c


def make_quick(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks the learners and the protocol to a run of seconds."""
  c.quick = True
  c.ks = (1, 5)
  c.max_unlabelled = 300
  c.n_patches = 300
  c.plots = False
  c.learner.pca.n_components = 8
  c.learner.sparse_coding.update({"n_atoms": 16, "n_iter": 3,
                                  "code_steps": 5, "transform_steps": 10})
  c.learner.sparse_autoencoder.update({"n_hidden": 16, "steps": 5})
  c.learner.denoising_autoencoder.update({"n_hidden": 16, "steps": 20,
                                          "batch_size": 32})
  c.learner.conv_sparse_coding.update({"n_atoms": 16, "n_patches": 2000,
                                       "n_iter": 3, "code_steps": 5})
  return c
