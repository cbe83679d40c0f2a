"""DINO: self-distillation with no labels; a student predicts a centred, sharpened teacher.

Student and teacher have the same architecture (backbone + a head ending in K "prototype"
outputs). Each turns a view into a distribution over the K outputs by a softmax with a
temperature. The student is trained to give, for every view, the teacher's distribution for a
*different* view of the same image (a cross-entropy, [0] Eq. 3); the teacher is not trained by
gradients but follows the student as an exponential moving average, as BYOL's target.

Two operations on the teacher's output keep the pair from collapsing ([0], §3.1 and §5.3):

- centering: subtract c, a running mean of the teacher's outputs, so that no output dimension
  can dominate for every image; alone, it pushes the teacher towards the uniform distribution;
- sharpening: a low teacher temperature (0.04 against the student's 0.1), which makes every
  target peaked; alone, it lets one dimension win for every image.

Together the two balance. With multi-crop the teacher sees the 2 global views, the student
all views, the small local ones too.

[0] DINO, Caron et al. 2021, arXiv:2104.14294
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import MultiCropAugment
from ..collapse import effective_rank, embedding_std
from ..losses import dino_loss
from ..modules import ema_update, frozen_copy
from .byol import target_momentum

__all__ = ["DINO", "DINOHead"]


class DINOHead(nn.Module):
    """[0]'s projection head: an MLP to a bottleneck, L2-normalised, then K prototypes.

    The last layer is weight-normalised with its norm fixed to 1 ([0], App. and the official
    ``norm_last_layer``): each output is the cosine between the bottleneck and a prototype, in
    [-1, 1]. [0]'s ViT heads have no batch norm; ``batch_norm=True`` adds it after the hidden
    layers, as convnet heads usually have it (the official code's ``use_bn_in_head``).

    Shape:
        x: (B, in_dim); returns (B, out_dim)
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        bottleneck_dim: int,
        out_dim: int,
        batch_norm: bool = False,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in ((in_dim, hidden_dim), (hidden_dim, hidden_dim)):  # 3 linear layers, [0]
            layers += [nn.Linear(a, b), *([nn.BatchNorm1d(b)] if batch_norm else []), nn.GELU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(hidden_dim, bottleneck_dim))
        self.prototypes = nn.Parameter(torch.randn(out_dim, bottleneck_dim) / math.sqrt(out_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = F.normalize(self.mlp(x), dim=1)  # (B, bottleneck_dim), on the unit sphere
        return z @ F.normalize(self.prototypes, dim=1).T  # (B, out_dim), cosines


class DINO(nn.Module):
    """Student (encoder + head) trained to match an EMA teacher's centred, sharpened output.

    Args:
        encoder: the student backbone (with ``out_dim``), kept for downstream tasks; the
            teacher backbone is a deep copy of it (``teacher_encoder``; [0] evaluates it).
        hidden_dim, bottleneck_dim, out_dim: the head's widths; 2048, 256 and K = 65536 in
            [0]; 512, 128 and 1024 suit a small CIFAR backbone.
        batch_norm: batch norm in the head's MLP (see :class:`DINOHead`).
        student_temp: tau_s, 0.1 in [0].
        teacher_temp: tau_t; [0] warms it up from 0.04 to 0.07, a constant 0.04 also trains
            ([0], App. D). Set it to ``student_temp`` to turn sharpening off.
        centre_momentum: m of the centre's moving average; 0.9 in [0], Eq. 4.
        centering: False keeps c = 0: the "sharpening only" ablation of [0], §5.3.
        base_momentum, total_steps: the teacher's EMA momentum, from base_momentum to 1 on
            BYOL's cosine schedule ([0], §3.1: 0.996 on ImageNet; 0.99 for short CIFAR runs).
        augment: makes the views, the teacher's ``augment.n_global`` global views first;
            default :class:`~sslbook.augment.MultiCropAugment` (2 global, 6 local views).

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss", "entropy", "kl", "std", "rank", "tau"}
        scalars: the teacher's mean entropy H(P_t) and KL(P_t || P_s) in nats ([0], Fig. 7),
        and the spread and effective rank of the teacher's outputs
    """

    def __init__(
        self,
        encoder: nn.Module,
        hidden_dim: int = 512,
        bottleneck_dim: int = 128,
        out_dim: int = 1024,
        batch_norm: bool = False,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        centre_momentum: float = 0.9,
        centering: bool = True,
        base_momentum: float = 0.99,
        total_steps: int | None = None,
        augment: MultiCropAugment | None = None,
    ):
        super().__init__()
        if not 0.0 <= centre_momentum <= 1.0:
            raise ValueError(f"expected a centre_momentum in [0, 1], got {centre_momentum}")
        self.encoder = encoder
        self.head = DINOHead(encoder.out_dim, hidden_dim, bottleneck_dim, out_dim, batch_norm)
        self.teacher_encoder = frozen_copy(encoder)  # starts as the student, is not trained
        self.teacher_head = frozen_copy(self.head)
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.centre_momentum, self.centering = centre_momentum, centering
        self.base_momentum, self.total_steps = base_momentum, total_steps
        self.augment = augment or MultiCropAugment()
        self.register_buffer("centre", torch.zeros(out_dim))  # c, a buffer: checkpoints keep it
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def student(self) -> nn.Module:
        """The network that training shapes, backbone (``encoder``) and ``head``, without the
        teacher (an average of past students) and the centre, which only training needs."""
        return nn.ModuleDict({"encoder": self.encoder, "head": self.head})

    def momentum(self) -> torch.Tensor:
        """The teacher's EMA momentum at the current step (0-d tensor)."""
        return target_momentum(self.step, self.total_steps, self.base_momentum)

    def after_step(self) -> None:
        """teacher <- l teacher + (1 - l) student ([0], Algorithm 1), then step <- step + 1."""
        momentum = self.momentum()
        ema_update(self.encoder, self.teacher_encoder, momentum)
        ema_update(self.head, self.teacher_head, momentum)
        self.step += 1

    @torch.no_grad()
    def update_centre(self, teacher_out: list[torch.Tensor]) -> None:
        """c <- m c + (1 - m) x the teacher's mean output over batch and views ([0], Eq. 4)."""
        if self.centering:
            batch_mean = torch.cat(teacher_out).float().mean(dim=0)  # (out_dim,)
            self.centre.mul_(self.centre_momentum).add_((1 - self.centre_momentum) * batch_mean)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        views = self.augment(images)  # n_global x (B, 3, 32, 32), then n_local smaller views
        n_global = self.augment.n_global
        # 1) teacher: the global views only, and no gradient
        with torch.no_grad():
            teacher_out = [self.teacher_head(self.teacher_encoder(v)) for v in views[:n_global]]
        # 2) student: every view, global and local
        student_out = [self.head(self.encoder(v)) for v in views]  # each (B, out_dim)
        # 3) each student view predicts the teacher's centred, sharpened output for the others
        loss = dino_loss(
            student_out, teacher_out, self.centre, self.student_temp, self.teacher_temp
        )
        with torch.no_grad():  # H(P_t), the teacher's entropy: log K uniform, 0 one-hot
            t = torch.cat(teacher_out).float()  # (n_global B, out_dim)
            p_t = F.softmax((t - self.centre) / self.teacher_temp, dim=1)
            entropy = -(p_t * torch.log(p_t.clamp_min(1e-12))).sum(dim=1).mean()
        if self.training:
            self.update_centre(teacher_out)  # after the loss: this batch used the previous c
        z = teacher_out[0]
        return {
            "loss": loss,
            "entropy": entropy,
            "kl": loss.detach() - entropy,  # H(P_t, P_s) - H(P_t), averaged over the pairs
            "std": embedding_std(z),
            "rank": effective_rank(z),
            "tau": self.momentum(),
        }
