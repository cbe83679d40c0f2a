"""Text for masked language modelling: a word tokenizer, Tiny Shakespeare prep, BERT masking.

The tokenizer is word-level and lowercase. A masked token is then a whole word, so filling it in
needs the meaning of its context rather than the spelling of neighbouring pieces (the reason
BERT later switched to whole-word masking), and the fill-in-the-blank demo reads as words. Tiny
Shakespeare has only ~12k lowercase word types, so keeping the words seen at least twice in the
training split (6.4k; a word seen once can hardly be learnt) needs no BPE training, and the price
is visible: about 6 % of the validation tokens (names of new characters, rare archaic forms)
become ``[UNK]``. Lowercasing, because every verse line starts with a capital: keeping case
would give many words a second, line-initial entry and push more rare words out.

Normalisation: text is lowercased and split into words (runs of letters, with inner
apostrophes kept: ``know't``, ``we'll``) and single-character punctuation tokens; whitespace,
newlines included, only separates tokens. :func:`normalize` writes the tokens back with one space
between them and none before ``, . ; : ! ?``, and ``decode(encode(t)) == normalize(t)`` for text
whose words are all in the vocabulary. The literal strings ``[PAD] [CLS] [SEP] [MASK] [UNK]`` are
read as the special tokens, so ``"hear me [MASK]."`` can be typed for the fill-in demo.

[0] BERT, Devlin et al. 2019, arXiv:1810.04805
[1] RoBERTa, Liu et al. 2019, arXiv:1907.11692
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "SPECIAL_TOKENS", "SPECIAL_IDS", "PAD_ID", "CLS_ID", "SEP_ID", "MASK_ID", "UNK_ID",
    "IGNORE_INDEX", "normalize", "WordTokenizer", "split_corpus", "make_sequences", "encode_batch",
    "padding_mask", "speaker_lines", "bert_mask",
]  # fmt: skip

SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]")
PAD_ID, CLS_ID, SEP_ID, MASK_ID, UNK_ID = range(len(SPECIAL_TOKENS))
SPECIAL_IDS = tuple(range(len(SPECIAL_TOKENS)))  # never targets; [UNK] is no word to predict
IGNORE_INDEX = -100  # label of the positions without a target (cross_entropy's ignore_index)

_TOKEN = re.compile(r"\[(?:PAD|CLS|SEP|MASK|UNK)\]|[^\W\d_]+(?:'[^\W\d_]+)*|\S")
_NO_SPACE_BEFORE = set(",.;:!?")


def _pieces(text: str) -> list[str]:
    return [p if p in SPECIAL_TOKENS else p.lower() for p in _TOKEN.findall(text)]


def _join(pieces: list[str]) -> str:
    return "".join(p if i == 0 or p in _NO_SPACE_BEFORE else " " + p for i, p in enumerate(pieces))


def normalize(text: str) -> str:
    """The canonical form of ``text`` that an in-vocabulary round trip reproduces exactly."""
    return _join(_pieces(text))


@dataclass
class WordTokenizer:
    """Word-level tokenizer: the specials (ids 0-4), then words by falling training frequency."""

    tokens: list[str]  # id -> token; SPECIAL_TOKENS first, in order
    index: dict[str, int] = field(init=False, repr=False)  # token -> id

    def __post_init__(self):
        if tuple(self.tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"expected the vocabulary to start with {SPECIAL_TOKENS}")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_corpus(cls, text: str, max_vocab: int = 8192, min_count: int = 2) -> WordTokenizer:
        """The words of ``text`` (pass the TRAINING split only) seen ``min_count`` times or more,
        at most the ``max_vocab - 5`` most frequent (ties broken alphabetically)."""
        counts = Counter(p for p in _pieces(text) if p not in SPECIAL_TOKENS)
        if not counts or max_vocab <= len(SPECIAL_TOKENS):
            raise ValueError(f"expected words in text and max_vocab > 5, got {max_vocab=}")
        ranked = sorted(
            (w for w in counts if counts[w] >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(list(SPECIAL_TOKENS) + ranked[: max_vocab - len(SPECIAL_TOKENS)])

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def special_ids(self) -> tuple[int, ...]:
        return SPECIAL_IDS

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no ``[CLS]``/``[SEP]`` added), unknown words -> ``[UNK]``."""
        ids = [self.index.get(p, UNK_ID) for p in _pieces(text)]
        if not ids:
            raise ValueError(f"expected text with at least one token, got {text[:40]!r}")
        return ids

    def decode(self, ids, skip_special: bool = False) -> str:
        """The normalised text of ``ids`` (a list or a 1-D tensor)."""
        ids = ids.tolist() if torch.is_tensor(ids) else list(ids)
        return _join([self.tokens[i] for i in ids if not (skip_special and i in self.special_ids)])

    def unknown_rate(self, text: str) -> float:
        """Fraction of the tokens of ``text`` that map to ``[UNK]``."""
        ids = self.encode(text)
        return sum(i == UNK_ID for i in ids) / len(ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"tokens": self.tokens}), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["tokens"])


