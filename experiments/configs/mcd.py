r"""MCD: maximum classifier discrepancy (Saito et al., CVPR 2018).

Defaults (paper, digits): n_gen = 4 generator updates per step, discrepancy
weight 1; Adam, learning rate 2e-4, weight decay 5e-4 (the authors' code),
constant learning rate. The paper trains with batch 128 on 28x28 or 32x32
digits; here the digits table's LeNet on 16x16 images and batch 64 + 64.

COMMAND:
  python -m experiments.run --config=experiments/configs/mcd.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/mcd/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/mcd.py:quick \
    --workdir=/tmp/tlax_quick_mcd
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The mcd config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "mcd"
  config.optimizer.name = "adam"
  config.optimizer.lr = 2e-4
  config.optimizer.schedule = "constant"
  config.optimizer.weight_decay = 5e-4
  common.apply_arg(config, arg)
  return config
