r"""JAN: joint MMD over features and softmax (Long et al., ICML 2017).

Defaults (paper / released code): features with "mean:5", softmax with
sigma = 0.9165 (2 sigma^2 = 1.68), lambda = 1 ramped by 2/(1+exp(-10p))-1.

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/jan.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/jan/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/jan.py:quick \
    --workdir=/tmp/tlax_quick_jan
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The jan config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "jan"
  common.apply_arg(config, arg)
  return config
