r"""DANN: gradient reversal + domain classifier (Ganin et al., JMLR 2016).

Defaults (paper): GRL coefficient lambda * (2/(1+exp(-10p))-1), lambda = 1;
domain classifier 1024-1024-1, dropout 0.5, on the feature extractor output
(LeNet "flat", else "embedding"); SGD momentum 0.9 with the DANN
learning-rate annealing (common.AUTO).

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/dann.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/dann/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/dann.py:quick \
    --workdir=/tmp/tlax_quick_dann
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The dann config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "dann"
  common.apply_arg(config, arg)
  return config
