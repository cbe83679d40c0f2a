"""Self-supervised objectives as pure functions of tensors.

Each loss validates its inputs and raises ``ValueError`` naming the expected and the actual
shape or value, so that a wrong call fails at the call, not three layers deeper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["check_views", "negative_cosine_similarity"]


def check_views(a: torch.Tensor, b: torch.Tensor, name: str = "views") -> None:
    """Raise ``ValueError`` unless ``a``, ``b`` are finite (N, D) batches of one shape, N >= 2."""
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(
            f"expected two {name} of equal shape (N, D), got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] < 2:
        raise ValueError(f"expected a batch of at least 2 {name}, got N={a.shape[0]}")
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError(f"expected finite {name}, got NaN or inf")


def negative_cosine_similarity(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-cos(p_i, z_i), averaged over the batch: -1 when every pair points the same way.

    The objective of BYOL and SimSiam (Chen & He, 2021, arXiv:2011.10566, Eq. 1). On its own,
    with gradients through both arguments, it has a trivial minimum: map every image to the
    same vector.

    Shape:
        p, z: (N, D); return: scalar
    """
    check_views(p, z, "embeddings")
    return -F.cosine_similarity(p, z, dim=1).mean()
