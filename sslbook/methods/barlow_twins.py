"""Barlow Twins: make the cross-correlation matrix of two views' embeddings the identity.

One network (backbone + projector) embeds both views of every image, with no predictor, no
stop-gradient and no target network. The loss is computed on C, the D x D matrix of
correlations, over the batch, between dimension i of the first view's embedding and dimension
j of the second's:

    L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2

The diagonal term makes each dimension invariant to the augmentation; the off-diagonal term
makes different dimensions carry different information (redundancy reduction, after the
neuroscientist H. Barlow). A constant embedding has C = 0 and the worst possible loss, so
collapse is not a minimum; nor is a few correlated dimensions (dimensional collapse).

[0] Barlow Twins, Zbontar et al. 2021, arXiv:2103.03230
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import SimCLRAugment, two_views
from ..collapse import effective_rank, embedding_std
from ..losses import barlow_twins_loss
from ..models import MLPHead

__all__ = ["BarlowTwins"]


class BarlowTwins(nn.Module):
    """Encoder + projector; the two views' projections are decorrelated by the loss alone.

    Args:
        encoder: the backbone (with ``out_dim``), kept for downstream tasks.
        proj_dim: width of the projector's hidden and output layers. [0] uses 8192 on a
            ResNet-50 and finds wider is better (Fig. 4); 512 keeps the CIFAR backbones' scale.
        proj_layers: linear layers of the projector, BN + ReLU between them; 3 in [0], §4.
        lambd: lambda, the weight of the off-diagonal terms; 5e-3 in [0], §4.
        augment: makes one view per image; default SimCLR's CIFAR recipe.

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss", "std", "rank"} scalars
    """

    def __init__(
        self,
        encoder: nn.Module,
        proj_dim: int = 512,
        proj_layers: int = 3,
        lambd: float = 5e-3,
        augment=None,
    ):
        super().__init__()
        self.encoder = encoder
        self.projector = MLPHead(encoder.out_dim, proj_dim, proj_dim, num_layers=proj_layers)
        self.lambd = lambd
        self.augment = augment or SimCLRAugment()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = two_views(images, self.augment)  # 2 x (B, 3, H, W) float
        z1 = self.projector(self.encoder(x1))  # (B, proj_dim)
        z2 = self.projector(self.encoder(x2))
        # the whole method: both branches get gradients; C -> I is what keeps them apart
        loss = barlow_twins_loss(z1, z2, self.lambd)
        z = z1.detach()
        return {"loss": loss, "std": embedding_std(z), "rank": effective_rank(z)}
