"""Training: the TrainState, the jitted step, evaluation, checkpoints.

One generic trainer for every deep method: a method is a record of pure
functions (:mod:`tlax.methods.contract`); :func:`train_and_evaluate` runs it on a
task from a config and writes ``metrics.jsonl``, orbax checkpoints and
``result.json`` to a workdir, resuming exactly after a kill.
:func:`train_many` trains several such runs as one program (``jax.vmap``
over their train states, the data loop on the device).
"""

from tlax.train.checkpoint import CheckpointError
from tlax.train.checkpoint import checkpoint_manager
from tlax.train.checkpoint import quiet_orbax_logs
from tlax.train.checkpoint import restore_checkpoint
from tlax.train.checkpoint import restore_config
from tlax.train.checkpoint import save_checkpoint
from tlax.train.evaluate import classification_metrics
from tlax.train.evaluate import evaluate
from tlax.train.evaluate import make_predict_fn
from tlax.train.evaluate import predict_labels
from tlax.train.many_runs import GroupError
from tlax.train.many_runs import run_many
from tlax.train.many_runs import train_many
from tlax.train.metrics_log import read_metrics
from tlax.train.optim import OPTIMIZERS
from tlax.train.optim import SCHEDULES
from tlax.train.optim import make_optimizer
from tlax.train.optim import make_schedule
from tlax.train.state import TrainState
from tlax.train.state import create_train_state
from tlax.train.state import init_hparams
from tlax.train.step import make_train_step
from tlax.train.step import train_step
from tlax.train.trainer import ConfigMismatchError
from tlax.train.trainer import NonFiniteLossError
from tlax.train.trainer import config_diff
from tlax.train.trainer import resolve_config
from tlax.train.trainer import run_experiment
from tlax.train.trainer import train_and_evaluate
from tlax.train.workdir import RunError
from tlax.train.workdir import RunInterrupted
from tlax.train.workdir import WorkdirBusyError
from tlax.train.workdir import WorkdirError
