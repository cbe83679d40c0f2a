"""Small tools that act on whole networks: switch to eval (or train) mode for a while, copy a
network as a frozen target, move a target towards its online network by an exponential moving
average.

The momentum encoders of MoCo ([0], Eq. 2) and BYOL ([1], Eq. 1) are both
``frozen_copy(online)`` followed, after every optimizer step, by ``ema_update(online, target, m)``.

[0] MoCo, He et al. 2020, arXiv:1911.05722
[1] BYOL, Grill et al. 2020, arXiv:2006.07733
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["ema_update", "eval_mode", "frozen_copy", "train_mode"]


@contextlib.contextmanager
def _in_mode(module: nn.Module, training: bool) -> Iterator[nn.Module]:
    modes = [(m, m.training) for m in module.modules()]
    module.train(training)
    try:
        yield module
    finally:
        for m, was_training in modes:
            m.training = was_training


def eval_mode(module: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Within the block ``module`` is in eval mode; afterwards every submodule is back in the
    mode it had, also when the block raises (a submodule may have been in another mode than
    its parent, e.g. a frozen BN layer)."""
    return _in_mode(module, False)


def train_mode(module: nn.Module) -> contextlib.AbstractContextManager[nn.Module]:
    """Within the block ``module`` is in train mode; afterwards every submodule is back in the
    mode it had, also when the block raises."""
    return _in_mode(module, True)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` whose parameters take no gradient: a momentum target starts as
    an exact copy of its online network and then learns only through :func:`ema_update`."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, momentum: float | torch.Tensor) -> None:
    """``target <- m * target + (1 - m) * online`` for every parameter, in place.

    Buffers (BatchNorm's running statistics) are not averaged: the target keeps its own, updated
    by its own forward passes, as in the official MoCo and BYOL code.

    Args:
        online, target: networks of the same architecture (``target`` often a
            :func:`frozen_copy` of ``online``).
        momentum: m in [0, 1], a number or a 0-d tensor (read on the device, no host sync);
            1 keeps the target, 0 copies the online network.
    """
    online_params, target_params = list(online.parameters()), list(target.parameters())
    if len(online_params) != len(target_params):
        raise ValueError(
            f"expected networks with the same parameters, got {len(online_params)} online and "
            f"{len(target_params)} target parameter tensors"
        )
    if not torch.is_tensor(momentum) and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"expected a momentum in [0, 1], got {momentum}")
    for theta, xi in zip(online_params, target_params, strict=True):
        if theta.shape != xi.shape:
            raise ValueError(
                f"expected parameters of equal shape, got {tuple(theta.shape)} online and "
                f"{tuple(xi.shape)} target"
            )
        xi.mul_(momentum).add_((1 - momentum) * theta)  # ξ ← m ξ + (1 − m) θ
