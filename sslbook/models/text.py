"""Text encoders that map token ids to one hidden state per token: a BERT-style Transformer and
LSTM baselines with the same interface, so that one masked-LM head fits them all.

Every encoder has ``token_embedding`` (an ``nn.Embedding`` of width ``out_dim``, which the
masked-LM head may tie its output weights to), ``out_dim``, ``pad_id`` and
``forward(ids, padding_mask=None, return_attention=False) -> (B, T, out_dim)``. A missing
``padding_mask`` is taken to be ``ids == pad_id``.

[0] BERT, Devlin et al. 2019, arXiv:1810.04805
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..text import padding_mask as _padding_mask  # renamed: the encoders' argument is padding_mask
from .transformer import TransformerBlock

__all__ = ["TextTransformer", "LSTMEncoder", "count_parameters"]


def count_parameters(module: nn.Module, embeddings: bool = True) -> int:
    """Number of trainable parameters; ``embeddings=False`` leaves out token and position
    embeddings (and the weights tied to them), to compare the bodies of models."""
    params = {id(p): p for p in module.parameters() if p.requires_grad}  # tied weights once
    if not embeddings:
        for m in module.modules():
            if isinstance(m, nn.Embedding):
                params.pop(id(m.weight), None)
        for name, p in module.named_parameters():
            if name.endswith("position_embedding"):
                params.pop(id(p), None)
    return sum(p.numel() for p in params.values())


class TextTransformer(nn.Module):
    """Token + learned position embeddings -> LayerNorm -> ``depth`` pre-LN Transformer blocks
    -> LayerNorm.

    The LayerNorm on the summed embeddings is BERT's (its embedding layer ends with one). With
    pre-LN blocks it matters early in training: embeddings initialised at std 0.02 would
    otherwise be drowned in the residual stream by the blocks' outputs, and the masked LM stays
    longer on the plateau where it predicts word frequencies only (on Tiny Shakespeare at the
    smoke scale it leaves that plateau clearly sooner with the norm than without).

    Attention is bidirectional: every real token attends to every other real token, never to
    padding. Sequences longer than ``max_len`` raise ``ValueError`` (truncate them first, e.g.
    with :func:`sslbook.text.encode_batch`).

    Shape:
        ids: (B, T) int64, T <= max_len; padding_mask: (B, T) bool, True at padding
        return: (B, T, dim), and with ``return_attention`` a list of ``depth`` tensors
        (B, heads, T, T) of attention weights
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        max_len: int = 128,
        dropout: float = 0.1,  # 0.1 from BERT §A.2
        mlp_ratio: float = 4.0,  # 4 * dim from BERT §3
        pad_id: int = 0,
    ):
        super().__init__()
        self.out_dim, self.max_len, self.pad_id = dim, max_len, pad_id
        self.token_embedding = nn.Embedding(vocab_size, dim)
        self.position_embedding = nn.Parameter(torch.zeros(1, max_len, dim))
        self.embedding_norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)  # pre-LN leaves the residual stream unnormalised
        self.apply(self._init_weights)
        nn.init.normal_(self.position_embedding, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)  # N(0, 0.02) from BERT's initializer_range
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(
        self,
        ids: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        padding_mask = _padding_mask(ids, padding_mask, self.pad_id)
        T = ids.shape[1]
        if T > self.max_len:
            raise ValueError(f"expected at most max_len={self.max_len} tokens, got T={T}")
        x = self.token_embedding(ids) + self.position_embedding[:, :T]  # (B, T, dim)
        x = self.dropout(self.embedding_norm(x))
        attention = []
        for block in self.blocks:
            if return_attention:
                x, weights = block(x, padding_mask, return_weights=True)
                attention.append(weights)  # (B, heads, T, T)
            else:
                x = block(x, padding_mask)
        x = self.norm(x)  # (B, T, dim)
        return (x, attention) if return_attention else x


class LSTMEncoder(nn.Module):
    """Token embedding -> ``layers``-layer LSTM -> linear map to ``dim``: the recurrent baseline.

    ``bidirectional=False`` reads left to right, so the state at position t has seen tokens
    0..t only; ``True`` concatenates a right-to-left pass (ELMo-style, each direction still blind
    to the other side of t until the final projection). Padding must be at the end of each
    sequence (it is packed away, so it never reaches a real position). No attention to return.

    Shape:
        ids: (B, T) int64; padding_mask: (B, T) bool, True at padding; return: (B, T, dim)
    """

    def __init__(
        self,
        vocab_size: int,
        dim: int = 128,
        hidden: int = 256,
        layers: int = 2,
        bidirectional: bool = True,
        dropout: float = 0.1,
        pad_id: int = 0,
    ):
        super().__init__()
        self.out_dim, self.pad_id = dim, pad_id
        self.token_embedding = nn.Embedding(vocab_size, dim)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.lstm = nn.LSTM(
            dim,
            hidden,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.proj = nn.Linear(hidden * (2 if bidirectional else 1), dim)

    def forward(
        self,
        ids: torch.Tensor,
        padding_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> torch.Tensor:
        if return_attention:
            raise ValueError("an LSTM has no attention weights to return")
        padding_mask = _padding_mask(ids, padding_mask, self.pad_id)
        lengths = (~padding_mask).sum(1)  # (B,)
        positions = torch.arange(ids.shape[1], device=ids.device)
        if not torch.equal(padding_mask, positions >= lengths[:, None]):
            raise ValueError("LSTMEncoder expects padding at the end of each sequence only")
        if (lengths == 0).any():
            raise ValueError("every sequence needs at least one real token")
        x = self.token_embedding(ids)  # (B, T, dim)
        if not padding_mask.any():  # nothing to pack away
            return self.proj(self.lstm(x)[0])  # (B, T, dim)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return self.proj(out)  # (B, T, dim)
