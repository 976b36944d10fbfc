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
from tlax.methods import cdan  # deep DA (issue 4): CDAN, CDAN+E
from tlax.methods import cmd  # deep DA (issue 4): CMD
from tlax.methods import coral  # deep DA (issue 4): Deep CORAL
from tlax.methods import dan  # deep DA (issue 4): DAN
from tlax.methods import dann  # deep DA (issue 4): DANN
from tlax.methods import ddan  # deep DA (issue 4): DDAN (learned mu)
from tlax.methods import ddc  # deep DA (issue 4): DDC
from tlax.methods import dsn  # deep DA (issue 4): DSN
from tlax.methods import jan  # deep DA (issue 4): JAN
from tlax.methods import pixelda  # deep DA (issue 4): PixelDA
from tlax.methods import sdt  # deep DA (issue 4): SDT
from tlax.methods import conservative  # issue 6: finetune, l2sp, output_kl, lora
from tlax.methods import multitask  # issue 6: multitask
