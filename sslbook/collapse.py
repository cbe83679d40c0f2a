"""Collapse indicators: does an encoder still tell its inputs apart?

A self-supervised objective without negatives has a trivial solution, one output for every
input. Two numbers watch for it during training and after:

- :func:`embedding_std` (SimSiam, Chen & He, 2021, arXiv:2011.10566, §4.1): the spread of the
  L2-normalised embeddings, per dimension.
- :func:`effective_rank` (RankMe, Garrido et al., 2023, arXiv:2210.02885): how many dimensions
  the embeddings use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["effective_rank", "embedding_std"]


def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dimensions of the std of L2-normalised embeddings.

    About 1/sqrt(D) for embeddings spread over the sphere, 0 when every input maps to one point.

    Shape:
        z: (N, D); return: scalar
    """
    return F.normalize(z.float(), dim=1).std(dim=0).mean()


def effective_rank(z: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """exp(entropy) of the normalised singular values of centred embeddings (1 to D).

    Shape:
        z: (N, D); return: scalar
    """
    s = torch.linalg.svdvals(z.float() - z.float().mean(0))
    p = s / s.sum().clamp_min(eps) + eps
    return (-(p * p.log()).sum()).exp()
