"""Random masks for masked prediction: which patches of an image, or tokens of a text, to hide.

One sampler serves the whole book, MAE's ``random_masking`` (He et al., 2022, arXiv:2111.06377,
§3; models_mae.py): sort per-sample uniform noise and keep the tokens with the smallest noise,
so that every sample keeps exactly the same number of tokens and each subset of that size is
equally likely. The masked autoencoder (:mod:`sslbook.methods.mae`) encodes the kept tokens; a
figure that only needs to know which positions are hidden reads the mask.
"""

from __future__ import annotations

import torch

__all__ = ["check_mask_ratio", "random_masking", "mask_patches"]


def check_mask_ratio(mask_ratio: float) -> None:
    """Raise a ValueError unless 0 < mask_ratio < 1 (all or no tokens leave nothing to learn)."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"expected a mask ratio in (0, 1), got {mask_ratio}")


def random_masking(
    x: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Perform per-sample random masking by per-sample shuffling, as MAE's models_mae.py.

    Every sample keeps ``int(L * (1 - mask_ratio))`` tokens (the reference's rounding: L = 9 at
    0.5 keeps 4), those whose noise is smallest. The noise is drawn on the generator's device
    and moved to ``x``'s, so that a CPU generator gives the same mask on every device.

    Shape:
        x: [N, L, D] tokens (D may be 0 when only the mask is wanted)
        return: x_kept [N, len_keep, D], in the shuffled order;
            mask [N, L] float, 0 is keep, 1 is remove, in the original order;
            ids_restore [N, L], gathering [x_kept, removed tokens] with it restores the order
    """
    check_mask_ratio(mask_ratio)
    N, L, D = x.shape  # batch, length, dim
    len_keep = int(L * (1 - mask_ratio))

    device = x.device if generator is None else generator.device
    noise = torch.rand(N, L, generator=generator, device=device).to(x.device)  # noise in [0, 1]

    # sort noise for each sample
    ids_shuffle = torch.argsort(noise, dim=1)  # ascend: small is keep, large is remove
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # the inverse permutation

    # keep the first subset
    ids_keep = ids_shuffle[:, :len_keep]  # [N, len_keep]
    x_kept = torch.gather(x, dim=1, index=ids_keep.unsqueeze(-1).expand(-1, -1, D))

    # generate the binary mask: 0 is keep, 1 is remove
    mask = torch.ones(N, L, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, dim=1, index=ids_restore)  # unshuffle to the original order
    return x_kept, mask, ids_restore


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
