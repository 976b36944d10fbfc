"""Fine-tuning methods that reduce the defects a student inherits.

A student fine-tuned from a pretrained teacher inherits the teacher's
defects (a planted backdoor, adversarial examples crafted on the teacher;
:mod:`tlax.safety`). These methods start from the teacher (``pretrained``,
merged strictly as in :mod:`tlax.methods.conservative`) and differ in what
they keep of it:

* :func:`delta` (``"delta"``): DELTA (Li et al., 2019) keeps the student's
  feature maps near the teacher's, each channel weighted by a supervised
  attention (how much the target loss rises when the channel is removed);
* :func:`magnitude_prune` (``"magnitude_prune"``): the smallest-magnitude
  weights of every layer are pruned (masked to zero) before fine-tuning
  (Han et al., 2015; the pruning baseline of ReMoS);
* :func:`fine_prune` (``"fine_prune"``): Fine-Pruning (Liu et al., 2018)
  removes the neurons that stay dormant on the target data (the lowest mean
  activation in the teacher), where a backdoor's neurons tend to hide, then
  fine-tunes the rest;
* :func:`clean_distill` (``"clean_distill"``): the layers the fine-tuning
  rules re-initialise learn the teacher's features on clean target inputs
  only (feature distillation), so they copy what the teacher computes on
  the target's data and not what it computes on a trigger;
* :func:`peer_distill` (``"peer_distill"``): the student's top layers
  start fresh and learn the labels and, on clean target inputs only, the
  predictions of a plainly fine-tuned peer trained beside it;
* :func:`remos` (``"remos"``): ReMoS (Zhang et al., 2022) keeps the slice of
  the teacher relevant to the target data (weights with a large contribution
  ``|w| * coverage`` of their input neuron on the student's data),
  re-initialises the rest, and fine-tunes the whole network.

Like :func:`tlax.methods.conservative.finetune`, they train on the labelled
target examples of a batch (``xtl, ytl``; ``xs, ys`` when there are none).

References:
  Li, Xiong, Wang, Huan, Chen, Dou, ... DELTA: Deep learning transfer using
  feature map with attention for convolutional networks. ICLR 2019.
  Han, Pool, Tran, Dally. Learning both weights and connections for
  efficient neural networks. NeurIPS 2015.
  Liu, Dolan-Gavitt, Garg. Fine-Pruning: Defending against backdooring
  attacks on deep neural networks. RAID 2018.
  Zhang, Liu, Chen, Li, Bai, Zhou. ReMoS: Reducing defect inheritance in
  transfer learning via relevant model slicing. ICSE 2022.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from tlax.methods import common
from tlax.methods import contract
from tlax.methods import conservative
from tlax.transfer import params as transfer

Array = jax.Array
PyTree = Any


# --------------------------------------------------------------------------
# Pure pieces.
# --------------------------------------------------------------------------
def attention_weights(loss_increase: Array) -> Array:
  """DELTA's channel attention ``W_j = softmax_j(Delta L_j)`` per example.

  Args:
    loss_increase: ``(n, C)``: how much example ``i``'s loss rises when
      channel ``j`` is removed.

  Returns:
    ``(n, C)`` non-negative weights summing to 1 over channels.
  """
  return jax.nn.softmax(loss_increase.astype(jnp.float32), axis=-1)


def feature_map_distance(student: Array, teacher: Array,
                         weights: Array) -> Array:
  r"""Per-example attention-weighted feature-map distance of DELTA::

      sum_j  W_j(x) * || FM_j(w, x) - FM_j(w*, x) ||_2^2

  Args:
    student, teacher: ``(n, ..., C)`` feature maps (channels last).
    weights: ``(n, C)`` attention weights.

  Returns:
    ``(n,)``; the caller averages.
  """
  d = jnp.square(student.astype(jnp.float32) - teacher.astype(jnp.float32))
  per_channel = jnp.sum(d.reshape(d.shape[0], -1, d.shape[-1]), axis=1)
  return jnp.sum(weights * per_channel, axis=-1)


def magnitude_mask(w: Array, ratio: float) -> Array:
  """1 for the weights of ``w`` above the ``ratio`` quantile of ``|w|``, 0
  for the pruned rest (about ``ratio`` of them; ties are kept)."""
  if ratio <= 0:
    return jnp.ones_like(w)
  a = jnp.abs(w)
  threshold = jnp.quantile(a.ravel(), ratio)
  return (a > threshold).astype(w.dtype)


def relevance_mask(w: Array, coverage: Array, keep_ratio: float) -> Array:
  """ReMoS's slice of one kernel: 1 for the ``keep_ratio`` of weights with
  the largest contribution ``|w[..., i, o]| * coverage[i]``.

  Args:
    w: a Dense ``(d_in, d_out)`` or Conv ``(kh, kw, c_in, c_out)`` kernel.
    coverage: ``(d_in,)`` or ``(c_in,)``: mean activation of each input
      neuron on the target data.
    keep_ratio: fraction of weights kept, in (0, 1].

  Returns:
    A 0/1 array of ``w``'s shape.
  """
  score = jnp.abs(w) * coverage.astype(w.dtype)[:, None]
  if keep_ratio >= 1:
    return jnp.ones_like(w)
  threshold = jnp.quantile(score.ravel(), 1.0 - keep_ratio)
  return (score >= threshold).astype(w.dtype)


def dormant_mask(coverage: Array, prune_ratio: float) -> Array:
  """Fine-Pruning's neuron mask: 0 for the ``round(prune_ratio * n)``
  neurons of lowest mean activation ``coverage`` (``(n,)``; ties: the lower
  index first), 1 for the others."""
  n = coverage.shape[0]
  k = int(round(float(prune_ratio) * n))
  order = jnp.argsort(coverage, stable=True)
  return jnp.ones((n,), jnp.float32).at[order[:k]].set(0.0)


def _require_teacher(name: str, pretrained) -> None:
  if pretrained is None:
    raise ValueError(f"{name} needs a source model: set "
                     "config.finetune.checkpoint.")


def _target_inputs(batch) -> Array:
  """The target inputs of a batch, labelled and unlabelled (the source's
  when it has none): the data on which neuron activity is measured."""
  xs = [batch[k] for k in ("xtl", "xt") if k in batch]
  return jnp.concatenate(xs, 0) if xs else batch["xs"]


def _labelled_then_unlabelled(batch) -> tuple[Array, Array]:
  """``(inputs, y)``: the labelled examples a fine-tuning method trains on
  (:func:`tlax.methods.conservative.labelled_inputs`), then the batch's
  unlabelled target inputs, if any; ``y`` labels the first ``len(y)``."""
  x, y = conservative.labelled_inputs(batch)
  if "xt" in batch:
    x = jnp.concatenate([x, batch["xt"]], 0)
  return x, y


def _kernel_paths(model_params, exclude) -> list[tuple[str, ...]]:
  out = []
  for path, leaf in transfer.flatten(model_params).items():
    keys = tuple(path.split("/"))
    if (keys[-1] == "kernel" and leaf.ndim >= 2
        and transfer.first_match("model/" + path, exclude) is None):
      out.append(keys[:-1])
  return out


def input_coverage(model, variables, x) -> dict[tuple[str, ...], Array]:
  """Mean activation of the input neurons of every Dense/Conv module.

  ``{module path: (c_in,)}``: the mean over examples (and positions) of
  ``|input|`` per input channel, the neuron coverage of each layer's inputs
  on ``x`` (read with :func:`flax.linen.intercept_methods`).
  """
  seen = {}

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    mod = context.module
    if (context.method_name == "__call__" and mod.scope is not None
        and mod.scope.has_variable("params", "kernel") and args):
      a = jnp.abs(jnp.asarray(args[0]).astype(jnp.float32))
      seen[tuple(mod.path)] = jnp.mean(a.reshape(-1, a.shape[-1]), axis=0)
    return out

  with nn.intercept_methods(interceptor):
    model.apply(variables, x, train=False)
  return seen


def _module_outputs_grad(model, variables, x, y, names):
  """Per-example ``-sum(g * a)`` per channel of modules ``names``' outputs:
  the first-order estimate of the loss increase when a channel is zeroed."""
  names = tuple(names)

  def forward(perturb):
    acts = {}

    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      mod = context.module
      if (context.method_name == "__call__" and mod.scope is not None
          and len(mod.path) == 1 and mod.path[0] in perturb):
        acts[mod.path[0]] = out
        out = out + perturb[mod.path[0]]
      return out

    with nn.intercept_methods(interceptor):
      logits, _ = model.apply(variables, x, train=False)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return jnp.sum(ce), acts

  shapes = {}

  def shape_interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    mod = context.module
    if (context.method_name == "__call__" and mod.scope is not None
        and len(mod.path) == 1 and mod.path[0] in names):
      shapes[mod.path[0]] = jax.ShapeDtypeStruct(out.shape, out.dtype)
    return out

  with nn.intercept_methods(shape_interceptor):
    jax.eval_shape(lambda: model.apply(variables, x, train=False))
  missing = [n for n in names if n not in shapes]
  if missing:
    raise ValueError(f"config.method.delta_layers {missing} are not modules "
                     f"of the model's top level.")
  zeros = {n: jnp.zeros(s.shape, s.dtype) for n, s in shapes.items()}
  grads, acts = jax.grad(forward, has_aux=True)(zeros)
  out = {}
  for n in names:
    g, a = grads[n], acts[n]
    gi = (g * a).reshape(g.shape[0], -1, g.shape[-1])
    out[n] = -jnp.sum(gi, axis=1)
  return out


# --------------------------------------------------------------------------
# Methods.
# --------------------------------------------------------------------------
def delta(model, num_classes: int, *, total_steps: int,
          pretrained: transfer.Pretrained | None = None,
          delta_alpha: float = 0.01, delta_beta: float = 0.01,
          delta_layers: Sequence[str] = ("conv1", "conv2")
          ) -> contract.Method:
  r"""DELTA: fine-tuning with attention-weighted feature-map regularisation.

  .. math::

    L = CE + \alpha \frac1n \sum_x \sum_{l, j} W_{lj}(x)
        \|FM_{lj}(w, x) - FM_{lj}(w^*, x)\|^2
      + \frac\beta2 \|w_{new}\|^2

  over the feature maps ``delta_layers`` (names both of the model's
  features and of the top-level modules producing them, channels last), with
  ``w*`` the frozen teacher. The attention ``W_{lj}(x)`` is the softmax over
  channels of the rise of the target loss when channel ``j`` of layer ``l``
  is removed from the teacher, read through the student's current head; it
  is estimated to first order (``-<dL/da_j, a_j>``) rather than by one
  forward pass per removed channel, and treated as a constant.

  Args:
    model, num_classes, total_steps: see :mod:`tlax.methods.contract`.
    pretrained: the teacher (required).
    delta_alpha: weight of the feature-map term (swept).
    delta_beta: weight decay of the re-initialised parameters (the head).
    delta_layers: the feature maps regularised.

  Raises:
    ValueError: without ``pretrained``.
  """
  del num_classes, total_steps
  _require_teacher("delta", pretrained)
  layers = tuple(delta_layers)
  reinit = tuple(pretrained.reinit)
  classify = common.classifier_fn(model)

  def extra(rng, batch, params, state):
    del rng, batch
    return {}, {"delta_teacher": {
        "params": jax.tree.map(jnp.array, params["model"]),
        "state": jax.tree.map(jnp.array, state.get("model", {}))}}

  def loss(params, state, batch, rng, step, hparams):
    del step
    x, y = conservative.labelled_inputs(batch)
    logits, feats, state = classify(params, state, x, train=True, rng=rng)
    ce = contract.weighted_cross_entropy(logits, y)
    teacher = state["delta_teacher"]
    t_params = {**teacher["params"],
                "head": jax.lax.stop_gradient(params["model"]["head"])}
    t_vars = {"params": t_params, **teacher["state"]}
    _, t_feats = model.apply(t_vars, x, train=False)
    increase = _module_outputs_grad(model, t_vars, x, y, layers)
    reg = jnp.zeros((), jnp.float32)
    for name in layers:
      w = jax.lax.stop_gradient(attention_weights(increase[name]))
      reg = reg + jnp.mean(feature_map_distance(
          feats[name], jax.lax.stop_gradient(t_feats[name]), w))
    mask = transfer.shared_mask(params["model"], reinit)
    new_sq = sum(jnp.sum(jnp.square(w_)) for w_, shared in zip(
        jax.tree.leaves(params["model"]), jax.tree.leaves(mask))
        if not shared)
    value = ce + hparams["delta_alpha"] * reg + 0.5 * hparams[
        "delta_beta"] * new_sq
    metrics = {"loss": value, "cls_loss": ce, "delta_feature_map": reg,
               "train_acc": contract.accuracy(logits, y)}
    return value, (metrics, state)

  return conservative._finetune_method(  # pylint: disable=protected-access
      model, pretrained, name="delta", extra=extra, loss=loss,
      hparams={"delta_alpha": delta_alpha, "delta_beta": delta_beta})


def magnitude_prune(model, num_classes: int, *, total_steps: int,
                    pretrained: transfer.Pretrained | None = None,
                    prune_ratio: float = 0.5,
                    prune_exclude: Sequence[str] = ("^model/head/",)
                    ) -> contract.Method:
  """Magnitude pruning of the teacher, then fine-tuning of what is left.

  In every Dense and Conv kernel not matching ``prune_exclude``, the
  ``prune_ratio`` fraction of weights of smallest magnitude is pruned: a 0/1
  mask (kept in ``state["prune_mask"]``) multiplies the kernel in every
  forward pass, so pruned weights stay at zero during fine-tuning.

  Args:
    model, num_classes, total_steps, pretrained: as
      :func:`tlax.methods.conservative.finetune`.
    prune_ratio: fraction of each kernel pruned, in [0, 1).
    prune_exclude: regexes over ``model/...`` paths never pruned.

  Raises:
    ValueError: ``prune_ratio`` outside [0, 1).
  """
  del num_classes, total_steps
  ratio = float(prune_ratio)
  if not 0.0 <= ratio < 1.0:
    raise ValueError(f"config.method.prune_ratio={prune_ratio} must be in "
                     "[0, 1).")
  exclude = tuple(prune_exclude)

  def extra(rng, batch, params, state):
    del rng, batch, state
    kernels = set(_kernel_paths(params["model"], exclude))

    def mask(path, w):
      keys = tuple(transfer.path_str(path).split("/"))
      if keys[-1] == "kernel" and keys[:-1] in kernels:
        return magnitude_mask(w, ratio)
      return jnp.ones_like(w)
    return {}, {"prune_mask": jax.tree_util.tree_map_with_path(
        mask, params["model"])}

  return conservative._finetune_method(  # pylint: disable=protected-access
      model, pretrained, name="magnitude_prune", extra=extra,
      classify=_masked_classify(model))


def _masked_classify(model):
  """The classifier with ``state["prune_mask"]`` multiplying every
  parameter in each forward pass (pruned weights stay at zero)."""
  def classify(params, state, x, *, train, rng=None):
    masked = jax.tree.map(lambda w, m: w * m, params["model"],
                          state["prune_mask"])
    return contract.apply_classifier(model, {"model": masked}, state, x,
                                     train=train, rng=rng)
  return classify


def fine_prune(model, num_classes: int, *, total_steps: int,
               pretrained: transfer.Pretrained | None = None,
               prune_ratio: float = 0.5,
               prune_layers: Sequence[str] = ("^model/fc2/", "^model/head/")
               ) -> contract.Method:
  """Fine-Pruning: remove the neurons dormant on the target data, then
  fine-tune.

  At initialisation the teacher's mean activation of the input neurons of
  every Dense/Conv module matching ``prune_layers``
  (:func:`input_coverage` on the target inputs of the first batch: the
  unlabelled and the labelled ones) ranks those neurons; the
  ``prune_ratio`` fraction with the lowest activation is removed
  (:func:`dormant_mask`): their rows of the module's kernel are masked to
  zero in every forward pass (``state["prune_mask"]``), so they stay
  removed while the whole network is fine-tuned. Neurons a backdoor uses
  but clean inputs leave quiet are the ones removed (Liu et al. prune the
  last convolution's channels in this order; the default here prunes the
  outputs of the LeNet's two hidden dense layers, ``fc1`` and ``fc2``,
  where the planted backdoor of :mod:`tlax.safety` lives).

  Args:
    model, num_classes, total_steps, pretrained: as
      :func:`tlax.methods.conservative.finetune`.
    prune_ratio: fraction of each pruned layer's input neurons removed, in
      [0, 1).
    prune_layers: regexes over ``model/...`` module paths whose input
      neurons are pruned.

  Raises:
    ValueError: without ``pretrained``, a ratio outside [0, 1), or no
      module matching ``prune_layers``.
  """
  del num_classes, total_steps
  ratio = float(prune_ratio)
  if not 0.0 <= ratio < 1.0:
    raise ValueError(f"config.method.prune_ratio={prune_ratio} must be in "
                     "[0, 1).")
  _require_teacher("fine_prune", pretrained)
  layers = tuple(prune_layers)

  def extra(rng, batch, params, state):
    del rng
    kernels = set(_kernel_paths(params["model"], ()))
    chosen = {k for k in kernels if transfer.first_match(
        "model/" + "/".join(k) + "/", layers) is not None}
    if not chosen:
      raise ValueError(
          f"config.method.prune_layers={list(layers)} match no Dense or Conv "
          f"module; modules: {sorted('model/' + '/'.join(k) for k in kernels)}")
    x = _target_inputs(batch)
    coverage = input_coverage(
        model, {"params": params["model"], **state.get("model", {})}, x)

    def mask(path, w):
      keys = tuple(transfer.path_str(path).split("/"))
      if keys[-1] != "kernel" or keys[:-1] not in chosen:
        return jnp.ones_like(w)
      cov = coverage.get(keys[:-1])
      if cov is None or cov.shape[0] != w.shape[-2]:
        raise ValueError(f"fine_prune: module model/{'/'.join(keys[:-1])} "
                         "is not called on its kernel's input; leave it out "
                         "of config.method.prune_layers.")
      rows = dormant_mask(cov, ratio).astype(w.dtype)
      return jnp.broadcast_to(rows[:, None], w.shape)
    return {}, {"prune_mask": jax.tree_util.tree_map_with_path(
        mask, params["model"])}

  return conservative._finetune_method(  # pylint: disable=protected-access
      model, pretrained, name="fine_prune", extra=extra,
      classify=_masked_classify(model))


def remos(model, num_classes: int, *, total_steps: int,
          pretrained: transfer.Pretrained | None = None,
          remos_ratio: float = 0.3,
          remos_exclude: Sequence[str] = ("^model/head/",)
          ) -> contract.Method:
  """ReMoS: slice the teacher to the weights relevant to the target data.

  At initialisation, the neuron coverage of the student's data (the mean
  activation of every layer's input neurons on the unlabelled and labelled
  target inputs of the first batch, :func:`input_coverage` on the teacher)
  scores each weight by its contribution ``|w_io| * coverage_i``; in every
  Dense and Conv kernel the ``remos_ratio`` fraction with the largest
  scores keeps the teacher's values (the relevant slice) and the rest is
  re-initialised to the fresh initialisation. The whole network is then
  fine-tuned. Biases keep the teacher's values.

  Args:
    model, num_classes, total_steps: as
      :func:`tlax.methods.conservative.finetune`.
    pretrained: the teacher (required).
    remos_ratio: fraction of each kernel kept from the teacher, in (0, 1].
    remos_exclude: regexes over ``model/...`` paths not sliced (kept as
      merged: the head is re-initialised by the fine-tuning rules anyway).

  Raises:
    ValueError: without ``pretrained``, or a ratio outside (0, 1].
  """
  del num_classes, total_steps
  ratio = float(remos_ratio)
  if not 0.0 < ratio <= 1.0:
    raise ValueError(f"config.method.remos_ratio={remos_ratio} must be in "
                     "(0, 1].")
  _require_teacher("remos", pretrained)
  exclude = tuple(remos_exclude)
  fresh_init = common.init_with(model)

  def extra(rng, batch, params, state):
    fresh, _ = fresh_init(rng, batch)  # the initialisation init() made
    x = _target_inputs(batch)
    coverage = input_coverage(
        model, {"params": params["model"], **state.get("model", {})}, x)
    kernels = set(_kernel_paths(params["model"], exclude))

    def slice_leaf(path, w, w_fresh):
      keys = tuple(transfer.path_str(path).split("/"))
      if keys[-1] != "kernel" or keys[:-1] not in kernels:
        return w
      cov = coverage.get(keys[:-1])
      if cov is None or cov.shape[0] != w.shape[-2]:
        cov = jnp.ones((w.shape[-2],), jnp.float32)
      keep = relevance_mask(w, cov, ratio)
      return jnp.where(keep > 0, w, w_fresh)
    sliced = jax.tree_util.tree_map_with_path(slice_leaf, params["model"],
                                              fresh["model"])
    return {"model": sliced}, {}

  return conservative._finetune_method(  # pylint: disable=protected-access
      model, pretrained, name="remos", extra=extra)


def clean_distill(model, num_classes: int, *, total_steps: int,
                  pretrained: transfer.Pretrained | None = None,
                  distill_weight: float = 1.0,
                  distill_layers: Sequence[str] = ("fc1", "embedding")
                  ) -> contract.Method:
  r"""Re-initialised layers taught the teacher's features on clean data.

  The layers the fine-tuning rules re-initialise (``config.finetune.reinit``,
  for a backdoor the top layers) start fresh, and the whole student is
  trained on

  .. math::

    L = CE(x_l, y_l) + \beta \frac1n \sum_{x} \frac1{|F|} \sum_{f \in F}
        \operatorname{mean}\big((f(w, x) - f(w^*, x))^2\big)

  with ``w*`` the teacher (every weight as pretrained, frozen), ``F`` the
  features ``distill_layers`` (names of the model's feature dict) and ``x``
  every target input of the batch, labelled and unlabelled: clean images,
  never a trigger. The fresh layers learn what the teacher computes on the
  target's data, where its knowledge is useful, and nothing pulls them
  toward what it computes off that data, where a planted trigger acts.

  Args:
    model, num_classes, total_steps: as
      :func:`tlax.methods.conservative.finetune`.
    pretrained: the teacher (required).
    distill_weight: ``beta`` (hparam ``distill_weight``).
    distill_layers: features of the model distilled (e.g. ``fc1``,
      ``embedding`` for the LeNet's two hidden dense layers).

  Raises:
    ValueError: without ``pretrained``, or a feature the model does not
      return.
  """
  del num_classes, total_steps
  _require_teacher("clean_distill", pretrained)
  layers = tuple(distill_layers)
  classify = common.classifier_fn(model)
  teacher_params = jax.tree.map(jnp.asarray, pretrained.params)
  teacher_state = jax.tree.map(jnp.asarray, dict(pretrained.state or {}))

  def extra(rng, batch, params, state):
    del rng, batch, params, state
    return {}, {"distill_teacher": {"params": teacher_params,
                                    "state": teacher_state}}

  def loss(params, state, batch, rng, step, hparams):
    del step
    inputs, y = _labelled_then_unlabelled(batch)
    n = y.shape[0]
    logits, feats, state = classify(params, state, inputs, train=True,
                                    rng=rng)
    logits = logits[:n]
    ce = contract.weighted_cross_entropy(logits, y)
    teacher = state["distill_teacher"]
    # The teacher's own head may not fit the student's classes; the
    # distilled features come before any head.
    t_params = {**teacher["params"],
                "head": jax.lax.stop_gradient(params["model"]["head"])}
    _, t_feats = model.apply({"params": t_params, **teacher["state"]},
                             inputs, train=False)
    missing = [f for f in layers if f not in feats]
    if missing:
      raise ValueError(f"config.method.distill_layers {missing} are not "
                       f"features of the model: {sorted(feats)}")
    dist = sum(jnp.mean(jnp.square(
        feats[f].astype(jnp.float32)
        - jax.lax.stop_gradient(t_feats[f]).astype(jnp.float32)))
               for f in layers) / len(layers)
    value = ce + hparams["distill_weight"] * dist
    metrics = {"loss": value, "cls_loss": ce, "distill_distance": dist,
               "train_acc": contract.accuracy(logits, y)}
    return value, (metrics, state)

  return conservative._finetune_method(  # pylint: disable=protected-access
      model, pretrained, name="clean_distill", extra=extra, loss=loss,
      hparams={"distill_weight": distill_weight})


def peer_distill(model, num_classes: int, *, total_steps: int,
                 pretrained: transfer.Pretrained | None = None,
                 distill_weight: float = 1.0,
                 temperature: float = 1.0) -> contract.Method:
  r"""A fresh-topped student taught by a plainly fine-tuned peer on clean data.

  Two networks train together from the teacher. The peer ``p`` is plain
  fine-tuning: every teacher weight, with the student's initial ``head``
  (re-initialised or kept by ``config.finetune.reinit``) and the student's
  initial values for any layer the teacher lacks. The
  student ``s`` starts from the teacher with the layers of
  ``config.finetune.reinit`` (for a backdoor, the top layers) fresh. Both
  learn the labelled target examples, and the student also matches the
  peer's predictions on every target input of the batch, labelled and
  unlabelled:

  .. math::

    L = CE(s(x_l), y_l) + CE(p(x_l), y_l)
        + \beta T^2 \frac1n \sum_x KL\big(\sigma(p(x) / T) \,\|\,
                                          \sigma(s(x) / T)\big)

  with the peer's side held constant in the KL term. The peer brings what
  fine-tuning gains from the whole teacher on the target's own data, the
  unlabelled examples included; the student's fresh layers receive it only
  as outputs on clean inputs, so nothing teaches them how the teacher's
  top layers react to a trigger. ``predict`` is the student's; the peer is
  ``params["peer"]``.

  Args:
    model, num_classes, total_steps: as
      :func:`tlax.methods.conservative.finetune`.
    pretrained: the teacher (required).
    distill_weight: ``beta`` (hparam ``distill_weight``).
    temperature: ``T`` of the softened predictions.

  Raises:
    ValueError: without ``pretrained``, or a temperature that is not
      positive.
  """
  del num_classes, total_steps
  _require_teacher("peer_distill", pretrained)
  if not temperature > 0:
    raise ValueError(f"config.method.temperature must be > 0, got "
                     f"{temperature}.")
  classify = common.classifier_fn(model)
  teacher_params = jax.tree.map(jnp.asarray, pretrained.params)

  def extra(rng, batch, params, state):
    del rng, batch
    # The teacher's layers, the student's own where the teacher has none
    # (its head among them, whether re-initialised or kept).
    peer = {k: jax.tree.map(jnp.array, params["model"][k]
                            if k == "head" or k not in teacher_params
                            else teacher_params[k])
            for k in params["model"]}
    return {"peer": peer}, {"peer": jax.tree.map(jnp.array, state["model"])}

  def loss(params, state, batch, rng, step, hparams):
    del step
    inputs, y = _labelled_then_unlabelled(batch)
    n = y.shape[0]
    rng_s, rng_p = (jax.random.split(rng) if rng is not None
                    else (None, None))
    logits, _, state = classify(params, state, inputs, train=True,
                                rng=rng_s)
    peer_logits, _, state = contract.apply_classifier(
        model, params, state, inputs, train=True, rng=rng_p, key="peer")
    ce = contract.weighted_cross_entropy(logits[:n], y)
    peer_ce = contract.weighted_cross_entropy(peer_logits[:n], y)
    t = temperature
    target = jax.nn.softmax(jax.lax.stop_gradient(peer_logits) / t, -1)
    log_s = jax.nn.log_softmax(logits / t, -1)
    kl = jnp.mean(jnp.sum(
        target * (jnp.log(jnp.clip(target, 1e-12)) - log_s), -1)) * t * t
    value = ce + peer_ce + hparams["distill_weight"] * kl
    metrics = {"loss": value, "cls_loss": ce, "peer_cls_loss": peer_ce,
               "peer_kl": kl, "train_acc": contract.accuracy(logits[:n], y),
               "peer_train_acc": contract.accuracy(peer_logits[:n], y)}
    return value, (metrics, state)

  return conservative._finetune_method(  # pylint: disable=protected-access
      model, pretrained, name="peer_distill", extra=extra, loss=loss,
      hparams={"distill_weight": distill_weight})
