r"""CMD: central moment discrepancy (Zellinger et al., ICLR 2017).

Defaults (paper): K = 5 moments, lambda = 1, on the head input.

Every value here is a default of :mod:`tlax.methods.cmd` (see its docstring for
sources); swept values (``lambda`` and the other ``default_hparams``) become
float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/cmd.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/cmd/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/cmd.py:quick \
    --workdir=/tmp/tlax_quick_cmd
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The cmd config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "cmd"
  config.method["lambda"] = 1.0
  config.method.layers = ('embedding',)
  config.method.n_moments = 5
  config.method.bounds = (0.0, 1.0)
  config.method.warmup = False
  config.method.squash = "sigmoid"
  config.method.align_start = 0  # steps without alignment (tlax option)
  common.apply_arg(config, arg)
  return config