def split_corpus(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """Contiguous split: the first ~90 % for training, the rest for validation.

    The cut moves forward from ``len(text) * (1 - val_fraction)`` to the next blank line, so that
    no speech is shared by both parts; ``train + val == text``.
    """
    if not text or not 0.0 < val_fraction < 1.0:
        raise ValueError(f"expected a text and val_fraction in (0, 1), got {val_fraction}")
    cut = int(len(text) * (1.0 - val_fraction))
    blank = text.find("\n\n", cut)
    cut = blank + 1 if blank != -1 else cut  # the blank line starts the validation part
    return text[:cut], text[cut:]


def make_sequences(ids, seq_len: int, drop_last: bool = False) -> torch.Tensor:
    """Cut a token stream into consecutive windows of ``seq_len - 2`` tokens, each framed by
    ``[CLS] ... [SEP]``; the last, shorter window is padded with ``[PAD]`` (or dropped).

    Shape:
        ids: (L,) list or tensor; return: (N, seq_len) int64, N = ceil(L / (seq_len - 2))
    """
    ids = torch.as_tensor(ids, dtype=torch.int64)
    if ids.ndim != 1 or len(ids) == 0 or seq_len < 3:
        raise ValueError(f"expected a non-empty (L,) stream and seq_len >= 3, got {ids.shape}")
    body = seq_len - 2
    n = len(ids) // body if drop_last else -(-len(ids) // body)
    if n == 0:
        raise ValueError(f"{len(ids)} tokens make no full window of {body}; use drop_last=False")
    out = torch.full((n, seq_len), PAD_ID, dtype=torch.int64)
    for i in range(n):
        window = ids[i * body : (i + 1) * body]
        out[i, 0] = CLS_ID
        out[i, 1 : len(window) + 1] = window
        out[i, len(window) + 1] = SEP_ID
    return out


def encode_batch(tokenizer: WordTokenizer, texts: list[str], max_len: int) -> torch.Tensor:
    """Encode each text as ``[CLS] tokens [SEP] [PAD]...`` of length ``max_len``; a longer
    text is truncated to its first ``max_len - 2`` tokens (``[SEP]`` is always kept).

    Shape:
        return: (len(texts), max_len) int64
    """
    if max_len < 3:
        raise ValueError(f"expected max_len >= 3, got {max_len}")
    rows = [[CLS_ID, *tokenizer.encode(t)[: max_len - 2], SEP_ID] for t in texts]
    out = torch.full((len(rows), max_len), PAD_ID, dtype=torch.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row)
    return out


def padding_mask(
    ids: torch.Tensor, mask: torch.Tensor | None = None, pad_id: int = PAD_ID
) -> torch.Tensor:
    """True at padding, as :class:`~sslbook.models.TransformerBlock` wants it: ``ids == pad_id``,
    or ``mask`` itself once checked against ``ids`` (the text encoders take either).

    Shape:
        ids: (B, T) integer; mask: (B, T) bool or None; return: (B, T) bool

    Raises:
        ValueError: ``ids`` is not a (B, T) integer tensor, or ``mask`` is not bool of its shape.
    """
    if ids.ndim != 2:
        raise ValueError(f"expected token ids of shape (B, T), got {tuple(ids.shape)}")
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"expected integer token ids, got {ids.dtype}")
    if mask is None:
        return ids == pad_id
    if mask.shape != ids.shape or mask.dtype != torch.bool:
        raise ValueError(
            f"expected a bool padding_mask of shape {tuple(ids.shape)}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    return mask


def speaker_lines(
    text: str, top_k: int = 8, min_count: int = 1, unit: str = "line"
) -> list[tuple[str, str]]:
    """``(speaker, utterance)`` pairs of the ``top_k`` speakers with the most utterances.

    The corpus is a series of speeches ``NAME:\\nline\\nline\\n\\n``; the ``NAME:`` header is the
    label and never part of the utterance. ``unit="line"`` gives one pair per line of verse,
    ``"speech"`` one per speech (its lines joined by spaces). Speakers with fewer than
    ``min_count`` utterances are left out before taking the top ``top_k``. Corpus order is kept.
    """
    if unit not in ("line", "speech"):
        raise ValueError(f"unit must be 'line' or 'speech', got {unit!r}")
    pairs = []
    for block in re.split(r"\n\s*\n", text):
        header, *body = block.strip().split("\n")
        if not body or not header.endswith(":"):
            continue  # not a speech
        lines = [line.strip() for line in body if line.strip()]
        utterances = lines if unit == "line" else [" ".join(lines)]
        pairs += [(header[:-1], u) for u in utterances]
    counts = Counter(s for s, _ in pairs)
    keep = sorted((s for s in counts if counts[s] >= min_count), key=lambda s: (-counts[s], s))
    keep = set(keep[:top_k])  # ties broken alphabetically
    return [(s, u) for s, u in pairs if s in keep]


def bert_mask(
    ids: torch.Tensor,
    vocab_size: int,
    special_ids,
    mask_id: int = MASK_ID,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption ([0] §3.1): pick 15 % of each sequence's ordinary tokens as targets;
    of those, 80 % become ``[MASK]``, 10 % a random ordinary token, 10 % stay unchanged.

    Each sequence gets exactly ``k`` targets among its ``n`` non-special tokens, at least one,
    with ``k = floor(mask_prob * n + u)``, ``u ~ U(0, 1)``: a random rounding whose mean is
    exactly ``mask_prob * n``. BERT's ``create_pretraining_data.py`` instead takes
    ``round(mask_prob * len(tokens))`` with ``[CLS]`` and ``[SEP]`` counted in the length,
    harmless for its 128- and 512-token sequences but biased for short ones (a 32-token window
    of 30 words gets round(4.8) = 5 targets, 16.7 % of its words). Special and padding tokens
    are never selected, and random replacements are never special (one may equal the original,
    as in BERT). Calling this on every batch gives RoBERTa's dynamic masking ([1] §4.1).
    ``generator`` must live on ``ids``' device.

    Shape:
        ids: (B, T) or (T,) int64; return: inputs and labels of ids' shape, labels =
        ``IGNORE_INDEX`` (-100) where nothing is to be predicted, else the original token
    """
    if ids.numel() == 0 or ids.dtype != torch.int64:
        raise ValueError(f"expected non-empty int64 token ids, got {ids.dtype} {tuple(ids.shape)}")
    special = torch.as_tensor(sorted(set(special_ids)), dtype=ids.dtype, device=ids.device)
    if not 0.0 < mask_prob < 1.0 or mask_id not in special.tolist():
        raise ValueError(
            f"expected mask_prob in (0, 1) and mask_id in the special ids {special.tolist()}, "
            f"got {mask_prob=}, {mask_id=}"
        )
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"expected ids in [0, {vocab_size}), got [{ids.min()}, {ids.max()}]")
    ordinary = torch.arange(vocab_size, device=ids.device)
    ordinary = ordinary[~torch.isin(ordinary, special)]  # the non-special vocabulary

    # 1) select: rank the eligible positions of each sequence by uniform noise, keep the first k
    eligible = ~torch.isin(ids, special)  # (B, T)
    noise = torch.rand(ids.shape, generator=generator, device=ids.device)
    rank = noise.masked_fill(~eligible, 2.0).argsort(-1).argsort(-1)  # ineligible rank last
    n = eligible.sum(-1, keepdim=True)  # (B, 1)
    u = torch.rand(n.shape, generator=generator, device=ids.device)  # random rounding
    k = torch.minimum((n * mask_prob + u).floor().clamp_min(1), n)  # 15 % from BERT §3.1
    selected = rank < k  # (B, T)

    # 2) corrupt: 80 % [MASK], 10 % random token, 10 % unchanged (BERT §3.1)
    action = torch.rand(ids.shape, generator=generator, device=ids.device)
    random_tokens = ordinary[
        torch.randint(len(ordinary), ids.shape, generator=generator, device=ids.device)
    ]
    inputs = torch.where(selected & (action < 0.8), mask_id, ids)
    inputs = torch.where(selected & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
    labels = ids.masked_fill(~selected, IGNORE_INDEX)
    return inputs, labels
