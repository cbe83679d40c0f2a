"""SimSiam: BYOL without the momentum encoder; the stop-gradient alone prevents collapse.

One encoder f (backbone + projection MLP) embeds both views; a prediction MLP h maps one
view's z to a prediction p of the other view's z, which is treated as a constant:

    L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,   D(p, z) = -cos(p, z)

Without the stop-gradient (``stop_gradient=False``) the same loss collapses: every image is
mapped to one vector and the loss reaches -1 at once ([0], §4.1, Fig. 2).

[0] SimSiam, Chen & He 2021, arXiv:2011.10566
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import SimCLRAugment, two_views
from ..collapse import effective_rank, embedding_std
from ..losses import negative_cosine_similarity
from ..models import MLPHead

__all__ = ["SimSiam"]


class SimSiam(nn.Module):
    """Encoder + projector f, predictor h; each view's p regresses the other view's detached z.

    Args:
        encoder: the backbone (with ``out_dim``), kept for downstream tasks.
        proj_dim: width of the projector's hidden and output layers; [0] uses 2048 on a
            ResNet-50 (2048 features), 512 keeps a CIFAR ResNet-18's width (512 features).
        pred_hidden: the predictor's bottleneck; [0] uses proj_dim / 4 (512 of 2048, §3).
        stop_gradient: False removes the stop-gradient: the collapse ablation of [0], §4.1.
        augment: makes one view per image; default SimCLR's CIFAR recipe.
        proj_layers: linear layers of the projector; 3 in [0], §3 (ImageNet), 2 in the paper's
            CIFAR-10 experiments (its appendix).

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss", "std"} scalars
    """

    def __init__(
        self,
        encoder: nn.Module,
        proj_dim: int = 512,
        pred_hidden: int = 128,
        stop_gradient: bool = True,
        augment=None,
        proj_layers: int = 3,
    ):
        super().__init__()
        self.encoder = encoder
        # projector: BN on every layer's output, the last BN without affine ([0], §3 and the
        # official builder.py); the last linear's bias is cancelled by that BN (a harmless
        # leftover the official code freezes)
        self.projector = nn.Sequential(
            MLPHead(encoder.out_dim, proj_dim, proj_dim, num_layers=proj_layers),
            nn.BatchNorm1d(proj_dim, affine=False),
        )
        # predictor: a bottleneck, BN only on the hidden layer ([0], §3)
        self.predictor = MLPHead(proj_dim, pred_hidden, proj_dim, num_layers=2)
        self.stop_gradient = stop_gradient
        self.augment = augment or SimCLRAugment()

    def forward_views(self, x1: torch.Tensor, x2: torch.Tensor):
        """The two branches: predictions p1, p2 and the targets (z1, z2, detached by default).

        Shape:
            x1, x2: (B, 3, H, W) float in [0, 1]; returns four (B, proj_dim) tensors
        """
        z1 = self.projector(self.encoder(x1))  # (B, proj_dim)
        z2 = self.projector(self.encoder(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (B, proj_dim)
        if not self.stop_gradient:
            return p1, p2, z1, z2  # the ablation: gradients reach the encoder through z too
        return p1, p2, z1.detach(), z2.detach()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = two_views(images, self.augment)  # 2 x (B, 3, H, W) float
        p1, p2, z1, z2 = self.forward_views(x1, x2)
        loss = 0.5 * negative_cosine_similarity(p1, z2) + 0.5 * negative_cosine_similarity(p2, z1)
        # collapse indicators: the spread and the effective dimension of the projections
        z = z1.detach()
        return {"loss": loss, "std": embedding_std(z), "rank": effective_rank(z)}
