"""Domains, transfer tasks and paired batches.

    import tlax.data as td
    td.list_domains()
    dom = td.load_domain("digits/syndigits", image_size=16, seed=0)
    task = td.make_task("digits/sklearn", "digits/mnistm", channels=3)
    batches = td.PairedBatches(task, batch_size=64, seed=0)
    batch = batches.batch(step)   # pure function of (seed, step)

See ``docs/domains.md`` for every domain, its splits and preprocessing.
"""

from tlax.data.arrays import task_from_arrays
from tlax.data.domains import Domain
from tlax.data.domains import DomainShapeError
from tlax.data.domains import list_domains
from tlax.data.domains import load_domain
from tlax.data.files import DataFileError
from tlax.data.multidomain import make_dg_task
from tlax.data import tasks as _tasks
from tlax.data.tasks import PairedBatches
from tlax.data.tasks import Task
from tlax.data.tasks import task_from_domains



def make_task(source: str, target: str, **kwargs) -> Task:
  """A transfer task from domain names (:func:`tlax.data.tasks.make_task`).

  A source written ``"<domain>+<domain>+..."`` names several labelled
  training domains and gives a domain-generalisation task
  (:func:`make_dg_task`, whose keyword arguments it takes); otherwise the
  keyword arguments are those of :func:`tlax.data.tasks.make_task`.
  """
  if "+" in str(source):
    dg_keys = ("image_size", "channels", "data_dir", "seed",
               "source_val_fraction", "domain_options")
    return make_dg_task(source, target,
                        **{k: v for k, v in kwargs.items() if k in dg_keys})
  return _tasks.make_task(source, target, **kwargs)


__all__ = [
    "DataFileError",
    "Domain",
    "DomainShapeError",
    "PairedBatches",
    "Task",
    "list_domains",
    "load_domain",
    "make_dg_task",
    "make_task",
    "task_from_arrays",
    "task_from_domains",
]
