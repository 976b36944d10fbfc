"""ColoredMNIST and RotatedMNIST environments built from the MNIST-USPS digits.

Both follow DomainBed's recipes (Gulrajani & Lopez-Paz, ICLR 2021) on the
3,800 16x16 digit images of ``mnist_usps/MNIST_vs_USPS.mat`` (2,000 MNIST and
1,800 USPS; ``$TLAX_DATA_DIR``). The images are shuffled with
``default_rng([seed, <dataset id>])`` and environment ``i`` of ``E`` takes the
images at positions ``i, i + E, i + 2E, ...``: the environments of one seed
are disjoint, so every environment of a dataset must be loaded with the same
seed (as :func:`tlax.data.make_dg_task` does).

ColoredMNIST (Arjovsky et al., 2019), environments ``plus90``, ``plus80``,
``minus90``: the label is ``digit >= 5`` flipped with probability 0.25; the
colour is the label flipped with probability 0.1, 0.2 and 0.9 respectively,
so colour predicts the label 90% and 80% of the time in the first two
environments and 10% of the time in the third. An image has two channels
(red, green); the channel of the other colour is zero.

RotatedMNIST (Ghifary et al., 2015), environments ``0, 15, 30, 45, 60, 75``:
each environment's digits rotated by that many degrees (bilinear, zero fill).

Each environment's examples are in both ``"train"`` and ``"test"`` (the
multi-domain task makes its own in-domain validation split).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tlax.data import domains

COLORED_MNIST_ENVIRONMENTS = {"plus90": 0.1, "plus80": 0.2, "minus90": 0.9}
ROTATED_MNIST_ANGLES = (0, 15, 30, 45, 60, 75)
LABEL_NOISE = 0.25


def _digits(data_dir, seed: int, dataset_id: int):
  """All 3,800 MNIST-USPS digits (N, 16, 16) and labels, seeded order."""
  xs, ys = [], []
  for name in ("mnist_usps/mnist", "mnist_usps/usps"):
    dom = domains.load_domain(name, data_dir=data_dir, seed=0)
    x, y = dom.splits["train"]
    xs.append(np.asarray(x)[..., 0])
    ys.append(np.asarray(y))
  x, y = np.concatenate(xs), np.concatenate(ys)
  perm = np.random.default_rng([seed, dataset_id]).permutation(len(y))
  return x[perm], y[perm]


def colored_mnist_environment(images: np.ndarray, digits: np.ndarray,
                              color_flip: float, rng: np.random.Generator):
  """One ColoredMNIST environment from grey digits.

  Args:
    images: (N, H, W) grey images in [0, 1].
    digits: (N,) digit labels 0..9.
    color_flip: probability that the colour disagrees with the label.
    rng: source of the label and colour flips.

  Returns:
    ``(x, y)``: (N, H, W, 2) float32 red/green images and (N,) int32 binary
    labels (``digit >= 5`` flipped with probability 0.25).
  """
  label = (digits >= 5).astype(np.int32)
  label = label ^ (rng.random(len(label)) < LABEL_NOISE)
  color = label ^ (rng.random(len(label)) < color_flip)
  x = np.stack([images, images], axis=-1).astype(np.float32)
  x[np.arange(len(x)), :, :, 1 - color] = 0.0  # colour 0: red, 1: green
  return x, label.astype(np.int32)


def load_colored_mnist(name, *, image_size, channels, data_dir, seed):
  """``colored_mnist/{plus90,plus80,minus90}`` (module docstring)."""
  del image_size, channels  # adapted by the domain loader
  env = name.split("/", 1)[1]
  envs = list(COLORED_MNIST_ENVIRONMENTS)
  i = envs.index(env)
  images, digits = _digits(data_dir, seed, 1)
  images, digits = images[i::len(envs)], digits[i::len(envs)]
  rng = np.random.default_rng([seed, 2, i])
  x, y = colored_mnist_environment(images, digits,
                                   COLORED_MNIST_ENVIRONMENTS[env], rng)
  return domains.make_domain(
      name, (x, y), (x, y), num_classes=2, kind="image",
      class_names=("digit<5", "digit>=5"),
      info={"transductive": True, "color_flip": COLORED_MNIST_ENVIRONMENTS[env],
            "label_noise": LABEL_NOISE, "seed": seed})


def load_rotated_mnist(name, *, image_size, channels, data_dir, seed):
  """``rotated_mnist/{0,15,30,45,60,75}`` (module docstring)."""
  del image_size, channels
  angle = int(name.split("/", 1)[1])
  i = ROTATED_MNIST_ANGLES.index(angle)
  images, digits = _digits(data_dir, seed, 3)
  n = len(ROTATED_MNIST_ANGLES)
  images, digits = images[i::n], digits[i::n]
  x = np.stack([ndimage.rotate(im, angle, reshape=False, order=1, cval=0.0)
                for im in images])[..., None]
  x = np.clip(x, 0.0, 1.0)
  return domains.make_domain(
      name, (x, digits), (x, digits), num_classes=10, kind="image",
      class_names=tuple(str(d) for d in range(10)),
      info={"transductive": True, "angle": angle, "seed": seed})
