"""The family runner: train, then measure bias and few-shot transfer.

``config.runner = "tlax.prototypes.runner:run"``. The model is trained by
:func:`tlax.train.train_and_evaluate` in ``<workdir>/train``; its final
checkpoint is then evaluated and ``<workdir>/result.json`` holds the
trainer's result plus:

* when the target is ``colourdigits/target``: the fields of
  :func:`tlax.prototypes.bias.bias_measures`;
* for each domain of ``config.few_shot.domains`` (classes never trained on,
  loaded at the task's image size and channels, train and test splits
  pooled), each ``k`` of ``config.few_shot.shots``: ``few_shot`` entries
  ``{"domain", "n_way", "k_shot", "prototype", "prototype_ci95",
  "linear_probe", "linear_probe_ci95", "episodes"}`` from
  :func:`tlax.prototypes.episodes.few_shot_accuracy` on the embeddings, and
  flat fields ``fs_<collection>_<k>shot_proto`` / ``..._probe`` for tables.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np

from tlax.prototypes import bias as bias_lib
from tlax.prototypes import episodes


def _restore(workdir):
  from tlax.train import checkpoint as ckpt_lib  # pylint: disable=g-import-not-at-top
  manager = ckpt_lib.read_only_manager(os.path.join(workdir, "checkpoints"))
  try:
    tree = ckpt_lib.restore_state_numpy(manager, manager.latest_step())
  finally:
    manager.close()
  return tree["params"], tree.get("state") or {}


def run(config, workdir) -> dict:
  """Runs one experiment of the family (module docstring)."""
  from tlax import data  # pylint: disable=g-import-not-at-top
  from tlax import train  # pylint: disable=g-import-not-at-top
  from tlax.train import metrics_log  # pylint: disable=g-import-not-at-top
  from tlax.train import trainer  # pylint: disable=g-import-not-at-top
  workdir = os.path.abspath(os.fspath(workdir))
  path = os.path.join(workdir, "result.json")
  previous = trainer.stored_result(workdir, trainer.resolve_config(config),
                                  partial=True)
  if previous is not None:
    return previous
  train_dir = os.path.join(workdir, "train")
  result = dict(train.train_and_evaluate(config, train_dir))
  config = trainer.resolve_config(config)
  task = trainer.load_task(config)
  config = trainer.resolve_config(config, task)
  method = trainer.build_method(config, task)
  params, state = _restore(train_dir)
  params, state = jax.device_put(params), jax.device_put(state)
  bs = int(config.eval_batch_size)

  if str(config.target).startswith("colourdigits/"):
    result.update(bias_lib.bias_measures(
        lambda x: train.predict_labels(method, params, state, x,
                                              batch_size=bs),
        seed=int(config.seed), image_size=config.get("image_size")))

  fs = config.get("few_shot", None)
  if fs is not None and fs.get("domains"):
    embed = jax.jit(lambda x: method.features(params, state, x)["embedding"])
    h, w, ch = task.xs.shape[1:] if task.xs.ndim == 4 else (None,) * 3
    entries = []
    for name in fs.domains:
      dom = data.load_domain(name, image_size=(h, w) if h else None,
                             channels=ch, data_dir=config.get("data_dir"),
                             seed=int(config.seed),
                             **dict(fs.get("options", {}).get(
                                 name.replace("/", "_"), {})))
      x = np.concatenate([dom.splits["train"][0], dom.splits["test"][0]])
      y = np.concatenate([dom.splits["train"][1], dom.splits["test"][1]])
      if (dom.splits["test"][0] is dom.splits["train"][0]
          or np.array_equal(dom.splits["test"][0], dom.splits["train"][0])):
        x, y = dom.splits["train"]
      if x.shape[1:] != task.xs.shape[1:]:
        raise ValueError(
            f"few_shot domain {name!r} has inputs of shape {x.shape[1:]}, the "
            f"encoder takes {task.xs.shape[1:]}; set config.image_size / "
            "config.channels so both match.")
      feats = np.concatenate([np.asarray(embed(x[i:i + bs]))
                              for i in range(0, len(x), bs)])
      for k in fs.shots:
        acc = episodes.few_shot_accuracy(
            feats, y, n_way=int(fs.n_way), k_shot=int(k),
            n_query=int(fs.n_query), n_episodes=int(fs.episodes),
            seed=int(config.seed))
        entries.append({"domain": name, "n_way": int(fs.n_way),
                        "k_shot": int(k), **acc})
        short = name.split("/")[0]
        result[f"fs_{short}_{k}shot_proto"] = acc["prototype"]
        result[f"fs_{short}_{k}shot_probe"] = acc["linear_probe"]
    result["few_shot"] = entries
  result["config"] = trainer.config_to_dict(config)
  metrics_log.write_atomic(path, json.dumps(result, indent=2) + "\n")
  return result
