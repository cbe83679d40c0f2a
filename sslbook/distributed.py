"""Several processes, one batch: which process this is, and a gather that keeps gradients.

Under ``torchrun`` every process (rank) holds a slice of the global batch. SimCLR wants all of
the batch's views as negatives, so each rank gathers every rank's embeddings. A plain
``torch.distributed.all_gather`` returns tensors with no autograd history: the loss would see the
other ranks' embeddings as constants, and the gradient that the negatives carry back to the
rank that produced them would be lost. :func:`gather_with_grad` keeps it:

- forward: all-gather the slices, so every rank sees the global batch;
- backward: every rank's loss depends on every slice, so the gradients with respect to the
  gathered tensor are summed over ranks (all-reduce) and each rank keeps the rows of its own
  slice.

With DistributedDataParallel averaging parameter gradients over the W ranks, a loss that is the
mean over each rank's local anchors then gets exactly the gradient of the mean over all anchors
of the global batch (tested with two CPU processes in ``tests/test_distributed.py``).

Without an initialised process group everything here is the identity, so single-process code
needs no branches.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "world_size", "rank", "gather_with_grad"]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        slices = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(slices, x.contiguous())
        return tuple(slices)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> torch.Tensor:
        grad = torch.stack(grads)  # (W, N, ...): this rank's loss w.r.t. every slice
        dist.all_reduce(grad)  # summed over the ranks' losses
        return grad[dist.get_rank()]  # the rows this rank produced


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` along dim 0, in rank order, keeping gradients.

    Every rank must pass a tensor of the same shape.

    Shape:
        x: (N, ...) on each rank; return: (W * N, ...)
    """
    if not is_distributed():
        return x
    return torch.cat(_GatherWithGrad.apply(x))
