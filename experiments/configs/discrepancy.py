r"""A discrepancy method with the loss named in the config.

The source risk plus ``lambda * R(T(x_s), T(x_t))`` for a loss ``R`` of
:mod:`tlax.losses` or of your own (``"package.module:function"``, with
signature ``R(z_s, z_t, **loss_kwargs) -> scalar``), on the named layers
``T`` (:func:`tlax.methods.discrepancy.discrepancy`). DDC, DAN, JAN, Deep
CORAL and CMD are presets of it (their own configs).

COMMAND (a loss defined in ``my_losses.py`` in the current folder):
  python -m experiments.run --config=experiments/configs/discrepancy.py \
    --config.method.loss=my_losses:energy_distance \
    --config.method.layers="('embedding',)" \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/discrepancy/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/discrepancy.py:quick \
    --workdir=/tmp/tlax_quick_discrepancy
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The discrepancy config; ``arg``: :func:`common.apply_arg`."""
  config = common.base_config()
  config.method.name = "discrepancy"
  common.apply_arg(config, arg)
  return config
