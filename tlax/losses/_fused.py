r"""The fused Gaussian-kernel discrepancy behind mk_mmd, jmmd and the
class-conditional / dynamic MMDs.

All of them are one function of the pooled batch :math:`z = [x_s; x_t]`,

.. math:: L = \sum_{i,j} C_{ij} \prod_l \sum_k w_{lk}
   \exp(-D^{l}_{ij}\, \mathrm{inv}_{lk}),

with :math:`D^{l}` the pooled squared distances of layer :math:`l` and
symmetric coefficients :math:`C` (:math:`u u^\top` with
:math:`u = (1/n_s, \dots, -1/n_t, \dots)` for the biased estimator, a block
pattern with a zero diagonal for the unbiased one, :math:`V V^\top` with
:math:`V = [W_s; -W_t]` for class-conditional weights). The value alone is
computed from the three distinct Gram blocks (3/4 of the pooled product).

The derivative is a ``jax.custom_jvp`` written for speed. With the symmetric
:math:`H^l = C \odot \partial K / \partial D^l` (elementwise),

.. math:: \partial L / \partial z = 4\, z \odot H^l \mathbf 1 - 4 H^l z.

The rule returns the tangent :math:`\langle \partial L/\partial x, \dot x
\rangle` (computed on the pooled batch as ``4 z * (H 1) - 4 H z``, one
:math:`n \times n \times d` product, with :math:`[Hz, H\mathbf 1]` from a
single product and, for the biased estimator, the rank-one
:math:`C = u u^\top` never expanded), so reverse mode costs the forward's
Gram products plus exactly one more pooled product. Forward mode and higher
derivatives work (the rule is itself differentiable JAX code). Tangents of
the bandwidths, kernel weights and coefficients are supported too (computed
only when needed). Data-driven ``base``-2 bandwidth families compute one
``exp`` and the other kernels as repeated squares.
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


def _block_pattern(ns, nt, c_ss, c_st, c_tt, zero_diagonal, dtype):
  """Symmetric (n, n) matrix with scalar blocks (st and ts get c_st)."""
  n = ns + nt
  r = jax.lax.broadcasted_iota(jnp.int32, (n, n), 0)
  c = jax.lax.broadcasted_iota(jnp.int32, (n, n), 1)
  rs, cs = r < ns, c < ns
  out = jnp.where(rs & cs, jnp.asarray(c_ss, dtype),
                  jnp.where(~rs & ~cs, jnp.asarray(c_tt, dtype),
                            jnp.asarray(c_st, dtype)))
  if zero_diagonal:
    out = jnp.where(r == c, jnp.zeros((), dtype), out)
  return out


def estimator_coefficients(ns: int, nt: int, estimator: str, dtype):
  """Pooled symmetric coefficients of the biased / unbiased MMD^2.

  Biased: the rank-one ``u u^T`` returned as the vector ``u`` = (1/ns, ...,
  -1/nt, ...), which the core never expands; unbiased: the dense (n, n)
  block pattern with a zero diagonal.
  """
  if estimator == "biased":
    return jnp.concatenate([jnp.full((ns,), 1.0 / ns, dtype),
                            jnp.full((nt,), -1.0 / nt, dtype)])
  return _block_pattern(ns, nt, 1.0 / (ns * (ns - 1)), -1.0 / (ns * nt),
                        1.0 / (nt * (nt - 1)), True, dtype)


def dense_coefficients(coef):
  """The (n, n) matrix of a dense or rank-one (vector u: u u^T) coef."""
  return coef[:, None] * coef[None, :] if coef.ndim == 1 else coef


def conditional_coefficients(ws, wt, mask, reduction):
  """Pooled C = V V^T, V = [ws; -wt], of the class-conditional MMD."""
  v = jnp.concatenate([ws, -wt], axis=0)
  if reduction == "mean":
    v = v / jnp.sqrt(jnp.maximum(jnp.sum(mask), 1).astype(ws.dtype))
  return v @ v.T


def _exps(d, inv, ladder):
  """exp(-d * inv_k) for every k.

  With ``ladder`` = b (an integer data spec such as ``"mean:5"``, where
  inv_k = b * inv_{k+1}), only the widest kernel calls ``exp``; the others
  are its repeated b-th powers (relative error about b**num ulps). The
  ``optimization_barrier`` stops XLA from rewriting ``exp(a) * exp(a)`` back
  into ``exp(2a)`` (which would bring back one ``exp`` per kernel).
  """
  num = inv.shape[0]
  if not ladder or num == 1:
    return [jnp.exp(-d * inv[k]) for k in range(num)]
  e = jax.lax.optimization_barrier(jnp.exp(-d * inv[num - 1]))
  es = [e]
  for _ in range(num - 1):
    e = jax.lax.integer_pow(e, ladder)
    es.append(e)
  return es[::-1]


def _layer_value(d, inv, w, ladder):
  es = _exps(d, inv, ladder)
  k = w[0] * es[0]
  for j in range(1, len(es)):
    k = k + w[j] * es[j]
  return k


def _layer_kernels(d, inv, w, ladder):
  """exps e_k, K = sum w_k e_k and dK/dD = -sum w_k inv_k e_k.

  With a ladder, K and K' each rebuild the powers from the one materialised
  exponential (K' from ``one * e`` with ``one`` a runtime 1.0, so that XLA
  does not merge the two chains into shared power arrays): the value and the
  gradient passes then fuse their own multiplications instead of writing and
  re-reading one array per kernel.
  """
  if ladder and inv.shape[0] > 1:
    es = _exps(d, inv, ladder)
    k = _layer_value_from_widest(es[-1], w, ladder)
    # one = 1.0 exactly, but not known to XLA at compile time
    one = (inv[0] > -1.0).astype(d.dtype)
    kp = _layer_value_from_widest(one * es[-1], -w * inv, ladder)
    return es, k, kp
  es = _exps(d, inv, ladder)
  k = w[0] * es[0]
  kp = -(w[0] * inv[0]) * es[0]
  for j in range(1, len(es)):
    k = k + w[j] * es[j]
    kp = kp - (w[j] * inv[j]) * es[j]
  return es, k, kp


def _layer_value_from_widest(e, coef, ladder):
  """sum_k coef_k e^(ladder^(num-1-k)) from the widest kernel e."""
  num = coef.shape[0]
  out = coef[num - 1] * e
  for k in range(num - 2, -1, -1):
    e = jax.lax.integer_pow(e, ladder)
    out = out + coef[k] * e
  return out


def _product_except(ks, l):
  out = None
  for m, k in enumerate(ks):
    if m != l:
      out = k if out is None else out * k
  return out


@functools.partial(jax.custom_jvp, nondiff_argnums=(5,))
def kernel_discrepancy(xs_layers, xt_layers, invs, weights, coef, ladders):
  """L = sum_ij C_ij prod_l K_l(D^l_ij) over the pooled batch.

  ``xs_layers``, ``xt_layers``, ``invs``, ``weights``: tuples, one entry per
  layer; ``coef``: symmetric (n, n) pooled coefficients, or a vector u for
  the rank-one ``u u^T``; ``ladders``: static ints (0 for none). The value uses the three distinct Gram blocks (3/4 of
  the pooled product).
  """
  ns = xs_layers[0].shape[0]
  if coef.ndim == 1:
    us, ut = coef[:ns], coef[ns:]
    cb = (us[:, None] * us[None, :], 2.0 * us[:, None] * ut[None, :],
          ut[:, None] * ut[None, :])
  else:
    cb = (coef[:ns, :ns], 2.0 * coef[:ns, ns:], coef[ns:, ns:])
  kb = [None, None, None]
  for xs, xt, inv, w, lad in zip(xs_layers, xt_layers, invs, weights,
                                 ladders):
    for b, d in enumerate(kern.block_sq_distances(xs, xt)):
      kk = _layer_value(d, inv, w, lad)
      kb[b] = kk if kb[b] is None else kb[b] * kk
  return sum(jnp.sum(c * k) for c, k in zip(cb, kb))


# Above this many pooled-batch elements (n * d) the derivative path builds
# the distances from the three distinct Gram blocks (3/4 of the products)
# and assembles the (n, n) matrix; below it one pooled product and fewer
# operations are faster on CPU (measured, see docs/losses_benchmark.md).
BLOCK_GRAM_MIN_ELEMENTS = 1 << 21


def _pooled_sq_distances(xs, xt):
  z = jnp.concatenate([xs, xt], axis=0)
  if z.shape[0] * z.shape[1] >= BLOCK_GRAM_MIN_ELEMENTS:
    dss, dst, dtt = kern.block_sq_distances(xs, xt)
    return jnp.block([[dss, dst], [dst.T, dtt]])
  n2 = jnp.sum(z * z, axis=1)
  return kern._zero_diagonal(kern._clamp(  # pylint: disable=protected-access
      n2[:, None] + n2[None, :] - 2.0 * (z @ z.T)))


@functools.partial(kernel_discrepancy.defjvp, symbolic_zeros=True)
def _kernel_discrepancy_jvp(ladders, primals, tangents):
  """Value and tangent from the pooled (n, n) matrices.

  The derivative path works on the pooled batch z = [xs; xt]: the (n, n)
  distances (from one pooled Gram product, or for large batches from the
  three distinct blocks), one elementwise pass, and one (n, n, d) product
  for the gradient ``4 z * (H 1) - 4 H z`` with symmetric H = C * dK/dD:
  few, large operations, which is what the CPU runtime rewards.
  """
  xs_layers, xt_layers, invs, weights, coef = primals
  dxs_l, dxt_l, dinvs, dws, dcoef = tangents
  n_layers = len(xs_layers)
  ns = xs_layers[0].shape[0]
  zs = [jnp.concatenate([a, b], axis=0) for a, b in zip(xs_layers, xt_layers)]
  per = []
  for xs, xt, inv, w, lad in zip(xs_layers, xt_layers, invs, weights,
                                 ladders):
    d = _pooled_sq_distances(xs, xt)
    per.append((d,) + _layer_kernels(d, inv, w, lad))
  kfull = per[0][2]
  for l in range(1, n_layers):
    kfull = kfull * per[l][2]
  rank1 = coef.ndim == 1
  if rank1:
    value = jnp.sum(coef[:, None] * coef[None, :] * kfull)
  else:
    value = jnp.sum(coef * kfull)

  tan = []
  for l in range(n_layers):
    need_x = not (_zero(dxs_l[l]) and _zero(dxt_l[l]))
    need_w = not _zero(dws[l])
    need_inv = not _zero(dinvs[l])
    if not (need_x or need_w or need_inv):
      continue
    others = _product_except([per[m][2] for m in range(n_layers)], l)
    # this layer's terms are weighted by C times the other layers' kernels
    if rank1:
      cw = dense_coefficients(coef) if others is None else (
          dense_coefficients(coef) * others)
    else:
      cw = coef if others is None else coef * others
    if need_x:
      z = zs[l]
      d = z.shape[1]
      if rank1:
        # (u u^T * M) [z, 1] = u * [M (u z), M u]: no (n, n) coefficient array
        m = per[l][3] if others is None else others * per[l][3]
        r = coef[:, None] * jnp.concatenate(
            [m @ (coef[:, None] * z), (m @ coef)[:, None]], axis=1)
      else:
        h = cw * per[l][3]
        ones = jnp.ones((z.shape[0], 1), z.dtype)
        r = h @ jnp.concatenate([z, ones], axis=1)  # [H z, H 1] in one pass
      gz = 4.0 * (z * r[:, d:] - r[:, :d])
      if not _zero(dxs_l[l]):
        tan.append(jnp.sum(gz[:ns] * dxs_l[l]))
      if not _zero(dxt_l[l]):
        tan.append(jnp.sum(gz[ns:] * dxt_l[l]))
    inv, w = invs[l], weights[l]
    es = per[l][1]
    for k in range(inv.shape[0]):
      if need_w:
        tan.append(dws[l][k] * jnp.sum(cw * es[k]))
      if need_inv:
        tan.append(-w[k] * dinvs[l][k] * jnp.sum(cw * per[l][0] * es[k]))
  if not _zero(dcoef):
    if rank1:
      tan.append(2.0 * jnp.sum(dcoef * (kfull @ coef)))
    else:
      tan.append(jnp.sum(dcoef * kfull))
  if not tan:
    return value, jnp.zeros_like(value)
  return value, sum(tan[1:], tan[0])
