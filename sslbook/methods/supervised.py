"""The supervised reference: a backbone trained with labels and cross-entropy.

Not self-supervised: the book trains it as the upper reference a self-supervised encoder is
compared with, under the same frozen-feature evaluation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import SimCLRAugment

__all__ = ["Supervised"]


class Supervised(nn.Module):
    """A backbone and one linear layer trained with cross-entropy on labelled images under light
    augmentation (random crop and flip).

    Args:
        encoder: the backbone, with an ``out_dim`` attribute; kept for downstream tasks.
        num_classes: outputs of the linear classifier ``fc``.
        augment: makes the training image from the uint8 batch; default crop and flip.

    Shape:
        images: (B, 3, H, W) uint8, labels: (B,) int64; returns {"loss", "accuracy"} scalars
    """

    def __init__(self, encoder: nn.Module, num_classes: int = 10, augment=None):
        super().__init__()
        self.encoder = encoder
        self.fc = nn.Linear(encoder.out_dim, num_classes)
        # Crop and flip only: colour distortions help invariance learning, not classification.
        self.augment = augment or SimCLRAugment(scale=(0.5, 1.0), jitter_p=0.0, grayscale_p=0.0)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier: class scores of float images in [0, 1], no augmentation.

        Shape:
            x: (B, 3, H, W) float; return: (B, num_classes)
        """
        return self.fc(self.encoder(x))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.logits(self.augment(images))  # (B, num_classes)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(1) == labels).float().mean()
        return {"loss": loss, "accuracy": accuracy.detach()}
