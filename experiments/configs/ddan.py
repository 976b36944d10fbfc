r"""DDAN: dynamic distribution adaptation with a learned mu (Wang et al., TIST 2020).

Defaults: (1-mu) MK-MMD + mu class-conditional MMD (soft target labels) on the
head input, mu from in-graph proxy A-distances, lambda = 1 ramped.

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/ddan.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/ddan/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/ddan.py:quick \
    --workdir=/tmp/tlax_quick_ddan
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The ddan config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "ddan"
  common.apply_arg(config, arg)
  return config
