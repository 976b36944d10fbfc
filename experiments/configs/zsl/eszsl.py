r"""Zero-shot ESZSL (Romera-Paredes & Torr, ICML 2015), closed form.

COMMAND: python -m experiments.run --config=experiments/configs/zsl/eszsl.py \
  --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
  --config.seed=0 --workdir=runs/zsl/eszsl

Options in ``zsl.grid`` are chosen on held-out seen classes.
"""

from experiments.configs.zsl import common


def get_config(arg=None):
  c = common.zsl_config("eszsl", {"gamma": [0.1, 1.0, 10.0], "lambda": [0.1, 1.0, 10.0]},
                        gamma=1.0, **{"lambda": 1.0})
  return common.apply_arg(c, arg)
