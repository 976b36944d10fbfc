"""Extra networks of the deep domain-adaptation methods.

The classifier network comes from :mod:`tlax.models`; the networks here are
what some methods add next to it:

* :class:`DomainDiscriminator`: the domain classifier of DANN, CDAN, SDT and
  the DANN similarity loss of DSN (an MLP on a feature vector);
* :class:`PrivateEncoder` and :class:`SharedDecoder`: DSN's private encoders
  and the shared decoder that reconstructs an input from shared + private
  codes;
* :class:`PixelDAGenerator` and :class:`PixelDACritic`: PixelDA's residual
  generator ``G(x_s, z)`` and its real/fake discriminator.

Every network works on images ``(N, H, W, C)`` and on feature vectors
``(N, D)`` (the SURF tasks), so every method runs on every task. The
convolutions are :class:`tlax.models.layers.Conv`, whose im2col gradient is
fast on XLA:CPU. All modules are pure flax.linen modules without mutable
collections (no BatchNorm), so the methods keep only parameters for them.

``train`` switches dropout on; the dropout PRNG stream is ``"dropout"``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

try:  # the fast-gradient convolution of the models package
  from tlax.models.layers import Conv
except ImportError:  # pragma: no cover - the models package is landing
  Conv = nn.Conv

Array = jax.Array


def _flatten(x: Array) -> Array:
  return x.reshape(x.shape[0], -1)


class DomainDiscriminator(nn.Module):
  """MLP domain classifier ``x -> logit(s)``.

  Defaults follow DANN (Ganin et al., JMLR 2016, sec. 5.2.2: ``x -> 1024 ->
  1024 -> domain``, ReLU and dropout 0.5), the same as CDAN (Long et al.,
  NeurIPS 2018) and the Transfer-Learning-Library ``DomainDiscriminator``.

  Attributes:
    hidden: hidden layer widths.
    dropout: dropout rate after each hidden layer (in training).
    num_outputs: 1 (a binary logit, returned with shape ``(N,)``) or more
      (logits ``(N, num_outputs)``; SDT uses 2).
  """
  hidden: Sequence[int] = (1024, 1024)
  dropout: float = 0.5
  num_outputs: int = 1

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    x = _flatten(x)
    for i, width in enumerate(self.hidden):
      x = nn.Dense(int(width), name=f"fc{i + 1}")(x)
      x = nn.relu(x)
      if self.dropout > 0:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.Dense(self.num_outputs, name="out")(x)
    return x[:, 0] if self.num_outputs == 1 else x


class PrivateEncoder(nn.Module):
  """DSN private encoder ``x -> h_p`` (one per domain).

  Images: conv 5x5 32 -> max-pool -> conv 5x5 64 -> max-pool -> fc
  ``code_dim`` (the private encoder of DSN's MNIST models, Bousmalis et al.,
  NeurIPS 2016, supplementary). Vectors: an MLP with ``hidden`` widths.
  """
  code_dim: int
  hidden: Sequence[int] = (256,)

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    del train
    if x.ndim == 4:
      x = nn.relu(Conv(32, (5, 5), name="conv1")(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
      x = nn.relu(Conv(64, (5, 5), name="conv2")(x))
      x = nn.max_pool(x, (2, 2), (2, 2), padding="SAME")
      x = _flatten(x)
    else:
      x = _flatten(x)
      for i, width in enumerate(self.hidden):
        x = nn.relu(nn.Dense(int(width), name=f"fc{i + 1}")(x))
    return nn.Dense(self.code_dim, name="code")(x)


class SharedDecoder(nn.Module):
  """DSN shared decoder ``h_c + h_p -> x_hat`` of shape ``out_shape``.

  Images ``(H, W, C)``: fc to an ``(ceil(H/2), ceil(W/2), 32)`` map -> conv
  5x5 32 -> nearest 2x upsampling -> conv 3x3 16 -> crop to ``(H, W)`` ->
  conv 3x3 ``C`` (a smaller version of DSN's MNIST decoder: fc, convs,
  upsampling, convs). Vectors ``(D,)``: an MLP with ``hidden`` widths.
  The output is linear (no squashing): inputs may be standardised.
  """
  out_shape: Sequence[int]
  hidden: Sequence[int] = (256,)

  @nn.compact
  def __call__(self, code: Array, *, train: bool = False) -> Array:
    del train
    shape = tuple(int(s) for s in self.out_shape)
    if len(shape) == 3:
      h, w, c = shape
      h0, w0 = -(-h // 2), -(-w // 2)
      x = nn.relu(nn.Dense(h0 * w0 * 32, name="fc")(code))
      x = x.reshape(code.shape[0], h0, w0, 32)
      x = nn.relu(Conv(32, (5, 5), name="conv1")(x))
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)[:, :h, :w]
      x = nn.relu(Conv(16, (3, 3), name="conv2")(x))
      return Conv(c, (3, 3), name="conv3")(x)
    x = code
    for i, width in enumerate(self.hidden):
      x = nn.relu(nn.Dense(int(width), name=f"fc{i + 1}")(x))
    d = 1
    for s in shape:
      d *= s
    return nn.Dense(d, name="out")(x).reshape((code.shape[0],) + shape)


class PixelDAGenerator(nn.Module):
  """PixelDA generator ``G(x_s, z)``: a source input in the target style.

  Images: the noise ``z`` goes through a dense layer to one extra input
  channel, then conv 3x3 ``features`` -> ``num_blocks`` residual blocks
  (conv-ReLU-conv + skip) -> conv 3x3 ``C``. Bousmalis et al. (CVPR 2017)
  use 64 filters and 6 residual blocks with BatchNorm and a final tanh; here
  BatchNorm is left out (no mutable state) and the output is ``x +
  residual``, so the generator starts near the identity whatever the input
  normalisation. Vectors: the same residual structure with dense layers.
  """
  features: int = 64
  num_blocks: int = 6

  @nn.compact
  def __call__(self, x: Array, z: Array, *, train: bool = False) -> Array:
    del train
    n = x.shape[0]
    if x.ndim == 4:
      h, w, c = x.shape[1:]
      zmap = nn.Dense(h * w, name="noise_fc")(z).reshape(n, h, w, 1)
      y = nn.relu(Conv(self.features, (3, 3), name="conv_in")(
          jnp.concatenate([x, zmap], axis=-1)))
      for i in range(self.num_blocks):
        r = nn.relu(Conv(self.features, (3, 3), name=f"block{i}_conv1")(y))
        r = Conv(self.features, (3, 3), name=f"block{i}_conv2")(r)
        y = nn.relu(y + r)
      return x + Conv(c, (3, 3), name="conv_out")(y)
    flat = _flatten(x)
    y = nn.relu(nn.Dense(self.features * 4, name="fc_in")(
        jnp.concatenate([flat, z], axis=-1)))
    for i in range(self.num_blocks):
      r = nn.relu(nn.Dense(self.features * 4, name=f"block{i}_fc1")(y))
      r = nn.Dense(self.features * 4, name=f"block{i}_fc2")(r)
      y = nn.relu(y + r)
    out = nn.Dense(flat.shape[-1], name="fc_out")(y)
    return x + out.reshape(x.shape)


class PixelDACritic(nn.Module):
  """PixelDA discriminator: real target vs generated, one logit per input.

  Images: conv 3x3 with strides 1, 2, 2, 2 and 64, 128, 256, 512 filters,
  LeakyReLU(0.2) and dropout after each (Bousmalis et al., CVPR 2017: the
  same pattern, leaky ReLU and dropout with keep probability 0.9), then one
  dense logit. Vectors: an MLP with ``hidden`` widths.
  """
  features: Sequence[int] = (64, 128, 256, 512)
  hidden: Sequence[int] = (512, 512)
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    if x.ndim == 4:
      for i, f in enumerate(self.features):
        x = Conv(int(f), (3, 3), strides=1 if i == 0 else 2,
                 name=f"conv{i + 1}")(x)
        x = nn.leaky_relu(x, 0.2)
        if self.dropout > 0:
          x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = _flatten(x)
    else:
      x = _flatten(x)
      for i, width in enumerate(self.hidden):
        x = nn.leaky_relu(nn.Dense(int(width), name=f"fc{i + 1}")(x), 0.2)
        if self.dropout > 0:
          x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(1, name="out")(x)[:, 0]


# ---------------------------------------------------------------------------
# Helpers shared by the method modules (not networks, but small enough to
# live here rather than in a module of their own).
# ---------------------------------------------------------------------------


# How forward_domains runs the domains through the classifier: "concat" (one
# call on [xs; xt; xtl]), "split" (one call per domain), or "auto": "split" on
# the CPU backend when the model keeps no batch statistics (then both give the
# same values), "concat" otherwise. Why: on XLA:CPU a LeNet step costs about 3x
# more at batch 128 than at 64, so two calls of 64 are faster than one of 128
# (DANN step, DANN's LeNet at 16x16, batch 64 + 64: 25.0 ms split against
# 34.5 ms joint, experiments/bench_train_step.py --forward; figures in
# docs/results_deep_da.md, "Speed"). On accelerators one larger call is the
# faster one.
FORWARD_MODES = ("auto", "concat", "split")
FORWARD_MODE = "auto"


def resolve_forward_mode(mode: str, state) -> str:
  """``"concat"`` or ``"split"``: what ``mode`` means for this model state."""
  if mode not in FORWARD_MODES:
    raise ValueError(f"Unknown forward mode {mode!r}; expected one of "
                     f"{FORWARD_MODES}.")
  if mode == "auto":
    stats = bool(state.get("model"))  # BatchNorm statistics
    return "split" if jax.default_backend() == "cpu" and not stats else "concat"
  return mode


def forward_domains(method, params, state, batch, rng, *, train: bool = True,
                    mode: str | None = None):
  """The classifier's outputs on ``xs``, ``xt`` (and ``xtl``), by domain.

  With ``mode="concat"`` one call on the concatenated batch, so BatchNorm
  statistics see both domains (as in DAN/DANN implementations); with
  ``"split"`` one call per domain (dropout draws from ``fold_in(rng, i)``).
  ``mode`` defaults to :data:`FORWARD_MODE`, see :func:`resolve_forward_mode`.
  Returns ``(out, new_state)`` where ``out`` maps ``"s"``, ``"t"`` and (when
  the batch has labelled target examples) ``"tl"`` to ``(logits, features)``.
  """
  parts = [("s", batch["xs"]), ("t", batch["xt"])]
  if "xtl" in batch and batch["xtl"] is not None and len(batch["xtl"]):
    parts.append(("tl", batch["xtl"]))
  out = {}
  if resolve_forward_mode(mode or FORWARD_MODE, state) == "split":
    for i, (key, p) in enumerate(parts):
      r = None if rng is None else jax.random.fold_in(rng, i)
      logits, feats, state = method.classifier(params, state, jnp.asarray(p),
                                               train=train, rng=r)
      out[key] = (logits, feats)
    return out, state
  x = jnp.concatenate([jnp.asarray(p) for _, p in parts], axis=0)
  logits, feats, state = method.classifier(params, state, x, train=train,
                                           rng=rng)
  start = 0
  for key, p in parts:
    end = start + p.shape[0]
    out[key] = (logits[start:end],
                {k: v[start:end] for k, v in feats.items()})
    start = end
  return out, state


def supervised_loss(out, batch):
  """The weighted source risk ``mean_i v_i CE(f(x_i), y_i)`` (DESIGN.md),
  plus the plain risk on labelled target examples when there are any.

  Returns ``(loss, metrics)``.
  """
  from tlax.methods.base import accuracy, weighted_cross_entropy  # pylint: disable=g-import-not-at-top
  logits_s = out["s"][0]
  loss = weighted_cross_entropy(logits_s, batch["ys"], batch.get("ws"))
  metrics = {"source_acc": accuracy(logits_s, batch["ys"])}
  if "tl" in out:
    loss = loss + weighted_cross_entropy(out["tl"][0], batch["ytl"])
  metrics["cls_loss"] = loss
  return loss, metrics


def select_layer(name: str, logits: Array, feats) -> Array:
  """A named layer: ``"logits"``, ``"softmax"`` or a model feature name."""
  if name == "logits":
    return logits
  if name == "softmax":
    return jax.nn.softmax(logits, axis=-1)
  if name not in feats:
    raise KeyError(f"Layer {name!r} is not a feature of the model; available: "
                   f"logits, softmax, {', '.join(sorted(feats))}.")
  return feats[name].reshape(feats[name].shape[0], -1)


def progress(step, total_steps) -> Array:
  """Training progress ``p = step / total_steps`` in [0, 1] (traced)."""
  total = max(int(total_steps), 1)
  return jnp.clip(jnp.asarray(step, jnp.float32) / total, 0.0, 1.0)


def dann_ramp(step, total_steps, gamma: float = 10.0) -> Array:
  """``2 / (1 + exp(-gamma p)) - 1`` with ``p = step / total_steps``.

  DANN's 0 -> 1 ramp (Ganin et al. 2016), :func:`tlax.losses.grl_lambda_schedule`;
  JAN, DDAN, CDAN and DSN use it too.
  """
  from tlax import losses  # pylint: disable=g-import-not-at-top
  return losses.grl_lambda_schedule(progress(step, total_steps), gamma)


def align_start(method) -> int:
  """``config.method.align_start``: steps before any alignment (default 0)."""
  start = _as_int(method_option(method, "align_start", 0), "align_start")
  total = int(method.ctx.total_steps)
  if start < 0 or (start > 0 and start >= total):
    raise ValueError(f"config.method.align_start must be in [0, steps) = "
                     f"[0, {total}), got {start}.")
  return start


def _as_int(value, name: str) -> int:
  if isinstance(value, bool) or int(value) != value:
    raise ValueError(f"config.method.{name} must be an integer, got "
                     f"{value!r}.")
  return int(value)


def alignment_schedule(method, step, *, ramp: bool = True,
                       gamma: float = 10.0) -> Array:
  """The alignment weight's factor at ``step``, in [0, 1].

  0 for the first ``config.method.align_start`` steps (source training
  only), then DANN's ramp ``2 / (1 + exp(-gamma p)) - 1`` (``ramp``) or 1,
  with ``p`` the progress over the remaining steps,
  ``(step - start) / (steps - start)``. With ``align_start = 0`` (the
  default) this is :func:`dann_ramp` (or 1).

  Why a start: from scratch on SynDigits the source classifier sits on its
  chance plateau for a few hundred steps; an alignment term active then
  reaches a constant-feature solution and the classifier never leaves the
  plateau (docs/results_deep_da.md, SynDigits).
  """
  start = align_start(method)
  s = jnp.asarray(step, jnp.float32) - start
  if ramp:  # progress() clips s < 0 to p = 0, where the ramp is 0
    return dann_ramp(s, int(method.ctx.total_steps) - start, gamma)
  return (s >= 0).astype(jnp.float32)


def method_option(method, key: str, default):
  """A static option ``config.method.<key>`` (``default`` when unset)."""
  cfg = method.config.get("method", None) if method.config is not None else None
  if cfg is None:
    return default
  value = cfg.get(key, None)
  return default if value is None else value
