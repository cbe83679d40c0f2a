"""Autoencoders: compress an image into a small code and reconstruct it from the code alone.

The code (the bottleneck) is the representation: it must keep what the decoder needs to redraw
the image. Three models:

- :class:`ArticleAutoencoder`: the model of a tutorial article, rebuilt from its description to
  show its bug: its decoder never upsamples, so a 32x32 image comes back 4x4 and the MSE against
  the input fails. :func:`layer_shapes` prints the shapes that reveal it.
- :class:`ConvAutoencoder`: a working convolutional autoencoder, stride-2 convolutions down to a
  code vector and stride-2 transposed convolutions back up.
- :class:`DenoisingAutoencoder`: the same network fed a corrupted image and asked for the clean
  one (Vincent et al., 2008, ICML), so that copying the input is no longer a solution.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import to_float
from ..models.cnn import Normalize

__all__ = [
    "ArticleAutoencoder",
    "ConvAutoencoder",
    "ConvDecoder",
    "ConvEncoder",
    "DenoisingAutoencoder",
    "LayerShape",
    "layer_shapes",
]


class LayerShape(NamedTuple):
    name: str  # the module's name in the model, e.g. "encoder.0"
    layer: str  # its class, e.g. "Conv2d"
    shape: tuple[int, ...]  # its output's shape


@torch.no_grad()
def layer_shapes(model: nn.Module, x: torch.Tensor) -> list[LayerShape]:
    """The output shape of every leaf layer of ``model`` on input ``x``, in the order they ran.

    Uses forward hooks, removed again afterwards, even if the forward pass fails.
    """
    shapes: list[LayerShape] = []
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: shapes.append(
                LayerShape(name, type(m).__name__, tuple(out.shape))
            )
        )
        for name, module in model.named_modules()
        if not list(module.children())  # leaves only: Conv2d, ReLU, ...
    ]
    try:
        model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


class ArticleAutoencoder(nn.Module):
    """The article's autoencoder, faithfully broken: the decoder does not undo the pooling.

    Encoder: three blocks of 3x3 convolution (padding 1, size kept) + ReLU + 2x2 max-pool (size
    halved). Decoder: three 3x3 transposed convolutions with stride 1 and padding 1, which keep
    the size (out = (in - 1) * 1 - 2 * 1 + 3 = in), with ReLUs between. For a 32x32 input:

        encoder  (N, 3, 32, 32) -> conv (N, 64, 32, 32) -> pool (N, 64, 16, 16)
                 -> conv (N, 128, 16, 16) -> pool (N, 128, 8, 8)
                 -> conv (N, 256, 8, 8) -> pool (N, 256, 4, 4)
        decoder  -> (N, 128, 4, 4) -> (N, 64, 4, 4) -> (N, 3, 4, 4)

    so ``F.mse_loss(model(x), x)`` raises a RuntimeError (4 vs 32 at dimension 3). The fix is a
    decoder that upsamples 2x three times, as :class:`ConvDecoder` does.

    Shape:
        x: (N, 3, H, W) float; return: (N, 3, H / 8, W / 8)
    """

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 32 -> 16
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16 -> 8
            nn.Conv2d(128, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8 -> 4
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(256, 128, 3, stride=1, padding=1), nn.ReLU(),  # 4 -> 4
            nn.ConvTranspose2d(128, 64, 3, stride=1, padding=1), nn.ReLU(),  # 4 -> 4
            nn.ConvTranspose2d(64, 3, 3, stride=1, padding=1),  # 4 -> 4: the bug
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


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
        was_training = self.training
        self.eval()  # batch norm with its running statistics
        x = to_float(images)
        inputs = self.corrupt(x)
        x_hat = self.decoder(self.encoder(inputs))
        self.train(was_training)
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
