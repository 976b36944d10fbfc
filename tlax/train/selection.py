r"""Model selection without target labels.

Two label-free criteria are recorded at every evaluation:

* **source validation** (``source_val_accuracy``): accuracy on held-out
  source examples. Simple, but blind to the shift.
* **importance-weighted validation** (``dev_risk``): the source-validation
  loss reweighted by the density ratio ``w(x) = p_t(x) / p_s(x)``, an
  unbiased estimate of the target risk under covariate shift (IWCV,
  Sugiyama, Krauledat & Mueller, JMLR 2007), with the control variate of
  Deep Embedded Validation (You, Wang, Long & Jordan, ICML 2019):

  .. math:: \hat R = \overline{w\ell} + \eta\,\overline{w} - \eta,\qquad
     \eta = -\mathrm{Cov}(w\ell, w) / \mathrm{Var}(w).

  As in DEV the ratio comes from a logistic-regression domain classifier on
  the model's own features (the classifier head's input), fitted on the
  source-validation features against those of unlabelled target examples
  (the target training split, never its labels).

The trainer picks the evaluated step that is best under each criterion;
target labels only give the number reported at that step.
"""

from __future__ import annotations

import numpy as np

from tlax.train.evaluate import batched_apply
from tlax.utils import subsample



def dev_risk(losses, weights) -> tuple[float, float]:
  """DEV's control-variate importance-weighted risk.

  Args:
    losses: (n,) per-example losses on labelled source-validation examples.
    weights: (n,) density ratios ``p_t / p_s`` of the same examples.

  Returns:
    ``(risk, eta)``; with constant weights ``eta = 0`` and the risk is the
    weighted mean loss.
  """
  losses = np.asarray(losses, np.float64).reshape(-1)
  weights = np.asarray(weights, np.float64).reshape(-1)
  if losses.shape != weights.shape or losses.size == 0:
    raise ValueError(f"dev_risk: need equal-length non-empty losses and "
                     f"weights; got {losses.shape} and {weights.shape}.")
  if not (np.all(np.isfinite(losses)) and np.all(np.isfinite(weights))):
    raise ValueError("dev_risk: losses and weights must be finite.")
  wl = weights * losses
  var = np.var(weights, ddof=1) if weights.size > 1 else 0.0
  eta = 0.0
  if var > 1e-12:
    cov = np.cov(wl, weights, ddof=1)[0, 1]
    eta = -cov / var
  return float(np.mean(wl) + eta * np.mean(weights) - eta), float(eta)


def importance_weighted_validation(method, params, state, xs_val, ys_val, xt,
                                   *, layer: str = "embedding",
                                   batch_size: int = 256,
                                   max_target: int = 2000, seed: int = 0,
                                   fns=None) -> dict:
  """DEV risk of a model from source-validation labels and unlabelled target.

  Args:
    method: a :class:`tlax.methods.Method`.
    params, state: its parameters and state.
    xs_val, ys_val: labelled source-validation inputs and labels.
    xt: unlabelled target inputs (at most ``max_target`` are used).
    layer: the named feature the domain classifier sees.
    batch_size: evaluation batch size (one compiled shape).
    max_target: subsample of ``xt`` for the domain classifier.
    seed: of that subsample.
    fns: optional jitted ``(params, state, x) -> (logits, features)`` to
      reuse across calls (see :func:`make_fns`).

  Returns:
    ``{"dev_risk", "iw_error", "eta", "weights_max"}``: the DEV estimate of
    the target cross-entropy, the weighted 0/1 error (percent) and the
    control-variate coefficient.
  """
  from tlax.shallow.weighting import domain_classifier_weights  # pylint: disable=g-import-not-at-top
  if len(xs_val) < 2 or len(xt) < 2:
    raise ValueError("importance_weighted_validation: need >= 2 source-val "
                     f"and >= 2 target examples; got {len(xs_val)} and "
                     f"{len(xt)} (set source_val_fraction > 0).")
  fn = fns or make_fns(method, layer)
  xs_val = np.asarray(xs_val, np.float32)
  xt = np.asarray(xt, np.float32)
  xt = xt[subsample(len(xt), max_target, seed)]
  run = lambda x: fn(params, state, x)
  logits, fs = batched_apply(run, xs_val, batch_size)
  _, ft = batched_apply(run, xt, batch_size)
  fs, ft = fs.reshape(len(fs), -1), ft.reshape(len(ft), -1)
  w = domain_classifier_weights(fs, ft)
  z = logits.astype(np.float64)
  z = z - z.max(axis=1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  y = np.asarray(ys_val).astype(int)
  ce = -logp[np.arange(len(y)), y]
  risk, eta = dev_risk(ce, w)
  wrong = (np.argmax(logits, axis=1) != y).astype(np.float64)
  return {"dev_risk": risk, "iw_error": 100.0 * float(np.mean(w * wrong)),
          "eta": eta, "weights_max": float(w.max())}


def make_fns(method, layer: str = "embedding"):
  """Jitted ``(params, state, x) -> (logits, features[layer])``: one program
  (XLA shares the forward pass of the two outputs)."""
  import jax  # pylint: disable=g-import-not-at-top
  from tlax.train.xla import compiler_options as cpu_compiler_options  # pylint: disable=g-import-not-at-top
  return jax.jit(lambda p, s, x: (method.predict(p, s, x),
                                  method.features(p, s, x)[layer]),
                 compiler_options=cpu_compiler_options())
