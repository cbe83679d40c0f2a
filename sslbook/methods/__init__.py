"""One short file per method: the module that ties a backbone, heads and a loss together.

Each method is an ``nn.Module`` whose ``forward(...)`` takes a batch (uint8 images, or token
ids for text) and returns a dict with the training ``"loss"`` and any quantities worth logging.
Its ``encoder`` attribute is the network that is kept for downstream tasks.
"""

from .autoencoder import ArticleAutoencoder, ConvAutoencoder, DenoisingAutoencoder, layer_shapes
from .byol import BYOL
from .invariance import NaiveInvariance
from .mae import MAE
from .mlm import ArticleMaskedLM, MaskedLanguageModel, mlm_loss, select_targets, text_features
from .moco import MoCo
from .simclr import SimCLR
from .simsiam import SimSiam
from .supervised import ArticleClassifier, Supervised

__all__ = [
    # supervised references
    "ArticleClassifier",
    "Supervised",
    # learning by comparison
    "NaiveInvariance",
    "SimCLR",
    "MoCo",
    "BYOL",
    "SimSiam",
    # reconstruction
    "ArticleAutoencoder",
    "ConvAutoencoder",
    "DenoisingAutoencoder",
    "MAE",
    "layer_shapes",
    # masked language modelling
    "ArticleMaskedLM",
    "MaskedLanguageModel",
    "mlm_loss",
    "select_targets",
    "text_features",
]
