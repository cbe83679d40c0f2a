"""Convolutional backbones.

Every backbone takes float images in [0, 1] of shape (B, 3, H, W), normalises them with the
CIFAR-10 channel statistics itself, and returns one feature vector per image of size
``backbone.out_dim``. Two families:

- :class:`SmallCNN`: the three-convolution network of the book's opening example, made
  trainable (batch norm after each convolution, global average pooling). Fast on a CPU.
- :func:`resnet18`: the CIFAR variant of ResNet-18 (He et al., 2016, arXiv:1512.03385) used by
  SimCLR's CIFAR experiments: a 3x3 stride-1 stem and no max-pool, since 32x32 images cannot
  afford the 4x downsampling of the ImageNet stem.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "Normalize",
    "SmallCNN",
    "ResNet",
    "resnet18",
    "backbone",
]

# Per-channel mean and std of the CIFAR-10 training images in [0, 1].
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Subtract the channel mean and divide by the channel std (fixed buffers, no parameters)."""

    def __init__(self, mean=CIFAR10_MEAN, std=CIFAR10_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            raise ValueError("expected float images in [0, 1], got uint8; see augment.to_float")
        return (x - self.mean) / self.std


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """The same values stored pixel by pixel (NHWC): convolutions, batch norm and max-pool run
    about 1.4x faster this way on a CPU (oneDNN) and use tensor cores directly on a GPU. Memory
    format only; results match the default layout up to float rounding. See PyTorch's
    "Channels Last Memory Format" tutorial."""
    return x.contiguous(memory_format=torch.channels_last)


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SmallCNN(nn.Module):
    """Three 3x3 convolutions with 2x2 max-pools: widths w, 2w, 4w (64, 128, 256 by default).

    Args:
        channels_last: store the activations pixel by pixel (NHWC), the faster layout on CPUs
            and GPUs alike; False keeps PyTorch's default NCHW, to measure what the layout buys.

    Shape:
        input: (B, 3, 32, 32) float in [0, 1]
        output: (B, 4w) after global average pooling over the final 4x4 map
    """

    def __init__(self, width: int = 64, channels_last: bool = True):
        super().__init__()
        self.channels_last = channels_last
        self.normalize = Normalize()
        self.features = nn.Sequential(
            _conv_bn(3, width),
            nn.MaxPool2d(2),  # 32 -> 16
            _conv_bn(width, 2 * width),
            nn.MaxPool2d(2),  # 16 -> 8
            _conv_bn(2 * width, 4 * width),
            nn.MaxPool2d(2),  # 8 -> 4
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if self.channels_last:
            x = _channels_last(x)
        x = self.features(x)  # (B, 4w, 4, 4)
        return x.mean(dim=(2, 3))  # (B, 4w)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (a 1x1 projection when shapes change)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x), inplace=True)


class ResNet(nn.Module):
    """A CIFAR ResNet: 3x3 stem, no max-pool, four stages of basic blocks, global average pool.

    Args:
        channels_last: as for :class:`SmallCNN`.

    Shape:
        input: (B, 3, H, W) float in [0, 1]
        output: (B, 8 * width)
    """

    def __init__(self, blocks_per_stage=(2, 2, 2, 2), width: int = 64, channels_last: bool = True):
        super().__init__()
        self.channels_last = channels_last
        self.normalize = Normalize()
        self.stem = _conv_bn(3, width)  # 3x3, stride 1: keeps 32x32
        stages, c_in = [], width
        for i, n_blocks in enumerate(blocks_per_stage):
            c_out = width * 2**i
            for j in range(n_blocks):
                stages.append(BasicBlock(c_in, c_out, stride=2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.out_dim = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x)
        if self.channels_last:
            x = _channels_last(x)
        x = self.stages(self.stem(x))  # (B, 8w, H/8, W/8)
        return x.mean(dim=(2, 3))  # (B, 8w)


def resnet18(width: int = 64, channels_last: bool = True) -> ResNet:
    """CIFAR ResNet-18: 11.2M parameters at width 64, 512-dimensional features."""
    return ResNet((2, 2, 2, 2), width=width, channels_last=channels_last)


def backbone(name: str, width: int = 64, channels_last: bool = True) -> nn.Module:
    """A backbone by name, "small_cnn" or "resnet18": ``backbone(cfg.backbone, cfg.width)``.

    ``channels_last=False`` keeps the default NCHW layout (``bench/fast_path.py`` times both).
    """
    builders = {"small_cnn": SmallCNN, "resnet18": resnet18}
    if name not in builders:
        raise ValueError(f"unknown backbone {name!r}: expected one of {', '.join(builders)}")
    return builders[name](width=width, channels_last=channels_last)
