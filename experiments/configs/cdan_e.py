r"""CDAN+E: CDAN with entropy conditioning (Long et al., NeurIPS 2018).

As CDAN, each example's domain loss weighted by 1 + exp(-H(softmax)).

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/cdan_e.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/cdan_e/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/cdan_e.py:quick \
    --workdir=/tmp/tlax_quick_cdan_e
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The cdan_e config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "cdan_e"
  common.apply_arg(config, arg)
  return config
