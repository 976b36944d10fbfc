r"""DSN: domain separation networks (Bousmalis et al., NeurIPS 2016).

Defaults (fungtion/DSN port, MNIST->MNIST-M): alpha = 0.01 (scale-invariant
reconstruction), beta = 0.075 (difference), gamma = 0.25 (DANN similarity).

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/dsn.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/dsn/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/dsn.py:quick \
    --workdir=/tmp/tlax_quick_dsn
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The dsn config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "dsn"
  common.apply_arg(config, arg)
  return config
