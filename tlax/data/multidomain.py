"""Multi-domain tasks for domain generalisation (DomainBed's protocol).

    task = make_dg_task("pacs/photo+pacs/art_painting+pacs/cartoon",
                        "pacs/sketch", image_size=32, seed=0)
    batches = PairedBatches(task, batch_size=48, seed=0)
    batch = batches.batch(step)   # xs, ys, ds (domain ids), balanced

Several labelled training domains are concatenated with their domain index
``ds``; each training domain gives a seeded stratified in-domain validation
part (``xs_val, ys_val, ds_val``; DomainBed's holdout fraction is 0.2). The
held-out test domain is never trained on, not even unlabelled: all of its
examples form ``xt_test, yt_test``, and the task's unlabelled stream ``xt``
holds training-domain validation inputs only. Optionally a further training
domain is set aside whole as the leave-one-domain-out validation domain
(``x_lodo, y_lodo``).

:class:`tlax.data.PairedBatches` draws the same number of examples from every
training domain, grouped by domain: rows ``d * B/D .. (d + 1) * B/D - 1`` of a
batch of ``B`` come from domain ``d`` of ``D``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tlax.data import domains
from tlax.data import tasks


def parse_domains(names: str | Sequence[str]) -> list[str]:
  """``"a+b+c"`` (or a list) -> ``["a", "b", "c"]``."""
  if isinstance(names, str):
    names = names.split("+")
  return [str(n).strip() for n in names if str(n).strip()]


def _all_examples(dom: domains.Domain):
  """Every example of a domain (train and test, once each)."""
  x, y = dom.splits["train"]
  xt, yt = dom.splits["test"]
  if dom.transductive or xt is x:
    return np.asarray(x), np.asarray(y)
  return np.concatenate([x, xt]), np.concatenate([y, yt])


def check_names(train: Sequence[str], test: str,
                validation: str | None = None) -> None:
  """Raises a clear error when domain names cannot form a DG task."""
  names = list(train)
  if len(names) < 2:
    raise ValueError(
        f"Domain generalisation needs at least two training domains, got "
        f"{names}: join them with '+', e.g. config.source = "
        "'pacs/photo+pacs/art_painting+pacs/cartoon'.")
  if len(set(names)) != len(names):
    raise ValueError(f"A training domain is listed twice in {'+'.join(names)}.")
  if test in names:
    raise ValueError(
        f"The held-out test domain {test} is also a training domain "
        f"({'+'.join(names)}): remove it from config.source.")
  if validation is not None and validation in names + [test]:
    raise ValueError(
        f"The leave-one-domain-out validation domain {validation} is also a "
        "training or the test domain: it must be a third, unused one.")


def check_domains(train: Sequence[domains.Domain], test: domains.Domain,
                  validation: domains.Domain | None = None) -> None:
  """Raises a clear error when domains cannot form a DG task."""
  check_names([d.name for d in train], test.name,
              validation.name if validation is not None else None)
  first = train[0]
  for dom in list(train[1:]) + [test] + ([validation] if validation else []):
    tasks.check_pairable(first, dom)
    if tuple(dom.class_names) != tuple(first.class_names):
      raise ValueError(
          f"Domains {first.name} and {dom.name} have different class sets "
          f"({list(first.class_names)} vs {list(dom.class_names)}): every "
          "domain of a DG task must have the same classes in the same order.")


def make_dg_task(sources: str | Sequence[str], target: str, *,
                 image_size=None, channels=None, data_dir=None, seed: int = 0,
                 source_val_fraction: float = 0.2, domain_options=None,
                 validation_domain: str | None = None) -> tasks.Task:
  """A domain-generalisation task: several training domains, one unseen.

  Args:
    sources: the training domains, ``"a+b+c"`` or a list of names.
    target: the held-out test domain.
    image_size, channels, data_dir: as in :func:`tlax.data.make_task`.
    seed: seeds the domains and the in-domain validation splits.
    source_val_fraction: stratified fraction of each training domain held
      out for training-domain validation (DomainBed: 0.2).
    domain_options: options for every loader; the key
      ``"validation_domain"`` may name the leave-one-domain-out validation
      domain instead of the argument.
    validation_domain: an optional further domain, neither trained on nor
      the test domain, whose accuracy is recorded for leave-one-domain-out
      validation.

  Returns:
    A :class:`tlax.data.Task` with ``ds``, ``ds_val``, ``domain_names`` (and
    ``x_lodo``, ``y_lodo`` when a validation domain is given).

  Raises:
    ValueError: fewer than two training domains, a test (or validation)
      domain that is also a training domain, or class sets that differ.
    DomainShapeError: domains with different input shapes.
  """
  opts = dict(domain_options or {})
  validation_domain = opts.pop("validation_domain", None) or validation_domain
  opts.pop("source", None)
  opts.pop("target", None)
  common = dict(image_size=image_size, channels=channels, data_dir=data_dir,
                seed=seed, **opts)
  names = parse_domains(sources)
  check_names(names, target, validation_domain)  # before loading anything
  train = [domains.load_domain(n, **common) for n in names]
  test = domains.load_domain(target, **common)
  val_dom = (domains.load_domain(validation_domain, **common)
             if validation_domain else None)
  check_domains(train, test, val_dom)

  xs, ys, ds, xv, yv, dv = [], [], [], [], [], []
  for i, dom in enumerate(train):
    x, y = _all_examples(dom)
    keep, val = domains.stratified_split(
        y, source_val_fraction, np.random.default_rng([seed, 1001, i]),
        name="source_val_fraction")
    xs.append(x[keep]), ys.append(y[keep])
    ds.append(np.full(len(keep), i, np.int32))
    xv.append(x[val]), yv.append(y[val])
    dv.append(np.full(len(val), i, np.int32))
  xs, ys, ds = np.concatenate(xs), np.concatenate(ys), np.concatenate(ds)
  xs_val, ys_val = np.concatenate(xv), np.concatenate(yv)
  ds_val = np.concatenate(dv)
  xt_test, yt_test = _all_examples(test)
  x_lodo = y_lodo = None
  if val_dom is not None:
    x_lodo, y_lodo = _all_examples(val_dom)
  source = domains.Domain(
      name="+".join(names), splits={"train": (xs, ys), "test": (xs, ys)},
      num_classes=train[0].num_classes, kind=train[0].kind,
      class_names=train[0].class_names,
      info={"domains": tuple(names), "transductive": True})
  # The unlabelled stream never sees the test domain: it holds the
  # training domains' validation inputs (or the training inputs).
  xt = xs_val if len(xs_val) > 1 else xs
  info = {"seed": seed, "source_val_fraction": source_val_fraction,
          "target_labeled_per_class": 0, "domain_generalization": True,
          "validation_domain": validation_domain,
          "domain_options": {"source": opts, "target": opts}}
  empty_x = np.zeros((0, *xs.shape[1:]), np.float32)
  return tasks.Task(
      source=source, target=test, num_classes=train[0].num_classes,
      input_shape=tuple(xs.shape[1:]), xs=xs, ys=ys, xs_val=xs_val,
      ys_val=ys_val, xt=xt, xt_test=xt_test, yt_test=yt_test, xtl=empty_x,
      ytl=np.zeros(0, np.int32), transductive=False, info=info, ds=ds,
      ds_val=ds_val, domain_names=tuple(names), x_lodo=x_lodo, y_lodo=y_lodo)
