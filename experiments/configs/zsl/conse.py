r"""Zero-shot ConSE (Norouzi et al., ICLR 2014) on a softmax classifier of the seen classes.

COMMAND: python -m experiments.run --config=experiments/configs/zsl/conse.py \
  --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
  --config.seed=0 --workdir=runs/zsl/conse

Options in ``zsl.grid`` are chosen on held-out seen classes.
"""

from experiments.configs.zsl import common


def get_config(arg=None):
  c = common.zsl_config("conse", {"top_t": [1, 3, 10]}, top_t=10, lr=1e-2, steps=300, weight_decay=1e-4)
  return common.apply_arg(c, arg)
