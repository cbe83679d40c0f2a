"""MoCo v2: contrast each query with its key against a queue of keys from earlier batches.

A query encoder f_q (backbone + MLP head) is trained by gradient descent. A key encoder f_k,
a copy of it, is not: it follows f_q as an exponential moving average, so that the keys in the
queue, computed over many past steps, stay consistent with each other. The queue decouples
the number of negatives (K, thousands) from the batch size.

Symmetrised: both views serve as queries (loss_12 with x1 as query and x2 as key, loss_21
the other way round) and the loss is their mean; both sets of keys are enqueued. MoCo v2 uses
one direction; the official CIFAR-10 demo (github.com/facebookresearch/moco, colab) and MoCo v3
symmetrise (they sum the two; the mean keeps the scale of one direction).

Batch norm: MoCo shuffles the key batch across GPUs so that the key encoder's BN statistics
cannot leak which key belongs to which query ([0], §3.3 "Shuffling BN"). That needs several
devices. Here both encoders use plain BN on one device, the shuffle-free single-GPU variant
(the CIFAR-10 demo and lightly's CIFAR-10 benchmark instead imitate several GPUs with a batch
norm split into 8 groups). The head has no BN, as in MoCo v2.

[0] MoCo, He et al. 2020, arXiv:1911.05722
[1] MoCo v2, Chen et al. 2020, arXiv:2003.04297
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..augment import SimCLRAugment, two_views
from ..collapse import embedding_std
from ..losses import check_temperature, info_nce_loss
from ..modules import ema_update, frozen_copy

__all__ = ["MoCo"]


class MoCo(nn.Module):
    """Query encoder + head trained on InfoNCE; key encoder + head a momentum copy; a key queue.

    Args:
        encoder: the query backbone (with ``out_dim``), kept for downstream tasks; the key
            backbone is a deep copy of it.
        proj_hidden: hidden width of the MLP head; [1] uses the encoder's width (2048).
        proj_dim: output width; 128 in [0, 1].
        queue_size: K negatives; 65536 on ImageNet ([0]), 4096 in the CIFAR-10 demo.
        momentum: m of the key encoder; 0.999 on ImageNet ([0], §3.2), 0.99 in the CIFAR-10
            demo, where an epoch has 50x fewer steps.
        temperature: tau; 0.2 in [1].
        augment: makes one view per image; default SimCLR's recipe, as in [1].

    Shape:
        images: (B, 3, H, W) uint8 with 2B <= queue_size; returns {"loss", "std"} scalars
    """

    def __init__(
        self,
        encoder: nn.Module,
        proj_hidden: int = 512,
        proj_dim: int = 128,
        queue_size: int = 4096,
        momentum: float = 0.99,
        temperature: float = 0.2,
        augment=None,
    ):
        super().__init__()
        check_temperature(temperature)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"expected a momentum in [0, 1], got {momentum}")
        if queue_size < 1:
            raise ValueError(f"expected a queue_size >= 1, got {queue_size}")
        self.encoder = encoder
        # MoCo v2's MLP head: fc-ReLU-fc, no BN ([1], §2; the official main_moco.py)
        self.projector = nn.Sequential(
            nn.Linear(encoder.out_dim, proj_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(proj_hidden, proj_dim),
        )
        self.encoder_k = frozen_copy(encoder)  # the key encoder starts as f_q and is not trained
        self.projector_k = frozen_copy(self.projector)
        self.momentum, self.temperature = momentum, temperature
        self.augment = augment or SimCLRAugment()
        # the queue: K unit vectors, random at first; queue_ptr is where the next key goes
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, proj_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def after_step(self) -> None:
        """theta_k <- m theta_k + (1 - m) theta_q for every parameter ([0], Eq. 2).

        :func:`sslbook.train.fit` calls it after every optimizer step, so the keys of the next
        batch come from the updated key encoder, as in the official code (which updates at the
        start of the next forward). Buffers (BN running statistics) are not averaged: the key
        encoder keeps its own, updated by its own forward passes.
        """
        ema_update(self.encoder, self.encoder_k, self.momentum)
        ema_update(self.projector, self.projector_k, self.momentum)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (L2-normalised) over the oldest entries of the queue, wrapping around.

        The queue is a ring buffer: ``queue_ptr`` points at the oldest entry, so
        ``queue.roll(-queue_ptr, 0)`` lists the entries from oldest to newest.

        Shape:
            keys: (n, D) with n <= K
        """
        size, dim = self.queue.shape
        if keys.ndim != 2 or keys.shape[1] != dim or keys.shape[0] > size:
            raise ValueError(
                f"expected keys of shape (n <= {size}, {dim}), got {tuple(keys.shape)}"
            )
        index = (self.queue_ptr + torch.arange(len(keys), device=keys.device)) % size  # (n,)
        self.queue.index_copy_(0, index, F.normalize(keys.float(), dim=1))
        self.queue_ptr.copy_((self.queue_ptr + len(keys)) % size)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x1, x2 = two_views(images, self.augment)  # 2 x (B, 3, H, W) float
        # 1) the key encoder was moved towards the query encoder after the last step (after_step)
        # 2) queries: the gradient flows here
        q1 = self.projector(self.encoder(x1))  # (B, proj_dim)
        q2 = self.projector(self.encoder(x2))
        # 3) keys: no gradient, the key encoder learns only through the momentum update
        with torch.no_grad():
            k1 = F.normalize(self.projector_k(self.encoder_k(x1)), dim=1)  # (B, proj_dim)
            k2 = F.normalize(self.projector_k(self.encoder_k(x2)), dim=1)
        # 4) InfoNCE against the queue as it was before this batch; cloned because enqueue
        # overwrites it in place before backward needs it
        queue = self.queue.clone()  # (K, proj_dim)
        loss = 0.5 * (
            info_nce_loss(q1, k2, queue, self.temperature)
            + info_nce_loss(q2, k1, queue, self.temperature)
        )
        # 5) the newest keys replace the oldest (only while training)
        if self.training:
            self.enqueue(torch.cat([k1, k2]))
        return {"loss": loss, "std": embedding_std(q1.detach())}
