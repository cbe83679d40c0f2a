"""Self-supervised objectives as pure functions of tensors.

Each loss validates its inputs and raises ``ValueError`` naming the expected and the actual
shape or value, so that a wrong call fails at the call, not three layers deeper. Whether values
are finite is checked for CPU tensors only: on an accelerator the check would read the values on
the host and so wait for every queued kernel at every step; there :func:`sslbook.train.fit`
catches a non-finite loss at its next log instead.

The contrastive losses compute their cosine-similarity logits in float32 even under autocast:
at a temperature of 0.05 a logit reaches 1 / 0.05 = 20, and exp(20) ~ 5e8 overflows fp16
(max 65504), while bf16 keeps only about 3 significant digits of each logit.

[0] SimCLR, Chen et al. 2020, arXiv:2002.05709
[1] MoCo, He et al. 2020, arXiv:1911.05722
[2] SimSiam, Chen & He 2021, arXiv:2011.10566
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

from .distributed import gather_with_grad, rank

__all__ = [
    "check_temperature",
    "check_views",
    "info_nce_loss",
    "negative_cosine_similarity",
    "nt_xent_loss",
]


def _nonfinite(*tensors: torch.Tensor) -> bool:
    """True if a CPU tensor holds NaN or inf (tensors on an accelerator are not read, see above)."""
    return any(t.device.type == "cpu" and not torch.isfinite(t).all() for t in tensors)


def check_views(a: torch.Tensor, b: torch.Tensor, name: str = "views") -> None:
    """Raise ``ValueError`` unless ``a``, ``b`` are (N, D) batches of one shape, N >= 2, finite
    (checked on the CPU only, see the module doc)."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"expected two {name} of equal shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] < 2:
        raise ValueError(f"expected a batch of at least 2 {name}, got N={a.shape[0]}")
    if _nonfinite(a, b):
        raise ValueError(f"expected finite {name}, got NaN or inf")


def check_temperature(temperature: float) -> None:
    """Raise ``ValueError`` unless ``temperature`` is a finite number > 0."""
    number = isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
    if not (number and 0 < temperature < math.inf):
        raise ValueError(f"expected a finite temperature > 0, got {temperature!r}")


def negative_cosine_similarity(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p_i, z_i), averaged over the batch: -1 when every pair points the same way.

    The objective of BYOL and SimSiam ([2], Eq. 1). On its own, with gradients through both
    arguments, it has a trivial minimum: map every image to the same vector.

    Computed in float32, also from fp16/bf16 inputs: a bf16 loss near -1 moves in steps of 0.004.

    Shape:
        p, z: (N, D), any float dtype; return: scalar, float32
    """
    check_views(p, z, "embeddings")
    return -F.cosine_similarity(p.float(), z.float(), dim=1).mean()


def nt_xent_loss(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, gather: bool = False
) -> torch.Tensor:
    """SimCLR's normalized temperature-scaled cross-entropy ([0], Eq. 1), mean over 2N anchors.

    The 2N views ``cat(z1, z2)`` are the anchors. Anchor i's positive is its partner view of the
    same image; the other 2N - 2 views are its negatives. Its loss is a (2N - 1)-way
    classification: ``-log(exp(s_ij / T) / sum_{k != i} exp(s_ik / T))`` with s the cosine
    similarity. The anchor itself (s_ii = 1) is removed with a -inf logit, never a large finite
    constant, which would overflow fp16.

    Args:
        z1, z2: projections of the two views; row i of each comes from image i.
        temperature: T; 0.5 is SimCLR's choice for CIFAR-10 ([0], App. B.9).
        gather: in a multi-process run, compare this rank's anchors with the views of every
            rank (:func:`sslbook.distributed.gather_with_grad`), so the negatives are those of
            the global batch, as in [0]; the identity in a single process.

    Shape:
        z1, z2: (N, D), any float dtype; return: scalar, float32
    """
    check_views(z1, z2, "embeddings")
    check_temperature(temperature)
    n = z1.shape[0]
    with torch.autocast(z1.device.type, enabled=False):  # float32 logits, see the module doc
        z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)  # unit sphere
        anchors = torch.cat([z1, z2])  # (2N, D), this process's views
        offset = 0
        if gather:
            z1, z2 = gather_with_grad(z1), gather_with_grad(z2)  # (M, D), M = N x processes
            offset = rank() * n  # this process's rows among the M
        m = z1.shape[0]
        logits = anchors @ torch.cat([z1, z2]).T / temperature  # (2N, 2M), s_ik / T
        own = torch.arange(n, device=z1.device) + offset  # the anchors' rows among the M
        itself = torch.cat([own, own + m])  # (2N,) column of each anchor itself
        logits = logits.masked_fill(F.one_hot(itself, 2 * m).bool(), -math.inf)  # k != i
        partner = torch.cat([own + m, own])  # (2N,) column of each anchor's partner view
        return F.cross_entropy(logits, partner)


def info_nce_loss(
    q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2
) -> torch.Tensor:
    """MoCo's InfoNCE ([1], Eq. 1 and Algorithm 1): one positive key against a queue of negatives.

    Query i's positive is key i (both L2-normalised here); its negatives are the K entries of
    the queue, keys of earlier batches. The loss is a (K + 1)-way cross-entropy with the
    positive at index 0. An empty queue (K = 0) gives a loss of exactly 0.

    Args:
        q: queries from the query encoder.
        k: keys from the key encoder, one per query (their gradient is normally stopped).
        queue: negative keys, already L2-normalised (the caller keeps it so; not checked).
        temperature: tau; 0.2 in MoCo v2 (Chen et al. 2020, arXiv:2003.04297).

    Shape:
        q, k: (N, D), queue: (K, D); return: scalar, float32
    """
    check_views(q, k, "queries and keys")
    check_temperature(temperature)
    if queue.ndim != 2 or queue.shape[1] != q.shape[1]:
        raise ValueError(f"expected a queue of shape (K, {q.shape[1]}), got {tuple(queue.shape)}")
    if _nonfinite(queue):
        raise ValueError("expected a finite queue, got NaN or inf")
    with torch.autocast(q.device.type, enabled=False):  # float32 logits, see the module doc
        q, k = F.normalize(q.float(), dim=1), F.normalize(k.float(), dim=1)  # (N, D)
        l_pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1), q_i . k_i
        l_neg = q @ queue.float().T  # (N, K), q_i . queue_j
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + K)
        labels = torch.zeros(len(q), dtype=torch.long, device=q.device)  # the positive is 0
        return F.cross_entropy(logits, labels)
