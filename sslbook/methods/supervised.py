"""The supervised reference: a backbone trained with labels and cross-entropy.

Not self-supervised: the book trains it as the upper reference a self-supervised encoder is
compared with, under the same frozen-feature evaluation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import SimCLRAugment

__all__ = ["ArticleClassifier", "Supervised"]


class Supervised(nn.Module):
    """Cross-entropy on labelled images under light augmentation (random crop and flip).

    Shape:
        images: (B, 3, H, W) uint8, labels: (B,) int64
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 10, augment=None):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.out_dim, num_classes)
        # Crop and flip only: colour distortions help invariance learning, not classification.
        self.augment = augment or SimCLRAugment(scale=(0.5, 1.0), jitter_p=0.0, grayscale_p=0.0)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.fc(self.encoder(self.augment(images)))  # (B, num_classes)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy.detach()}


class ArticleClassifier(nn.Module):
    """A "contrastive model" as a tutorial article presents it, rebuilt from its description.

    Three blocks of 3x3 convolution (3 -> 64 -> 128 -> 256, padding 1), ReLU and 2x2 max-pool
    shrink a 32x32 image to a 256x4x4 map; one linear layer maps its 4096 values to 10 class
    scores, and training minimises cross-entropy against class labels. Nothing in it compares
    views or images: it is a supervised classifier, and it cannot be trained without labels.

    Shape:
        x: (B, 3, 32, 32) float in [0, 1]; return: (B, 10) class logits
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in ((3, 64), (64, 128), (128, 256)):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.encoder = nn.Sequential(*layers)  # (B, 256, 4, 4)
        self.fc = nn.Linear(256 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x).flatten(1))  # (B, num_classes)
