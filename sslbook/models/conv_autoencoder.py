"""The convolutional autoencoder's two halves: an encoder from an image to a code vector and a
decoder from the code back to an image, both three stride-2 steps of 2x in side.

:class:`sslbook.methods.ConvAutoencoder` trains them together; ``ConvEncoder`` is kept as the
representation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .cnn import Normalize

__all__ = ["ConvDecoder", "ConvEncoder"]


def _down(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution with stride 2: halves the side."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _up(c_in: int, c_out: int) -> nn.Sequential:
    """4x4 transposed convolution with stride 2: doubles the side, out = (in - 1) 2 - 2 + 4."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """Three stride-2 convolutions (widths w, 2w, 4w) and a linear map to the code.

    Shape:
        x: (B, 3, S, S) float in [0, 1], S divisible by 8; return: (B, bottleneck)
    """

    def __init__(self, width: int = 32, bottleneck: int = 128, image_size: int = 32):
        super().__init__()
        if image_size % 8 != 0:
            raise ValueError(f"expected image_size divisible by 8, got {image_size}")
        self.normalize = Normalize()
        self.features = nn.Sequential(
            _down(3, width), _down(width, 2 * width), _down(2 * width, 4 * width)
        )  # S -> S/2 -> S/4 -> S/8
        self.fc = nn.Linear(4 * width * (image_size // 8) ** 2, bottleneck)
        self.out_dim = bottleneck

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.normalize(x))  # (B, 4w, S/8, S/8)
        return self.fc(x.flatten(1))  # (B, bottleneck)


class ConvDecoder(nn.Module):
    """The encoder in reverse: a linear map to a (4w, S/8, S/8) map, three 2x upsamplings.

    Shape:
        z: (B, bottleneck); return: (B, 3, S, S) in [0, 1] (sigmoid)
    """

    def __init__(self, width: int = 32, bottleneck: int = 128, image_size: int = 32):
        super().__init__()
        self.side, self.width = image_size // 8, width
        self.fc = nn.Linear(bottleneck, 4 * width * self.side**2)
        self.features = nn.Sequential(
            _up(4 * width, 2 * width),  # S/8 -> S/4
            _up(2 * width, width),  # S/4 -> S/2
            nn.ConvTranspose2d(width, 3, 4, stride=2, padding=1),  # S/2 -> S, to RGB
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc(z)).view(len(z), 4 * self.width, self.side, self.side)
        return torch.sigmoid(self.features(x))  # (B, 3, S, S), pixels in [0, 1]
