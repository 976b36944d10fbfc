r"""Maximum mean discrepancy: linear (DDC), single- and multi-kernel (DAN),
joint (JAN) and class-conditional (DSAN's local MMD; JDA/BDA/MEDA).

With source features :math:`x_1..x_{n_s}`, target features
:math:`y_1..y_{n_t}` and a kernel :math:`k`, the squared MMD
:math:`\|\mu_P - \mu_Q\|_{\mathcal H}^2` is estimated as

* ``"biased"`` (V-statistic):
  :math:`\frac{1}{n_s^2}\sum_{i,j} k(x_i,x_j) + \frac{1}{n_t^2}\sum_{i,j}
  k(y_i,y_j) - \frac{2}{n_s n_t}\sum_{i,j} k(x_i,y_j)` (0 for a set against
  itself, always :math:`\ge 0` for a positive-definite kernel);
* ``"unbiased"`` (U-statistic): the same with the diagonal terms removed from
  the first two sums, normalised by :math:`n(n-1)` (needs 2 examples per
  domain; can be negative);
* ``"linear"`` (linear time, Gretton et al. 2012, used by DAN): with
  :math:`m = \lfloor \min(n_s, n_t)/2 \rfloor` quadruples
  :math:`(x_{2i-1}, x_{2i}, y_{2i-1}, y_{2i})`,
  :math:`\frac1m\sum_i k(x_{2i-1},x_{2i}) + k(y_{2i-1},y_{2i}) -
  k(x_{2i-1},y_{2i}) - k(x_{2i},y_{2i-1})`; :math:`O(md)`, unbiased, higher
  variance. Examples beyond the first :math:`2m` of each domain are unused.

The quadratic Gaussian estimators (mk_mmd, mmd with a Gaussian kernel, jmmd,
class_conditional_mmd and dynamic_mmd) share one fused core
(``tlax.losses._fused``): the three distinct blocks of the pooled Gram matrix
come from two matrix products (3/4 of the pooled ``n x n x d`` product), every
kernel from the same squared distances, and a ``custom_jvp`` computes the
feature gradient with four block products (one pooled product's worth) and
no ``n x n`` transposes; forward mode and Hessians work.

All functions return a scalar in float32 for half-precision inputs (else in
the input dtype), and work under ``jit``, ``vmap`` and ``grad``.

References:
  Gretton et al., A Kernel Two-Sample Test, JMLR 2012.
  Tzeng et al., Deep Domain Confusion (DDC), arXiv:1412.3474, 2014.
  Long et al., Learning Transferable Features with Deep Adaptation Networks
  (DAN), ICML 2015.
  Long et al., Deep Transfer Learning with Joint Adaptation Networks (JAN),
  ICML 2017.
  Zhu et al., Deep Subdomain Adaptation Network (DSAN), IEEE TNNLS 2020.
  Long et al., Transfer Feature Learning with Joint Distribution Adaptation
  (JDA), ICCV 2013; Wang et al., Balanced Distribution Adaptation (BDA),
  ICDM 2017; Wang et al., Visual Domain Adaptation with Manifold Embedded
  Distribution Alignment (MEDA), ACM MM 2018.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, Callable, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from tlax.losses import _fused
from tlax.losses import _validation as val
from tlax.losses import kernels as kern

Array = jax.Array
KernelSpec = Union[str, Callable[[Array, Array], Array]]


# ---------------------------------------------------------------------------
# Shared pieces.
# ---------------------------------------------------------------------------


def _prepare_pair(xs, xt, fn, min_batch=1, names=("xs", "xt")):
  xs = val.as_features(xs, names[0], fn, min_batch=min_batch)
  xt = val.as_features(xt, names[1], fn, min_batch=min_batch)
  val.check_same_features(xs, xt, fn, names)
  dt = val.compute_dtype(xs, xt)
  return xs.astype(dt), xt.astype(dt)


def _min_batch(estimator: str) -> int:
  return 1 if estimator == "biased" else 2


def _resolve_weights(weights, num: int, fn: str, what: str = "weights"):
  if weights is None:
    return None
  val.check_finite(weights, what, fn)
  if val.is_concrete(weights) and (np.asarray(weights) < 0).any():
    raise ValueError(f"{fn}: {what} must be >= 0 (a negative kernel weight "
                     "can make the MMD negative); got "
                     f"{np.asarray(weights).tolist()}.")
  w = jnp.asarray(weights)
  if w.shape != (num,):
    raise ValueError(
        f"{fn}: {what} must have shape ({num},), one per kernel; got "
        f"{tuple(w.shape)}.")
  return w


def _weights_or_mean(w, num, dtype):
  if w is None:
    return jnp.full((num,), 1.0 / num, dtype)
  w = w.astype(dtype)
  # Traced weights cannot be checked at trace time: negative or NaN ones
  # make every kernel value NaN, so the loss is NaN, never a plausible value.
  return val.nan_unless(jnp.all(w >= 0), w)


def _split_spec(spec):
  """(static DataSigmas or None, traced fixed sigmas or None)."""
  if isinstance(spec, kern.DataSigmas):
    return spec, None
  return None, spec


def _join_spec(data_spec, fixed):
  return data_spec if data_spec is not None else fixed


def _mmd_from_blocks(kss, kst, ktt, estimator):
  ns, nt = kss.shape[0], ktt.shape[0]
  if estimator == "biased":
    return (jnp.sum(kss) / (ns * ns) + jnp.sum(ktt) / (nt * nt)
            - 2.0 * jnp.sum(kst) / (ns * nt))
  # unbiased
  ss = (jnp.sum(kss) - jnp.trace(kss)) / (ns * (ns - 1))
  tt = (jnp.sum(ktt) - jnp.trace(ktt)) / (nt * (nt - 1))
  return ss + tt - 2.0 * jnp.sum(kst) / (ns * nt)


def _gaussian_layer(xs, xt, spec, w):
  """(inverse bandwidths, kernel weights) of one layer for the fused core."""
  inv = kern._inv_bandwidths_for(spec, xs, xt)  # pylint: disable=protected-access
  return inv, _weights_or_mean(w, inv.shape[0], xs.dtype)


def _ladder(spec) -> int:
  """Integer base of a data spec (kernels are powers of the widest), or 0."""
  if (isinstance(spec, kern.DataSigmas) and spec.num > 1
      and float(spec.base).is_integer() and 2 <= spec.base <= 4):
    return int(spec.base)
  return 0


def _gaussian_discrepancy(xs_layers, xt_layers, specs, ws, coefs):
  # Gaussian kernels are shift-invariant: centre each layer's pooled batch
  # (float32 accuracy under a large common offset).
  xs_layers, xt_layers = zip(*[kern.center_pooled(a, b) for a, b in
                               zip(xs_layers, xt_layers)])
  invs, wts = zip(*[_gaussian_layer(a, b, s, w) for a, b, s, w in
                    zip(xs_layers, xt_layers, specs, ws)])
  return _fused.kernel_discrepancy(tuple(xs_layers), tuple(xt_layers),
                                   tuple(invs), tuple(wts), coefs,
                                   tuple(_ladder(s) for s in specs))


def _quads(xs, xt):
  m = min(xs.shape[0], xt.shape[0]) // 2
  x, y = xs[: 2 * m], xt[: 2 * m]
  return x[0::2], x[1::2], y[0::2], y[1::2]


def _row_sq_dist(a, b):
  diff = a - b
  return jnp.sum(diff * diff, axis=-1)


def _gaussian_linear_terms(xs, xt, spec, w):
  """Per-quadruple h terms of the linear-time estimator for one layer."""
  x1, x2, y1, y2 = _quads(xs, xt)
  d = jnp.stack([_row_sq_dist(x1, x2), _row_sq_dist(y1, y2),
                 _row_sq_dist(x1, y2), _row_sq_dist(x2, y1)])
  if isinstance(spec, kern.DataSigmas):
    if spec.stat == "mean":
      stat = kern.mean_sq_distance(jnp.concatenate([xs, xt], axis=0))
    else:
      stat = jnp.median(d)
    inv = kern._stat_to_inv_bandwidths(spec, stat)  # pylint: disable=protected-access
  else:
    inv = kern.fixed_inv_bandwidths(spec, xs.dtype)
  w = _weights_or_mean(w, inv.shape[0], xs.dtype)
  return kern.gaussian_sum(d, inv, w)  # (4, m)


def _linear_from_terms(k4):
  return jnp.mean(k4[0] + k4[1] - k4[2] - k4[3])


# ---------------------------------------------------------------------------
# Linear MMD (DDC).
# ---------------------------------------------------------------------------


def linear_mmd(xs: Any, xt: Any) -> Array:
  r"""Linear-kernel MMD of DDC: :math:`\|\bar x_s - \bar x_t\|_2^2`.

  The squared distance between the source and target feature means (the
  biased MMD estimate with :math:`k(x,y) = x^\top y`), :math:`O(nd)`.

  Args:
    xs: (ns, d) source features.
    xt: (nt, d) target features.

  Returns:
    Scalar.

  Example:
    >>> import jax.numpy as jnp
    >>> float(linear_mmd(jnp.zeros((4, 2)), jnp.ones((3, 2))))
    2.0

  References:
    Tzeng et al., Deep Domain Confusion, arXiv:1412.3474, 2014.
  """
  xs, xt = _prepare_pair(xs, xt, "linear_mmd")
  delta = kern.column_mean(xs) - kern.column_mean(xt)
  return jnp.sum(delta * delta)


# ---------------------------------------------------------------------------
# Multi-kernel MMD (DAN).
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("data_spec", "estimator"))
def _mk_mmd_core(xs, xt, fixed, w, data_spec, estimator):
  spec = _join_spec(data_spec, fixed)
  if estimator == "linear":
    return _linear_from_terms(_gaussian_linear_terms(xs, xt, spec, w))
  coefs = _fused.estimator_coefficients(xs.shape[0], xt.shape[0], estimator,
                                        xs.dtype)
  return _gaussian_discrepancy((xs,), (xt,), (spec,), (w,), coefs)


def mk_mmd(xs: Any, xt: Any, sigmas: kern.SigmaSpec = "mean:5",
           weights: Optional[Any] = None, estimator: str = "biased") -> Array:
  r"""Multi-kernel MMD^2 of DAN with Gaussian kernels.

  :math:`\mathrm{MMD}^2` (module docstring) with the kernel
  :math:`k = \sum_k \beta_k \exp(-\|x-y\|^2 / (2\sigma_k^2))`; all kernels
  share one squared-distance matrix.

  Args:
    xs: (ns, d) source features.
    xt: (nt, d) target features (``nt`` may differ from ``ns``).
    sigmas: bandwidths: a float, a sequence / 1-D array of floats, or a data
      spec such as ``"mean:5"`` (DAN's five kernels, bandwidth = mean squared
      distance times 2^k, k = -2..2) or ``"median"``; see
      :mod:`tlax.losses.kernels`. Data bandwidths are not differentiated. Default
      ``"mean:5"``, the five kernels of DAN.
    weights: kernel weights :math:`\beta` (shape (num_kernels,), may be
      traced, e.g. learned); default the mean over kernels.
    estimator: ``"biased"``, ``"unbiased"`` or ``"linear"``.

  Returns:
    Scalar MMD^2 estimate.

  Example:
    >>> import jax
    >>> x = jax.random.normal(jax.random.key(0), (8, 3))
    >>> round(float(mk_mmd(x, x, "mean:5")), 6)
    0.0

  References:
    Long et al., Learning Transferable Features with Deep Adaptation
    Networks, ICML 2015. Gretton et al., Optimal kernel choice for
    large-scale two-sample tests, NeurIPS 2012.
  """
  fn = "mk_mmd"
  val.check_estimator(estimator, fn)
  spec = kern.parse_sigmas(sigmas, fn)
  xs, xt = _prepare_pair(xs, xt, fn, _min_batch(estimator))
  w = _resolve_weights(weights, kern.num_kernels(spec), fn)
  data_spec, fixed = _split_spec(spec)
  return _mk_mmd_core(xs, xt, fixed, w, data_spec, estimator)


# ---------------------------------------------------------------------------
# MMD with any kernel.
# ---------------------------------------------------------------------------


def _generic_kernel_fn(kernel, degree, gamma, coef0, fn):
  if callable(kernel):
    return kernel
  if kernel == "linear":
    return lambda a, b: a @ b.T
  if kernel == "polynomial":
    def poly(a, b):
      g = 1.0 / a.shape[1] if gamma is None else gamma
      return jax.lax.integer_pow(g * (a @ b.T) + coef0, int(degree))
    return poly
  raise ValueError(
      f"{fn}: kernel must be 'gaussian', 'linear', 'polynomial' or a "
      f"callable k(x, y) -> (n, m) matrix; got {kernel!r}.")


def mmd(xs: Any, xt: Any, kernel: KernelSpec = "gaussian",
        estimator: str = "biased", *, sigma: kern.SigmaSpec = "median",
        degree: int = 2, gamma: Optional[float] = None,
        coef0: float = 1.0) -> Array:
  r"""MMD^2 with one kernel (module docstring for the estimators).

  Args:
    xs: (ns, d) source features.
    xt: (nt, d) target features.
    kernel: ``"gaussian"`` (bandwidth ``sigma``), ``"linear"``
      (:math:`x^\top y`), ``"polynomial"`` (:math:`(\gamma x^\top y +
      c_0)^p`) or a callable ``k(a, b) -> (len(a), len(b))`` matrix.
    estimator: ``"biased"``, ``"unbiased"`` or ``"linear"``.
    sigma: Gaussian bandwidth, a float or a one-kernel spec such as
      ``"median"`` (:math:`\exp(-D / \mathrm{median}\,D)`) or ``"mean"``.
    degree, gamma, coef0: polynomial kernel parameters (``gamma`` defaults
      to ``1 / d``).

  Returns:
    Scalar MMD^2 estimate.
  """
  fn = "mmd"
  val.check_estimator(estimator, fn)
  if isinstance(kernel, str) and kernel == "gaussian":
    spec = kern.parse_sigmas(sigma, fn)
    if kern.num_kernels(spec) != 1:
      raise ValueError(f"{fn}: sigma must give one kernel; use mk_mmd for "
                       "several.")
    xs, xt = _prepare_pair(xs, xt, fn, _min_batch(estimator))
    data_spec, fixed = _split_spec(spec)
    return _mk_mmd_core(xs, xt, fixed, None, data_spec, estimator)
  if kernel == "polynomial" and (
      not isinstance(degree, (int, np.integer)) or degree < 1):
    raise ValueError(f"{fn}: degree must be an int >= 1; got {degree!r}.")
  kfn = _generic_kernel_fn(kernel, degree, gamma, coef0, fn)
  xs, xt = _prepare_pair(xs, xt, fn, _min_batch(estimator))
  if estimator == "linear":
    x1, x2, y1, y2 = _quads(xs, xt)
    pair = jax.vmap(lambda a, b: kfn(a[None], b[None])[0, 0])
    k4 = jnp.stack([pair(x1, x2), pair(y1, y2), pair(x1, y2), pair(x2, y1)])
    return _linear_from_terms(k4)
  return _mmd_from_blocks(kfn(xs, xs), kfn(xs, xt), kfn(xt, xt), estimator)


# ---------------------------------------------------------------------------
# Joint MMD (JAN).
# ---------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("data_specs", "estimator"))
def _jmmd_core(xs_layers, xt_layers, fixed, ws, data_specs, estimator):
  specs = [_join_spec(ds, f) for ds, f in zip(data_specs, fixed)]
  if estimator == "linear":
    k4 = None
    for xs, xt, spec, w in zip(xs_layers, xt_layers, specs, ws):
      t = _gaussian_linear_terms(xs, xt, spec, w)
      k4 = t if k4 is None else k4 * t
    return _linear_from_terms(k4)
  xs = xs_layers[0]
  coefs = _fused.estimator_coefficients(xs.shape[0], xt_layers[0].shape[0],
                                        estimator, xs.dtype)
  return _gaussian_discrepancy(xs_layers, xt_layers, specs, ws, coefs)


def jmmd(xs_layers: Sequence[Any], xt_layers: Sequence[Any],
         sigmas: Union[kern.SigmaSpec, Sequence[kern.SigmaSpec]] = "mean:5",
         weights: Optional[Sequence[Optional[Any]]] = None,
         estimator: str = "biased") -> Array:
  r"""Joint MMD^2 of JAN over several layers (product kernel).

  The MMD^2 (module docstring) of the joint distributions of the layer
  activations :math:`(z^1, \dots, z^L)` under the tensor-product kernel
  :math:`k((x^l)_l, (y^l)_l) = \prod_l k_l(x^l, y^l)`, each :math:`k_l` a
  (multi-kernel) Gaussian on layer :math:`l`.

  Args:
    xs_layers: sequence of (ns, d_l) source activations, one per layer.
    xt_layers: sequence of (nt, d_l) target activations, same layers.
    sigmas: bandwidth spec used for every layer (a str or a float), or a
      sequence with one spec per layer. JAN uses ``("mean:5", s)`` for
      (features, softmax outputs) with the fixed bandwidth
      :math:`2\sigma^2 = 1.68`, i.e. ``s = 0.9165``.
    weights: None or one entry per layer (None or that layer's kernel
      weights); default the mean over each layer's kernels.
    estimator: ``"biased"``, ``"unbiased"`` or ``"linear"``.

  Returns:
    Scalar JMMD^2 estimate.

  References:
    Long et al., Deep Transfer Learning with Joint Adaptation Networks,
    ICML 2017.
  """
  fn = "jmmd"
  val.check_estimator(estimator, fn)
  if not isinstance(xs_layers, (list, tuple)) or not isinstance(
      xt_layers, (list, tuple)):
    raise TypeError(f"{fn}: xs_layers and xt_layers must be lists/tuples of "
                    "(batch, features) arrays, one per layer.")
  n_layers = len(xs_layers)
  if n_layers == 0 or len(xt_layers) != n_layers:
    raise ValueError(
        f"{fn}: need the same number (>= 1) of source and target layers; got "
        f"{len(xs_layers)} and {len(xt_layers)}.")
  if isinstance(sigmas, (str, float, int)) or (
      hasattr(sigmas, "ndim") and jnp.ndim(sigmas) == 0):
    sigma_list = [sigmas] * n_layers
  else:
    sigma_list = list(sigmas)
    if len(sigma_list) != n_layers:
      raise ValueError(
          f"{fn}: sigmas must be one spec (str/float) for all layers or one "
          f"spec per layer; got {len(sigma_list)} for {n_layers} layers.")
  if weights is None:
    weights = [None] * n_layers
  elif len(weights) != n_layers:
    raise ValueError(f"{fn}: weights needs one entry per layer; got "
                     f"{len(weights)} for {n_layers} layers.")
  xs_out, xt_out, fixed, ws, data_specs = [], [], [], [], []
  mb = _min_batch(estimator)
  for l in range(n_layers):
    xs, xt = _prepare_pair(xs_layers[l], xt_layers[l], fn, mb,
                           (f"xs_layers[{l}]", f"xt_layers[{l}]"))
    xs_out.append(xs)
    xt_out.append(xt)
    spec = kern.parse_sigmas(sigma_list[l], fn)
    ws.append(_resolve_weights(weights[l], kern.num_kernels(spec), fn,
                               f"weights[{l}]"))
    ds, f = _split_spec(spec)
    data_specs.append(ds)
    fixed.append(f)
  ns = {x.shape[0] for x in xs_out}
  nt = {x.shape[0] for x in xt_out}
  if len(ns) != 1 or len(nt) != 1:
    raise ValueError(f"{fn}: all layers must have the same batch sizes; got "
                     f"source {sorted(ns)} and target {sorted(nt)}.")
  dt = jnp.result_type(*xs_out, *xt_out)
  xs_out = [x.astype(dt) for x in xs_out]
  xt_out = [x.astype(dt) for x in xt_out]
  return _jmmd_core(tuple(xs_out), tuple(xt_out), tuple(fixed), tuple(ws),
                    tuple(data_specs), estimator)


# ---------------------------------------------------------------------------
# Class-conditional MMD (DSAN local MMD; JDA/BDA/MEDA per-class MMD).
# ---------------------------------------------------------------------------


def _labels_to_matrix(labels, n, num_classes, name, fn):
  labels = jnp.asarray(labels)
  if labels.ndim == 1:
    if not jnp.issubdtype(labels.dtype, jnp.integer):
      raise TypeError(f"{fn}: {name} as a 1-D array must hold integer class "
                      f"ids; got dtype {labels.dtype}.")
    if labels.shape[0] != n:
      raise ValueError(f"{fn}: {name} has {labels.shape[0]} entries for {n} "
                       "examples.")
    if num_classes is None:
      raise ValueError(f"{fn}: num_classes is needed when both label arrays "
                       "are integer class ids.")
    # A label outside 0..C-1 would be a zero one-hot row: the example would
    # silently drop out of every class. Concrete labels are checked on the
    # host (NumPy, so that no op is staged inside an outer jit); traced
    # labels cannot be checked, and one_hot drops them.
    if not isinstance(labels, jax.core.Tracer) and labels.size:
      host = np.asarray(labels)
      lo, hi = int(host.min()), int(host.max())
      if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{fn}: {name} must be class ids in 0..{num_classes - 1} "
            f"(num_classes={num_classes}); got values in {lo}..{hi}.")
    return jax.nn.one_hot(labels, num_classes)
  if labels.ndim == 2:
    if labels.shape[0] != n:
      raise ValueError(f"{fn}: {name} has {labels.shape[0]} rows for {n} "
                       "examples.")
    if num_classes is not None and labels.shape[1] != num_classes:
      raise ValueError(f"{fn}: {name} has {labels.shape[1]} columns, expected "
                       f"num_classes={num_classes}.")
    return labels
  raise ValueError(f"{fn}: {name} must be (batch,) integer ids or (batch, "
                   f"num_classes) probabilities; got shape "
                   f"{tuple(labels.shape)}.")


def class_weights(labels_s, labels_t, dtype):
  """Normalised per-class weights and the mask of classes in both domains.

  Source class c counts if it has mass; target class c counts if some target
  example has c as its argmax (DSAN). Returns ``(ws (ns, C), wt (nt, C),
  mask (C,))`` with columns normalised to sum to 1 and zeroed for classes
  outside the mask. Gradients are stopped (labels are targets, not features).
  """
  ys = jax.lax.stop_gradient(labels_s.astype(dtype))
  yt = jax.lax.stop_gradient(labels_t.astype(dtype))
  num_classes = ys.shape[1]
  mass_s = jnp.sum(ys, axis=0)
  mass_t = jnp.sum(yt, axis=0)
  top_t = jax.nn.one_hot(jnp.argmax(yt, axis=1), num_classes, dtype=dtype)
  mask = (mass_s > 0) & (jnp.sum(top_t, axis=0) > 0) & (mass_t > 0)
  m = mask.astype(dtype)
  tiny = jnp.finfo(dtype).tiny
  ws = ys / jnp.maximum(mass_s, tiny) * m
  wt = yt / jnp.maximum(mass_t, tiny) * m
  return ws, wt, mask


def _conditional_linear(xs, xt, ws, wt, mask, reduction):
  delta = ws.T @ xs - wt.T @ xt  # (C, d) class-mean gaps (0 off the mask)
  total = jnp.sum(delta * delta)
  if reduction == "sum":
    return total
  return total / jnp.maximum(jnp.sum(mask), 1).astype(total.dtype)


def _prepare_conditional(xs, xt, labels_s, labels_t, num_classes, kernel,
                         sigmas, weights, reduction, fn):
  if reduction not in ("mean", "sum"):
    raise ValueError(f"{fn}: reduction must be 'mean' or 'sum'; got "
                     f"{reduction!r}.")
  if kernel not in ("gaussian", "linear"):
    raise ValueError(f"{fn}: kernel must be 'gaussian' or 'linear'; got "
                     f"{kernel!r}.")
  xs, xt = _prepare_pair(xs, xt, fn)
  ls, lt = jnp.asarray(labels_s), jnp.asarray(labels_t)
  if num_classes is not None and (
      isinstance(num_classes, bool)
      or not isinstance(num_classes, numbers.Integral) or num_classes < 1):
    raise ValueError(f"{fn}: num_classes must be an int >= 1; got "
                     f"{num_classes!r}.")
  if num_classes is None:
    if ls.ndim == 2:
      num_classes = ls.shape[1]
    elif lt.ndim == 2:
      num_classes = lt.shape[1]
  ys = _labels_to_matrix(ls, xs.shape[0], num_classes, "labels_s", fn)
  yt = _labels_to_matrix(lt, xt.shape[0], num_classes, "labels_t", fn)
  spec = kern.parse_sigmas(sigmas, fn)
  w = _resolve_weights(weights, kern.num_kernels(spec), fn)
  return xs, xt, ys, yt, spec, w


@functools.partial(jax.jit,
                   static_argnames=("data_spec", "kernel", "reduction"))
def _conditional_core(xs, xt, ys, yt, fixed, w, data_spec, kernel, reduction):
  ws, wt, mask = class_weights(ys, yt, xs.dtype)
  if kernel == "linear":
    return _conditional_linear(xs, xt, ws, wt, mask, reduction)
  coefs = _fused.conditional_coefficients(ws, wt, mask, reduction)
  return _gaussian_discrepancy((xs,), (xt,), (_join_spec(data_spec, fixed),),
                               (w,), coefs)


def class_conditional_mmd(xs: Any, xt: Any, labels_s: Any, labels_t: Any,
                          num_classes: Optional[int] = None, *,
                          kernel: str = "gaussian",
                          sigmas: kern.SigmaSpec = "mean:5",
                          weights: Optional[Any] = None,
                          reduction: str = "mean") -> Array:
  r"""Class-conditional MMD^2: DSAN's local MMD, JDA/BDA/MEDA's per-class MMD.

  .. math:: \frac{1}{|\mathcal C|}\sum_{c\in\mathcal C}\Big\|
     \sum_i w^{s}_{ic}\phi(x_i) - \sum_j w^{t}_{jc}\phi(y_j)\Big\|^2_{\mathcal H}

  with :math:`w^s_{ic} = y_{ic} / \sum_{i'} y_{i'c}` from source labels
  (one-hot or soft) and :math:`w^t_{jc} = p_{jc} / \sum_{j'} p_{j'c}` from
  target pseudo-labels (hard) or predicted probabilities (soft). As in DSAN,
  :math:`\mathcal C` holds the classes present in the source batch and
  arg-max of some target example; the kernel terms are the biased
  (V-statistic) estimate. With ``kernel="linear"`` this is the per-class
  squared distance of the class means used by JDA, BDA and MEDA (they sum
  over classes: ``reduction="sum"``). Gradients do not flow into the labels.

  Args:
    xs: (ns, d) source features.
    xt: (nt, d) target features.
    labels_s: (ns,) integer labels or (ns, C) one-hot / soft labels.
    labels_t: (nt,) integer pseudo-labels or (nt, C) probabilities.
    num_classes: C; needed only when both label arrays are integer ids.
    kernel: ``"gaussian"`` (multi-kernel, ``sigmas``/``weights`` as in
      :func:`mk_mmd`) or ``"linear"``.
    sigmas: Gaussian bandwidth spec (default DSAN's ``"mean:5"``).
    weights: kernel weights, default the mean.
    reduction: ``"mean"`` over the counted classes (DSAN) or ``"sum"``.

  Returns:
    Scalar.

  References:
    Zhu et al., Deep Subdomain Adaptation Network for Image Classification,
    IEEE TNNLS 2020. Long et al., JDA, ICCV 2013.
  """
  fn = "class_conditional_mmd"
  xs, xt, ys, yt, spec, w = _prepare_conditional(
      xs, xt, labels_s, labels_t, num_classes, kernel, sigmas, weights,
      reduction, fn)
  data_spec, fixed = _split_spec(spec)
  return _conditional_core(xs, xt, ys, yt, fixed, w, data_spec, kernel,
                           reduction)
