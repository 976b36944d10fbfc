r"""SDT: simultaneous deep transfer across domains and tasks (Tzeng et al., ICCV 2015).

Defaults (paper): domain confusion weight lambda = 0.01, soft-label weight
nu = 0.1, temperature 2, a linear domain classifier on the head input. The
soft-label loss needs labelled target examples (config.target_labeled_per_class).

Every value here is a default of :mod:`tlax.methods.sdt` (see its docstring for
sources); swept values (``lambda`` and the other ``default_hparams``) become
float32 scalars in the TrainState.

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
  config.method["lambda"] = 0.01
  config.method.nu = 0.1
  config.method.temperature = 2.0
  config.method.feature_layer = 'embedding'
  config.method.disc_hidden = ()
  config.method.disc_dropout = 0.0
  config.method.soft_label_momentum = 0.9
  config.method.soft_label_target = 'labelled'
  config.method.pseudo_threshold = 0.9
  config.method.align_start = 0  # steps without alignment (tlax option)
  common.apply_arg(config, arg)
  return config
