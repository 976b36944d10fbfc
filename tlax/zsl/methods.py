"""Zero-shot methods: DAP, SJE, ALE, DeViSE, ESZSL, SAE and ConSE.

Each method is a factory with explicit keyword arguments that returns a
:class:`ZSLMethod`, a record of two pure functions::

    fit(rng, x, y, class_embeddings) -> params
    scores(params, x, class_embeddings) -> (n, C) scores
    embed(params, x) -> (n, a) images in the semantic space (for plots)

``x`` are image features theta(x) (n, d) of seen-class training images, ``y``
their labels as row indices into ``class_embeddings`` (the seen classes'
embeddings, (C_seen, a)); ``scores`` ranks images against any classes given
by their embeddings, seen or unseen, so one fitted model serves both the
conventional (unseen classes only) and the generalised (all classes)
protocol of :mod:`tlax.zsl.protocols`. The argmax of ``scores`` is the
prediction.

The compatibility models (SJE, ALE, DeViSE) and the probabilistic ones (DAP's
attribute classifiers, ConSE's seen-class classifier) are trained on fixed
features by a jitted full-batch Adam loop (:func:`fit_adam`); ESZSL and SAE
are closed forms. When the image side is a tlax network trained end to end,
:func:`compatibility_method` gives the same losses as a method of the
training contract (:mod:`tlax.methods.contract`).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from tlax.methods import contract
from tlax.zsl import losses as zsl_losses
from tlax.zsl import semantic

Array = jax.Array


class ZSLMethod(NamedTuple):
  """A zero-shot method: pure ``fit`` and ``scores`` (see module doc)."""
  fit: Callable[..., Any]
  scores: Callable[..., Any]
  name: str = ""
  hparams: Mapping[str, float] = {}
  # embed(params, x) -> (n, a): images as points of the semantic space.
  embed: Callable[..., Any] | None = None


def _check_fit_inputs(x, y, class_embeddings, name):
  x = np.asarray(x, np.float32)
  y = np.asarray(y).astype(np.int32).reshape(-1)
  s = np.asarray(class_embeddings, np.float32)
  if x.ndim != 2 or x.shape[0] != y.shape[0]:
    raise ValueError(f"{name}: features {x.shape} and labels {y.shape} do "
                     "not match; expected (n, d) and (n,).")
  if s.ndim != 2:
    raise ValueError(f"{name}: class embeddings must be (classes, dims), got "
                     f"{s.shape}.")
  if y.size and (y.min() < 0 or y.max() >= s.shape[0]):
    raise ValueError(f"{name}: labels must index the {s.shape[0]} rows of the "
                     f"class embeddings, got labels in {y.min()}..{y.max()}.")
  return x, y, s


def _check_positive(method: str, **values) -> None:
  for name, v in values.items():
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
        0 < v < float("inf")):
      raise ValueError(f"{method}: {name.rstrip('_')} must be a finite "
                       f"number > 0, got {v!r}.")


def check_scores_inputs(params_dim: int, x, class_embeddings, *, what: str,
                        embed_dim: int | None = None):
  """Raises a ValueError naming the mismatch of feature or attribute dims."""
  if np.ndim(x) != 2 or np.shape(x)[1] != params_dim:
    raise ValueError(
        f"{what}: the model was fitted on {params_dim}-d features, got "
        f"features of shape {np.shape(x)}; use the same feature extractor "
        "for training and test images.")
  if embed_dim is not None and np.shape(class_embeddings)[-1] != embed_dim:
    raise ValueError(
        f"{what}: the model was fitted on {embed_dim}-d class embeddings, "
        f"got {np.shape(class_embeddings)[-1]}-d; use one semantic space "
        "(the same attributes or word vectors) for seen and unseen classes.")


# ---------------------------------------------------------------------------
# A jitted full-batch Adam loop for the models trained on fixed features.
# ---------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnames=("objective", "steps"))
def fit_adam(objective, params, data, hparams, *, steps: int):
  """Minimises ``objective(params, data, hparams)`` by full-batch Adam.

  Args:
    objective: pure scalar function (static: define it once, at module level).
    params: initial pytree.
    data: pytree of arrays (features, labels, class embeddings).
    hparams: dict of float scalars; ``hparams["lr"]`` is Adam's step size.
    steps: number of steps.

  Returns:
    ``(params, losses)``, the final parameters and the (steps,) objective
    values along the way.
  """
  tx = optax.adam(1.0)

  def step(carry, _):
    p, opt = carry
    value, grads = jax.value_and_grad(objective)(p, data, hparams)
    updates, opt = tx.update(grads, opt, p)
    # adam(1.0) gives the descent direction; scale it by the step size.
    p = optax.apply_updates(p, jax.tree.map(lambda u: hparams["lr"] * u,
                                            updates))
    return (p, opt), value

  (params, _), values = jax.lax.scan(step, (params, tx.init(params)), None,
                                     length=steps)
  return params, values


def _project(params, x):
  return jnp.asarray(x, jnp.float32) @ params["w"]


def _hp(**kw):
  return {k: jnp.float32(v) for k, v in kw.items()}


# ---------------------------------------------------------------------------
# Compatibility methods: SJE, ALE, DeViSE.
# ---------------------------------------------------------------------------
def _compat_objective(params, data, hparams, *, loss):
  x, y, s = data["x"], data["y"], data["s"]
  scores = zsl_losses.compatibility_scores(x, params["w"], s)
  value = jnp.mean(loss(scores, y, hparams["margin"]))
  return value + hparams["weight_decay"] * jnp.sum(params["w"] ** 2)


_COMPAT_OBJECTIVES = {
    name: functools.partial(_compat_objective, loss=fn)
    for name, fn in zsl_losses.LOSSES.items()}


def _compatibility(name, loss, *, margin, lr, steps, weight_decay):
  objective = _COMPAT_OBJECTIVES[loss]

  def fit(rng, x, y, class_embeddings):
    x, y, s = _check_fit_inputs(x, y, class_embeddings, name)
    w0 = 0.01 * jax.random.normal(rng, (x.shape[1], s.shape[1]), jnp.float32)
    params, _ = fit_adam(objective, {"w": w0}, {"x": x, "y": y, "s": s},
                         _hp(margin=margin, lr=lr, weight_decay=weight_decay),
                         steps=int(steps))
    return params

  def scores(params, x, class_embeddings):
    d, a = params["w"].shape
    check_scores_inputs(d, x, class_embeddings, what=name, embed_dim=a)
    return zsl_losses.compatibility_scores(jnp.asarray(x, jnp.float32),
                                           params["w"],
                                           jnp.asarray(class_embeddings,
                                                       jnp.float32))

  return ZSLMethod(fit=fit, scores=scores, name=name,
                   hparams={"margin": margin, "lr": lr, "steps": steps,
                            "weight_decay": weight_decay}, embed=_project)


def sje(*, margin: float = 1.0, lr: float = 1e-2, steps: int = 300,
        weight_decay: float = 1e-4) -> ZSLMethod:
  """Structured joint embedding (Akata et al., CVPR 2015).

  The bilinear compatibility ``x^T W s_y`` trained with
  :func:`tlax.zsl.losses.structured_hinge_loss` (the attribute-embedding
  max-margin loss) plus ``weight_decay * ||W||^2``.
  """
  return _compatibility("sje", "sje", margin=margin, lr=lr, steps=steps,
                        weight_decay=weight_decay)


def ale(*, margin: float = 1.0, lr: float = 1e-2, steps: int = 300,
        weight_decay: float = 1e-4) -> ZSLMethod:
  """Attribute label embedding (Akata et al., TPAMI 2016).

  The bilinear compatibility trained with ALE's weighted approximate ranking
  loss :func:`tlax.zsl.losses.weighted_rank_loss`.
  """
  return _compatibility("ale", "ale", margin=margin, lr=lr, steps=steps,
                        weight_decay=weight_decay)


def devise(*, margin: float = 0.1, lr: float = 1e-2, steps: int = 300,
           weight_decay: float = 1e-4) -> ZSLMethod:
  """DeViSE (Frome et al., NeurIPS 2013) on fixed image features.

  A linear map ``M`` of image features into the semantic (word-vector)
  space, trained with :func:`tlax.zsl.losses.hinge_rank_loss`; the score of
  class ``j`` is ``t_j^T M v(x)``.
  """
  return _compatibility("devise", "devise", margin=margin, lr=lr, steps=steps,
                        weight_decay=weight_decay)


# ---------------------------------------------------------------------------
# DAP.
# ---------------------------------------------------------------------------
def _dap_objective(params, data, hparams):
  logits = data["x"] @ params["w"] + params["b"]
  value = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, data["a"]))
  return value + hparams["weight_decay"] * jnp.sum(params["w"] ** 2)


def dap(*, lr: float = 1e-2, steps: int = 300, weight_decay: float = 1e-4,
        prior_clip: float = 0.05) -> ZSLMethod:
  r"""Direct attribute prediction (Lampert et al., CVPR 2009 / TPAMI 2014).

  One logistic classifier per binary attribute ``a_m`` is trained on the seen
  classes (each image labelled with its class's attribute signature); a
  class ``z`` with signature ``a^z`` then scores

  .. math::
    \log p(z | x) = \sum_m \log p(a_m = a^z_m | x)
                    - \log p(a_m = a^z_m) + \mathrm{const}

  with the attribute priors ``p(a_m)`` the attribute frequencies among the
  training images (clipped to ``[prior_clip, 1 - prior_clip]``). Continuous
  attribute tables (and word vectors) are binarised at each dimension's mean
  over the seen classes (:func:`tlax.zsl.semantic.binarise`).
  """
  def fit(rng, x, y, class_embeddings):
    x, y, s = _check_fit_inputs(x, y, class_embeddings, "dap")
    sig, threshold = semantic.binarise(s)
    a = sig[y]
    w0 = 0.01 * jax.random.normal(rng, (x.shape[1], s.shape[1]), jnp.float32)
    params, _ = fit_adam(_dap_objective,
                         {"w": w0, "b": jnp.zeros(s.shape[1], jnp.float32)},
                         {"x": x, "a": a}, _hp(lr=lr,
                                               weight_decay=weight_decay),
                         steps=int(steps))
    prior = np.clip(a.mean(0), prior_clip, 1.0 - prior_clip)
    return {**params, "threshold": jnp.asarray(threshold),
            "prior": jnp.asarray(prior, jnp.float32)}

  def scores(params, x, class_embeddings):
    d, a = params["w"].shape
    check_scores_inputs(d, x, class_embeddings, what="dap", embed_dim=a)
    sig, _ = semantic.binarise(class_embeddings, params["threshold"])
    return _dap_scores(params, jnp.asarray(x, jnp.float32), jnp.asarray(sig))

  def embed(params, x):
    return jax.nn.sigmoid(jnp.asarray(x, jnp.float32) @ params["w"]
                          + params["b"])

  return ZSLMethod(fit=fit, scores=scores, name="dap",
                   hparams={"lr": lr, "steps": steps,
                            "weight_decay": weight_decay}, embed=embed)


@jax.jit
def _dap_scores(params, x, sig):
  logits = x @ params["w"] + params["b"]
  log_p1, log_p0 = jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
  prior = params["prior"]
  ll = log_p1 @ sig.T + log_p0 @ (1.0 - sig).T
  log_prior = jnp.log(prior) @ sig.T + jnp.log(1.0 - prior) @ (1.0 - sig).T
  return ll - log_prior[None, :]


# ---------------------------------------------------------------------------
# ESZSL and SAE: closed forms.
# ---------------------------------------------------------------------------
def eszsl(*, gamma: float = 1.0, lambda_: float = 1.0) -> ZSLMethod:
  r"""Embarrassingly simple zero-shot learning (Romera-Paredes & Torr, 2015).

  With features ``X`` (n, d), class embeddings ``S`` (z, a) of the seen
  classes and ``Y`` (n, z) the labels coded +1 for the true class and -1
  otherwise, the bilinear map minimising
  ``||X V S^T - Y||^2 + gamma ||V S^T||^2 + lambda ||X V||^2 + gamma lambda
  ||V||^2`` is

  .. math::
    V = (X^\top X + \gamma I)^{-1} X^\top Y S (S^\top S + \lambda I)^{-1}

  and the score of class ``y`` is ``x^T V s_y``.
  """
  _check_positive("eszsl", gamma=gamma, lambda_=lambda_)

  def fit(rng, x, y, class_embeddings):
    del rng
    x, y, s = _check_fit_inputs(x, y, class_embeddings, "eszsl")
    x64, s64 = x.astype(np.float64), s.astype(np.float64)
    yy = -np.ones((x.shape[0], s.shape[0]))
    yy[np.arange(x.shape[0]), y] = 1.0
    n, d = x64.shape
    if d <= n:
      left = np.linalg.solve(x64.T @ x64 + gamma * np.eye(d), x64.T @ yy)
    else:  # (X^T X + g I)^-1 X^T = X^T (X X^T + g I)^-1
      left = x64.T @ np.linalg.solve(x64 @ x64.T + gamma * np.eye(n), yy)
    a = s.shape[1]
    v = np.linalg.solve((s64.T @ s64 + lambda_ * np.eye(a)).T,
                        (left @ s64).T).T
    return {"w": jnp.asarray(v, jnp.float32)}

  def scores(params, x, class_embeddings):
    d, a = params["w"].shape
    check_scores_inputs(d, x, class_embeddings, what="eszsl", embed_dim=a)
    return zsl_losses.compatibility_scores(
        jnp.asarray(x, jnp.float32), params["w"],
        jnp.asarray(class_embeddings, jnp.float32))

  return ZSLMethod(fit=fit, scores=scores, name="eszsl",
                   hparams={"gamma": gamma, "lambda": lambda_}, embed=_project)


def _cosine(a, b):
  a = a / jnp.maximum(jnp.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
  b = b / jnp.maximum(jnp.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
  return a @ b.T


def solve_sae(x: np.ndarray, s: np.ndarray, lambda_: float) -> np.ndarray:
  r"""Solves ``S S^T W + lambda W X X^T = (1 + lambda) S X^T`` for W (a, d).

  Both coefficient matrices are symmetric: with ``S S^T = P diag(a) P^T`` and
  the thin SVD ``X = U diag(sigma) V^T``, the right-hand side lies in the
  span of ``U``, so ``W = P [ (P^T C U)_{ij} / (a_i + lambda sigma_j^2) ]
  U^T``. This costs ``O(d n min(d, n))`` instead of the ``O(d^3)`` of a
  general Sylvester solver (d = 2048 for ResNet features).

  Args:
    x: (d, n) features, one column per image.
    s: (a, n) class embeddings of the images.
    lambda_: the weight of the encoder's reconstruction term.
  """
  a_vals, p = np.linalg.eigh(s @ s.T)
  u, sigma, _ = np.linalg.svd(x, full_matrices=False)
  c = (1.0 + lambda_) * s @ x.T
  denom = a_vals[:, None] + lambda_ * sigma[None, :] ** 2
  core = (p.T @ c @ u) / np.where(np.abs(denom) > 1e-12, denom, np.inf)
  return p @ core @ u.T


def sae(*, lambda_: float = 0.2, space: str = "semantic") -> ZSLMethod:
  r"""Semantic autoencoder (Kodirov et al., CVPR 2017), closed form.

  The encoder ``W`` (a, d) maps features into the semantic space and its
  transpose decodes them back; with ``X`` (d, n) the features and ``S``
  (a, n) the class embeddings of the training images, minimising
  ``||X - W^T S||^2 + lambda ||W X - S||^2`` gives the Sylvester equation

  .. math::
    S S^\top W + \lambda W X X^\top = (1 + \lambda) S X^\top .

  ``space="semantic"`` scores class ``y`` by the cosine of ``W x`` and
  ``s_y``; ``space="feature"`` by the cosine of ``x`` and ``W^T s_y``.
  """
  if space not in ("semantic", "feature"):
    raise ValueError(f"sae: space must be 'semantic' or 'feature', got "
                     f"{space!r}.")
  _check_positive("sae", lambda_=lambda_)

  def fit(rng, x, y, class_embeddings):
    del rng
    x, y, s = _check_fit_inputs(x, y, class_embeddings, "sae")
    xt = x.T.astype(np.float64)
    st = s[y].T.astype(np.float64)
    return {"w": jnp.asarray(solve_sae(xt, st, lambda_), jnp.float32)}

  def scores(params, x, class_embeddings):
    a, d = params["w"].shape
    check_scores_inputs(d, x, class_embeddings, what="sae", embed_dim=a)
    x = jnp.asarray(x, jnp.float32)
    s = jnp.asarray(class_embeddings, jnp.float32)
    if space == "semantic":
      return _cosine(x @ params["w"].T, s)
    return _cosine(x, s @ params["w"])

  def embed(params, x):
    return jnp.asarray(x, jnp.float32) @ params["w"].T

  return ZSLMethod(fit=fit, scores=scores, name="sae",
                   hparams={"lambda": lambda_}, embed=embed)


# ---------------------------------------------------------------------------
# ConSE.
# ---------------------------------------------------------------------------
def conse_embedding(probs: Array, seen_embeddings: Array,
                    top_t: int = 10) -> Array:
  r"""ConSE's semantic embedding of images from a seen-class classifier.

  .. math::
    f(x) = \frac{1}{Z} \sum_{t=1}^{T} p(\hat y_t | x)\, s(\hat y_t),
    \quad Z = \sum_{t=1}^{T} p(\hat y_t | x)

  where ``\hat y_1, ..., \hat y_T`` are the T most probable seen classes.
  Works on the softmax outputs of any classifier tlax trains.

  Args:
    probs: (..., C_seen) class probabilities.
    seen_embeddings: (C_seen, a) embeddings of the seen classes.
    top_t: T (clipped to C_seen).

  Returns:
    (..., a) embeddings.

  References:
    Norouzi et al., `Zero-Shot Learning by Convex Combination of Semantic
    Embeddings <https://arxiv.org/abs/1312.5650>`_, ICLR 2014.
  """
  t = min(int(top_t), probs.shape[-1])
  top_p, top_i = jax.lax.top_k(probs, t)
  z = jnp.maximum(jnp.sum(top_p, -1, keepdims=True), 1e-12)
  return jnp.einsum("...t,...ta->...a", top_p / z, seen_embeddings[top_i])


def _softmax_objective(params, data, hparams):
  logits = data["x"] @ params["w"] + params["b"]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, data["y"])
  return jnp.mean(ce) + hparams["weight_decay"] * jnp.sum(params["w"] ** 2)


def conse(*, top_t: int = 10, lr: float = 1e-2, steps: int = 300,
          weight_decay: float = 1e-4) -> ZSLMethod:
  """ConSE (Norouzi et al., ICLR 2014) on a softmax classifier of seen classes.

  The classifier here is a softmax regression on the features; to use a tlax
  network's own head, take its softmax outputs and call
  :func:`conse_embedding` and :func:`conse_scores`. A class is scored by the
  cosine of its embedding with :func:`conse_embedding`.
  """
  def fit(rng, x, y, class_embeddings):
    x, y, s = _check_fit_inputs(x, y, class_embeddings, "conse")
    w0 = 0.01 * jax.random.normal(rng, (x.shape[1], s.shape[0]), jnp.float32)
    params, _ = fit_adam(_softmax_objective,
                         {"w": w0, "b": jnp.zeros(s.shape[0], jnp.float32)},
                         {"x": x, "y": y},
                         _hp(lr=lr, weight_decay=weight_decay),
                         steps=int(steps))
    return {**params, "seen": jnp.asarray(s)}

  def scores(params, x, class_embeddings):
    d = params["w"].shape[0]
    check_scores_inputs(d, x, class_embeddings, what="conse",
                        embed_dim=params["seen"].shape[1])
    probs = jax.nn.softmax(jnp.asarray(x, jnp.float32) @ params["w"]
                           + params["b"])
    return conse_scores(probs, params["seen"],
                        jnp.asarray(class_embeddings, jnp.float32), top_t)

  def embed(params, x):
    probs = jax.nn.softmax(jnp.asarray(x, jnp.float32) @ params["w"]
                           + params["b"])
    return conse_embedding(probs, params["seen"], top_t)

  return ZSLMethod(fit=fit, scores=scores, name="conse",
                   hparams={"top_t": top_t, "lr": lr, "steps": steps,
                            "weight_decay": weight_decay}, embed=embed)


def conse_scores(probs, seen_embeddings, class_embeddings, top_t: int = 10):
  """Cosine of :func:`conse_embedding` with every class embedding, (n, C)."""
  return _cosine(conse_embedding(probs, seen_embeddings, top_t),
                 class_embeddings)


METHODS: dict[str, Callable[..., ZSLMethod]] = {
    "dap": dap, "sje": sje, "ale": ale, "devise": devise, "eszsl": eszsl,
    "sae": sae, "conse": conse,
}


def get_method(name: str, **options) -> ZSLMethod:
  """The method ``name`` of :data:`METHODS` built with ``options``."""
  if name not in METHODS:
    raise KeyError(f"Unknown zero-shot method {name!r}; valid: "
                   f"{', '.join(sorted(METHODS))}.")
  return contract.call_factory(METHODS[name], options)


# ---------------------------------------------------------------------------
# A deep compatibility method of the training contract.
# ---------------------------------------------------------------------------
def compatibility_method(model, num_classes, *, total_steps,
                         class_embeddings, loss: str = "sje",
                         margin: float = 1.0) -> contract.Method:
  """Attribute embedding with a tlax network as the image side f(x).

  ``f(x)`` is the network's embedding (``features["embedding"]``), mapped by a
  trained linear ``W`` into the semantic space; the network and ``W`` are
  trained together on seen-class images with one of the ranking losses of
  :mod:`tlax.zsl.losses` (``"sje"``, ``"ale"``, ``"devise"``). ``predict``
  gives scores against the ``num_classes`` training classes;
  ``features(...)["semantic"]`` is the image's point in the semantic space,
  scored against any (unseen) class by its dot product with the class
  embedding.

  Args:
    model: a tlax model (its apply returns ``(logits, features)``).
    num_classes: number of seen (training) classes.
    total_steps: unused (no schedule).
    class_embeddings: (num_classes, a) embeddings of the training classes.
    loss: ``"sje"``, ``"ale"`` or ``"devise"``.
    margin: the loss's margin.
  """
  del total_steps
  if loss not in zsl_losses.LOSSES:
    raise KeyError(f"Unknown compatibility loss {loss!r}; valid: "
                   f"{', '.join(zsl_losses.LOSSES)}.")
  s = jnp.asarray(np.asarray(class_embeddings, np.float32))
  if s.ndim != 2 or s.shape[0] != num_classes:
    raise ValueError(f"class_embeddings has shape {s.shape}; expected "
                     f"({num_classes}, dims), one row per training class.")
  loss_fn = zsl_losses.LOSSES[loss]

  def init(rng, batch):
    rng_model, rng_w = jax.random.split(rng)
    params, state = contract.init_classifier(model, rng_model, batch["xs"])
    _, feats = model.apply({"params": params["model"], **state["model"]},
                           jnp.asarray(batch["xs"]), train=False)
    dim = feats["embedding"].shape[-1]
    params["compat"] = 0.01 * jax.random.normal(rng_w, (dim, s.shape[1]))
    return params, state

  def _semantic(params, state, x, train, rng=None):
    _, feats, state = contract.apply_classifier(model, params, state, x,
                                                train=train, rng=rng)
    return feats["embedding"] @ params["compat"], feats, state

  def loss_(params, state, batch, rng, step, hparams):
    del step
    z, _, state = _semantic(params, state, batch["xs"], True, rng)
    scores = z @ s.T
    per_example = loss_fn(scores, batch["ys"], hparams["margin"])
    value = jnp.mean(batch["ws"] * per_example)
    return value, ({"source_acc": contract.accuracy(scores, batch["ys"])},
                   state)

  def predict(params, state, x):
    return _semantic(params, state, x, False)[0] @ s.T

  def features(params, state, x):
    z, feats, _ = _semantic(params, state, x, False)
    return {**feats, "semantic": z}

  return contract.Method(init=init, loss=loss_, predict=predict,
                         features=features, hparams={"margin": margin},
                         name=f"zsl_{loss}")
