"""MAE: hide 75 % of an image's patches, encode the rest, reconstruct the pixels of the hidden ones.

Two asymmetries make masked autoencoders work and fast [0]:

1. a high mask ratio (75 %) leaves a task that cannot be solved by copying neighbouring pixels;
2. the encoder sees only the visible patches (no mask tokens), and a light decoder fills in the
   mask tokens afterwards, so the expensive encoder runs on a quarter of the tokens.

The steps are as in the official models_mae.py: :func:`~sslbook.masking.random_masking` (shared
with the book's other masks), :meth:`MAE.forward_encoder`, :meth:`MAE.forward_decoder`,
:meth:`MAE.forward_loss`.

[0] MAE, He et al. 2022, arXiv:2111.06377
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..augment import SimCLRAugment
from ..data import to_float
from ..masking import check_mask_ratio, mask_patches, random_masking
from ..models.transformer import TransformerBlock
from ..models.vit import ViT, patchify, sincos_pos_embed_2d, unpatchify
from ..modules import eval_mode

__all__ = ["MAE"]


class MAE(nn.Module):
    """Masked autoencoder: a ViT encoder on the visible patches, a light Transformer decoder.

    Args:
        encoder: the :class:`~sslbook.models.vit.ViT`, kept for downstream tasks.
        decoder_dim, decoder_depth, decoder_heads: the decoder's width, blocks and heads. [0] uses
            512, 8, 16 behind ViT-L (width 1024) and finds one block enough for fine-tuning
            (Table 1a). Default: half the encoder's width (64 behind the CPU ViT, 96 behind
            ViT-Tiny), 2 blocks, 4 heads: the decoder runs on all L tokens, so its width, not the
            encoder's, sets the cost of a step once the encoder sees only a quarter of them.
        mask_ratio: fraction of patches removed; 0.75 from [0] §4.1 (Fig. 5).
        norm_pix_loss: regress every patch's pixels normalised by the patch's own mean and std,
            which [0] Table 1c finds better than raw pixels.
        augment: makes one view per image; default MAE's recipe, random resized crop with scale
            (0.2, 1) and a horizontal flip, no colour (main_pretrain.py).

    Shape:
        images: (B, 3, H, W) uint8; returns {"loss": scalar}
    """

    def __init__(
        self,
        encoder: ViT,
        decoder_dim: int | None = None,
        decoder_depth: int = 2,
        decoder_heads: int = 4,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        augment=None,
    ):
        super().__init__()
        check_mask_ratio(mask_ratio)
        self.encoder = encoder
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.patch_size = p = encoder.patch_size
        decoder_dim = decoder_dim or encoder.out_dim // 2
        self.decoder_embed = nn.Linear(encoder.out_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))  # one shared learned token
        pos = sincos_pos_embed_2d(decoder_dim, encoder.grid_size, cls_token=True)[None]
        self.register_buffer("decoder_pos_embed", pos, persistent=False)  # (1, 1 + L, Dd)
        self.decoder_blocks = nn.ModuleList(
            TransformerBlock(decoder_dim, decoder_heads) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, p * p * 3)  # pixels of one patch
        self.augment = augment or SimCLRAugment.crop_only(size=encoder.image_size, scale=(0.2, 1.0))
        nn.init.normal_(self.mask_token, std=0.02)
        for m in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks.modules()]:
            if isinstance(m, nn.Linear):  # MAE's initialisation, as the encoder's
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embed all patches, drop the masked ones, encode the visible ones only.

        Shape:
            imgs: [N, 3, H, W] float in [0, 1]
            return: latent [N, 1 + L_keep, D] ([CLS] first), mask [N, L], ids_restore [N, L]
        """
        x = self.encoder.embed(imgs)  # [N, L, D], position embeddings added before masking
        x, mask, ids_restore = random_masking(x, mask_ratio, generator)  # [N, L_keep, D]
        return self.encoder.forward_blocks(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Append mask tokens, unshuffle to image order, decode every patch's pixels.

        Shape:
            latent: [N, 1 + L_keep, D]; ids_restore: [N, L]; return: pred [N, L, p*p*3]
        """
        x = self.decoder_embed(latent)  # [N, 1 + L_keep, Dd]
        n, length, dd = len(x), ids_restore.shape[1], x.shape[-1]
        mask_tokens = self.mask_token.expand(n, length + 1 - x.shape[1], -1)  # [N, L - L_keep, Dd]
        x_ = torch.cat([x[:, 1:], mask_tokens], dim=1)  # [N, L, Dd] in shuffled order
        x_ = x_.gather(1, ids_restore[..., None].expand(-1, -1, dd))  # [N, L, Dd] image order
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed  # [N, 1 + L, Dd]
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # [N, L, p*p*3], [CLS] dropped

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """What the decoder regresses: the patches' pixels, per-patch normalised if norm_pix_loss.

        Pixels in [0, 1]; the official code's pixels are mean/std-normalised first, a per-channel
        affine change that the per-patch normalisation nearly undoes.

        Shape:
            imgs: [N, 3, H, W]; return: [N, L, p*p*3]
        """
        target = patchify(imgs, self.patch_size)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as the official code
            target = (target - mean) / (var + 1e-6) ** 0.5  # 1e-6 from models_mae.py
        return target

    def forward_loss(
        self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only.

        Shape:
            imgs: [N, 3, H, W]; pred: [N, L, p*p*3]; mask: [N, L], 0 is keep, 1 is remove
        """
        target = self.target(imgs)  # [N, L, p*p*3]
        if pred.shape != target.shape or mask.shape != target.shape[:2]:
            raise ValueError(
                f"expected pred {tuple(target.shape)} and mask {tuple(target.shape[:2])}, "
                f"got {tuple(pred.shape)} and {tuple(mask.shape)}"
            )
        loss = (pred - target).pow(2).mean(dim=-1)  # [N, L], mean loss per patch
        return (loss * mask).sum() / mask.sum()  # visible patches do not count

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        imgs = self.augment(images)  # [N, 3, H, W] float in [0, 1]
        latent, mask, ids_restore = self.forward_encoder(imgs, self.mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)  # [N, L, p*p*3]
        return {"loss": self.forward_loss(imgs, pred, mask)}

    @torch.no_grad()
    def reconstruct(
        self,
        images: torch.Tensor,
        mask_ratio: float | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Everything a figure of original / masked / reconstructed images needs, no augmentation.

        With norm_pix_loss the model predicts each patch's normalised pixels only; to show them
        they are un-normalised with the mean and std of the true patch, as MAE's visualisation
        demo does: the colour and brightness of a removed patch are borrowed, its pattern is
        predicted.

        Returns a dict of float tensors in [0, 1] unless noted:
            "images" [N, 3, H, W]; "masked" [N, 3, H, W], removed patches grey;
            "prediction" [N, 3, H, W], the decoder's output at every patch;
            "reconstruction" [N, 3, H, W], the prediction with the visible patches pasted in;
            "mask" [N, L], 1 is remove; "loss", a scalar (not clamped)
        """
        imgs = to_float(images)
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        with eval_mode(self):  # no dropout in the figure
            latent, mask, ids_restore = self.forward_encoder(imgs, ratio, generator)
            pred = self.forward_decoder(latent, ids_restore)  # [N, L, p*p*3]
        loss = self.forward_loss(imgs, pred, mask)
        patches = patchify(imgs, self.patch_size)  # [N, L, p*p*3]
        if self.norm_pix_loss:  # borrow the true patch's statistics (see above)
            std = (patches.var(dim=-1, keepdim=True) + 1e-6) ** 0.5
            pred = pred * std + patches.mean(dim=-1, keepdim=True)
        pred = pred.clamp(0, 1)
        removed = mask.bool()
        pasted = torch.where(removed[..., None], pred, patches)  # visible patches from the input
        return {
            "images": imgs,
            "masked": mask_patches(imgs, removed, self.patch_size),
            "prediction": unpatchify(pred, self.patch_size),
            "reconstruction": unpatchify(pasted, self.patch_size),
            "mask": mask,
            "loss": loss,
        }
