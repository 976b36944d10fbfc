r"""Zero-shot DeViSE (Frome et al., NeurIPS 2013): linear map into the semantic space with the hinge rank loss.

COMMAND: python -m experiments.run --config=experiments/configs/zsl/devise.py \
  --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
  --config.seed=0 --workdir=runs/zsl/devise

Options in ``zsl.grid`` are chosen on held-out seen classes.
"""

from experiments.configs.zsl import common


def get_config(arg=None):
  c = common.zsl_config("devise", {"weight_decay": [1e-5, 1e-4, 1e-3]}, margin=0.1, lr=1e-2, steps=300, weight_decay=1e-4)
  return common.apply_arg(c, arg)
