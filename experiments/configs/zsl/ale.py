r"""Zero-shot ALE (Akata et al., TPAMI 2016): bilinear compatibility with the weighted ranking loss.

COMMAND: python -m experiments.run --config=experiments/configs/zsl/ale.py \
  --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
  --config.seed=0 --workdir=runs/zsl/ale

Options in ``zsl.grid`` are chosen on held-out seen classes.
"""

from experiments.configs.zsl import common


def get_config(arg=None):
  c = common.zsl_config("ale", {"weight_decay": [1e-5, 1e-4, 1e-3]}, margin=1.0, lr=1e-2, steps=300, weight_decay=1e-4)
  return common.apply_arg(c, arg)
