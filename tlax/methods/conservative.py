"""Fine-tuning methods that stay close to a pretrained source model.

Model-based transfer: the network ``f`` starts from a source checkpoint
(loaded by the trainer from ``config.finetune`` and given to the factory as
``pretrained``, a :class:`tlax.transfer.Pretrained`; ``init`` merges it
strictly with :func:`tlax.transfer.merge_pretrained`) and is trained on the
few labelled target examples. These methods differ in what keeps ``f`` near
the source:

* :func:`finetune` (``"finetune"``): nothing but the fine-tuning rules of
  the config (freeze, learning-rate multipliers, copy the first k layers,
  applied by the trainer's optimiser): full fine-tuning, a linear probe
  (everything but the head frozen) and layer transfer are configs of this
  one method;
* :func:`l2sp` (``"l2sp"``): a penalty toward the pretrained weights
  (Li, Grandvalet & Davoine, 2018);
* :func:`output_kl` (``"output_kl"``): output consistency, the KL divergence
  from the frozen source model's predictions on target inputs (the
  distillation term of Learning without Forgetting, Li & Hoiem, 2016, where
  source and target share the label set);
* :func:`lora` (``"lora"``): the pretrained kernels are frozen and only a
  low-rank change ``(alpha/r) A B`` of chosen Dense and Conv kernels, plus the
  new head, is trained (Hu et al., 2022; :mod:`tlax.transfer.lora`).

All of them train on the labelled target examples of a batch (``xtl``,
``ytl``: set ``config.target_labeled_per_class`` and
``config.labeled_batch_size``), or on ``xs, ys`` when a batch has none (a run
whose "source" is the target training set). Unlabelled inputs are not used
unless :func:`output_kl` is asked to (``kl_inputs = "all"``). Without
``pretrained`` they train from their random initialisation.

References:
  Li, Grandvalet, Davoine. Explicit inductive bias for transfer learning with
  convolutional networks. ICML 2018 (L2-SP).
  Li, Hoiem. Learning without forgetting. ECCV 2016.
  Hu et al. LoRA: Low-rank adaptation of large language models. ICLR 2022.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from tlax.methods import common
from tlax.methods import contract
from tlax.transfer import lora as lora_lib
from tlax.transfer import params as transfer

Array = jax.Array
PyTree = Any


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


def output_kl_divergence(source_logits: Array, logits: Array,
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
def _finetune_method(model, pretrained, *, name, extra=None, regulariser=None,
                     hparams=None, classify=None, loss=None):
  """The shared body: init = fresh network, merged with ``pretrained``, then
  ``extra(rng, batch, params, state)``; loss = CE on the labelled examples
  plus ``regulariser(params, state, logits) -> (value, metrics)``."""
  classify = classify or common.classifier_fn(model)
  fresh = common.init_with(model)

  def init(rng, batch):
    params, state = fresh(rng, batch)
    if pretrained is not None:
      params, state = transfer.merge_pretrained(pretrained, params, state)
    if extra is not None:
      extra_params, extra_state = extra(rng, batch, params, state)
      params, state = {**params, **extra_params}, {**state, **extra_state}
    return params, state

  def default_loss(params, state, batch, rng, step, hparams):
    del step
    x, y = labelled_inputs(batch)
    logits, _, state = classify(params, state, x, train=True, rng=rng)
    ce = contract.weighted_cross_entropy(logits, y)
    reg, reg_metrics = (jnp.zeros((), jnp.float32), {})
    if regulariser is not None:
      reg, reg_metrics = regulariser(params, state, hparams)
    value = ce + reg
    metrics = {"loss": value, "cls_loss": ce,
               "train_acc": contract.accuracy(logits, y), **reg_metrics}
    return value, (metrics, state)

  def predict(params, state, x):
    return classify(params, state, x, train=False)[0]

  def features(params, state, x):
    return classify(params, state, x, train=False)[1]

  return contract.Method(init=init, loss=loss or default_loss,
                         predict=predict, features=features,
                         hparams=dict(hparams or {}), name=name)


def finetune(model, num_classes: int, *, total_steps: int,
             pretrained: transfer.Pretrained | None = None) -> contract.Method:
  """Supervised fine-tuning of a pretrained network on labelled target data.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    pretrained: the source network and its merge rules (the trainer loads
      ``config.finetune.checkpoint``); None: train from scratch.

  Freezing and learning-rate multipliers are the trainer's (the optimiser
  built from ``config.finetune``).
  """
  del num_classes, total_steps
  return _finetune_method(model, pretrained, name="finetune")


def l2sp(model, num_classes: int, *, total_steps: int,
         pretrained: transfer.Pretrained | None = None,
         l2sp_alpha: float = 0.01, l2sp_beta: float = 0.01
         ) -> contract.Method:
  """Fine-tuning with the L2-SP penalty toward the pretrained weights.

  Args:
    model, num_classes, total_steps, pretrained: as :func:`finetune`.
    l2sp_alpha: weight of the penalty on the copied parameters (swept). The
      paper uses 0.1 with SGD on ImageNet-pretrained ResNets; the right value
      depends on the target set size.
    l2sp_beta: weight decay of the re-initialised ones (swept).

  The anchor (the pretrained values of the copied parameters) is kept in
  ``state["l2sp_anchor"]``; the copied parameters are those no ``reinit``
  rule of ``pretrained`` matches (all of them without ``pretrained``).
  """
  del num_classes, total_steps
  reinit = tuple(pretrained.reinit) if pretrained is not None else ()

  def extra(rng, batch, params, state):
    del rng, batch, state
    return {}, {"l2sp_anchor": jax.tree.map(jnp.array, params["model"])}

  def regulariser(params, state, hparams):
    mask = transfer.shared_mask(params["model"], reinit)
    reg = l2_sp_penalty(params["model"], state["l2sp_anchor"], mask,
                        hparams["l2sp_alpha"], hparams["l2sp_beta"])
    return reg, {"l2sp": reg}

  return _finetune_method(model, pretrained, name="l2sp", extra=extra,
                          regulariser=regulariser,
                          hparams={"l2sp_alpha": l2sp_alpha,
                                   "l2sp_beta": l2sp_beta})


def output_kl(model, num_classes: int, *, total_steps: int,
              pretrained: transfer.Pretrained | None = None,
              kl_weight: float = 1.0, kl_temperature: float = 2.0,
              kl_inputs: str = "labelled") -> contract.Method:
  """Fine-tuning with output consistency to the frozen source model.

  ``loss = CE(target labels) + kl_weight * mean_x T^2 KL(p_src(x) || p(x))``
  over target inputs ``x``: the labelled ones (``kl_inputs = "labelled"``)
  or labelled and unlabelled (``"all"``). The source model is the
  checkpoint's network *with its own head* (so source and target must share
  the label set; a head of another size is a
  :class:`tlax.transfer.CheckpointMismatchError`), kept frozen in
  ``state["source_model"]``.

  Args:
    model, num_classes, total_steps: as :func:`finetune`.
    pretrained: the source network (required).
    kl_weight: weight of the KL term (swept).
    kl_temperature: the temperature ``T``.
    kl_inputs: ``"labelled"`` or ``"all"``.

  Raises:
    ValueError: no ``pretrained`` network, or an unknown ``kl_inputs``.
  """
  del num_classes, total_steps
  if kl_inputs not in ("labelled", "all"):
    raise ValueError(f"config.method.kl_inputs must be 'labelled' or 'all', "
                     f"got {kl_inputs!r}.")
  if pretrained is None:
    raise ValueError("output_kl needs a source model: set "
                     "config.finetune.checkpoint.")
  temperature = float(kl_temperature)
  classify = common.classifier_fn(model)

  def extra(rng, batch, params, state):
    del rng, batch
    # The whole source network, head included, strictly.
    src = transfer.merge_params(pretrained.params, params["model"],
                                prefix="model", what="source params",
                                log=False)
    src_state = transfer.merge_params(
        pretrained.state or {}, state.get("model", {}), prefix="model",
        match_path=transfer.state_match_path, what="source state", log=False)
    return {}, {"source_model": {"params": src, "state": src_state}}

  def loss(params, state, batch, rng, step, hparams):
    del step
    x, y = labelled_inputs(batch)
    n = x.shape[0]
    x_kl = x
    if kl_inputs == "all" and "xt" in batch:
      x_kl = jnp.concatenate([x, batch["xt"]], axis=0)
    logits_all, _, state = classify(params, state, x_kl, train=True, rng=rng)
    logits = logits_all[:n]
    ce = contract.weighted_cross_entropy(logits, y)
    src = state["source_model"]
    src_logits, _ = model.apply({"params": src["params"], **src["state"]},
                                x_kl, train=False)
    src_logits = jax.lax.stop_gradient(src_logits)
    kl = jnp.mean(output_kl_divergence(src_logits, logits_all, temperature))
    value = ce + hparams["kl_weight"] * kl
    metrics = {"loss": value, "cls_loss": ce, "output_kl": kl,
               "train_acc": contract.accuracy(logits, y)}
    return value, (metrics, state)

  return _finetune_method(model, pretrained, name="output_kl", extra=extra,
                          loss=loss, hparams={"kl_weight": kl_weight})


def lora(model, num_classes: int, *, total_steps: int,
         pretrained: transfer.Pretrained | None = None,
         lora_rank: int = 4,
         lora_alpha: float | None = None,
         lora_targets: Sequence[str] = lora_lib.DEFAULT_TARGETS,
         lora_exclude: Sequence[str] = lora_lib.DEFAULT_EXCLUDE,
         lora_trainable: Sequence[str] = ("^head/",)) -> contract.Method:
  """Parameter-efficient fine-tuning with low-rank adapters.

  The loaded network is frozen (``stop_gradient``) except the parameters
  matching ``lora_trainable`` (the new head); chosen Dense and Conv kernels
  (``lora_targets``, regexes over model paths, minus ``lora_exclude``) get
  low-rank factors ``A, B`` of rank ``lora_rank`` under ``params["lora"]``,
  merged as ``W + (alpha/r) A B`` at apply time.

  Pair it with ``finetune.lr_mults`` that freeze ``^model/`` except the head
  (``experiments/configs/finetune.py:lora`` does) so the optimiser keeps no
  state for, and applies no weight decay to, the frozen weights.

  Args:
    model, num_classes, total_steps, pretrained: as :func:`finetune`.
    lora_rank: the rank ``r``.
    lora_alpha: the scale numerator ``alpha`` (None: ``r``, a scale of 1).
    lora_targets, lora_exclude: regexes over model paths.
    lora_trainable: regexes of the model parameters left trainable.
  """
  del num_classes, total_steps
  rank = int(lora_rank)
  alpha = float(rank if lora_alpha is None else lora_alpha)
  targets_re, exclude_re = tuple(lora_targets), tuple(lora_exclude)
  trainable = tuple(lora_trainable)

  def extra(rng, batch, params, state):
    del batch, state
    targets = lora_lib.lora_targets(params["model"], targets_re, exclude_re)
    if not targets:
      raise ValueError(f"No kernel matches config.method.lora_targets="
                       f"{targets_re} (exclude {exclude_re}).")
    factors = lora_lib.init_lora(jax.random.fold_in(rng, 7), params["model"],
                                 targets, rank)
    return {"lora": factors}, {}

  def frozen_model(model_params):
    def freeze(path, w):
      if any(re.search(r, transfer.path_str(path)) for r in trainable):
        return w
      return jax.lax.stop_gradient(w)
    return jax.tree_util.tree_map_with_path(freeze, model_params)

  def classify(params, state, x, *, train, rng=None):
    if "lora" in params:
      merged = lora_lib.merge_lora(frozen_model(params["model"]),
                                   params["lora"], alpha=alpha, rank=rank)
      params = {**params, "model": merged}
    return contract.apply_classifier(model, params, state, x, train=train,
                                     rng=rng)

  return _finetune_method(model, pretrained, name="lora", extra=extra,
                          classify=classify)
