"""Autoencoders: compress an image into a small code and reconstruct it from the code alone.

The code (the bottleneck) is the representation: it must keep what the decoder needs to redraw
the image. Two models (the broken autoencoder of the seed article is
:class:`sslbook.article.ArticleAutoencoder`):

- :class:`ConvAutoencoder`: a working convolutional autoencoder, stride-2 convolutions down to a
  code vector and stride-2 transposed convolutions back up.
- :class:`DenoisingAutoencoder`: the same network fed a corrupted image and asked for the clean
  one (Vincent et al., 2008, ICML), so that copying the input is no longer a solution.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import to_float
from ..models.conv_autoencoder import ConvDecoder, ConvEncoder
from ..modules import eval_mode

__all__ = ["ConvAutoencoder", "DenoisingAutoencoder"]


class ConvAutoencoder(nn.Module):
    """Encoder to a ``bottleneck``-dimensional code, decoder back to pixels, MSE to the input.

    Args:
        width: channels of the first convolution (then 2w, 4w).
        bottleneck: size of the code, the representation: ``encoder.out_dim``.
        noise_std: std of Gaussian noise added to the encoder's input (0: a plain autoencoder);
            the target stays the clean image, see :class:`DenoisingAutoencoder`.
        image_size: side of the square images.
        augment: makes the training image from the uint8 batch; default none (``to_float``).

    Shape:
        images: (B, 3, S, S) uint8; returns {"loss": scalar}
    """

    def __init__(
        self,
        width: int = 32,
        bottleneck: int = 128,
        noise_std: float = 0.0,
        image_size: int = 32,
        augment=None,
    ):
        super().__init__()
        if noise_std < 0:
            raise ValueError(f"expected noise_std >= 0, got {noise_std}")
        self.encoder = ConvEncoder(width, bottleneck, image_size)
        self.decoder = ConvDecoder(width, bottleneck, image_size)
        self.noise_std = noise_std
        self.augment = augment or to_float

    def corrupt(self, x: torch.Tensor) -> torch.Tensor:
        """x + N(0, noise_std^2) per pixel, not clamped (so the noise stays zero-mean)."""
        return x + self.noise_std * torch.randn_like(x) if self.noise_std > 0 else x

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.augment(images)  # (B, 3, S, S) float in [0, 1]
        x_hat = self.decoder(self.encoder(self.corrupt(x)))  # (B, 3, S, S)
        return {"loss": F.mse_loss(x_hat, x)}  # the target is always the clean image

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inputs (corrupted when noise_std > 0) and reconstructions, in eval mode.

        Returns:
            {"images", "inputs", "reconstruction"}: (N, 3, S, S) float; "loss": mean squared
            error of the reconstruction against the clean images
        """
        with eval_mode(self):  # batch norm with its running statistics
            x = to_float(images)
            inputs = self.corrupt(x)
            x_hat = self.decoder(self.encoder(inputs))
        return {
            "images": x,
            "inputs": inputs,
            "reconstruction": x_hat,
            "loss": F.mse_loss(x_hat, x),
        }


class DenoisingAutoencoder(ConvAutoencoder):
    """A :class:`ConvAutoencoder` that reconstructs the clean image from a noisy one.

    Vincent et al. (2008) corrupt by zeroing a random fraction of the inputs; additive Gaussian
    noise is one of the corruptions of their follow-up (Vincent et al., 2010, JMLR 11). The
    default std 0.1 on [0, 1] pixels is our choice: visible noise on a recognisable image.
    """

    def __init__(self, width: int = 32, bottleneck: int = 128, noise_std: float = 0.1, **kwargs):
        if noise_std <= 0:
            raise ValueError(f"expected noise_std > 0 for a denoising autoencoder, got {noise_std}")
        super().__init__(width, bottleneck, noise_std=noise_std, **kwargs)
