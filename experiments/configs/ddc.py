r"""DDC: linear MMD on the adaptation layer (Tzeng et al., 2014).

Defaults (paper): lambda = 0.25 on the head input ("embedding").

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/ddc.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/ddc/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/ddc.py:quick \
    --workdir=/tmp/tlax_quick_ddc
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The ddc config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "ddc"
  common.apply_arg(config, arg)
  return config
