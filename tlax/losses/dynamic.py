r"""Dynamic distribution alignment: weigh marginal against conditional shift.

.. math:: \mathcal L_{\mathrm{DDA}} = (1 - \mu)\, D_{\mathrm{marginal}}(P_s, P_t)
   + \mu\, D_{\mathrm{conditional}}(P_s(\cdot|y), P_t(\cdot|y))

(BDA, MEDA, DDAN, DAAN). :math:`\mu = 0` aligns only the marginals (DAN),
:math:`\mu = 1` only the class conditionals (DSAN); :math:`\mu = 0.5` is
JDA's equal weighting.

Two ways to set :math:`\mu`:

(a) fixed: :func:`dynamic_distribution_alignment` (any two discrepancies) or
    :func:`dynamic_mmd` (both MMD terms from one shared kernel matrix);

(b) learned during training: :func:`dynamic_mu_estimator`, following MEDA /
    DAAN, sets :math:`\mu = \bar d_c / (d_g + \bar d_c)` from proxy
    A-distances :math:`d = 2(1 - 2\epsilon)` of a global domain classifier
    (:math:`d_g`) and one per class (:math:`\bar d_c` their mean over the
    classes seen; ``class_reduction="sum"`` gives MEDA's sum, which pushes
    :math:`\mu` to 1 as the number of classes grows).

Design of (b), and why. The reference implementations refit a linear SVM on
the CPU (MEDA: per iteration; DAAN: accumulate discriminator losses per
epoch); that needs a host round trip, breaks ``jit`` and cannot be resumed
from a checkpoint. Here the estimator is a pure function whose state (the
linear classifiers and exponential moving averages of their errors) is a
pytree the trainer keeps in its ``TrainState``:

* the classifiers are logistic regressions on stop-gradient features,
  standardised with the batch's pooled statistics, trained by one SGD step
  per call (one global: source vs target; one per class c: source examples
  of class c vs target examples weighted by their probability of c);
* the error of each classifier is measured *before* it trains on the batch
  (prequential, "test then train"): every batch is unseen data for the
  classifier, so the error is a held-out estimate without splitting the
  batch; per-class errors weight target examples by ``probs_t`` and are
  class-balanced (a classifier that always says "source" scores 0.5, i.e.
  distance 0, whatever the class sizes);
* errors are smoothed with an EMA (with Adam-style bias correction) over
  steps, per class only on steps where the class is present in both
  batches; distances are clipped to [0, 2].

Cost per step: :math:`O((n_s + n_t)\, d\, C)`, negligible next to the
network. Evidence (``tests/test_losses_dynamic.py``, and the table in
``docs/losses_benchmark.md``): on synthetic two-class data with the class
conditionals swapped between domains but identical marginals, the learned
:math:`\mu` goes to about 1; with only a label-proportion shift (marginals
differ, conditionals identical) it goes to about 0; with a pure covariate
shift of every class (both differ) it stays near 0.5.

References:
  Wang et al., Balanced Distribution Adaptation for Transfer Learning
  (BDA), ICDM 2017. Wang et al., Visual Domain Adaptation with Manifold
  Embedded Distribution Alignment (MEDA), ACM MM 2018. Wang et al.,
  Transfer Learning with Dynamic Distribution Adaptation (DDAN), ACM TIST
  2020. Yu et al., Transfer Learning with Dynamic Adversarial Adaptation
  Network (DAAN), ICDM 2019.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from tlax.losses import _fused
from tlax.losses import _validation as val
from tlax.losses import kernels as kern
from tlax.losses import mmd_losses as mm

Array = jax.Array


def dynamic_distribution_alignment(marginal: Any, conditional: Any,
                                   mu: Any) -> Array:
  r""":math:`(1 - \mu)\,\mathrm{marginal} + \mu\,\mathrm{conditional}`."""
  mu = jnp.asarray(mu)
  return (1.0 - mu) * marginal + mu * conditional


@functools.partial(jax.jit,
                   static_argnames=("data_spec", "kernel", "reduction"))
def _dynamic_mmd_core(xs, xt, ys, yt, mu, fixed, w, data_spec, kernel,
                      reduction):
  ws, wt, mask = mm.class_weights(ys, yt, xs.dtype)
  if kernel == "linear":
    delta = kern.column_mean(xs) - kern.column_mean(xt)
    marginal = jnp.sum(delta * delta)
    conditional = mm._conditional_linear(xs, xt, ws, wt, mask, reduction)  # pylint: disable=protected-access
  else:
    # one fused kernel pass with the combined coefficients
    mu = jnp.asarray(mu).astype(xs.dtype)
    marg = _fused.estimator_coefficients(xs.shape[0], xt.shape[0], "biased",
                                         xs.dtype)
    cond = _fused.conditional_coefficients(ws, wt, mask, reduction)
    coefs = (1.0 - mu) * _fused.dense_coefficients(marg) + mu * cond
    spec = mm._join_spec(data_spec, fixed)  # pylint: disable=protected-access
    return mm._gaussian_discrepancy((xs,), (xt,), (spec,), (w,), coefs)  # pylint: disable=protected-access
  mu = jnp.asarray(mu).astype(marginal.dtype)
  return (1.0 - mu) * marginal + mu * conditional


def dynamic_mmd(xs: Any, xt: Any, labels_s: Any, labels_t: Any, mu: Any,
                num_classes: Optional[int] = None, *,
                kernel: str = "gaussian", sigmas: kern.SigmaSpec = "mean:5",
                weights: Optional[Any] = None,
                reduction: str = "mean") -> Array:
  r"""Dynamic MMD: :math:`(1-\mu)\,\mathrm{MMD}^2 + \mu\,\mathrm{LMMD}^2`.

  The marginal term is :func:`~tlax.losses.mk_mmd` (biased) and the
  conditional term :func:`~tlax.losses.class_conditional_mmd`; both come from
  one shared kernel matrix, so this costs the same as either alone.

  Args:
    xs, xt: (ns, d), (nt, d) features.
    labels_s: (ns,) integer labels or (ns, C) one-hot / soft labels.
    labels_t: (nt,) integer pseudo-labels or (nt, C) probabilities.
    mu: scalar in [0, 1] (a float, or traced, e.g. from
      :func:`dynamic_mu_estimator`).
    num_classes: C, needed only if both label arrays are integer ids.
    kernel, sigmas, weights, reduction: as in
      :func:`~tlax.losses.class_conditional_mmd`.

  Returns:
    Scalar.
  """
  fn = "dynamic_mmd"
  val.check_finite(mu, "mu", fn)
  if jnp.ndim(mu) != 0:
    raise ValueError(f"{fn}: mu must be a scalar; got shape {jnp.shape(mu)}.")
  val.check_in_range(mu, "mu", fn, 0.0, 1.0)
  xs, xt, ys, yt, spec, w = mm._prepare_conditional(  # pylint: disable=protected-access
      xs, xt, labels_s, labels_t, num_classes, kernel, sigmas, weights,
      reduction, fn)
  data_spec, fixed = mm._split_spec(spec)  # pylint: disable=protected-access
  mu = jnp.asarray(mu)
  return val.nan_unless((mu >= 0) & (mu <= 1), _dynamic_mmd_core(
      xs, xt, ys, yt, mu, fixed, w, data_spec, kernel, reduction))


# ---------------------------------------------------------------------------
# Learned mu from in-graph proxy A-distances.
# ---------------------------------------------------------------------------


class DynamicMuState(NamedTuple):
  """State of :func:`dynamic_mu_estimator` (a pytree; checkpoint it)."""
  w_global: Array      # (d,) global domain classifier weights
  b_global: Array      # () its bias
  w_class: Array       # (C, d) per-class domain classifiers
  b_class: Array       # (C,)
  err_global: Array    # () EMA accumulator of the global error
  err_class: Array     # (C,) EMA accumulators of per-class errors
  norm_global: Array   # () EMA bias-correction normaliser
  norm_class: Array    # (C,)
  a_distance_global: Array  # () last smoothed global proxy A-distance
  a_distance_class: Array   # (C,) last smoothed per-class distances
  mu: Array            # () last mu


class DynamicMuEstimator(NamedTuple):
  """``init(feature_dim) -> state``; ``update(state, features_s, labels_s,
  features_t, probs_t) -> (state, mu)``."""
  init: Callable[[int], DynamicMuState]
  update: Callable[..., Tuple[DynamicMuState, Array]]


def mu_from_a_distances(d_global: Any, d_class: Any,
                        mask: Optional[Any] = None,
                        class_reduction: str = "mean", *,
                        snap: Optional[float] = None) -> Array:
  r"""The balance factor :math:`\mu = D_c / (d_g + D_c)` from A-distances.

  :math:`D_c` is the mean (or sum) of the per-class A-distances over
  ``mask``; :math:`\mu = 0.5` where :math:`d_g + D_c \le 0` (the domains
  are indistinguishable, nothing to weigh). This is the one rule of DDAN,
  BDA and MEDA (:math:`\mu = 1 - d_g / (d_g + D_c)` in MEDA's and DAAN's
  notation).

  Args:
    d_global: the marginal A-distance :math:`d_g`.
    d_class: ``(C,)`` per-class A-distances.
    mask: ``(C,)`` bool, the classes that count (default all).
    class_reduction: ``"mean"`` (MEDA, BDA) or ``"sum"``.
    snap: MEDA's rounding: ``mu`` is clipped to at most 1 and values at or
      below ``snap`` become 0 (MEDA uses ``1e-3``); ``None`` leaves ``mu``
      as computed.

  Returns:
    Scalar ``mu``.
  """
  d_global = jnp.asarray(d_global)
  d_class = jnp.asarray(d_class)
  m = (jnp.ones_like(d_class, dtype=bool) if mask is None
       else jnp.asarray(mask, bool))
  total = jnp.sum(jnp.where(m, d_class, 0.0))
  if class_reduction == "mean":
    total = total / jnp.maximum(jnp.sum(m), 1)
  elif class_reduction != "sum":
    raise ValueError("mu_from_a_distances: class_reduction must be 'mean' or "
                     f"'sum'; got {class_reduction!r}.")
  denom = d_global + total
  pos = denom > 0
  mu = jnp.where(pos, total / jnp.where(pos, denom, 1.0), 0.5)
  if snap is not None:
    mu = jnp.minimum(mu, 1.0)
    mu = jnp.where(mu <= snap, 0.0, mu)
  # A non-finite A-distance never becomes the neutral 0.5.
  return val.nan_unless(val.all_finite(d_global, total), mu)


def _standardize(fs, ft):
  z = jnp.concatenate([fs, ft], axis=0)
  mean = jnp.mean(z, axis=0)
  sd = jnp.sqrt(jnp.var(z, axis=0))
  sd = jnp.where(sd > 1e-6, sd, 1.0)
  return (fs - mean) / sd, (ft - mean) / sd


def _classifier_losses(params, xs, xt, ws, wt, cmask, l2):
  wg, bg, wc, bc = params
  fgs, fgt = xs @ wg + bg, xt @ wg + bg
  loss_g = 0.5 * jnp.mean(jax.nn.softplus(-fgs)) + 0.5 * jnp.mean(
      jax.nn.softplus(fgt))
  fcs, fct = xs @ wc.T + bc, xt @ wc.T + bc  # (ns, C), (nt, C)
  per_class = 0.5 * jnp.sum(ws * jax.nn.softplus(-fcs), axis=0) + 0.5 * (
      jnp.sum(wt * jax.nn.softplus(fct), axis=0))
  loss_c = jnp.sum(jnp.where(cmask, per_class, 0.0))
  reg = 0.5 * l2 * (jnp.sum(wg * wg) + jnp.sum(wc * wc))
  return loss_g + loss_c + reg, (fgs, fgt, fcs, fct)


def dynamic_mu_estimator(num_classes: int, *, learning_rate: float = 0.05,
                         ema_decay: float = 0.9, l2: float = 1e-4,
                         class_reduction: str = "mean",
                         dtype: Any = jnp.float32) -> DynamicMuEstimator:
  r"""Learned :math:`\mu` from in-graph proxy A-distances (module docstring).

  Args:
    num_classes: C.
    learning_rate: SGD step of the linear domain classifiers (on
      standardised features).
    ema_decay: smoothing of the classifiers' errors over steps (0.9 averages
      about the last 10 steps; use 0.99 for smaller batches).
    l2: L2 penalty of the classifiers.
    class_reduction: ``"mean"`` (DAAN) or ``"sum"`` (MEDA) of per-class
      distances.
    dtype: dtype of the state.

  Returns:
    ``DynamicMuEstimator(init, update)``; both pure, ``update`` jittable
    (call it inside the train step; it never backpropagates into the
    features).

  Example:
    >>> est = dynamic_mu_estimator(num_classes=3)
    >>> state = est.init(feature_dim=16)
    >>> # in the jitted step:
    >>> # state, mu = est.update(state, fs, ys, ft, jax.nn.softmax(logits_t))
    >>> # loss = ce + lam * dynamic_mmd(fs, ft, ys, probs_t, mu)
  """
  fn = "dynamic_mu_estimator"
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"{fn}: num_classes must be an int >= 1; got "
                     f"{num_classes!r}.")
  if not 0.0 <= ema_decay < 1.0:
    raise ValueError(f"{fn}: ema_decay must be in [0, 1); got {ema_decay!r}.")
  val.check_finite_positive(learning_rate, "learning_rate", fn)
  if class_reduction not in ("mean", "sum"):
    raise ValueError(f"{fn}: class_reduction must be 'mean' or 'sum'; got "
                     f"{class_reduction!r}.")
  C = num_classes

  def init(feature_dim: int) -> DynamicMuState:
    if not isinstance(feature_dim, int) or feature_dim < 1:
      raise ValueError(f"{fn}.init: feature_dim must be an int >= 1; got "
                       f"{feature_dim!r}.")
    z = lambda *s: jnp.zeros(s, dtype)
    return DynamicMuState(
        w_global=z(feature_dim), b_global=z(), w_class=z(C, feature_dim),
        b_class=z(C), err_global=z(), err_class=z(C), norm_global=z(),
        norm_class=z(C), a_distance_global=z(), a_distance_class=z(C),
        mu=jnp.asarray(0.5, dtype))

  def update(state: DynamicMuState, features_s: Any, labels_s: Any,
             features_t: Any, probs_t: Any) -> Tuple[DynamicMuState, Array]:
    ufn = f"{fn}.update"
    fs = val.as_features(features_s, "features_s", ufn)
    ft = val.as_features(features_t, "features_t", ufn)
    val.check_same_features(fs, ft, ufn, ("features_s", "features_t"))
    if fs.shape[1] != state.w_global.shape[0]:
      raise ValueError(f"{ufn}: features have {fs.shape[1]} dims but the "
                       f"state was initialised for {state.w_global.shape[0]}.")
    ys = mm._labels_to_matrix(labels_s, fs.shape[0], C, "labels_s", ufn)  # pylint: disable=protected-access
    yt = mm._labels_to_matrix(probs_t, ft.shape[0], C, "probs_t", ufn)  # pylint: disable=protected-access
    sg = jax.lax.stop_gradient
    fs, ft = sg(fs).astype(dtype), sg(ft).astype(dtype)
    xs, xt = _standardize(fs, ft)
    ws, wt, cmask = mm.class_weights(ys, yt, dtype)

    params = (state.w_global, state.b_global, state.w_class, state.b_class)
    grads, (fgs, fgt, fcs, fct) = jax.grad(
        _classifier_losses, has_aux=True)(params, xs, xt, ws, wt, cmask, l2)

    # Prequential (test-then-train) balanced errors of the current classifiers.
    err_g = 0.5 * (jnp.mean(fgs <= 0) + jnp.mean(fgt > 0))
    err_c = 0.5 * (jnp.sum(ws * (fcs <= 0), axis=0)
                   + jnp.sum(wt * (fct > 0), axis=0))
    a = ema_decay
    err_global = a * state.err_global + (1 - a) * err_g.astype(dtype)
    norm_global = a * state.norm_global + (1 - a)
    err_class = jnp.where(cmask, a * state.err_class + (1 - a) * err_c,
                          state.err_class)
    norm_class = jnp.where(cmask, a * state.norm_class + (1 - a),
                           state.norm_class)
    seen = norm_class > 0
    d_g = jnp.clip(2.0 * (1.0 - 2.0 * err_global / norm_global), 0.0, 2.0)
    d_c = jnp.where(
        seen,
        jnp.clip(2.0 * (1.0 - 2.0 * err_class / jnp.where(seen, norm_class,
                                                           1.0)), 0.0, 2.0),
        0.0)
    mu = mu_from_a_distances(d_g, d_c, seen, class_reduction).astype(dtype)

    new_params = jax.tree_util.tree_map(lambda p, g: p - learning_rate * g,
                                        params, grads)
    new_state = DynamicMuState(
        *new_params, err_global=err_global, err_class=err_class,
        norm_global=norm_global, norm_class=norm_class,
        a_distance_global=d_g.astype(dtype),
        a_distance_class=d_c.astype(dtype), mu=mu)
    return new_state, mu

  return DynamicMuEstimator(init, update)
