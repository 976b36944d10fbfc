r"""Pictures of learned self-taught features (dictionary atoms, encoder rows).

  python -m experiments.selftaught_atoms --out=docs/img
  python -m experiments.selftaught_atoms --learners=conv_sparse_coding \
    --out=docs/img

Writes ``selftaught_atoms_<learner>_<source>.png``: the first 64 atoms of
each learner of ``--learners`` (sparse coding, the sparse autoencoder's
encoder rows, convolutional sparse coding's 6x6 windows), learned
with the settings of ``experiments/configs/selftaught/classification.py`` on
the unlabelled MNIST images of ``mnist_usps`` (16x16, needs
``$TLAX_DATA_DIR``) and on 32x32 patches of scikit-learn's sample photos
(seed 0).
"""

import os

from absl import app
from absl import flags

from experiments.configs.selftaught import classification
from tlax.selftaught import learners
from tlax.selftaught import run as runner

_OUT = flags.DEFINE_string("out", "docs/img", "Folder of the PNGs.")
_LEARNERS = flags.DEFINE_list("learners", ["sparse_coding",
                                           "sparse_autoencoder"], "Learners.")


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  for source, target in (("mnist_usps/mnist", "fonts/letters"),
                         (runner.PHOTOS, "coil20/coil1")):
    config = classification.get_config()
    config.source, config.target = source, target
    x, _, _ = runner.load_arrays(source, config)
    size = runner.image_size(config)
    for name in _LEARNERS.value:
      config.method.name = name
      learner = runner.make_learner(config, 0, (size, size)).fit(x[:2000])
      tag = source.split("/")[-1]
      path = os.path.join(_OUT.value, f"selftaught_atoms_{name}_{tag}.png")
      shape = getattr(learner, "atom_shape", (size, size))
      learners.plot_atoms(learner.atoms, shape, path, n=64,
                          title=f"{name}, {source}")
      print(path)


if __name__ == "__main__":
  app.run(main)
