r"""SDT: simultaneous deep transfer across domains and tasks (Tzeng et al., ICCV 2015).

Defaults (paper): domain confusion weight lambda = 0.01, soft-label weight
nu = 0.1, temperature 2, a linear domain classifier on the head input. The
soft-label loss needs labelled target examples (config.target_labeled_per_class).

The method's options take the defaults of its factory (see its docstring
for sources) unless set here; swept values (``lambda`` and the method's
other ``hparams``) become float32 scalars in the TrainState.

COMMAND:
  python -m experiments.run --config=experiments/configs/sdt.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/sdt/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/sdt.py:quick \
    --workdir=/tmp/tlax_quick_sdt
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The sdt config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "sdt"
  common.apply_arg(config, arg)
  return config
