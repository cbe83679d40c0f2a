"""The naive invariance objective: make the embeddings of two views agree, and nothing else.

Its global minimum is reached by a network that ignores its input and outputs a constant:
every pair of views then agrees perfectly. Training it shows representation collapse, the
problem that negatives (SimCLR, MoCo), asymmetry with stop-gradient (BYOL, SimSiam) and
reconstruction targets (autoencoders, MAE) each solve in their own way.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import SimCLRAugment
from ..collapse import embedding_std
from ..losses import negative_cosine_similarity
from ..models import projection_head

__all__ = ["NaiveInvariance"]


class NaiveInvariance(nn.Module):
    """Two augmented views -> encoder -> projector -> maximise their cosine similarity.

    Shape:
        images: (B, 3, H, W) uint8
    """

    def __init__(self, encoder: nn.Module, proj_dim: int = 128, augment=None):
        super().__init__()
        self.encoder = encoder
        self.projector = projection_head(encoder.out_dim, encoder.out_dim, proj_dim)
        self.augment = augment or SimCLRAugment()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.projector(self.encoder(self.augment(images)))  # (B, proj_dim)
        z2 = self.projector(self.encoder(self.augment(images)))  # (B, proj_dim)
        # Gradients flow through both views: nothing stops the constant solution.
        loss = 0.5 * (negative_cosine_similarity(z1, z2) + negative_cosine_similarity(z2, z1))
        return {"loss": loss, "std": embedding_std(z1.detach())}
