"""Heads: the small networks put on top of a backbone's features.

A self-supervised method trains its backbone through a head and keeps only the backbone: SimCLR's
projection head g(.) (Chen et al., 2020, arXiv:2002.05709, §2.1), BYOL's projector and predictor
(Grill et al., 2020, arXiv:2006.07733), SimSiam's projector and predictor. A supervised network's
head is one linear layer, :class:`sslbook.methods.Supervised`'s ``fc``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["MLPHead", "projection_head"]


class MLPHead(nn.Module):
    """Linear layers with batch norm and ReLU between them (none after the last).

    SimCLR's projection head g(.) (Chen et al., 2020, §2.1), BYOL's projector and predictor.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            last = i == num_layers - 1
            layers.append(nn.Linear(a, b, bias=last))
            if not last:
                layers += [nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, in_dim) -> (B, out_dim)


def projection_head(in_dim: int, hidden_dim: int = 512, out_dim: int = 128) -> MLPHead:
    """SimCLR's two-layer projection head (128-d output as in the paper)."""
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=2)
