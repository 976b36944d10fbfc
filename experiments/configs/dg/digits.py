r"""Digits: MNIST, USPS, SynDigits and MNIST-M, each held out in turn.

16x16 RGB images (grey digits repeated to three channels), LeNet, Adam at a
constant learning rate of 1e-3 without weight decay (DomainBed's optimiser,
whose learning-rate distribution `experiments/dg_search.py` draws from);
2,000 steps. The argument: :mod:`experiments.configs.dg.common`.

COMMAND:
  python -m experiments.run --config=experiments/configs/dg/digits.py:erm \
    --config.seed=0 --workdir=runs/dg/erm/digits--mnistm/0
"""

from experiments.configs.dg import common as dg_common

DOMAINS = ("mnist_usps/mnist", "mnist_usps/usps", "digits/syndigits",
           "digits/mnistm")


def get_config(arg: str | None = None):
  return dg_common.dg_config(
      "+".join(DOMAINS[:3]), DOMAINS[3], arg, channels=3, **{
          "model.name": "lenet", "steps": 2000, "optimizer.name": "adam",
          "optimizer.lr": 1e-3, "optimizer.schedule": "constant",
          "optimizer.weight_decay": 0.0})
