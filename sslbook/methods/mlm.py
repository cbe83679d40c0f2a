"""Masked language modelling (BERT): hide 15 % of the words, predict them from both sides.

:func:`sslbook.text.bert_mask` picks the targets and corrupts the input; an encoder reads the
corrupted text; the output head runs ONLY at the selected positions, and the cross-entropy is
the mean over those positions. Averaging first over every position and then multiplying by a
0/1 mask (a common tutorial bug) only rescales the loss by the masking rate: the unselected
positions still train the model to copy its input.

:class:`sslbook.article.ArticleMaskedLM` is the seed article's model, kept to show what goes wrong
without that.

[0] BERT, Devlin et al. 2019, arXiv:1810.04805
[1] RoBERTa, Liu et al. 2019, arXiv:1907.11692
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..modules import eval_mode
from ..text import CLS_ID, IGNORE_INDEX, MASK_ID, SEP_ID, SPECIAL_IDS, bert_mask

__all__ = ["MaskedLanguageModel", "mlm_loss", "select_targets", "text_features"]


def select_targets(hidden: torch.Tensor, labels: torch.Tensor):
    """Gather the hidden states of the positions that have a target.

    Shape:
        hidden: (B, T, D); labels: (B, T), ``IGNORE_INDEX`` where there is no target
        return: (M, D) hidden states and (M,) targets, M = number of targets
    """
    if labels.shape != hidden.shape[:2]:
        raise ValueError(
            f"expected labels of shape {tuple(hidden.shape[:2])}, got {tuple(labels.shape)}"
        )
    selected = labels != IGNORE_INDEX  # (B, T)
    if not selected.any():
        raise ValueError("no position has a target (all labels are IGNORE_INDEX)")
    return hidden[selected], labels[selected]


class MaskedLanguageModel(nn.Module):
    """An encoder with BERT's masked-LM head, trained to recover the selected tokens.

    Args:
        encoder: maps (B, T) ids to (B, T, out_dim) states, e.g.
            :class:`~sslbook.models.TextTransformer`; kept for downstream tasks.
        vocab_size: size of the output softmax.
        tie_weights: share the output matrix with ``encoder.token_embedding`` (BERT does).
        mask_prob: fraction of ordinary tokens to predict; 0.15 from [0] §3.1.
        special_ids: ids never selected as targets nor predicted by :meth:`fill_mask`.
        mask_id: the ``[MASK]`` id.

    Shape:
        inputs, labels: (B, T) int64; returns {"loss": scalar, "accuracy": scalar}
    """

    def __init__(
        self,
        encoder: nn.Module,
        vocab_size: int,
        tie_weights: bool = True,
        mask_prob: float = 0.15,
        special_ids=SPECIAL_IDS,
        mask_id: int = MASK_ID,
    ):
        super().__init__()
        dim = encoder.out_dim
        self.encoder, self.vocab_size, self.mask_prob = encoder, vocab_size, mask_prob
        self.special_ids, self.mask_id = tuple(special_ids), mask_id
        # BERT's head (its cls/predictions): dense + GELU + LayerNorm, then the vocabulary
        self.head = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim), nn.Linear(dim, vocab_size)
        )
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        if tie_weights:
            self.head[-1].weight = encoder.token_embedding.weight  # (vocab_size, dim)

    def forward(
        self, inputs: torch.Tensor, labels: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        hidden = self.encoder(inputs, padding_mask)  # (B, T, D)
        hidden, targets = select_targets(hidden, labels)  # (M, D), (M,)
        logits = self.head(hidden).float()  # (M, V): the head runs only where there is a target
        loss = F.cross_entropy(logits, targets)  # mean over the M targets
        accuracy = (logits.detach().argmax(-1) == targets).float().mean()
        return {"loss": loss, "accuracy": accuracy}

    def mask_and_predict(self, ids: torch.Tensor, generator=None) -> dict[str, torch.Tensor]:
        """Mask ``ids`` afresh (dynamic masking, [1] §4.1), then :meth:`forward`.

        Shape:
            ids: (B, T) int64 clean token ids
        """
        inputs, labels = bert_mask(
            ids, self.vocab_size, self.special_ids, self.mask_id, self.mask_prob, generator
        )
        return self(inputs, labels, ids == self.encoder.pad_id)

    def features(self, ids: torch.Tensor, padding_mask=None, pool: str = "mean") -> torch.Tensor:
        """One vector per sequence: the mean state of its real tokens, or the ``[CLS]`` state.

        Shape:
            ids: (B, T); return: (B, D)
        """
        if padding_mask is None:
            padding_mask = ids == self.encoder.pad_id
        hidden = self.encoder(ids, padding_mask)  # (B, T, D)
        if pool == "cls":
            return hidden[:, 0]
        if pool != "mean":
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        real = (~padding_mask).unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * real).sum(1) / real.sum(1).clamp_min(1.0)

    @torch.no_grad()
    def top_k_predictions(self, ids: torch.Tensor, k: int = 5):
        """The ``k`` most probable ordinary tokens at every ``[MASK]`` of ``ids``.

        Shape:
            ids: (B, T); return: probabilities (M, k) and token ids (M, k), M = number of masks
        """
        hidden = self.encoder(ids, ids == self.encoder.pad_id)  # (B, T, D)
        logits = self.head(hidden[ids == self.mask_id]).float()  # (M, V)
        logits[:, list(self.special_ids)] = float("-inf")  # never an answer
        return logits.softmax(-1).topk(k, dim=-1)

    def fill_mask(self, tokenizer, text: str, k: int = 5) -> list[list[tuple[str, float]]]:
        """Fill-in-the-blank: for each ``[MASK]`` in ``text``, the top-k words and probabilities,
        e.g. ``model.fill_mask(tok, "to be, or not to [MASK].")``. Runs in eval mode."""
        ids = torch.tensor([[CLS_ID, *tokenizer.encode(text), SEP_ID]])
        ids = ids.to(next(self.parameters()).device)
        with eval_mode(self):
            probs, top = self.top_k_predictions(ids, k)
        return [
            [(tokenizer.tokens[t], p) for t, p in zip(row_t, row_p, strict=True)]
            for row_t, row_p in zip(top.tolist(), probs.tolist(), strict=True)
        ]


def mlm_loss(model: MaskedLanguageModel, batch: tuple[torch.Tensor, ...]) -> dict:
    """``loss_fn`` for :func:`sslbook.train.fit` with ``data`` = clean (N, T) token ids."""
    return model.mask_and_predict(batch[0])


@torch.no_grad()
def text_features(
    model: MaskedLanguageModel, ids: torch.Tensor, batch_size: int = 256, pool: str = "mean"
) -> torch.Tensor:
    """Frozen :meth:`MaskedLanguageModel.features` of ``ids`` in eval mode, batch by batch.

    Shape:
        ids: (N, T); return: (N, D) float32 on ``ids``' device
    """
    device = next(model.parameters()).device
    with eval_mode(model):
        feats = [
            model.features(ids[i : i + batch_size].to(device), pool=pool).float().to(ids.device)
            for i in range(0, len(ids), batch_size)
        ]
    return torch.cat(feats)
