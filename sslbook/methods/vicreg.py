"""VICReg: variance, invariance and covariance terms, each preventing one way of failing.

One network (backbone + "expander", a projector) embeds both views, as in Barlow Twins, with
no predictor, stop-gradient or target network. The loss has three terms, on the embeddings
Z, Z' of the two views:

    L = lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')]

- invariance s: the mean squared distance between the views' embeddings;
- variance v: a hinge that keeps every dimension's std over the batch at >= gamma; without
  it the embeddings collapse to a point;
- covariance c: the squared off-diagonal covariances; without it the dimensions may all carry
  the same signal (dimensional collapse).

The terms act on each branch separately (no normalisation across the pair, unlike Barlow
Twins' cross-correlation), so the branches may even differ in architecture.

[0] VICReg, Bardes, Ponce & LeCun 2022, arXiv:2105.04906
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import SimCLRAugment, two_views
from ..collapse import effective_rank, embedding_std
from ..losses import vicreg_loss
from ..models import MLPHead

__all__ = ["VICReg"]


class VICReg(nn.Module):
    """Encoder + expander, trained by the variance-invariance-covariance loss.

    Args:
        encoder: the backbone (with ``out_dim``), kept for downstream tasks.
        proj_dim: width of the expander's hidden and output layers; 8192 on a ResNet-50 in
            [0], §4.1, 512 keeps the CIFAR backbones' scale.
        proj_layers: linear layers of the expander, BN + ReLU between them; 3 in [0], §4.1.
        sim_coeff, std_coeff, cov_coeff: lambda, mu, nu; 25, 25, 1 in [0], §4.1. Set one to 0
            to ablate its term ([0], Table 7).
        gamma: the target std of every dimension; 1 in [0].
        augment: makes one view per image; default SimCLR's CIFAR recipe.

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss", "invariance", "variance", "covariance",
        "std", "rank"} scalars (the terms unweighted)
    """

    def __init__(
        self,
        encoder: nn.Module,
        proj_dim: int = 512,
        proj_layers: int = 3,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gamma: float = 1.0,
        augment=None,
    ):
        super().__init__()
        self.encoder = encoder
        self.projector = MLPHead(encoder.out_dim, proj_dim, proj_dim, num_layers=proj_layers)
        self.coeffs = {"sim_coeff": sim_coeff, "std_coeff": std_coeff, "cov_coeff": cov_coeff}
        self.gamma = gamma
        self.augment = augment or SimCLRAugment()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = two_views(images, self.augment)  # 2 x (B, 3, H, W) float
        z1 = self.projector(self.encoder(x1))  # (B, proj_dim)
        z2 = self.projector(self.encoder(x2))
        loss, terms = vicreg_loss(z1, z2, **self.coeffs, gamma=self.gamma)
        z = z1.detach()
        return {"loss": loss, **terms, "std": embedding_std(z), "rank": effective_rank(z)}
