r"""Zero-shot SAE (Kodirov et al., CVPR 2017), closed form (Sylvester equation).

COMMAND: python -m experiments.run --config=experiments/configs/zsl/sae.py \
  --config.source=mnist_usps/mnist --config.target=mnist_usps/usps \
  --config.seed=0 --workdir=runs/zsl/sae

Options in ``zsl.grid`` are chosen on held-out seen classes.
"""

from experiments.configs.zsl import common


def get_config(arg=None):
  c = common.zsl_config("sae", {"lambda": [0.05, 0.2, 1.0, 5.0]},
                        space="semantic", **{"lambda": 0.2})
  return common.apply_arg(c, arg)
