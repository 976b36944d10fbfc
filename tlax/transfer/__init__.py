"""Transfer of weights: parameter-path rules, strict merging, LoRA.

Pure functions over parameter trees, used by the methods
(:mod:`tlax.methods`) and by the trainer (:mod:`tlax.train`), which reads
them from the config and loads checkpoints from disk.
"""

from tlax.transfer import lora
from tlax.transfer import params
from tlax.transfer.params import CheckpointMismatchError
from tlax.transfer.params import Pretrained
from tlax.transfer.params import merge_params
from tlax.transfer.params import merge_pretrained
from tlax.transfer.params import path_str
from tlax.transfer.params import shared_mask
