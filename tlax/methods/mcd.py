r"""MCD: Maximum Classifier Discrepancy.

Saito, Watanabe, Ushiku & Harada, "Maximum Classifier Discrepancy for
Unsupervised Domain Adaptation", CVPR 2018.

A feature generator ``G`` and two classifiers ``F1``, ``F2``. The two
classifiers' disagreement on target inputs::

    d(p1, p2) = (1/K) sum_k |p1_k - p2_k|        (p_i = softmax(F_i(G(x))))

averaged over the target batch (:func:`classifier_discrepancy`), detects
target examples outside the support of the source; the generator learns to
move them inside. Each training step has three phases:

* **A**: ``G``, ``F1``, ``F2`` minimise the source risk of both classifiers;
* **B**: ``F1``, ``F2`` (``G`` fixed) minimise the source risk minus the
  target discrepancy (they disagree as much as they can on the target while
  classifying the source);
* **C**: ``G`` (classifiers fixed) minimises the target discrepancy,
  ``n_gen`` times (4 in the paper's digit experiments).

All three run inside the one jitted step (the method owns its update,
:mod:`tlax.methods.contract`), with two optimiser states built from the
trainer's optimiser: one for ``G``, one for the classifiers, as in the
paper.

Here ``G`` is the model without its head, ``F1`` is the model's own head
(``params["model"]["head"]``) and ``F2`` a second head of the same shape
(``params["classifier2"]``) on the head input ``features["embedding"]``.
The paper's classifiers on digits are three-layer MLPs on the generator's
output; with LeNet here they are single layers on the 500-unit hidden layer
(the generator includes LeNet's fully connected layers). Predictions are
``F1``'s. ``lambda`` weighs the discrepancy in phases B and C (1 in the
paper).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from tlax.methods import common
from tlax.methods import contract

Array = jax.Array
HEAD = "head"


def classifier_discrepancy(logits1: Array, logits2: Array) -> Array:
  """``mean_i (1/K) sum_k |softmax(l1)_ik - softmax(l2)_ik|``: MCD's d.

  Args:
    logits1, logits2: (n, K) logits of the two classifiers.

  Returns:
    Scalar, in [0, 2/K].
  """
  p1 = jax.nn.softmax(logits1.astype(jnp.float32), axis=-1)
  p2 = jax.nn.softmax(logits2.astype(jnp.float32), axis=-1)
  return jnp.mean(jnp.abs(p1 - p2))


class _Head(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, h):
    return nn.Dense(self.num_classes, name="head")(h).astype(jnp.float32)


def _split(params):
  """``(generator, classifiers)`` trees of the method's params.

  Both keep the paths of the full tree (``model/<layer>/...``,
  ``model/head/...``, ``classifier2/...``), so path rules such as
  ``finetune.lr_mults`` address the same leaves in either optimiser.
  """
  gen = {"model": {k: v for k, v in params["model"].items() if k != HEAD}}
  cls = {"model": {HEAD: params["model"][HEAD]},
         "classifier2": params["classifier2"]}
  return gen, cls


def _join(gen, cls):
  return {"model": {**gen["model"], HEAD: cls["model"][HEAD]},
          "classifier2": cls["classifier2"]}


def mcd(model, num_classes: int, *, total_steps: int,
        lambda_: float = 1.0, n_gen: int = 4) -> contract.Method:
  """MCD with the trainer's optimiser for ``G`` and for ``F1, F2``.

  Args:
    model: the classifier network; its ``head`` is ``F1``.
    num_classes: number of classes.
    total_steps: length of the run (unused).
    lambda_: weight of the discrepancy (config key ``lambda``; swept).
    n_gen: phase-C updates of ``G`` per step.

  Returns:
    A :class:`tlax.methods.contract.Method` that owns its update. Metrics:
    ``loss`` (phase A's source risk), ``cls_loss``, ``source_acc``,
    ``discrepancy_b`` (the target discrepancy the classifiers reach in
    phase B), ``discrepancy`` (after phase C).
  """
  del total_steps
  n_gen = int(n_gen)
  if n_gen < 1:
    raise ValueError(f"config.method.n_gen must be >= 1, got {n_gen}.")
  head2 = _Head(num_classes)
  classify = common.classifier_fn(model)

  def extra_init(rng, batch, params, state):
    _, feats, _ = classify(params, state, jnp.asarray(batch["xs"])[:2],
                           train=False)
    if HEAD not in params["model"]:
      raise ValueError("mcd needs a model whose last layer is named "
                       f"'{HEAD}'; got layers {sorted(params['model'])}.")
    return {"classifier2": head2.init(rng, feats["embedding"])["params"]}, {}

  def outputs(params, state, x, rng):
    logits1, feats, state = classify(params, state, x, train=True, rng=rng)
    logits2 = head2.apply({"params": params["classifier2"]},
                          feats["embedding"])
    return logits1, logits2, state

  def source_risk(params, state, batch, rng):
    l1, l2, state = outputs(params, state, batch["xs"], rng)
    ws = batch.get("ws")
    risk = (contract.weighted_cross_entropy(l1, batch["ys"], ws)
            + contract.weighted_cross_entropy(l2, batch["ys"], ws))
    return risk, l1, state

  def target_discrepancy(params, state, batch, rng):
    l1, l2, state = outputs(params, state, batch["xt"], rng)
    return classifier_discrepancy(l1, l2), state

  def init_opt(tx, params):
    gen, cls = _split(params)
    return {"generator": tx.init(gen), "classifiers": tx.init(cls)}

  def apply(tx, lr, grads, opt_state, params):
    updates, opt_state = tx.update(grads, opt_state, params)
    updates = jax.tree.map(lambda u: (lr * u).astype(u.dtype), updates)
    return optax.apply_updates(params, updates), opt_state

  def update(params, state, opt_state, batch, rng, step, hparams, *, tx, lr):
    del step
    lam = hparams["lambda"]
    rng_a, rng_b, rng_c = jax.random.split(rng, 3)

    # A: G, F1, F2 on the source risk of both classifiers.
    def loss_a(gen, cls):
      risk, l1, new_state = source_risk(_join(gen, cls), state, batch, rng_a)
      return risk, (l1, new_state)
    gen, cls = _split(params)
    (risk, (l1, state)), (g_gen, g_cls) = jax.value_and_grad(
        loss_a, argnums=(0, 1), has_aux=True)(gen, cls)
    gen, opt_g = apply(tx, lr, g_gen, opt_state["generator"], gen)
    cls, opt_c = apply(tx, lr, g_cls, opt_state["classifiers"], cls)

    # B: F1, F2 (G fixed): source risk minus the target discrepancy.
    def loss_b(cls_):
      p = _join(gen, cls_)
      r, _, s = source_risk(p, state, batch, rng_b)
      d, s = target_discrepancy(p, s, batch, jax.random.fold_in(rng_b, 1))
      return r - lam * d, (d, s)
    (_, (disc_b, state)), g_cls = jax.value_and_grad(
        loss_b, has_aux=True)(cls)
    cls, opt_c = apply(tx, lr, g_cls, opt_c, cls)

    # C: G (classifiers fixed) minimises the target discrepancy, n_gen times.
    def loss_c(gen_, st, r):
      d, s = target_discrepancy(_join(gen_, cls), st, batch, r)
      return lam * d, (d, s)

    def body(i, carry):
      gen_, opt_g_, st, _ = carry
      (_, (d, st)), g = jax.value_and_grad(loss_c, has_aux=True)(
          gen_, st, jax.random.fold_in(rng_c, i))
      gen_, opt_g_ = apply(tx, lr, g, opt_g_, gen_)
      return gen_, opt_g_, st, d
    # Unrolled: XLA:CPU runs convolutions inside a while loop far slower (on
    # the digits LeNet, 0.67 against 24 steps per second).
    gen, opt_g, state, disc_c = jax.lax.fori_loop(
        0, n_gen, body, (gen, opt_g, state, jnp.zeros((), jnp.float32)),
        unroll=True)

    metrics = {"loss": risk, "cls_loss": risk,
               "source_acc": contract.accuracy(l1, batch["ys"]),
               "discrepancy_b": disc_b, "discrepancy": disc_c}
    return (_join(gen, cls), state,
            {"generator": opt_g, "classifiers": opt_c}, metrics)

  def loss(params, state, batch, rng, step, hparams):
    """Phase A's objective (for inspection; the update is :func:`update`)."""
    del step, hparams
    risk, l1, state = source_risk(params, state, batch, rng)
    return risk, ({"source_acc": contract.accuracy(l1, batch["ys"])}, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(init=common.init_with(model, extra_init), loss=loss,
                         predict=predict, features=features,
                         hparams={"lambda": lambda_}, update=update,
                         init_opt=init_opt, name="mcd")
