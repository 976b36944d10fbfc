"""Transfer methods: each one the loss it adds to the generic trainer.

Methods register themselves by name (``experiments/configs/<name>.py`` sets
``config.method.name``); :func:`get_method` looks them up.
"""

from tlax.methods.base import METHODS
from tlax.methods.base import Method
from tlax.methods.base import MethodContext
from tlax.methods.base import accuracy
from tlax.methods.base import get_method
from tlax.methods.base import register
from tlax.methods.base import weighted_cross_entropy
