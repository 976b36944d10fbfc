r"""Deep CORAL (Sun & Saenko, ECCV-W 2016).

Defaults (paper): CORAL on the last layer (logits), lambda = 1.

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/coral.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/coral/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/coral.py:quick \
    --workdir=/tmp/tlax_quick_coral
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The coral config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "coral"
  common.apply_arg(config, arg)
  return config
