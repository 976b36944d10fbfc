"""The shared config of the prototype / contrastive family.

Task: ``colourdigits/source -> colourdigits/target`` (the semantic-bias
benchmark, :mod:`tlax.data.semantic_bias`), an MLP encoder on 16x16 RGB
images (one hidden layer of 256: the embedding), Adam, 600 steps of 64.
The family runner (:mod:`tlax.prototypes.runner`) adds the bias measures and
5-way 1- and 5-shot accuracies (600 episodes, 15 queries per class) on
``fonts/letters`` (26 classes never trained on) and ``coil20/coil1`` (20
objects, 72 views each; needs ``TLAX_DATA_DIR``) to ``result.json``.

Config arguments (``--config=<file>:<arg>``, comma-separated) besides
``quick`` and numeric hyper-parameters choose another task:

* ``syndigits``: ``digits/syndigits`` (10,000 rendered digits) ->
  ``digits/sklearn``, the few-shot encoder of the letters and COIL20 tables
  (letters come from the same renderer);
* ``mnist_usps``: ``mnist_usps/mnist -> mnist_usps/usps`` (grey), no
  few-shot evaluation;
* ``lenet``: the digit tables' LeNet instead of the MLP, 2000 steps.

``quick`` shrinks everything to a few seconds (tests).
"""

import ml_collections

from experiments.configs import common


def family_config(method: str, arg: str | None = None
                  ) -> ml_collections.ConfigDict:
  """The family's config with ``config.method.name = method``."""
  c = common.base_config()
  c.runner = "tlax.prototypes.runner:run"
  c.source = "colourdigits/source"
  c.target = "colourdigits/target"
  c.image_size = 16
  c.channels = 3
  c.model.name = "mlp"
  c.model.kwargs = ml_collections.ConfigDict({"hidden": (256,),
                                              "dropout": 0.0})
  c.optimizer.name = "adam"
  c.optimizer.lr = 1e-3
  c.optimizer.schedule = "constant"
  c.optimizer.weight_decay = 0.0
  c.steps = 600
  c.batch_size = 64
  c.eval_every = 200
  c.iw_validation = False
  c.few_shot = ml_collections.ConfigDict({
      "domains": ("fonts/letters", "coil20/coil1"), "shots": (1, 5), "n_way": 5,
      "n_query": 15, "episodes": 600,
      "options": {"fonts_letters": {"n_train": 1300, "n_test": 260}}})
  c.method.name = method
  _method_defaults(c, method)
  items = [a.strip() for a in (arg or "").split(",")]
  if "syndigits" in items:
    c.source, c.target = "digits/syndigits", "digits/sklearn"
    c.domain_options = ml_collections.ConfigDict(
        {"source": {"n_train": 10000, "n_test": 1000}})
  if "mnist_usps" in items:
    c.source, c.target = "mnist_usps/mnist", "mnist_usps/usps"
    c.channels = 1
    c.few_shot.domains = ()
  if "lenet" in items:
    c.model.name = "lenet"
    c.model.kwargs = ml_collections.ConfigDict()
    c.steps = 2000
  common.apply_arg(c, ",".join(a for a in items
                               if a not in ("syndigits", "mnist_usps",
                                            "lenet")))
  if c.quick:
    c.model.kwargs = ml_collections.ConfigDict({"hidden": (32,),
                                                "dropout": 0.0})
    c.optimizer.name = "adam"
    c.optimizer.lr = 1e-3
    c.optimizer.schedule = "constant"
    c.few_shot.domains = tuple(d for d in c.few_shot.domains
                               if d == "fonts/letters")
    c.few_shot.episodes = 20
    c.few_shot.n_query = 3
    c.few_shot.options = {"fonts_letters": {"n_train": 260, "n_test": 26}}
  return c


def _method_defaults(c, method):
  """The options each method's config shows (the factory's defaults)."""
  if method == "source_only":
    return
  if method == "coral":  # cross-entropy + CORAL on the embedding
    c.method["lambda"] = 1.0
    c.method.layers = ("embedding",)
    return
  c.method.align = "none"
  c.method["lambda"] = 1.0
  c.method.ssl_weight = 0.0
  if method == "protonet":
    c.method.n_way = 0
    c.method.metric = "euclidean"
    c.method.temperature = 1.0
  if method in ("supcon", "prototype_head"):
    c.method.temperature = 0.1
