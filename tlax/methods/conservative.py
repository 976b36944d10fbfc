"""Fine-tuning methods that stay close to a pretrained source model.

Model-based transfer (DESIGN.md): the network ``f`` starts from a source
checkpoint (``config.finetune``, loaded strictly by
:func:`tlax.train.finetune.init_from_pretrained`) and is trained on the few
labelled target examples. These methods differ in what keeps ``f`` near the
source:

* :class:`Finetune` (``"finetune"``): nothing but the fine-tuning rules of
  the config (freeze, learning-rate multipliers, copy the first k layers):
  full fine-tuning, a linear probe (everything but the head frozen) and layer
  transfer are configs of this one method;
* :class:`L2SP` (``"l2sp"``): a penalty toward the pretrained weights
  (Li, Grandvalet & Davoine, 2018);
* :class:`OutputKL` (``"output_kl"``): output consistency, the KL divergence
  from the frozen source model's predictions on target inputs (the
  distillation term of Learning without Forgetting, Li & Hoiem, 2016, where
  source and target share the label set);
* :class:`LoRA` (``"lora"``): the pretrained kernels are frozen and only a
  low-rank change ``(alpha/r) A B`` of chosen Dense and Conv kernels, plus the
  new head, is trained (Hu et al., 2022; :mod:`tlax.train.lora`).

All of them train on the labelled target examples of a batch (``xtl``,
``ytl``: set ``config.target_labeled_per_class`` and
``config.labeled_batch_size``), or on ``xs, ys`` when a batch has none (a run
whose "source" is the target training set). Unlabelled inputs are not used
unless :class:`OutputKL` is asked to (``method.kl_inputs = "all"``).

They load the checkpoint themselves in :meth:`Finetune.init` (so they need no
trainer support), and set ``loads_pretrained = True`` so that a trainer that
loads ``config.finetune.checkpoint`` for every method does not do it twice.

References:
  Li, Grandvalet, Davoine. Explicit inductive bias for transfer learning with
  convolutional networks. ICML 2018 (L2-SP).
  Li, Hoiem. Learning without forgetting. ECCV 2016.
  Hu et al. LoRA: Low-rank adaptation of large language models. ICLR 2022.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp

from tlax.methods.base import Method
from tlax.methods.base import accuracy
from tlax.methods.base import register
from tlax.methods.base import weighted_cross_entropy

Array = jax.Array
PyTree = Any


def _option(method, key: str, default):
  cfg = method.config.get("method", None) if method.config is not None else None
  if cfg is None:
    return default
  value = cfg.get(key, None)
  return default if value is None else value


def labelled_inputs(batch: Mapping[str, Any]) -> tuple[Array, Array]:
  """The labelled examples a fine-tuning method trains on.

  ``(xtl, ytl)`` when the batch has labelled target examples, else
  ``(xs, ys)``.
  """
  if "xtl" in batch:
    return batch["xtl"], batch["ytl"]
  return batch["xs"], batch["ys"]


# --------------------------------------------------------------------------
# Pure losses.
# --------------------------------------------------------------------------
def l2_sp_penalty(params: PyTree, anchor: PyTree, shared_mask: PyTree,
                  alpha: Array, beta: Array) -> Array:
  """The L2-SP regulariser of Li et al. (2018)::

      alpha/2 * sum_{w in S} ||w - w0||^2  +  beta/2 * sum_{w not in S} ||w||^2

  where ``S`` (``shared_mask`` True) are the parameters copied from the source
  model, ``w0`` (``anchor``) their pretrained values, and the others (the new
  head) get plain weight decay.

  Args:
    params, anchor: trees of the same structure.
    shared_mask: a tree of Python bools of the same structure.
    alpha, beta: scalars.

  Returns:
    A scalar.
  """
  leaves = jax.tree.leaves(params)
  anchors = jax.tree.leaves(anchor)
  mask = jax.tree.leaves(shared_mask)
  sp = jnp.zeros((), jnp.float32)
  wd = jnp.zeros((), jnp.float32)
  for w, w0, shared in zip(leaves, anchors, mask):
    if shared:
      sp = sp + jnp.sum(jnp.square((w - w0).astype(jnp.float32)))
    else:
      wd = wd + jnp.sum(jnp.square(w.astype(jnp.float32)))
  return 0.5 * alpha * sp + 0.5 * beta * wd


def output_kl(source_logits: Array, logits: Array,
              temperature: float | Array = 1.0) -> Array:
  """Per-example ``T^2 * KL(softmax(s/T) || softmax(z/T))``.

  The output-consistency term: how far the fine-tuned network's predictive
  distribution on an input moved from the frozen source model's. The
  ``T^2`` factor keeps gradient magnitudes comparable across temperatures
  (Hinton et al., 2015). Returns one value per example; the caller averages.
  """
  t = jnp.asarray(temperature, jnp.float32)
  log_p = jax.nn.log_softmax(source_logits.astype(jnp.float32) / t, axis=-1)
  log_q = jax.nn.log_softmax(logits.astype(jnp.float32) / t, axis=-1)
  return t * t * jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


# --------------------------------------------------------------------------
# Methods.
# --------------------------------------------------------------------------
@register
class Finetune(Method):
  """Supervised fine-tuning of a pretrained network on labelled target data.

  ``init`` loads ``config.finetune.checkpoint`` strictly (when set);
  freezing and learning-rate multipliers come from ``config.finetune``
  through the optimiser (:func:`tlax.train.finetune.finetune_optimizer`).
  """

  name = "finetune"
  loads_pretrained = True

  def init(self, rng, batch):
    from tlax.train import finetune  # pylint: disable=g-import-not-at-top
    params, state = super().init(rng, batch)
    params, state = finetune.init_from_pretrained(self.config, params, state)
    extra_params, extra_state = self.init_after_load(rng, batch, params, state)
    return {**params, **extra_params}, {**state, **extra_state}

  def init_after_load(self, rng, batch, params, state):
    """Extra ``(params, state)`` built from the loaded network."""
    del rng, batch, params, state
    return {}, {}

  def supervised(self, params, state, batch, rng):
    """``(ce, logits, feats, x, new_state)`` on the labelled examples."""
    x, y = labelled_inputs(batch)
    logits, feats, state = self.classifier(params, state, x, train=True,
                                           rng=rng)
    return weighted_cross_entropy(logits, y), logits, feats, x, state

  def regulariser(self, params, state, batch, rng, step, hparams, x, logits):
    """``(value, metrics)`` added to the cross-entropy (none here)."""
    del params, state, batch, rng, step, hparams, x, logits
    return jnp.zeros((), jnp.float32), {}

  def loss(self, params, state, batch, rng, step, hparams):
    ce, logits, _, x, state = self.supervised(params, state, batch, rng)
    reg, reg_metrics = self.regulariser(params, state, batch, rng, step,
                                        hparams, x, logits)
    loss = ce + reg
    _, y = labelled_inputs(batch)
    metrics = {"loss": loss, "cls_loss": ce, "train_acc": accuracy(logits, y),
               **reg_metrics}
    return loss, (metrics, state)


@register
class L2SP(Finetune):
  """Fine-tuning with the L2-SP penalty toward the pretrained weights.

  Hyper-parameters (``config.method``): ``l2sp_alpha`` (weight of the
  penalty on the copied parameters, default 0.01) and ``l2sp_beta``
  (weight decay of the re-initialised ones, default 0.01). The paper uses
  alpha = 0.1, beta = 0.01 with SGD on ImageNet-pretrained ResNets; the
  right alpha depends on the target set size.

  The anchor (the pretrained values of the copied parameters) is kept in
  ``state["l2sp_anchor"]``; which parameters are copied follows the
  ``finetune.reinit`` / ``copy_layers`` rules.
  """

  name = "l2sp"
  default_hparams = {"l2sp_alpha": 0.01, "l2sp_beta": 0.01}

  def init_after_load(self, rng, batch, params, state):
    del rng, batch, state
    anchor = jax.tree.map(jnp.array, params["model"])
    return {}, {"l2sp_anchor": anchor}

  def shared_mask(self, model_params):
    """True for the parameters copied from the checkpoint (static)."""
    from tlax.train import finetune  # pylint: disable=g-import-not-at-top
    reinit, _ = finetune.resolve_rules(self.config, model_params)
    def shared(path, _):
      p = "model/" + finetune.path_str(path)
      return not any(re.search(r, p) for r in reinit)
    return jax.tree_util.tree_map_with_path(shared, model_params)

  def regulariser(self, params, state, batch, rng, step, hparams, x, logits):
    del batch, rng, step, x, logits
    mask = self.shared_mask(params["model"])
    reg = l2_sp_penalty(params["model"], state["l2sp_anchor"], mask,
                        hparams["l2sp_alpha"], hparams["l2sp_beta"])
    return reg, {"l2sp": reg}


@register
class OutputKL(Finetune):
  """Fine-tuning with output consistency to the frozen source model.

  ``loss = CE(target labels) + kl_weight * mean_x T^2 KL(p_src(x) || p(x))``
  over target inputs ``x``: the labelled ones (``method.kl_inputs =
  "labelled"``, default) or labelled and unlabelled (``"all"``). The source
  model is the checkpoint's network *with its own head* (so source and target
  must share the label set; a head of another size is a
  :class:`tlax.train.finetune.CheckpointMismatchError`), kept frozen in
  ``state["source_model"]``. Options: ``kl_weight`` (hparam, default 1.0),
  ``kl_temperature`` (static, default 2.0).
  """

  name = "output_kl"
  default_hparams = {"kl_weight": 1.0}

  def __init__(self, ctx):
    super().__init__(ctx)
    self.temperature = float(_option(self, "kl_temperature", 2.0))
    self.kl_inputs = str(_option(self, "kl_inputs", "labelled"))
    if self.kl_inputs not in ("labelled", "all"):
      raise ValueError(f"method.kl_inputs must be 'labelled' or 'all', got "
                       f"{self.kl_inputs!r}.")

  def init_after_load(self, rng, batch, params, state):
    del rng, batch
    from tlax.train import finetune  # pylint: disable=g-import-not-at-top
    ft = self.config.get("finetune", None)
    if ft is None or not ft.get("checkpoint", ""):
      raise ValueError("output_kl needs a source model: set "
                       "config.finetune.checkpoint.")
    trees = finetune.load_checkpoint_trees(ft.checkpoint,
                                           int(ft.get("step", -1)))
    # The whole source network, head included, strictly.
    src = finetune.merge_params(trees["params"]["model"], params["model"],
                                prefix="model", what="source params",
                                log=False)
    src_state = finetune.merge_params(
        (trees.get("state") or {}).get("model", {}) or {},
        state.get("model", {}), prefix="model",
        match_path=finetune.state_match_path, what="source state", log=False)
    return {}, {"source_model": {"params": src, "state": src_state}}

  def loss(self, params, state, batch, rng, step, hparams):
    del step
    x, y = labelled_inputs(batch)
    n = x.shape[0]
    x_kl = x
    if self.kl_inputs == "all" and "xt" in batch:
      x_kl = jnp.concatenate([x, batch["xt"]], axis=0)
    logits_all, _, state = self.classifier(params, state, x_kl, train=True,
                                           rng=rng)
    logits = logits_all[:n]
    ce = weighted_cross_entropy(logits, y)
    src = state["source_model"]
    src_logits, _ = self.model.apply(
        {"params": src["params"], **src["state"]}, x_kl, train=False)
    src_logits = jax.lax.stop_gradient(src_logits)
    kl = jnp.mean(output_kl(src_logits, logits_all, self.temperature))
    loss = ce + hparams["kl_weight"] * kl
    metrics = {"loss": loss, "cls_loss": ce, "output_kl": kl,
               "train_acc": accuracy(logits, y)}
    return loss, (metrics, state)


@register
class LoRA(Finetune):
  """Parameter-efficient fine-tuning with low-rank adapters.

  The loaded network is frozen (``stop_gradient``) except the parameters
  matching ``method.lora_trainable`` (default ``("^head/",)``, the new
  head); chosen Dense and Conv kernels (``method.lora_targets``, regexes over
  model paths, default every kernel; ``method.lora_exclude``, default
  ``("^head/",)``) get low-rank factors ``A, B`` of rank ``method.lora_rank``
  (default 4) under ``params["lora"]``, merged as ``W + (alpha/r) A B`` at
  apply time (``method.lora_alpha``, default = rank, i.e. scale 1).

  Pair it with ``finetune.lr_mults`` that freeze ``^model/`` except the head
  (``experiments/configs/finetune.py:lora`` does) so the optimiser keeps no
  state for, and applies no weight decay to, the frozen weights.
  """

  name = "lora"

  def __init__(self, ctx):
    super().__init__(ctx)
    from tlax.train import lora  # pylint: disable=g-import-not-at-top
    self.rank = int(_option(self, "lora_rank", 4))
    self.alpha = float(_option(self, "lora_alpha", float(self.rank)))
    self.targets = tuple(_option(self, "lora_targets", lora.DEFAULT_TARGETS))
    self.exclude = tuple(_option(self, "lora_exclude", lora.DEFAULT_EXCLUDE))
    self.trainable = tuple(_option(self, "lora_trainable", ("^head/",)))

  def init_after_load(self, rng, batch, params, state):
    del batch, state
    from tlax.train import lora  # pylint: disable=g-import-not-at-top
    targets = lora.lora_targets(params["model"], self.targets, self.exclude)
    if not targets:
      raise ValueError(f"No kernel matches method.lora_targets="
                       f"{self.targets} (exclude {self.exclude}).")
    factors = lora.init_lora(jax.random.fold_in(rng, 7), params["model"],
                             targets, self.rank)
    return {"lora": factors}, {}

  def _frozen_model(self, model_params):
    from tlax.train import finetune  # pylint: disable=g-import-not-at-top
    def freeze(path, w):
      p = finetune.path_str(path)
      if any(re.search(r, p) for r in self.trainable):
        return w
      return jax.lax.stop_gradient(w)
    return jax.tree_util.tree_map_with_path(freeze, model_params)

  def classifier(self, params, state, x, *, train: bool, rng=None):
    from tlax.train import lora  # pylint: disable=g-import-not-at-top
    if "lora" in params:
      merged = lora.merge_lora(self._frozen_model(params["model"]),
                               params["lora"], alpha=self.alpha,
                               rank=self.rank)
      params = {**params, "model": merged}
    return super().classifier(params, state, x, train=train, rng=rng)
