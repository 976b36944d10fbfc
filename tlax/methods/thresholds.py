r"""Confidence thresholds of semi-supervised learning as pure functions.

A rule is a :class:`ThresholdRule`, a pair of pure functions over a small
carried state (a pytree of arrays, kept in the method state, so it is
checkpointed and runs resume exactly)::

    state = rule.init()
    weights, probs, state, info = rule.apply(state, probs)

``probs`` (n, C) are the class probabilities of the weakly augmented
unlabelled examples; ``weights`` (n,) are the sample weights of their
pseudo-label loss (a 0/1 mask, or SoftMatch's soft weights); the returned
``probs`` are the ones to take pseudo-labels from (SoftMatch's uniform
alignment changes them, the others return them unchanged); ``info`` holds
``threshold`` ((C,) per-class thresholds, or the Gaussian's mean for
SoftMatch) for logging.

The rules with a confidence threshold (:func:`fixed`, :func:`flexmatch`;
``rule.tau`` is its value) also take it as an array,
``rule.apply(state, probs, tau)``, so that runs differing only in the
threshold can be trained as one vmapped program (the methods of
:mod:`tlax.methods.semisupervised` keep it in their ``hparams``); without
it the factory's value is used.

Rules:
  * :func:`fixed` -- FixMatch: :math:`w_i = 1[\max_c q_{ic} \ge \tau]`.
  * :func:`flexmatch` -- per-class curriculum thresholds from the learning
    effect :math:`\sigma_c`.
  * :func:`freematch` -- self-adaptive global and per-class thresholds.
  * :func:`softmatch` -- truncated-Gaussian weights.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class ThresholdRule(NamedTuple):
  """``init() -> state``; ``apply(state, probs[, tau]) -> (weights, probs,
  state, info)`` (see the module docstring). ``tau``: the factory's
  confidence threshold, None for the rules without one."""
  init: Callable[[], Any]
  apply: Callable[..., Any]
  name: str = ""
  tau: float | None = None


def _check_tau(tau: float, name: str = "tau") -> float:
  tau = float(tau)
  if not 0.0 < tau < 1.0:
    raise ValueError(f"The confidence threshold {name} must lie in (0, 1), "
                     f"got {tau}; FixMatch uses 0.95.")
  return tau


def _check_momentum(m: float) -> float:
  m = float(m)
  if not 0.0 <= m < 1.0:
    raise ValueError(f"momentum must lie in [0, 1), got {m}.")
  return m


def _check_classes(num_classes: int) -> int:
  if int(num_classes) < 2:
    raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
  return int(num_classes)


def fixed(tau: float = 0.95) -> ThresholdRule:
  r"""FixMatch's fixed threshold: :math:`w_i = 1[\max_c q_{ic} \ge \tau]`.

  Args:
    tau: the confidence threshold in (0, 1).

  References:
    Sohn et al., FixMatch, NeurIPS 2020.
  """
  tau = _check_tau(tau)

  def init():
    return {}

  def apply(state, probs, tau_value=None):
    t = tau if tau_value is None else tau_value
    conf = jnp.max(probs, axis=-1)
    weights = (conf >= t).astype(jnp.float32)
    return weights, probs, state, {
        "threshold": jnp.full((probs.shape[-1],), t, jnp.float32)}
  return ThresholdRule(init, apply, "fixed", tau)


def flexmatch(num_classes: int, tau: float = 0.95, memory: int = 2048,
              warmup: bool = True, mapping: str = "convex") -> ThresholdRule:
  r"""FlexMatch's curriculum pseudo-labelling thresholds.

  The learning effect of class :math:`c` is the number of unlabelled
  examples whose latest prediction is :math:`c` with confidence above
  :math:`\tau`: :math:`\sigma_c = \sum_n 1[\max q_n > \tau]\,
  1[\arg\max q_n = c]`. It is normalised,
  :math:`\beta_c = \sigma_c / \max(\max_{c'} \sigma_{c'}, N - \sum_{c'}
  \sigma_{c'})` with the threshold warm-up (the count of examples still
  unused enters the maximum) or :math:`\sigma_c / \max_{c'}\sigma_{c'}`
  without it, and mapped to a threshold
  :math:`\mathcal{T}_c = \mathcal{M}(\beta_c)\,\tau` with
  :math:`\mathcal{M}(x) = x / (2 - x)` (convex) or :math:`x` (linear);
  :math:`w_i = 1[\max q_i \ge \mathcal{T}_{\arg\max q_i}]`.

  The "latest prediction per unlabelled example" is kept as a ring buffer
  of the last ``memory`` predictions (class, or -1 when not confident) in
  the order the unlabelled stream yields them: with ``memory`` equal to the
  number of unlabelled examples this is one epoch of the stream, which
  holds each example once (the original keeps one slot per example by its
  index). The buffer starts all -1 (nothing learnt yet), so early
  thresholds are low, as in FlexMatch. Weights use the state before the
  batch; the batch's confident predictions then enter the buffer.

  Args:
    num_classes: C.
    tau: the upper threshold in (0, 1).
    memory: length of the prediction buffer (about the unlabelled set's
      size).
    warmup: the threshold warm-up.
    mapping: ``"convex"`` or ``"linear"``.

  References:
    Zhang et al., FlexMatch: Boosting semi-supervised learning with
    curriculum pseudo labeling, NeurIPS 2021, Eqs. 6-11.
  """
  num_classes = _check_classes(num_classes)
  tau = _check_tau(tau)
  memory = int(memory)
  if memory < 1:
    raise ValueError(f"flexmatch memory must be >= 1, got {memory}.")
  if mapping not in ("convex", "linear"):
    raise ValueError(f"flexmatch mapping must be 'convex' or 'linear', got "
                     f"{mapping!r}.")

  def thresholds(state, tau):
    mem = state["memory"]
    counts = jnp.sum(mem[:, None] == jnp.arange(num_classes)[None, :], 0)
    counts = counts.astype(jnp.float32)
    unused = jnp.sum(mem < 0).astype(jnp.float32)
    top = jnp.max(counts)
    denom = jnp.maximum(top, unused) if warmup else top
    beta = jnp.where(denom > 0, counts / jnp.maximum(denom, 1.0), 0.0)
    if mapping == "convex":
      beta = beta / (2.0 - beta)
    return beta * tau

  def init():
    return {"memory": jnp.full((memory,), -1, jnp.int32),
            "pos": jnp.zeros((), jnp.int32)}

  def apply(state, probs, tau_value=None):
    t = tau if tau_value is None else tau_value
    conf = jnp.max(probs, axis=-1)
    pred = jnp.argmax(probs, axis=-1).astype(jnp.int32)
    thr = thresholds(state, t)
    weights = (conf >= thr[pred]).astype(jnp.float32)
    n = probs.shape[0]
    slots = (state["pos"] + jnp.arange(n, dtype=jnp.int32)) % memory
    entries = jnp.where(conf > t, pred, -1)
    new_state = {"memory": state["memory"].at[slots].set(entries),
                 "pos": (state["pos"] + n) % memory}
    return weights, probs, new_state, {"threshold": thr}
  return ThresholdRule(init, apply, "flexmatch", tau)


def freematch(num_classes: int, momentum: float = 0.999) -> ThresholdRule:
  r"""FreeMatch's self-adaptive thresholds.

  Exponential moving averages (momentum :math:`\lambda`) of the batch's
  mean confidence, mean class probability and argmax histogram:

  .. math::
    \tau_t = \lambda\tau_{t-1} + (1-\lambda)\,\tfrac{1}{n}\textstyle\sum_i
      \max_c q_{ic}, \quad
    \tilde p_t = \lambda\tilde p_{t-1} + (1-\lambda)\,\tfrac{1}{n}
      \textstyle\sum_i q_i, \quad
    \tilde h_t = \lambda\tilde h_{t-1} + (1-\lambda)\,\mathrm{hist}(\hat y)

  all started at :math:`1/C`; the per-class threshold is
  :math:`\tau_t(c) = \tilde p_t(c) / \max_{c'} \tilde p_t(c')\cdot\tau_t`
  and :math:`w_i = 1[\max q_i \ge \tau_t(\arg\max q_i)]`. The state is
  updated with the batch before the mask is taken. ``state["p_model"]`` and
  ``state["label_hist"]`` feed
  :func:`tlax.losses.semisupervised.self_adaptive_fairness`.

  Args:
    num_classes: C.
    momentum: :math:`\lambda` in [0, 1).

  References:
    Wang et al., FreeMatch: Self-adaptive thresholding for semi-supervised
    learning, ICLR 2023, Eqs. 6-9.
  """
  num_classes = _check_classes(num_classes)
  m = _check_momentum(momentum)

  def init():
    u = jnp.full((num_classes,), 1.0 / num_classes, jnp.float32)
    return {"tau": jnp.asarray(1.0 / num_classes, jnp.float32),
            "p_model": u, "label_hist": u}

  def apply(state, probs):
    probs32 = jax.lax.stop_gradient(probs).astype(jnp.float32)
    conf = jnp.max(probs32, axis=-1)
    pred = jnp.argmax(probs32, axis=-1)
    hist = jnp.mean(jax.nn.one_hot(pred, num_classes), axis=0)
    new_state = {
        "tau": m * state["tau"] + (1 - m) * jnp.mean(conf),
        "p_model": m * state["p_model"] + (1 - m) * jnp.mean(probs32, 0),
        "label_hist": m * state["label_hist"] + (1 - m) * hist,
    }
    p = new_state["p_model"]
    thr = p / jnp.max(p) * new_state["tau"]
    weights = (conf >= thr[pred]).astype(jnp.float32)
    return weights, probs, new_state, {"threshold": thr}
  return ThresholdRule(init, apply, "freematch")


def softmatch(num_classes: int, momentum: float = 0.999,
              n_sigma: float = 2.0,
              uniform_alignment: bool = True) -> ThresholdRule:
  r"""SoftMatch's truncated-Gaussian sample weights.

  .. math::
    w_i = \begin{cases}
      \exp\!\Bigl(-\dfrac{(\max_c q_{ic} - \hat\mu_t)^2}
        {2\hat\sigma_t^2 / n_\sigma^2}\Bigr) & \max_c q_{ic} < \hat\mu_t \\
      1 & \text{otherwise}\end{cases}

  with :math:`\hat\mu_t, \hat\sigma_t^2` exponential moving averages
  (momentum :math:`\lambda`, started at :math:`1/C` and 1) of the mean and
  the unbiased variance of the batch's confidences, updated before the
  weights are taken. ``n_sigma = 1`` is the paper's Eq. 7; its authors'
  code narrows the Gaussian to :math:`\hat\sigma_t / 2` (``n_sigma = 2``,
  the default here). With ``uniform_alignment`` the probabilities are first
  aligned to a uniform class prior, :math:`q \leftarrow
  \mathrm{Normalize}(q \cdot u / \tilde p_t)` with :math:`\tilde p_t` the
  moving average of the mean probability (SoftMatch's UA, Eq. 9); the
  aligned probabilities give the pseudo-labels and the weights.

  Args:
    num_classes: C.
    momentum: :math:`\lambda` in [0, 1).
    n_sigma: the Gaussian's width is :math:`\hat\sigma_t / n_\sigma`.
    uniform_alignment: align the probabilities to a uniform prior.

  References:
    Chen et al., SoftMatch: Addressing the quantity-quality trade-off in
    semi-supervised learning, ICLR 2023.
  """
  num_classes = _check_classes(num_classes)
  m = _check_momentum(momentum)
  if float(n_sigma) <= 0:
    raise ValueError(f"softmatch n_sigma must be > 0, got {n_sigma}.")
  n_sigma = float(n_sigma)

  def init():
    return {"mu": jnp.asarray(1.0 / num_classes, jnp.float32),
            "var": jnp.ones((), jnp.float32),
            "p_model": jnp.full((num_classes,), 1.0 / num_classes,
                                jnp.float32)}

  def apply(state, probs):
    probs32 = jax.lax.stop_gradient(probs).astype(jnp.float32)
    p_model = m * state["p_model"] + (1 - m) * jnp.mean(probs32, 0)
    if uniform_alignment:
      probs32 = probs32 / p_model / num_classes
      probs32 = probs32 / jnp.sum(probs32, -1, keepdims=True)
    conf = jnp.max(probs32, axis=-1)
    n = conf.shape[0]
    batch_var = jnp.sum(jnp.square(conf - jnp.mean(conf))) / max(n - 1, 1)
    mu = m * state["mu"] + (1 - m) * jnp.mean(conf)
    var = m * state["var"] + (1 - m) * batch_var
    gap = jnp.minimum(conf - mu, 0.0)
    weights = jnp.exp(-jnp.square(gap) / (2 * var / n_sigma ** 2))
    new_state = {"mu": mu, "var": var, "p_model": p_model}
    return weights, probs32, new_state, {
        "threshold": jnp.full((num_classes,), mu)}
  return ThresholdRule(init, apply, "softmatch")


RULES = {"fixed": fixed, "flexmatch": flexmatch, "freematch": freematch,
         "softmatch": softmatch}
