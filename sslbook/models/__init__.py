"""Networks: convolutional backbones (:mod:`.cnn`), heads (:mod:`.heads`), the convolutional
autoencoder's encoder and decoder (:mod:`.conv_autoencoder`), the shared Transformer block
(:mod:`.transformer`), the Vision Transformer (:mod:`.vit`) and text encoders (:mod:`.text`).

Every image backbone takes float images in [0, 1] of shape (B, 3, H, W), normalises them itself
and returns one feature vector per image of size ``backbone.out_dim``.
"""

from .cnn import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Normalize,
    ResNet,
    SmallCNN,
    backbone,
    resnet18,
)
from .conv_autoencoder import ConvDecoder, ConvEncoder
from .heads import MLPHead, projection_head
from .text import LSTMEncoder, TextTransformer, count_parameters
from .transformer import Attention, TransformerBlock
from .vit import ViT, patchify, sincos_pos_embed_2d, unpatchify, vit_mini, vit_tiny

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "Attention",
    "ConvDecoder",
    "ConvEncoder",
    "MLPHead",
    "Normalize",
    "ResNet",
    "SmallCNN",
    "TransformerBlock",
    "backbone",
    "projection_head",
    "resnet18",
    "ViT",
    "patchify",
    "sincos_pos_embed_2d",
    "unpatchify",
    "vit_mini",
    "vit_tiny",
    "LSTMEncoder",
    "TextTransformer",
    "count_parameters",
]
