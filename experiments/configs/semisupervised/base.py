"""The semi-supervised family's shared config and its arguments.

Classic semi-supervised learning (:func:`ssl_config`): ``source`` and
``target`` are one domain (the sweep's ``ssl`` task group);
``labels_per_class = k`` examples per class of its training split, chosen
by the seed, are labelled, the rest of the split is unlabelled and the test
split (a seeded held-out fifth for the ``mnist_usps`` domains) is scored.
Semi-supervised domain adaptation (:func:`ssda_config`): a labelled source,
``target_labeled_per_class = k`` labelled target examples and the
unlabelled target (the sweep's ``ssda`` group, SynDigits -> USPS), scored
on the unlabelled target (the transductive protocol of the DA tables).

Protocol (chosen a priori, for a small CPU, not tuned on test labels):
16x16 grey digits, DANN's LeNet, 500 steps of 16 labelled examples and
``mu = 4`` times as many unlabelled ones (``target_batch_size = 64``), SGD
with Nesterov momentum 0.9, learning rate 0.03 with FixMatch's cosine decay
(``schedule = "cosine"``), weight decay 5e-4; evaluation with the EMA of the
parameters (decay 0.99).

Arguments (``--config=<file>:<arg>``, items separated by ``,`` or ``+``):
``quick`` (a ten-step run on the embedded sklearn digits with a small MLP),
``labels=<k>`` (labels per class), ``mu=<ratio>``, ``steps=<n>``, and
``<option>=<number>`` for a numeric method option (``tau=0.9``; the
alignment weight of the semi-supervised DA methods is ``lambda=0.1``).
"""

import ml_collections

from experiments.configs import common

SSL_DOMAIN = "mnist_usps/usps"
SSDA_SOURCE, SSDA_TARGET = "digits/syndigits", "mnist_usps/usps"


def _base(method_name: str, **method) -> ml_collections.ConfigDict:
  c = common.base_config()
  c.image_size = 16
  c.channels = 1
  c.model.name = "lenet"
  c.model.kwargs = ml_collections.ConfigDict({"conv_impl": "auto"})
  c.steps = 500
  c.batch_size = 16
  c.target_batch_size = 64
  c.optimizer.name = "sgd"
  c.optimizer.lr = 0.03
  c.optimizer.nesterov = True
  c.optimizer.schedule = "cosine"
  c.optimizer.weight_decay = 5e-4
  c.eval_every = 250
  c.log_every = 25
  c.method.name = method_name
  for k, v in method.items():
    c.method[k] = v
  return c


def ssl_config(method_name: str, arg=None, **method):
  """Classic semi-supervised learning on one domain."""
  c = _base(method_name, **method)
  c.source = c.target = SSL_DOMAIN
  c.labels_per_class = 4
  c.source_val_fraction = 0.0
  c.iw_validation = False
  return apply_arg(c, arg)


def ssda_config(method_name: str, arg=None, **method):
  """Semi-supervised domain adaptation (labelled source, few target)."""
  c = _base(method_name, **method)
  c.source, c.target = SSDA_SOURCE, SSDA_TARGET
  c.target_labeled_per_class = 4
  c.labeled_batch_size = 16
  common.fill_method_options(c)  # every option settable: lambda=0.1
  return apply_arg(c, arg)


def apply_arg(c, arg):
  """Applies the family's config argument (module docstring)."""
  items = [i.strip() for i in (arg or "").replace("+", ",").split(",")]
  for item in items:
    if not item:
      continue
    if item == "quick":
      _make_quick(c)
      continue
    key, sep, value = item.partition("=")
    key = key.strip()
    try:
      number = float(value)
    except ValueError:
      number = None
    if not sep or number is None:
      raise ValueError(
          f"Config argument {item!r}: expected 'quick', 'labels=<k>', "
          "'mu=<ratio>', 'steps=<n>' or '<method option>=<number>'.")
    if key == "labels":
      if "labels_per_class" in c and c.labels_per_class:
        c.labels_per_class = int(number)
      else:
        c.target_labeled_per_class = int(number)
    elif key == "mu":
      c.target_batch_size = int(round(number * c.batch_size))
    elif key == "steps":
      c.steps = int(number)
      c.eval_every = max(1, c.steps // 4)
    elif key in c.method:
      c.method[key] = number
    else:
      known = sorted(k for k in c.method if k != "name")
      raise ValueError(f"Config argument {item!r}: unknown option {key!r}; "
                       f"method options set here: {', '.join(known) or 'none'}"
                       "; or labels, mu, steps.")
  return c


def _make_quick(c):
  """Ten steps of a small MLP on the embedded sklearn digits."""
  labels = c.get("labels_per_class", 0)
  common.make_quick(c)
  c.batch_size = 8
  c.target_batch_size = 16
  c.eval_every = c.checkpoint_every = 5
  if labels:
    c.source = c.target = "digits/sklearn"
    c.labels_per_class = min(labels, 2) if labels > 0 else -1
  else:
    c.source, c.target = "digits/sklearn", "digits/sklearn"
    c.domain_options = ml_collections.ConfigDict()
    c.target_labeled_per_class = 2
    c.labeled_batch_size = 4
  return c
