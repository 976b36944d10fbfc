r"""Discrepancy methods: the source risk plus a named loss between domains.

Objective (the unified objective with a feature discrepancy)::

    (1/Ns) sum_i v_i CE(f(x_i), y_i) + lambda * w(p) * R(T(x_s), T(x_t))

:func:`discrepancy` is that objective for any loss ``R``, named in the
config: a function of :mod:`tlax.losses` (``"mk_mmd"``, ``"coral"``, ...)
or any importable ``"package.module:function"`` with signature
``R(z_s, z_t, **loss_kwargs) -> scalar``. ``T`` are named layers
(``layers``: model feature names, or ``"logits"`` / ``"softmax"``); ``R`` is
summed over them, or called once on the lists of all layers when ``joint``
(JAN's joint MMD). ``w(p)`` is 1, or DANN's ramp ``2 / (1 + exp(-10 p)) - 1``
with ``p = step / steps`` when ``warmup``; ``align_start`` holds ``w`` at 0
for that many steps and starts the ramp after them
(:func:`tlax.methods.common.alignment_schedule`). ``squash = "sigmoid"``
maps the features into (0, 1) before ``R`` (for losses defined on bounded
activations, CMD). A new alignment loss is one function and one config line::

    config.method.name = "discrepancy"
    config.method.loss = "my_losses:energy_distance"
    config.method.loss_kwargs = {"p": 1.0}

The published methods are presets of it (:data:`PRESETS`, registered under
their names):

**DDC** (Tzeng et al., "Deep Domain Confusion: Maximizing for Domain
Invariance", arXiv:1412.3474, 2014): the linear-kernel MMD on the adaptation
layer, ``lambda = 0.25`` (the paper's value). The paper adds a 256-d
``fc_adapt`` bottleneck to AlexNet; here the layer is the head input
``"embedding"`` (set ``config.model.kwargs.bottleneck`` for a bottleneck).
The paper's loss is the plain (biased) ``||mean_s - mean_t||^2``, whose
expectation is the squared mean difference *plus* ``tr(Cov_s) / n_s +
tr(Cov_t) / n_t``: minimising it also shrinks the within-domain variance of
the features, which collapsed them when training from scratch (Office-Caltech10
amazon -> webcam, MLP, seed 0: 22.4 % against 41.7 % source-only). The preset
is therefore the unbiased linear-kernel estimate (``loss = "mmd"``,
``loss_kwargs = {"kernel": "linear", "estimator": "unbiased"}``); ``loss =
"linear_mmd"`` gives the paper's.

**DAN** (Long, Cao, Wang & Jordan, "Learning Transferable Features with
Deep Adaptation Networks", ICML 2015): MK-MMD summed over the task-specific
layers (the paper: AlexNet fc6-fc8; here the head input and the logits), five
Gaussian kernels with bandwidths the mean pairwise squared distance times
``2^k``, ``k = -2..2`` (``"mean:5"``, as in the authors' later code), uniform
kernel weights (the paper's optional QP for ``beta`` is not done). The
quadratic unbiased estimate (the paper: the linear-time one, for speed; at
batch 64 the quadratic one costs nothing and has lower variance);
``lambda = 1``.

**JAN** (Long, Zhu, Wang & Jordan, "Deep Transfer Learning with Joint
Adaptation Networks", ICML 2017): the joint MMD (``joint``) over the head
input (``"mean:5"``) and the softmax predictions (one Gaussian kernel with the
fixed bandwidth of the authors' code, ``2 sigma^2 = 1.68``, ``sigma =
0.9165``), ``lambda = 1`` with the paper's progressive schedule (``warmup``),
which "suppresses noisy activations at the early stages of training". The
quadratic unbiased estimator. ``loss_kwargs["sigmas"]`` has one entry per
layer: change both together.

**Deep CORAL** (Sun & Saenko, ECCV 2016 workshops): ``R = ||C_s -
C_t||_F^2 / (4 d^2)`` (:func:`tlax.losses.coral`) on the logits (the paper's
fc8), ``lambda = 1`` (the paper balances the two losses at the end of
training; 1 is the usual value of reimplementations).

**CMD** (Zellinger et al., "Central Moment Discrepancy (CMD) for
Domain-Invariant Representation Learning", ICLR 2017): ``CMD_K`` with the
paper's fixed ``K = 5`` moments, bounds ``(0, 1)`` and ``lambda = 1`` on the
head input. CMD is defined for activations in a box (the paper's hidden units
are sigmoids); on unbounded ReLU features the higher moments explode
(Office-Caltech10 amazon -> webcam, MLP, seed 0: a CMD of about 2000 at step
50, 18.0 % target accuracy against 41.7 % source-only), so the preset matches
the moments of ``sigmoid(T(x))`` (``squash = "sigmoid"``): a strictly
monotone map, so equal distributions of the squashed features mean equal
distributions of the features.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable, Mapping, Sequence

import jax

from tlax.methods import common
from tlax.methods import contract

_SQUASH = {"sigmoid": jax.nn.sigmoid, "none": lambda x: x}


def _tuples(value):
  if isinstance(value, list):
    return tuple(_tuples(v) for v in value)
  if isinstance(value, Mapping):
    return {k: _tuples(v) for k, v in value.items()}
  return value


def aligned_method(model, num_classes: int, *, total_steps: int,
                   layers: Sequence[str], lambda_: float, warmup: bool,
                   align_start: int, discrepancy_fn: Callable[..., Any],
                   extra_init=None, name: str = "") -> contract.Method:
  """The source risk plus ``lambda * w(p) * R`` over named layers.

  ``discrepancy_fn(zs, zt, out, batch, state, step) -> (value, metrics,
  new_state)`` gives ``R`` from the lists of source and target layers
  ``zs``, ``zt`` (``out`` is :func:`common.forward_domains`' output);
  ``extra_init(rng, batch, params, state) -> (params, state)`` adds
  networks or state (:func:`common.init_with`).
  """
  del num_classes
  layers = tuple(layers)
  common.check_align_start(align_start, total_steps)
  classify = common.classifier_fn(model)

  def loss(params, state, batch, rng, step, hparams):
    out, state = common.forward_domains(classify, params, state, batch, rng)
    cls_loss, metrics = common.supervised_loss(out, batch)
    (ls, fs), (lt, ft) = out["s"], out["t"]
    zs = [common.select_layer(n, ls, fs) for n in layers]
    zt = [common.select_layer(n, lt, ft) for n in layers]
    align, extra, state = discrepancy_fn(zs, zt, out, batch, state, step)
    weight = hparams["lambda"] * common.alignment_schedule(
        step, total_steps, align_start, ramp=warmup)
    value = cls_loss + weight * align
    metrics.update(extra)
    metrics.update(loss=value, align_loss=align, align_weight=weight)
    return value, (metrics, state)

  predict, features = contract.eval_fns(model)
  return contract.Method(init=common.init_with(model, extra_init), loss=loss,
                         predict=predict, features=features,
                         hparams={"lambda": lambda_}, name=name)


def discrepancy(model, num_classes: int, *, total_steps: int,
                loss: str | Callable[..., Any] = "mmd",
                loss_kwargs: Mapping[str, Any] = types.MappingProxyType({}),
                layers: Sequence[str] = ("embedding",),
                joint: bool = False,
                squash: str = "none",
                lambda_: float = 1.0,
                warmup: bool = False,
                align_start: int = 0) -> contract.Method:
  """Source risk + ``lambda * w(p) * sum_l R(T_l(x_s), T_l(x_t))``.

  Args:
    model: the classifier network (:mod:`tlax.models`).
    num_classes: number of classes.
    total_steps: length of the run (for the warm-up ramp).
    loss: ``R``: a function name in :mod:`tlax.losses`, an importable
      ``"package.module:function"``, or a callable
      ``R(z_s, z_t, **loss_kwargs) -> scalar``.
    loss_kwargs: keyword arguments of ``R`` (lists become tuples).
    layers: the aligned layers: model feature names, ``"logits"``,
      ``"softmax"``.
    joint: call ``R`` once on the lists of all layers (a joint discrepancy
      such as :func:`tlax.losses.jmmd`) instead of summing over layers.
    squash: ``"none"`` or ``"sigmoid"`` (applied to every layer first).
    lambda_: the weight ``lambda`` (config key ``lambda``; swept, kept in
      the train state).
    warmup: multiply ``lambda`` by DANN's ramp ``2 / (1 + exp(-10 p)) - 1``.
    align_start: steps of source training before the alignment term starts.

  Returns:
    A :class:`tlax.methods.contract.Method`. Metrics: ``align_loss``
    (``R``), ``align_weight``, and ``align_loss_<layer>`` per layer when
    several layers are summed.

  Raises:
    KeyError: an unknown loss name; ValueError: an unknown ``squash``.
  """
  fn = common.resolve_loss(loss)
  kwargs = _tuples(dict(loss_kwargs or {}))
  layers = tuple(layers)
  if squash not in _SQUASH:
    raise ValueError(f"config.method.squash must be one of {sorted(_SQUASH)}"
                     f", got {squash!r}.")
  f = _SQUASH[squash]

  def discrepancy_fn(zs, zt, out, batch, state, step):
    del out, batch, step
    if squash != "none":
      zs, zt = [f(z) for z in zs], [f(z) for z in zt]
    if joint:
      return fn(list(zs), list(zt), **kwargs), {}, state
    per_layer = [fn(a, b, **kwargs) for a, b in zip(zs, zt)]
    metrics = ({f"align_loss_{n}": v for n, v in zip(layers, per_layer)}
               if len(layers) > 1 else {})
    return sum(per_layer), metrics, state

  return aligned_method(model, num_classes, total_steps=total_steps,
                        layers=layers, lambda_=lambda_, warmup=warmup,
                        align_start=align_start,
                        discrepancy_fn=discrepancy_fn, name="discrepancy")


JAN_SOFTMAX_SIGMA = 0.9165  # 2 sigma^2 = 1.68 (JAN's released code)

# The published discrepancy methods as keyword arguments of discrepancy().
PRESETS = {
    "ddc": dict(loss="mmd",
                loss_kwargs={"kernel": "linear", "estimator": "unbiased"},
                lambda_=0.25),
    "dan": dict(loss="mk_mmd",
                loss_kwargs={"sigmas": "mean:5", "estimator": "unbiased"},
                layers=("embedding", "logits")),
    "jan": dict(loss="jmmd", joint=True,
                loss_kwargs={"sigmas": ("mean:5", JAN_SOFTMAX_SIGMA),
                             "estimator": "unbiased"},
                layers=("embedding", "softmax"), warmup=True),
    "coral": dict(loss="coral", layers=("logits",)),
    "cmd": dict(loss="cmd", loss_kwargs={"n_moments": 5, "bounds": (0.0, 1.0)},
                squash="sigmoid"),
}

ddc = functools.partial(discrepancy, **PRESETS["ddc"])
dan = functools.partial(discrepancy, **PRESETS["dan"])
jan = functools.partial(discrepancy, **PRESETS["jan"])
coral = functools.partial(discrepancy, **PRESETS["coral"])
cmd = functools.partial(discrepancy, **PRESETS["cmd"])
