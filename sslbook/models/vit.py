"""The Vision Transformer (ViT) for small images, with MAE's fixed 2-D sin-cos position embeddings.

An image is cut into non-overlapping p x p patches, each patch is embedded linearly into a token,
a learned class token [CLS] is prepended, and a stack of Transformer blocks mixes the tokens
(Dosovitskiy et al., 2021, arXiv:2010.11929). The two halves, :meth:`ViT.embed` and
:meth:`ViT.forward_blocks`, are separate so that the masked autoencoder
(:mod:`sslbook.methods.mae`) can drop tokens in between: its encoder sees the visible 25 % and
nothing else, which is where its speed comes from.

Patch order everywhere is row-major over the (H/p, W/p) grid, the order of :func:`patchify`,
of the patch-embedding convolution's flattened output and of :func:`sslbook.masking.mask_patches`.

[0] MAE, He et al. 2022, arXiv:2111.06377 (models_mae.py, util/pos_embed.py)
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .cnn import Normalize
from .transformer import TransformerBlock

__all__ = ["ViT", "patchify", "unpatchify", "sincos_pos_embed_2d", "vit_tiny", "vit_mini"]


def patchify(imgs: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches, row-major, each patch ordered (row, column, channel).

    Shape:
        imgs: [N, C, H, W] with H and W divisible by ``patch_size``
        return: [N, L, p*p*C] with L = (H/p) * (W/p)
    """
    n, c, h, w = imgs.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"expected H and W divisible by patch_size={p}, got {tuple(imgs.shape)}")
    x = imgs.reshape(n, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)  # (N, H/p, W/p, p, p, C)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(x: torch.Tensor, patch_size: int, channels: int = 3) -> torch.Tensor:
    """The inverse of :func:`patchify` for square images.

    Shape:
        x: [N, L, p*p*C] with L a square number
        return: [N, C, H, W] with H = W = p * sqrt(L)
    """
    n, length, d = x.shape
    p = patch_size
    side = round(length**0.5)
    if side * side != length or d != p * p * channels:
        raise ValueError(f"expected [N, L, {p * p * channels}] with L square, got {tuple(x.shape)}")
    x = x.reshape(n, side, side, p, p, channels)
    x = torch.einsum("nhwpqc->nchpwq", x)  # (N, C, H/p, p, W/p, p)
    return x.reshape(n, channels, side * p, side * p)


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """Sin-cos embedding of positions: [sin(pos w_k), cos(pos w_k)], w_k = 10000^(-2k / dim).

    Shape:
        pos: (M,) float64; return: (M, dim)
    """
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))  # (D/2,)
    angles = pos[:, None] * omega[None, :]  # (M, D/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_pos_embed_2d(dim: int, grid_size: int, cls_token: bool = False) -> torch.Tensor:
    """MAE's fixed 2-D position embeddings: half the channels encode the column, half the row.

    A port of ``get_2d_sincos_pos_embed`` from MAE's util/pos_embed.py, including its naming
    quirk: the first half encodes the column index, the second half the row index. With
    ``cls_token`` an all-zero row is prepended for the class token.

    Shape:
        return: (grid_size**2, dim), or (1 + grid_size**2, dim) with ``cls_token``; float32
    """
    if dim % 4 != 0:
        raise ValueError(f"expected dim divisible by 4 for 2-D sin-cos embeddings, got {dim}")
    rows, cols = torch.meshgrid(
        torch.arange(grid_size, dtype=torch.float64),
        torch.arange(grid_size, dtype=torch.float64),
        indexing="ij",
    )  # (G, G) each; patch l = row * G + col
    emb = torch.cat([_sincos_1d(dim // 2, cols.flatten()), _sincos_1d(dim // 2, rows.flatten())], 1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb])
    return emb.float()


class ViT(nn.Module):
    """ViT encoder: patch embedding + fixed sin-cos positions, [CLS], pre-LN blocks, final LN.

    The feature of an image is the [CLS] token after the final LayerNorm (``pool="cls"``), the
    feature MAE's linear probing uses (main_linprobe.py: ``global_pool=False``); MAE's
    fine-tuning averages the patch tokens instead (``pool="mean"``), which [0] §A.1 reports
    works similarly well. Images are normalised with the CIFAR-10 statistics as the CNN backbones.

    Args:
        image_size: side of the square input images in pixels.
        patch_size: side p of the square patches; 4 on CIFAR gives an 8 x 8 grid of 64 tokens.
        dim: token width (192 for ViT-Tiny).
        depth: number of Transformer blocks (12 for ViT-Tiny).
        heads: attention heads (3 for ViT-Tiny).
        mlp_ratio: MLP width / dim (4 in ViT and MAE).
        dropout: dropout in attention and MLP (0 in MAE's pre-training).
        pool: "cls" or "mean", the feature returned by :meth:`forward`.

    Shape:
        x: (B, 3, H, W) float in [0, 1]; forward returns (B, dim)
    """

    def __init__(
        self,
        image_size: int = 32,
        patch_size: int = 4,
        dim: int = 192,
        depth: int = 12,
        heads: int = 3,
        mlp_ratio: float = 4.0,
        dropout: float = 0.0,
        pool: str = "cls",
    ):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(
                f"expected image_size divisible by patch_size, got {image_size}, {patch_size}"
            )
        if pool not in ("cls", "mean"):
            raise ValueError(f"expected pool 'cls' or 'mean', got {pool!r}")
        self.image_size, self.patch_size, self.pool = image_size, patch_size, pool
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size**2  # L
        self.normalize = Normalize()
        # A p x p convolution with stride p = one linear map applied to every patch.
        self.patch_embed = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        pos = sincos_pos_embed_2d(dim, self.grid_size, cls_token=True)[None]  # (1, 1 + L, dim)
        self.register_buffer("pos_embed", pos, persistent=False)  # fixed, not learned
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.out_dim = dim
        self._init_weights()

    def _init_weights(self) -> None:
        """MAE's initialisation: xavier-uniform linear maps (the patch embedding seen as one),
        N(0, 0.02) class token, LayerNorm at identity."""
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens with their position embeddings added, before any masking.

        Shape:
            x: (B, 3, H, W) float in [0, 1]; return: (B, L, dim)
        """
        x = self.patch_embed(self.normalize(x))  # (B, dim, H/p, W/p)
        x = x.flatten(2).transpose(1, 2)  # (B, L, dim), row-major
        return x + self.pos_embed[:, 1:]

    def forward_blocks(self, tokens: torch.Tensor) -> torch.Tensor:
        """Prepend [CLS] to (a subset of) embedded patch tokens, run the blocks, final LN.

        Shape:
            tokens: (B, T, dim), T <= L; return: (B, 1 + T, dim), [CLS] first
        """
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(len(tokens), -1, -1)  # (B, 1, dim)
        x = torch.cat([cls, tokens], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.forward_blocks(self.embed(x))  # (B, 1 + L, dim)
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)  # (B, dim)


def vit_tiny(patch_size: int = 4, **kwargs) -> ViT:
    """ViT-Tiny (DeiT, Touvron et al. 2021, arXiv:2012.12877): dim 192, depth 12, 3 heads; 5.3M."""
    return ViT(patch_size=patch_size, dim=192, depth=12, heads=3, **kwargs)


def vit_mini(patch_size: int = 4, **kwargs) -> ViT:
    """A ViT small enough to train on a CPU (our choice): dim 128, depth 4, 4 heads; 0.8M."""
    return ViT(patch_size=patch_size, dim=128, depth=4, heads=4, **kwargs)
