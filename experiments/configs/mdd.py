r"""MDD: margin disparity discrepancy (Zhang, Liu, Long & Jordan, ICML 2019).

Defaults (the authors' implementation, TLlib): margin factor gamma = 4, an
auxiliary classifier f' (Dense 1024, ReLU, dropout 0.5, Dense) on the head
input (LeNet's last hidden layer) behind a
gradient reversal layer whose coefficient rises to lambda = 0.1 on DANN's
ramp over TLlib's 1,000-step warm start; SGD momentum 0.9 with the DANN
learning-rate annealing (common.AUTO), as for DANN.

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda``, ``margin``) become
float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/mdd.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/mdd/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/mdd.py:quick \
    --workdir=/tmp/tlax_quick_mdd
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The mdd config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "mdd"
  common.apply_arg(config, arg)
  return config
