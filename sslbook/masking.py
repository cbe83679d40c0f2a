"""Random masks for masked prediction: which patches of an image, or tokens of a text, to hide.

The sampling is MAE's (He et al., 2022, arXiv:2111.06377, §3): rank positions by uniform noise
and hide the top fraction, so that every sample hides exactly the same number of positions and
each subset of that size is equally likely.
"""

from __future__ import annotations

import torch

__all__ = ["random_mask", "mask_patches"]


def random_mask(
    n: int, length: int, ratio: float, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """Per-sample random masks hiding ``round(length * ratio)`` positions each.

    Shape:
        return: (n, length) bool, True where the position is hidden
    """
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"expected a mask ratio in (0, 1), got {ratio}")
    num_hidden = round(length * ratio)
    noise = torch.rand(n, length, generator=generator, device=device)  # (n, L)
    rank = noise.argsort(dim=1).argsort(dim=1)  # rank of each position's noise
    return rank < num_hidden


def mask_patches(
    images: torch.Tensor, mask: torch.Tensor, patch_size: int, fill: float = 0.5
) -> torch.Tensor:
    """Replace the hidden patches of ``images`` by a constant grey, for display.

    Shape:
        images: (N, C, H, W) float in [0, 1]; mask: (N, L) bool with L = (H/p) * (W/p)
        return: (N, C, H, W)
    """
    n, _, h, w = images.shape
    gh, gw = h // patch_size, w // patch_size
    if mask.shape != (n, gh * gw):
        raise ValueError(f"expected a mask of shape ({n}, {gh * gw}), got {tuple(mask.shape)}")
    pixel_mask = mask.view(n, 1, gh, gw).repeat_interleave(patch_size, 2)
    pixel_mask = pixel_mask.repeat_interleave(patch_size, 3)  # (N, 1, H, W)
    return torch.where(pixel_mask, torch.full_like(images, fill), images)
