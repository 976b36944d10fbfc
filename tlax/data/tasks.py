"""Transfer tasks (a source and a target domain) and their paired batches.

    task = make_task("digits/syndigits", "digits/mnistm", channels=3, seed=0)
    batches = PairedBatches(task, batch_size=64, seed=0)
    for step, batch in zip(range(1000), batches.iterate(start_step)):
      ...  # batch["xs"], ["ys"], ["ws"], ["xt"]

Splits of a task:
  * ``xs, ys``: the source "train" split minus a seeded stratified validation
    part ``xs_val, ys_val`` (``source_val_fraction``), for label-free model
    selection on the source.
  * ``xt``: the target "train" split, inputs only (its labels are never in the
    task).
  * ``xt_test, yt_test``: the target "test" split, held apart from what the
    batches yield, except for the transductive benchmark collections
    (``task.transductive``), whose published protocol uses all target examples
    both as unlabelled training data and as test data.
  * ``xtl, ytl``: ``target_labeled_per_class`` labelled target examples per
    class taken from the target "train" split, removed from ``xt`` and from
    ``xt_test`` (so they are never scored).

Classic semi-supervised learning (``labels_per_class = k > 0``, source and
target the same domain): ``xs, ys`` are ``k`` examples per class of the
domain's "train" split chosen by the seed, ``xt`` the rest of that split
without labels, ``xt_test, yt_test`` its "test" split (for a transductive
domain, a seeded stratified held-out ``ssl_test_fraction`` of its examples,
kept out of ``xs`` and ``xt``); there is no source validation split.
``labels_per_class = -1`` labels the whole "train" split (the fully
supervised ceiling, same test split).

:class:`PairedBatches` holds no iterator state: ``batch(step)`` is a pure
function of the seed and the step, so resuming a run only needs the step.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import numpy as np

from tlax.data import domains
from tlax.data.domains import Domain

_SOURCE, _TARGET, _LABELED = 0, 1, 2  # stream ids of PairedBatches


@dataclasses.dataclass(frozen=True, repr=False)
class Task:
  """A source domain, a target domain and the arrays a method trains on.

  There is deliberately no ``yt``: target training labels are not part of a
  task. See the module docstring for how the splits are made.
  """
  source: Domain
  target: Domain
  num_classes: int
  input_shape: tuple
  xs: np.ndarray
  ys: np.ndarray
  xs_val: np.ndarray
  ys_val: np.ndarray
  xt: np.ndarray
  xt_test: np.ndarray
  yt_test: np.ndarray
  xtl: np.ndarray
  ytl: np.ndarray
  transductive: bool
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  # Multi-domain (domain-generalisation) tasks only, see
  # :func:`tlax.data.make_dg_task`: the training-domain index of every row of
  # ``xs`` and ``xs_val``, the training domains' names, and the examples of
  # the leave-one-domain-out validation domain (none when not asked for).
  ds: np.ndarray | None = None
  ds_val: np.ndarray | None = None
  domain_names: tuple[str, ...] = ()
  x_lodo: np.ndarray | None = None
  y_lodo: np.ndarray | None = None

  @property
  def name(self) -> str:
    return f"{self.source.name}->{self.target.name}"

  def __repr__(self) -> str:
    return (f"Task({self.name!r}, input_shape={self.input_shape}, "
            f"num_classes={self.num_classes}, xs={len(self.xs)}, "
            f"xs_val={len(self.xs_val)}, xt={len(self.xt)}, "
            f"xt_test={len(self.xt_test)}, xtl={len(self.xtl)}, "
            f"transductive={self.transductive})")


def _shape_str(shape) -> str:
  return "(" + ",".join(str(s) for s in shape) + ")"


def check_pairable(source: Domain, target: Domain) -> None:
  """Raises a clear error when two domains cannot form a task."""
  if source.input_shape != target.input_shape:
    if source.kind == "image" and target.kind == "image":
      s, t = source.input_shape, target.input_shape
      hint = []
      if s[:2] != t[:2]:
        hint.append(f"image_size={t[0] if t[0] == t[1] else t[:2]}")
      if s[2] != t[2]:
        hint.append(f"channels={t[2]}")
      how = (f"set {' and '.join(hint)} (config: --config.image_size, "
             f"--config.channels)")
    elif source.kind != target.kind:
      how = ("one is an image domain and the other a feature domain: pass "
             "flatten=True in domain_options for the image domain (with "
             "image_size/channels to match the feature size) or pick domains "
             "of the same kind")
    else:
      how = "pick feature domains of the same dimension"
    raise domains.DomainShapeError(
        f"source {source.name} has input shape {_shape_str(source.input_shape)}"
        f" but target {target.name} has {_shape_str(target.input_shape)}: "
        f"{how}.")
  if source.num_classes != target.num_classes:
    raise ValueError(
        f"source {source.name} has {source.num_classes} classes but target "
        f"{target.name} has {target.num_classes}: a task needs the same label "
        "set in both domains.")


def _split_options(domain_options):
  """Options for the source and target loaders (see :func:`make_task`)."""
  opts = dict(domain_options or {})
  src = dict(opts.pop("source", None) or {})
  tgt = dict(opts.pop("target", None) or {})
  return {**opts, **src}, {**opts, **tgt}


def make_task(source: str, target: str, *, image_size=None, channels=None,
              data_dir=None, seed: int = 0, target_labeled_per_class: int = 0,
              source_val_fraction: float = 0.1, domain_options=None,
              labels_per_class: int = 0,
              ssl_test_fraction: float = 0.2) -> Task:
  """Builds a transfer task from two domain names.

  Args:
    source: labelled source domain name (see :func:`tlax.data.list_domains`);
      several names joined by ``+`` make a domain-generalisation task
      (:func:`tlax.data.make_dg_task`).
    target: target domain name.
    image_size: passed to both domains, so that they pair.
    channels: passed to both domains (1 or 3).
    data_dir: benchmark-file folder (default ``$TLAX_DATA_DIR``).
    seed: seeds the domains (generated images, splits), the source validation
      split and the choice of labelled target examples.
    target_labeled_per_class: ``k`` labelled target examples per class (the
      semi-supervised setting); 0 for unsupervised adaptation.
    source_val_fraction: stratified fraction of the source training split held
      out as ``xs_val, ys_val`` (0 for none).
    domain_options: options for both loaders, e.g. ``{"holdout": 0.2}``; the
      keys ``"source"`` and ``"target"`` may hold options for one side only,
      e.g. ``{"source": {"n_train": 50000}}``; these may also override
      ``image_size``, ``channels`` or ``seed`` for one side.
    labels_per_class: ``k > 0``: the classic semi-supervised task of one
      domain (``source == target``; see the module docstring); ``-1``: all
      of its training labels (the fully supervised ceiling); 0: a transfer
      task.
    ssl_test_fraction: the held-out test fraction of a transductive domain
      in the semi-supervised task.

  Returns:
    A :class:`Task`.

  Raises:
    KeyError: unknown domain name (the valid names are listed).
    DomainShapeError: the two domains have different input shapes; the
      message says which ``image_size`` / ``channels`` to set.
    ValueError: different numbers of classes, a class with too few target
      examples for ``target_labeled_per_class`` or ``labels_per_class``, a
      class with no labelled example, or a semi-supervised task whose source
      and target differ.
  """
  if labels_per_class:
    return _semi_supervised_task(
        source, target, labels_per_class, image_size=image_size,
        channels=channels, data_dir=data_dir, seed=seed,
        domain_options=domain_options, test_fraction=ssl_test_fraction,
        target_labeled_per_class=target_labeled_per_class)
  src_opts, tgt_opts = _split_options(domain_options)
  common = dict(image_size=image_size, channels=channels, data_dir=data_dir,
                seed=seed)
  src = domains.load_domain(source, **{**common, **src_opts})
  tgt = domains.load_domain(target, **{**common, **tgt_opts})
  return task_from_domains(
      src, tgt, seed=seed, target_labeled_per_class=target_labeled_per_class,
      source_val_fraction=source_val_fraction,
      info={"domain_options": {"source": src_opts, "target": tgt_opts}})


def task_from_domains(src: domains.Domain, tgt: domains.Domain, *,
                      seed: int = 0, target_labeled_per_class: int = 0,
                      source_val_fraction: float = 0.1,
                      info: Mapping[str, Any] | None = None) -> Task:
  """A :class:`Task` from two loaded domains (see :func:`make_task`)."""
  check_pairable(src, tgt)

  # Source: train minus a stratified validation part.
  xs_all, ys_all = src.splits["train"]
  keep, val = domains.stratified_split(
      ys_all, source_val_fraction, np.random.default_rng([seed, 1001]),
      name="source_val_fraction")
  xs, ys = xs_all[keep], ys_all[keep]
  xs_val, ys_val = xs_all[val], ys_all[val]

  # Target.
  xt_all, yt_all = tgt.splits["train"]
  x_test, y_test = tgt.splits["test"]
  transductive = tgt.transductive
  k = int(target_labeled_per_class)
  if k < 0:
    raise ValueError(f"target_labeled_per_class must be >= 0, got {k}.")
  lab = np.zeros(0, np.int64)
  if k:
    rng = np.random.default_rng([seed, 1002])
    picks = []
    for c in range(tgt.num_classes):
      idx = np.flatnonzero(yt_all == c)
      if len(idx) < k + (1 if transductive else 0):
        raise ValueError(
            f"target {tgt.name} has {len(idx)} training examples of class "
            f"{c} ({tgt.class_names[c]}); target_labeled_per_class={k} needs "
            f"{k + (1 if transductive else 0)}.")
      picks.append(rng.choice(idx, k, replace=False))
    lab = np.sort(np.concatenate(picks))
  rest = np.setdiff1d(np.arange(len(yt_all)), lab)
  xtl, ytl = xt_all[lab], yt_all[lab]
  xt = xt_all[rest]
  if transductive:
    # One set is both the unlabelled training data and the test data; the
    # few labelled examples leave both.
    xt_test, yt_test = xt, yt_all[rest]
  else:
    xt_test, yt_test = x_test, y_test
  info = {
      "seed": seed,
      "source_val_fraction": source_val_fraction,
      "target_labeled_per_class": k,
      **dict(info or {}),
  }
  return Task(source=src, target=tgt, num_classes=src.num_classes,
              input_shape=src.input_shape, xs=xs, ys=ys, xs_val=xs_val,
              ys_val=ys_val, xt=xt, xt_test=xt_test, yt_test=yt_test,
              xtl=xtl, ytl=ytl, transductive=transductive, info=info)


def _semi_supervised_task(source, target, k, *, image_size, channels,
                          data_dir, seed, domain_options, test_fraction,
                          target_labeled_per_class) -> Task:
  """The classic semi-supervised task of one domain (see make_task)."""
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < -1:
    raise ValueError(f"labels_per_class must be a positive integer, -1 (all "
                     f"labels) or 0 (a transfer task), got {k!r}.")
  if source != target:
    raise ValueError(
        f"labels_per_class={k} makes a semi-supervised task within one "
        f"domain, but source {source!r} and target {target!r} differ: set "
        "the same domain for both (config.source = config.target), or use "
        "target_labeled_per_class for semi-supervised domain adaptation.")
  if target_labeled_per_class:
    raise ValueError("labels_per_class and target_labeled_per_class cannot "
                     "both be set: the first labels k examples of the one "
                     "domain of a semi-supervised task, the second k target "
                     "examples of a transfer task.")
  _, opts = _split_options(domain_options)
  dom = domains.load_domain(target, image_size=image_size, channels=channels,
                            data_dir=data_dir, seed=seed, **opts)
  x_all, y_all = dom.splits["train"]
  if dom.transductive:
    if not 0.0 < test_fraction < 1.0:
      raise ValueError(f"ssl_test_fraction must lie in (0, 1), got "
                       f"{test_fraction}.")
    keep, test = domains.stratified_split(
        y_all, test_fraction, np.random.default_rng([seed, 1004]))
    x_test, y_test = x_all[test], y_all[test]
    x_all, y_all = x_all[keep], y_all[keep]
  else:
    x_test, y_test = dom.splits["test"]
  counts = np.bincount(y_all, minlength=dom.num_classes)
  empty = [c for c in range(dom.num_classes) if counts[c] == 0]
  if empty:
    names = ", ".join(f"{c} ({dom.class_names[c]})" for c in empty)
    raise ValueError(
        f"{dom.name}: class(es) {names} have no training example, so they "
        "would have no labelled example; a semi-supervised task needs at "
        "least one labelled example per class.")
  if k == -1:
    lab = np.arange(len(y_all))
  else:
    short = [c for c in range(dom.num_classes) if counts[c] <= k]
    if short:
      c = short[0]
      raise ValueError(
          f"{dom.name} has {counts[c]} training examples of class {c} "
          f"({dom.class_names[c]}); labels_per_class={k} needs at least "
          f"{k + 1} (k labelled and one unlabelled). Use labels_per_class <= "
          f"{int(counts.min()) - 1}.")
    rng = np.random.default_rng([seed, 1003])
    lab = np.sort(np.concatenate([
        rng.choice(np.flatnonzero(y_all == c), k, replace=False)
        for c in range(dom.num_classes)]))
  rest = np.setdiff1d(np.arange(len(y_all)), lab) if k > 0 else np.arange(
      len(y_all))
  empty_x = x_all[:0]
  info = {"seed": seed, "labels_per_class": int(k),
          "ssl_test_fraction": test_fraction if dom.transductive else None,
          "domain_options": {"source": opts, "target": opts}}
  return Task(source=dom, target=dom, num_classes=dom.num_classes,
              input_shape=dom.input_shape, xs=x_all[lab], ys=y_all[lab],
              xs_val=empty_x, ys_val=y_all[:0], xt=x_all[rest],
              xt_test=x_test, yt_test=y_test, xtl=empty_x, ytl=y_all[:0],
              transductive=False, info=info)


@functools.lru_cache(maxsize=16)
def _permutation(seed: int, stream: int, epoch: int, n: int) -> np.ndarray:
  perm = np.random.default_rng([seed, stream, epoch]).permutation(n)
  perm.setflags(write=False)
  return perm


def stream_indices(seed: int, stream: int, n: int, start: int,
                   size: int) -> np.ndarray:
  """Positions ``start .. start+size-1`` of an endless stream of epochs.

  The stream is the concatenation of the permutations
  ``default_rng([seed, stream, epoch]).permutation(n)`` for epoch 0, 1, ...;
  each epoch holds every index exactly once.
  """
  pos = start + np.arange(size, dtype=np.int64)
  epochs = pos // n
  out = np.empty(size, np.int64)
  for e in np.unique(epochs):
    sel = epochs == e
    out[sel] = _permutation(seed, stream, int(e), n)[pos[sel] - e * n]
  return out


class PairedBatches:
  """Seeded batches of labelled source and unlabelled target examples.

  Every batch has fixed sizes. Batches are consecutive slices of an endless
  stream per domain (source, target, labelled target), made of epoch
  permutations from ``np.random.default_rng([seed, stream_id, epoch])``
  (stream ids 0, 1, 2); so each source example appears exactly once in the
  stream positions of each epoch, and ``batch(step)`` is a pure function of
  ``(seed, step)``: a resumed run needs only its step.

  Args:
    task: a :class:`Task`.
    batch_size: source examples per batch.
    seed: seed of the permutations.
    target_batch_size: unlabelled target examples per batch (default
      ``batch_size``).
    labeled_batch_size: labelled target examples per batch (needs
      ``task.xtl``); 0 for none.
    source_weights: optional ``(len(task.xs),)`` non-negative instance
      weights; normalised to mean 1 over the source. Default: ones.

  A batch is a dict of NumPy arrays: ``xs`` (B, ...) float32, ``ys`` (B,)
  int32, ``ws`` (B,) float32, ``xt`` (Bt, ...) float32, and ``xtl``, ``ytl``
  when ``labeled_batch_size > 0``. For a multi-domain task
  (:func:`tlax.data.make_dg_task`) the source rows are balanced over the
  ``D`` training domains and grouped by domain (``B/D`` rows each, from one
  seeded stream per domain), and ``ds`` (B,) int32 holds their domain index.
  """

  def __init__(self, task: Task, batch_size: int, *, seed: int,
               target_batch_size: int | None = None,
               labeled_batch_size: int = 0, source_weights=None):
    self.task = task
    self.seed = int(seed)
    self.batch_size = int(batch_size)
    self.target_batch_size = int(target_batch_size or batch_size)
    self.labeled_batch_size = int(labeled_batch_size)
    if self.batch_size < 1 or self.target_batch_size < 1:
      raise ValueError("batch sizes must be >= 1, got "
                       f"{batch_size} and {target_batch_size}.")
    if len(task.xs) == 0:
      raise ValueError(f"task {task.name} has no source training examples.")
    if len(task.xt) == 0:
      raise ValueError(f"task {task.name} has no unlabelled target examples.")
    if self.labeled_batch_size < 0:
      raise ValueError("labeled_batch_size must be >= 0.")
    if self.labeled_batch_size and len(task.xtl) == 0:
      raise ValueError(
          f"labeled_batch_size={labeled_batch_size} but task {task.name} has "
          "no labelled target examples: build it with "
          "make_task(..., target_labeled_per_class=k).")
    n = len(task.xs)
    if source_weights is None:
      ws = np.ones(n, np.float32)
    else:
      ws = np.asarray(source_weights, np.float64).reshape(-1)
      if ws.shape != (n,):
        raise ValueError(f"source_weights has {ws.size} values; the task has "
                         f"{n} source training examples (task.xs).")
      if not np.all(np.isfinite(ws)) or ws.min() < 0 or ws.sum() <= 0:
        raise ValueError("source_weights must be finite, non-negative and not "
                         "all zero.")
      ws = (ws / ws.mean()).astype(np.float32)
    self.source_weights = ws
    self.domain_rows = None
    if task.ds is not None:  # multi-domain: balanced, grouped by domain
      num = len(task.domain_names)
      if self.batch_size % num:
        raise ValueError(
            f"batch_size={self.batch_size} is not a multiple of the "
            f"{num} training domains of {task.name}: batches hold the same "
            f"number of examples of every domain; use e.g. batch_size="
            f"{num * max(1, self.batch_size // num)}.")
      self.domain_rows = [np.flatnonzero(task.ds == d) for d in range(num)]
      for d, rows in enumerate(self.domain_rows):
        if len(rows) == 0:
          raise ValueError(f"training domain {task.domain_names[d]} of "
                           f"{task.name} has no training examples.")

  @property
  def steps_per_epoch(self) -> int:
    """Steps for the source stream to pass every source example once."""
    return math.ceil(len(self.task.xs) / self.batch_size)

  @property
  def element_spec(self) -> dict:
    """``{key: jax.ShapeDtypeStruct}`` of a batch."""
    import jax  # pylint: disable=g-import-not-at-top
    shape = tuple(self.task.input_shape)
    spec = {
        "xs": ((self.batch_size, *shape), np.float32),
        "ys": ((self.batch_size,), np.int32),
        "ws": ((self.batch_size,), np.float32),
        "xt": ((self.target_batch_size, *shape), np.float32),
    }
    if self.domain_rows is not None:
      spec["ds"] = ((self.batch_size,), np.int32)
    if self.labeled_batch_size:
      spec["xtl"] = ((self.labeled_batch_size, *shape), np.float32)
      spec["ytl"] = ((self.labeled_batch_size,), np.int32)
    return {k: jax.ShapeDtypeStruct(s, d) for k, (s, d) in spec.items()}

  def indices(self, step: int) -> dict:
    """The example indices of ``batch(step)`` (into xs, xt and xtl)."""
    step = int(step)
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}.")
    t = self.task
    if self.domain_rows is None:
      xs_idx = stream_indices(self.seed, _SOURCE, len(t.xs),
                              step * self.batch_size, self.batch_size)
    else:  # one stream per training domain (stream ids 10, 11, ...)
      per = self.batch_size // len(self.domain_rows)
      xs_idx = np.concatenate([
          rows[stream_indices(self.seed, 10 + d, len(rows), step * per, per)]
          for d, rows in enumerate(self.domain_rows)])
    out = {
        "xs": xs_idx,
        "xt": stream_indices(self.seed, _TARGET, len(t.xt),
                             step * self.target_batch_size,
                             self.target_batch_size),
    }
    if self.labeled_batch_size:
      out["xtl"] = stream_indices(self.seed, _LABELED, len(t.xtl),
                                  step * self.labeled_batch_size,
                                  self.labeled_batch_size)
    return out

  def indices_range(self, start: int, num_steps: int) -> dict:
    """The example indices of ``batch(start) .. batch(start + num_steps -
    1)`` stacked: ``{"xs": (num_steps, B), "xt": (num_steps, Bt)[, "xtl":
    (num_steps, Bl)]}`` int64, equal to ``indices(step)`` of each step (one
    call per stream rather than one per step)."""
    start, num_steps = int(start), int(num_steps)
    if start < 0 or num_steps < 1:
      raise ValueError(f"start must be >= 0 and num_steps >= 1, got {start} "
                       f"and {num_steps}.")
    t = self.task

    def stream(stream_id, n, size):
      return stream_indices(self.seed, stream_id, n, start * size,
                            num_steps * size).reshape(num_steps, size)

    if self.domain_rows is None:
      xs_idx = stream(_SOURCE, len(t.xs), self.batch_size)
    else:
      per = self.batch_size // len(self.domain_rows)
      xs_idx = np.concatenate([
          rows[stream(10 + d, len(rows), per)]
          for d, rows in enumerate(self.domain_rows)], axis=1)
    out = {"xs": xs_idx,
           "xt": stream(_TARGET, len(t.xt), self.target_batch_size)}
    if self.labeled_batch_size:
      out["xtl"] = stream(_LABELED, len(t.xtl), self.labeled_batch_size)
    return out

  def batch(self, step: int) -> dict:
    """The batch at ``step``: a pure function of ``(seed, step)``."""
    t = self.task
    idx = self.indices(step)
    out = {
        "xs": np.asarray(t.xs[idx["xs"]], np.float32),
        "ys": np.asarray(t.ys[idx["xs"]], np.int32),
        "ws": self.source_weights[idx["xs"]],
        "xt": np.asarray(t.xt[idx["xt"]], np.float32),
    }
    if self.domain_rows is not None:
      out["ds"] = np.asarray(t.ds[idx["xs"]], np.int32)
    if self.labeled_batch_size:
      out["xtl"] = np.asarray(t.xtl[idx["xtl"]], np.float32)
      out["ytl"] = np.asarray(t.ytl[idx["xtl"]], np.int32)
    return out

  def iterate(self, start_step: int = 0):
    """Yields ``batch(step)`` for ``step = start_step, start_step + 1, ...``."""
    step = int(start_step)
    while True:
      yield self.batch(step)
      step += 1

  def __iter__(self):
    return self.iterate(0)

  def __repr__(self) -> str:
    return (f"PairedBatches({self.task.name!r}, batch_size={self.batch_size}, "
            f"target_batch_size={self.target_batch_size}, "
            f"labeled_batch_size={self.labeled_batch_size}, seed={self.seed})")
