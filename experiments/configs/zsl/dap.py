r"""Zero-shot DAP (Lampert et al.): per-attribute logistic classifiers, class posterior from the attribute signature.

COMMAND: python -m experiments.run --config=experiments/configs/zsl/dap.py \
  --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
  --config.seed=0 --workdir=runs/zsl/dap

Options in ``zsl.grid`` are chosen on held-out seen classes.
"""

from experiments.configs.zsl import common


def get_config(arg=None):
  c = common.zsl_config("dap", {"weight_decay": [1e-5, 1e-4, 1e-3]}, lr=1e-2, steps=300, weight_decay=1e-4)
  return common.apply_arg(c, arg)
