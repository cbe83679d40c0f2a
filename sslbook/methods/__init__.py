"""One short file per method: the module that ties a backbone, heads and a loss together.

Each method is an ``nn.Module`` whose ``forward(images[, labels])`` takes a batch of uint8 images
and returns a dict with the training ``"loss"`` and any quantities worth logging. Its
``encoder`` attribute is the backbone that is kept for downstream tasks.
"""

from .byol import BYOL
from .invariance import NaiveInvariance
from .moco import MoCo
from .simclr import SimCLR
from .simsiam import SimSiam
from .supervised import Supervised

__all__ = ["BYOL", "MoCo", "NaiveInvariance", "SimCLR", "SimSiam", "Supervised"]
