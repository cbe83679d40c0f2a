"""One short file per method: the module that ties a backbone, heads and a loss together.

Each method is an ``nn.Module`` whose ``forward(...)`` takes a batch (uint8 images, or token
ids for text) and returns a dict with the training ``"loss"`` and any quantities worth logging.
Its ``encoder`` attribute is the network that is kept for downstream tasks.
"""

from .autoencoder import ConvAutoencoder, DenoisingAutoencoder
from .barlow_twins import BarlowTwins
from .byol import BYOL
from .dino import DINO
from .invariance import NaiveInvariance
from .mae import MAE
from .mlm import MaskedLanguageModel, mlm_loss, select_targets, text_features
from .moco import MoCo
from .simclr import SimCLR
from .simsiam import SimSiam
from .supervised import Supervised
from .vicreg import VICReg

__all__ = [
    # supervised references
    "Supervised",
    # learning by comparison
    "NaiveInvariance",
    "SimCLR",
    "MoCo",
    "BYOL",
    "SimSiam",
    # redundancy reduction and self-distillation
    "BarlowTwins",
    "VICReg",
    "DINO",
    # reconstruction
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "MAE",
    # masked language modelling
    "MaskedLanguageModel",
    "mlm_loss",
    "select_targets",
    "text_features",
]
