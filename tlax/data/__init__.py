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
from tlax.data.tasks import make_task
from tlax.data.tasks import PairedBatches
from tlax.data.tasks import Task
from tlax.data.tasks import task_from_domains

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
