"""The pre-LN Transformer block shared by the vision (ViT, MAE) and text (BERT-style) encoders.

Pre-LN (Xiong et al., 2020, arXiv:2002.04745): ``x + Attn(LN(x))`` then ``x + MLP(LN(x))``,
which trains stably without a learning-rate warmup as long as post-LN needs. Attention uses
PyTorch's fused ``scaled_dot_product_attention`` unless the attention weights are asked for
(to plot attention maps), in which case it computes them explicitly.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["Attention", "TransformerBlock"]


class Attention(nn.Module):
    """Multi-head self-attention with an optional key padding mask.

    Shape:
        x: (B, T, C); padding_mask: (B, T) bool, True at padding positions (never attended to)
        return: (B, T, C), and the weights (B, heads, T, T) when ``return_weights``
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"expected dim divisible by heads, got dim={dim}, heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        # q, k, v: (B, heads, T, C / heads)
        allowed = None
        if padding_mask is not None:
            allowed = ~padding_mask[:, None, None, :]  # (B, 1, 1, T): keys that may be attended
        p = self.dropout if self.training else 0.0
        if return_weights:
            scores = (q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5  # (B, heads, T, T)
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            weights = F.dropout(scores.softmax(dim=-1), p)
            out = weights @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        out = self.proj(out.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        return (out, weights) if return_weights else out


class TransformerBlock(nn.Module):
    """``x + Attn(LN(x))``, then ``x + MLP(LN(x))`` with a GELU MLP of width ``mlp_ratio * dim``.

    Shape:
        x: (B, T, C); padding_mask: (B, T) bool or None; return: (B, T, C)
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        return_weights: bool = False,
    ):
        if return_weights:
            attended, weights = self.attn(self.norm1(x), padding_mask, return_weights=True)
            x = x + attended
            return x + self.mlp(self.norm2(x)), weights
        x = x + self.attn(self.norm1(x), padding_mask)
        return x + self.mlp(self.norm2(x))
