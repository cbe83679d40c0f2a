"""SimCLR: contrast each view with its partner against every other view in the batch.

Two augmented views of every image go through one encoder f and one projection head g; the
NT-Xent loss pulls each view's projection z towards its partner's and pushes it away from the
other 2N - 2 projections of the batch. Those in-batch negatives are what keeps the embeddings
from collapsing to a constant, which is why SimCLR wants large batches.

[0] SimCLR, Chen et al. 2020, arXiv:2002.05709
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import SimCLRAugment, two_views
from ..collapse import embedding_std
from ..losses import check_temperature, nt_xent_loss
from ..models import projection_head

__all__ = ["SimCLR"]


class SimCLR(nn.Module):
    """Two views -> encoder f -> projection head g -> NT-Xent against the in-batch negatives.

    Args:
        encoder: the backbone f (with ``out_dim``), kept for downstream tasks.
        proj_hidden: hidden width of g; [0] uses the encoder's width (2048 for a ResNet-50),
            512 matches a CIFAR ResNet-18.
        proj_dim: output width of g; 128 as in [0] (its Fig. 8: the size hardly matters).
        temperature: NT-Xent's T; 0.5 for CIFAR-10 ([0], App. B.9).
        augment: makes one view per image; default :class:`~sslbook.augment.SimCLRAugment`.
        joint_batchnorm: encode both views in one pass of 2B images, so that batch norm
            normalises over all of them as in [0]'s code (default). ``False`` encodes each view
            in its own pass (lightly's and SimSiam's convention): batch statistics per view,
            and on a CPU about 15 % faster, since B images fit the cache better than 2B.

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss": scalar, "std": scalar}
    """

    def __init__(
        self,
        encoder: nn.Module,
        proj_hidden: int = 512,
        proj_dim: int = 128,
        temperature: float = 0.5,
        augment=None,
        joint_batchnorm: bool = True,
    ):
        super().__init__()
        check_temperature(temperature)
        self.joint_batchnorm = joint_batchnorm
        self.encoder = encoder
        self.projector = projection_head(encoder.out_dim, proj_hidden, proj_dim)
        self.temperature = temperature
        self.augment = augment or SimCLRAugment()

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """z = g(f(x)), the space the loss works in (the representation is f(x), before g).

        Shape:
            x: (B, 3, H, W) float in [0, 1]; returns (B, proj_dim)
        """
        return self.projector(self.encoder(x))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = two_views(images, self.augment)  # 2 x (B, 3, H, W) float
        if self.joint_batchnorm:  # one pass, as in [0]'s code: batch norm sees all 2B views
            z1, z2 = self.project(torch.cat([x1, x2])).chunk(2)  # 2 x (B, proj_dim)
        else:  # one pass per view: batch statistics per view
            z1, z2 = self.project(x1), self.project(x2)
        loss = nt_xent_loss(z1, z2, self.temperature, gather=True)  # all processes' negatives
        return {"loss": loss, "std": embedding_std(z1.detach())}
