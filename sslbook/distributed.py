"""Several processes, one batch: torchrun's process group, DDP, and a gather that keeps gradients.

``torchrun --nproc_per_node=N -m sslbook.run simclr`` starts N processes (ranks), one per GPU.
:func:`init_from_env` joins them into a process group; :func:`sslbook.train.fit` then gives every
rank a disjoint slice of each global batch and runs ``loss_fn`` inside
``DistributedDataParallel`` (:func:`data_parallel_loss`), which averages the parameter gradients
over the ranks in the backward pass.

SimCLR wants all of the batch's views as negatives, so each rank gathers every rank's embeddings.
A plain ``torch.distributed.all_gather`` returns tensors with no autograd history: the loss would
see the other ranks' embeddings as constants, and the gradient that the negatives carry back to
the rank that produced them would be lost. :func:`gather_with_grad` keeps it:

- forward: all-gather the slices, so every rank sees the global batch;
- backward: every rank's loss depends on every slice, so the gradients with respect to the
  gathered tensor are summed over ranks (all-reduce) and each rank keeps the rows of its own
  slice.

With DistributedDataParallel averaging parameter gradients over the W ranks, a loss that is the
mean over each rank's local anchors then gets exactly the gradient of the mean over all anchors
of the global batch (tested with two CPU processes in ``tests/test_distributed.py``).

What is *not* global: buffers are not synchronised during training. BatchNorm normalises with
each rank's slice and keeps its own running statistics unless ``TrainConfig.sync_batchnorm``
turns it into SyncBatchNorm (GPUs only); MoCo's queue holds only its own rank's keys (the
paper's all-gathered queue and its shuffle-BN are not implemented); BYOL and SimSiam need
nothing global. Rank 0's buffers are the ones checkpointed and evaluated.

Without an initialised process group everything here is the identity, so single-process code
needs no branches.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .device import pick_device

__all__ = [
    "is_distributed",
    "world_size",
    "rank",
    "local_rank",
    "is_main_process",
    "barrier",
    "init_from_env",
    "shutdown",
    "all_reduce_mean",
    "data_parallel_loss",
    "gather_with_grad",
]


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's index on its machine (``$LOCAL_RANK``, set by torchrun), i.e. its GPU."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True on rank 0, the one process that prints, checkpoints and writes results."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank gets here (no-op in a single process)."""
    if not is_distributed():
        return
    if dist.get_backend() == "nccl":  # name the GPU, or NCCL guesses one and warns
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def init_from_env(device: str | torch.device | None = None) -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment; return the device.

    Outside torchrun (``$WORLD_SIZE`` unset or 1) this only returns
    :func:`~sslbook.device.pick_device`'s choice. Under torchrun, a CUDA device becomes
    ``cuda:$LOCAL_RANK`` (one GPU per process) and the group uses NCCL; on the CPU it uses gloo.
    """
    device = pick_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", local_rank())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    """Leave the process group, if this process is in one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(x: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` over the ranks (``x`` itself in a single process).

    Shape:
        x: any, the same on every rank; return: like x
    """
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)  # a sum: gloo has no AVG
    return x / dist.get_world_size()


class _LossOf(nn.Module):
    """``loss_fn(model, batch)`` as a module's forward, so that DDP sees the whole loss."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def data_parallel_loss(
    model: nn.Module, loss_fn: Callable, device: torch.device, sync_batchnorm: bool = False
) -> Callable:
    """``batch -> loss_fn(model, batch)``, run through DistributedDataParallel when distributed.

    DDP averages gradients only for a backward that follows a call of *its* forward. Wrapping
    ``loss_fn`` itself, not just ``model``, makes every use of the model inside it (``m(x)`` as
    well as ``m.encoder(x)``) part of that forward, while ``loss_fn`` still receives the plain
    model with its attributes. The model's parameters and state_dict keys stay the model's own
    (no ``module.`` prefix), so checkpoints load in a single process.

    Args:
        sync_batchnorm: under DDP, replace the model's BatchNorm layers in place by SyncBatchNorm
            (statistics over the global batch; same parameters and state_dict keys; CUDA only).
            Ignored in a single process.

    Raises:
        ValueError: ``sync_batchnorm`` under DDP on a device other than CUDA.
    """
    if not is_distributed():
        return functools.partial(loss_fn, model)
    module = _LossOf(model, loss_fn)
    if sync_batchnorm:
        if device.type != "cuda":
            raise ValueError(
                f"sync_batchnorm=True needs one GPU per process (SyncBatchNorm has no CPU "
                f"implementation), got device {device}"
            )
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    # per-rank buffers, see the module docstring; torch 2.14 renamed the argument
    names = inspect.signature(DistributedDataParallel).parameters
    sync = "forward_sync_buffers" if "forward_sync_buffers" in names else "broadcast_buffers"
    return DistributedDataParallel(
        module, device_ids=[device] if device.type == "cuda" else None, **{sync: False}
    )


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
