"""BYOL: predict the target network's projection of the other view, without negatives.

The online network (encoder, projector, predictor) is trained to predict what a target
network (encoder, projector) outputs for the other view. The target is not trained by
gradient descent: it is an exponential moving average of the online weights, and the
prediction target is a constant for the loss (a stop-gradient). The predictor, present only
in the online branch, makes the two branches asymmetric; with the moving-average target this
keeps the online network from collapsing, although no term in the loss forbids a constant.

[0] BYOL, Grill et al. 2020, arXiv:2006.07733
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..augment import SimCLRAugment, two_views
from ..collapse import effective_rank, embedding_std
from ..losses import negative_cosine_similarity
from ..models import MLPHead
from ..modules import ema_update, frozen_copy

__all__ = ["BYOL", "target_momentum"]


def target_momentum(step, total_steps: int | None, base_momentum: float) -> torch.Tensor:
    """BYOL's tau at step k: ``1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` ([0], §3.2).

    Rises from ``tau_base`` at k = 0 to 1 at k = K, and stays 1 after K. Without
    ``total_steps`` it is the constant ``tau_base``. Computed as a tensor on the step's device,
    so reading a step counter kept on a GPU costs no host sync.

    Shape:
        step: int or 0-d tensor; returns a 0-d float32 tensor
    """
    k = torch.as_tensor(step, dtype=torch.float32)
    if total_steps is None:
        return torch.full_like(k, base_momentum)
    k = k.clamp(max=total_steps)
    return 1 - (1 - base_momentum) * (torch.cos(math.pi * k / total_steps) + 1) / 2


class BYOL(nn.Module):
    """Online encoder + projector + predictor regress the EMA target's projection of the other view.

    Args:
        encoder: the online backbone (with ``out_dim``), kept for downstream tasks; the target
            backbone is a deep copy of it.
        proj_hidden: hidden width of projector and predictor. [0] uses 4096 on a ResNet-50's
            2048 features; 1024 keeps that 2x ratio on a CIFAR ResNet-18's 512 features (the
            size of lightly's CIFAR-10 benchmark) with 4x fewer head weights than 4096.
        proj_dim: output width of projector and predictor; 256 as in [0].
        base_momentum: tau_base; 0.996 on ImageNet ([0], §3.2), 0.99 for CIFAR-10's shorter
            runs (as in lightly's and solo-learn's CIFAR-10 recipes).
        total_steps: K of the cosine schedule of tau (``epochs * steps_per_epoch``); None keeps
            tau = base_momentum.
        augment: makes one view per image; default SimCLR's CIFAR recipe (BYOL's own adds blur
            and solarization, :class:`~sslbook.augment.SimCLRAugment` can express it).

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss", "std", "tau"} scalars
    """

    def __init__(
        self,
        encoder: nn.Module,
        proj_hidden: int = 1024,
        proj_dim: int = 256,
        base_momentum: float = 0.99,
        total_steps: int | None = None,
        augment=None,
    ):
        super().__init__()
        if not 0.0 <= base_momentum <= 1.0:
            raise ValueError(f"expected a base_momentum in [0, 1], got {base_momentum}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"expected total_steps >= 1 or None, got {total_steps}")
        self.encoder = encoder
        self.projector = MLPHead(encoder.out_dim, proj_hidden, proj_dim)
        self.predictor = MLPHead(proj_dim, proj_hidden, proj_dim)
        self.target_encoder = frozen_copy(encoder)  # xi starts as theta and is not trained
        self.target_projector = frozen_copy(self.projector)
        self.base_momentum, self.total_steps = base_momentum, total_steps
        self.augment = augment or SimCLRAugment()
        # k, the number of target updates so far: a buffer, so a checkpoint resumes the schedule
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def momentum(self) -> torch.Tensor:
        """tau at the current step (0-d tensor)."""
        return target_momentum(self.step, self.total_steps, self.base_momentum)

    def after_step(self) -> None:
        """xi <- tau xi + (1 - tau) theta for every parameter ([0], Eq. 1), then k <- k + 1.

        :func:`sslbook.train.fit` calls it after every optimizer step, as the official code
        updates the target after each optimizer update. Buffers (BN running statistics) are not
        averaged: the target keeps its own, updated by its own forward passes.
        """
        tau = self.momentum()
        ema_update(self.encoder, self.target_encoder, tau)
        ema_update(self.projector, self.target_projector, tau)
        self.step += 1

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = two_views(images, self.augment)  # 2 x (B, 3, H, W) float
        # 1) the target was moved towards the online network after the last step (after_step)
        # 2) online network: projections z, predictions q (q_theta(z_theta) in [0])
        z1 = self.projector(self.encoder(x1))  # (B, proj_dim)
        z2 = self.projector(self.encoder(x2))
        q1, q2 = self.predictor(z1), self.predictor(z2)  # (B, proj_dim)
        # 3) target network: its projections z' are constants for the loss (stop-gradient)
        with torch.no_grad():
            z1_target = self.target_projector(self.target_encoder(x1))  # (B, proj_dim)
            z2_target = self.target_projector(self.target_encoder(x2))
        # 4) ||q/|q| - z'/|z'|||^2 = 2 - 2 cos(q, z'), symmetrised: each view predicts the
        # other's target and the two terms are summed ([0], §3.1)
        loss = (2 + 2 * negative_cosine_similarity(q1, z2_target)) + (
            2 + 2 * negative_cosine_similarity(q2, z1_target)
        )
        z = z1.detach()
        tau = self.momentum()  # the tau of the update after this step
        return {"loss": loss, "std": embedding_std(z), "rank": effective_rank(z), "tau": tau}
