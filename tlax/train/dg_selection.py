"""DomainBed's model selection for domain-generalisation runs.

At every evaluation a run on a multi-domain task (:func:`tlax.data.make_dg_task`)
records the accuracy on each training domain's in-domain validation part,
their mean (``train_domain_val_accuracy``), the accuracy on the
leave-one-domain-out validation domain when the task has one
(``lodo_val_accuracy``) and the test-domain accuracy (``target_accuracy``).
From those records, per run:

* ``training_domain_validation``: the evaluated step with the highest mean
  in-domain validation accuracy, and its test-domain accuracy;
* ``leave_one_domain_out``: the step with the highest accuracy on the
  validation domain (runs that have one); choosing hyper-parameters by it
  across runs is done by the search (``experiments/dg_search.py``);
* ``test_domain_oracle``: the test-domain accuracy of the final step (an
  oracle: it looks at the test domain's labels; DomainBed chooses
  hyper-parameters by it and never stops early). Reported apart and labelled.

References:
  Gulrajani & Lopez-Paz, In Search of Lost Domain Generalization, ICLR 2021,
  section 3.
"""

from __future__ import annotations

import numpy as np

from tlax.train.evaluate import predict_labels


def domain_eval(method, params, state, task, batch_size: int) -> dict:
  """Per-domain validation accuracies (percent) of one evaluation."""
  out = {}
  pred = predict_labels(method, params, state, task.xs_val,
                        batch_size=batch_size)
  per = {}
  for d, name in enumerate(task.domain_names):
    rows = task.ds_val == d
    if rows.any():
      per[name] = float(100.0 * np.mean(pred[rows] == task.ys_val[rows]))
  out["domain_val_accuracy"] = per
  out["train_domain_val_accuracy"] = (float(np.mean(list(per.values())))
                                      if per else None)
  if task.x_lodo is not None and len(task.x_lodo):
    p = predict_labels(method, params, state, task.x_lodo,
                       batch_size=batch_size)
    out["lodo_val_accuracy"] = float(100.0 * np.mean(p == task.y_lodo))
  return out


def _best(evals, key):
  scored = [r for r in evals if r.get(key) is not None]
  if not scored:
    return None
  best = max(scored, key=lambda r: (r[key], r["step"]))
  return {"step": best["step"], key: best[key],
          "test_domain_accuracy": best["target_accuracy"]}


def selections(evals: list[dict]) -> dict:
  """The three selections of one run from its evaluation records."""
  last = max(evals, key=lambda r: r["step"]) if evals else None
  return {
      "training_domain_validation": _best(evals, "train_domain_val_accuracy"),
      "leave_one_domain_out": _best(evals, "lodo_val_accuracy"),
      "test_domain_oracle": None if last is None else {
          "step": last["step"], "oracle": True,
          "test_domain_accuracy": last["target_accuracy"]},
  }
