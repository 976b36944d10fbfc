r"""ADDA: adversarial discriminative domain adaptation (Tzeng et al., CVPR 2017).

Defaults (paper): the first half of the steps trains the source encoder and
classifier, the second half the target encoder (initialised from the source
encoder) against a 500-500-1 discriminator; Adam with learning rate 2e-4 and
beta1 = 0.5, constant learning rate, no weight decay. The paper trains the
source model for 10000 steps of batch 128 on 28x28 digits; here the digits
table's LeNet on 16x16 images, batch 64 + 64, the steps of the table.

COMMAND:
  python -m experiments.run --config=experiments/configs/adda.py \
    --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
    --config.seed=0 --workdir=runs/adda/mnist_usps_mnist--mnist_usps_usps/0

Quick mode (a ten-step run on the embedded default task, used by the tests):
  python -m experiments.run --config=experiments/configs/adda.py:quick \
    --workdir=/tmp/tlax_quick_adda
"""

from experiments.configs import common


def get_config(arg: str | None = None):
  """The adda config; ``arg``: :func:`common.apply_arg` ("quick": tests)."""
  config = common.base_config()
  config.method.name = "adda"
  config.optimizer.name = "adam"
  config.optimizer.lr = 2e-4
  config.optimizer.b1 = 0.5
  config.optimizer.schedule = "constant"
  config.optimizer.weight_decay = 0.0
  common.apply_arg(config, arg)
  return config
