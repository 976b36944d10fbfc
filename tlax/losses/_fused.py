r"""The fused Gaussian-kernel discrepancy behind mk_mmd, jmmd and the
class-conditional / dynamic MMDs.

All of them are one function of the pooled batch,

.. math:: L = \sum_{b \in \{ss, st, tt\}} \sum_{ij} C^b_{ij}
   \prod_l \sum_k w_{lk} \exp(-D^{l,b}_{ij}\, \mathrm{inv}_{lk}),

with :math:`D^{l,b}` the squared-distance blocks of layer :math:`l` and
coefficient blocks :math:`C^b` (scalars for the plain estimators, matrices for
class-conditional weights; :math:`C^{ss}, C^{tt}` symmetric).

The derivative is a ``jax.custom_jvp`` written for speed. With
:math:`H^{l,b} = C^b \odot \partial K^b / \partial D^{l,b}` (elementwise; the
exponentials are shared with the value) and symmetric :math:`H^{ss}`,
:math:`H^{tt}`:

.. math::
  \partial L / \partial x_s = 4\, x_s \odot H^{ss}\mathbf 1 + 2\, x_s \odot
  H^{st}\mathbf 1 - 4 H^{ss} x_s - 2 H^{st} x_t, \qquad
  \partial L / \partial x_t = 4\, x_t \odot H^{tt}\mathbf 1 + 2\, x_t \odot
  H^{st\top}\mathbf 1 - 4 H^{tt} x_t - 2 H^{st\top} x_s.

The rule returns the tangent :math:`\langle \partial L/\partial x, \dot x
\rangle`, so reverse mode costs exactly the four block products above
(:math:`(n_s + n_t)^2 d` multiply-adds, one pooled Gram product) on top of
the forward's two (:math:`3/4` of it), with no :math:`n \times n`
transposes or concatenations. Forward mode and higher derivatives work (the
rule is itself differentiable JAX code). Tangents of the bandwidths, kernel
weights and coefficients are supported too (computed only when needed).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from tlax.losses import kernels as kern


def _zero(t) -> bool:
  return isinstance(t, SymbolicZero)


def off_diagonal(n: int, dtype) -> jax.Array:
  r = jax.lax.broadcasted_iota(jnp.int32, (n, n), 0)
  c = jax.lax.broadcasted_iota(jnp.int32, (n, n), 1)
  return (r != c).astype(dtype)


def estimator_coefficients(ns: int, nt: int, estimator: str, dtype):
  """(C_ss, C_st, C_tt) of the biased / unbiased MMD^2 estimators."""
  cst = jnp.asarray(-2.0 / (ns * nt), dtype)
  if estimator == "biased":
    return (jnp.asarray(1.0 / (ns * ns), dtype), cst,
            jnp.asarray(1.0 / (nt * nt), dtype))
  return (off_diagonal(ns, dtype) / (ns * (ns - 1)), cst,
          off_diagonal(nt, dtype) / (nt * (nt - 1)))


def conditional_coefficients(ws, wt, mask, reduction):
  """(C_ss, C_st, C_tt) of the class-conditional MMD (class weights)."""
  scale = 1.0
  if reduction == "mean":
    scale = 1.0 / jnp.maximum(jnp.sum(mask), 1).astype(ws.dtype)
  return (scale * (ws @ ws.T), -2.0 * scale * (ws @ wt.T),
          scale * (wt @ wt.T))


def _layer_kernels(d, inv, w):
  """exps e_k, K = sum w_k e_k and dK/dD = -sum w_k inv_k e_k."""
  es = [jnp.exp(-d * inv[k]) for k in range(inv.shape[0])]
  k = w[0] * es[0]
  kp = -(w[0] * inv[0]) * es[0]
  for j in range(1, len(es)):
    k = k + w[j] * es[j]
    kp = kp - (w[j] * inv[j]) * es[j]
  return es, k, kp


def _product_except(ks, l):
  out = None
  for m, k in enumerate(ks):
    if m != l:
      out = k if out is None else out * k
  return out


@jax.custom_jvp
def kernel_discrepancy(xs_layers, xt_layers, invs, weights, coefs):
  """L (module docstring). All arguments are tuples (one entry per layer;
  ``coefs`` = (C_ss, C_st, C_tt))."""
  kb = [None, None, None]
  for xs, xt, inv, w in zip(xs_layers, xt_layers, invs, weights):
    for b, d in enumerate(kern.block_sq_distances(xs, xt)):
      kk = kern.gaussian_sum(d, inv, w)
      kb[b] = kk if kb[b] is None else kb[b] * kk
  return sum(jnp.sum(c * k) for c, k in zip(coefs, kb))


def _feature_grads(xs, xt, hss, hst, htt):
  """dL/dxs, dL/dxt from H blocks (H_ss, H_tt symmetric)."""
  gx = (xs * (4.0 * jnp.sum(hss, axis=1) + 2.0 * jnp.sum(hst, axis=1))[:, None]
        - 4.0 * (hss @ xs) - 2.0 * (hst @ xt))
  gy = (xt * (4.0 * jnp.sum(htt, axis=1) + 2.0 * jnp.sum(hst, axis=0))[:, None]
        - 4.0 * (htt @ xt) - 2.0 * (hst.T @ xs))
  return gx, gy


@functools.partial(kernel_discrepancy.defjvp, symbolic_zeros=True)
def _kernel_discrepancy_jvp(primals, tangents):
  xs_layers, xt_layers, invs, weights, coefs = primals
  dxs_l, dxt_l, dinvs, dws, dcoefs = tangents
  n_layers = len(xs_layers)
  # per layer, per block: distances, exps, kernel and its D-derivative
  per = []
  for xs, xt, inv, w in zip(xs_layers, xt_layers, invs, weights):
    blocks = kern.block_sq_distances(xs, xt)
    per.append([(d,) + _layer_kernels(d, inv, w) for d in blocks])
  kb = []
  for b in range(3):
    ks = [per[l][b][2] for l in range(n_layers)]
    prod = ks[0]
    for k in ks[1:]:
      prod = prod * k
    kb.append(prod)
  value = sum(jnp.sum(c * k) for c, k in zip(coefs, kb))

  tan = []
  for l in range(n_layers):
    need_x = not (_zero(dxs_l[l]) and _zero(dxt_l[l]))
    need_w = not _zero(dws[l])
    need_inv = not _zero(dinvs[l])
    if not (need_x or need_w or need_inv):
      continue
    others = [_product_except([per[m][b][2] for m in range(n_layers)], l)
              for b in range(3)]
    # C times the other layers' kernels: the weight of this layer's terms.
    cw = [coefs[b] if others[b] is None else coefs[b] * others[b]
          for b in range(3)]
    if need_x:
      h = [cw[b] * per[l][b][3] for b in range(3)]
      gx, gy = _feature_grads(xs_layers[l], xt_layers[l], *h)
      if not _zero(dxs_l[l]):
        tan.append(jnp.sum(gx * dxs_l[l]))
      if not _zero(dxt_l[l]):
        tan.append(jnp.sum(gy * dxt_l[l]))
    inv, w = invs[l], weights[l]
    for k in range(inv.shape[0]):
      if need_w:
        tan.append(dws[l][k] * sum(jnp.sum(cw[b] * per[l][b][1][k])
                                   for b in range(3)))
      if need_inv:
        tan.append(-w[k] * dinvs[l][k] * sum(
            jnp.sum(cw[b] * per[l][b][0] * per[l][b][1][k]) for b in range(3)))
  for b in range(3):
    if not _zero(dcoefs[b]):
      tan.append(jnp.sum(dcoefs[b] * kb[b]))
  if not tan:
    return value, jnp.zeros_like(value)
  return value, sum(tan[1:], tan[0])
