r"""PixelDA: pixel-level adaptation with a conditional GAN (Bousmalis et al., CVPR 2017).

Defaults: GAN weight lambda = 1 (the paper's alpha/beta = 0.013/0.011 with the
task weight 1), no content loss, noise in [-1, 1]^10. The paper's generator
(6 residual blocks of 64 filters) and critic (64..512 filters) are shrunk to
3 blocks of 32 filters and a 32-64-128 critic so that a run fits a shared
2-core CPU; set gen_features=64, gen_blocks=6,
critic_features=(64,128,256,512) for the paper's sizes.

The generator's output is unbounded (input plus residual), and a gradient
spike can blow it up: on the default task one seed of three diverged to NaN
at step 93. ``--config.optimizer.clip_norm=10`` prevents it (all three seeds
finish, 50.4 +- 0.3; docs/results_deep_da.md). The tables' runs use no
clipping, so the default stays 0.

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/pixelda.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/pixelda/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/pixelda.py:quick \
    --workdir=/tmp/tlax_quick_pixelda
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The pixelda config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "pixelda"
  # Smaller networks than the paper's for CPU runs (see the module doc).
  config.method.gen_features = 32
  config.method.gen_blocks = 3
  config.method.critic_features = (32, 64, 128)
  common.apply_arg(config, arg)
  return config
