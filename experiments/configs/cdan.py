r"""CDAN: conditional adversarial adaptation (Long et al., NeurIPS 2018).

Defaults (paper / released code): multilinear map of the head input and
the softmax (randomized, 1024-d, when d*C > 4096), discriminator 1024-1024-1
with dropout 0.5, GRL ramp 2/(1+exp(-10p))-1, lambda = 1.

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/cdan.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/cdan/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/cdan.py:quick \
    --workdir=/tmp/tlax_quick_cdan
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The cdan config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "cdan"
  common.apply_arg(config, arg)
  return config
