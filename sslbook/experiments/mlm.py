"""Masked language modelling on Tiny Shakespeare: three encoders, one head, one budget.

    python -m sslbook.run mlm --profile cpu

trains the masked-LM objective (BERT masking, loss on the selected tokens only) with three
encoders of about the same number of parameters (embeddings aside) and the same steps:

- a left-to-right LSTM, which sees only the words before a blank (the article's choice);
- a bidirectional LSTM, which reads both sides in two separate passes;
- a small pre-LN Transformer encoder, where every word attends to every other.

and reports masked-token accuracy and perplexity on the validation split (fixed masks) against
the unigram baseline, and a downstream probe: which of the eight most talkative characters
speaks a speech, from frozen mean-pooled features, against the same Transformer at random
initialisation.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import tiny_shakespeare
from ..device import seeded
from ..evaluate import linear_probe
from ..methods.mlm import MaskedLanguageModel, mlm_loss, text_features
from ..models.text import LSTMEncoder, TextTransformer, count_parameters
from ..modules import eval_mode
from ..profiles import Profile
from ..text import (
    IGNORE_INDEX,
    SPECIAL_IDS,
    WordTokenizer,
    bert_mask,
    encode_batch,
    make_sequences,
    speaker_lines,
    split_corpus,
)
from ..train import TrainConfig, fit

__all__ = [
    "ENCODERS",
    "TextData",
    "load_text",
    "build_encoder",
    "lstm_hidden_for",
    "mlm_config",
    "train_mlm",
    "masked_token_scores",
    "unigram_baseline",
    "speaker_probe",
    "run",
]

ENCODERS = ("lstm", "bilstm", "transformer")
ENCODER_NAMES = {
    "lstm": "LSTM, left to right",
    "bilstm": "LSTM, bidirectional",
    "transformer": "Transformer encoder",
}


@dataclass
class TextData:
    tokenizer: WordTokenizer
    train_text: str
    val_text: str
    train_ids: torch.Tensor  # (N, T) [CLS] ... [SEP] windows of the training split
    val_ids: torch.Tensor  # (M, T) windows of the validation split


def load_text(cfg: Profile, text: str | None = None) -> TextData:
    """Tiny Shakespeare, split contiguously (90 / 10, at a speech boundary), tokenised with a
    vocabulary fitted on the training split only, cut into windows of ``cfg.text_seq_len``."""
    text = tiny_shakespeare() if text is None else text
    train_text, val_text = split_corpus(text)
    tokenizer = WordTokenizer.from_corpus(train_text)
    seq_len = cfg.text_seq_len
    return TextData(
        tokenizer,
        train_text,
        val_text,
        make_sequences(tokenizer.encode(train_text), seq_len, drop_last=True),
        make_sequences(tokenizer.encode(val_text), seq_len, drop_last=True),
    )


def _body(encoder: nn.Module) -> int:
    return count_parameters(encoder, embeddings=False)


def lstm_hidden_for(params: int, dim: int, vocab_size: int, bidirectional: bool) -> int:
    """The LSTM hidden size whose (one-layer) encoder has about ``params`` non-embedding
    parameters, found by bisection on the real module's count."""
    lo, hi = 1, 4096
    while lo < hi:
        mid = (lo + hi) // 2
        probe = LSTMEncoder(vocab_size, dim, mid, layers=1, bidirectional=bidirectional)
        if _body(probe) < params:
            lo = mid + 1
        else:
            hi = mid
    return lo


def build_encoder(kind: str, vocab_size: int, cfg: Profile) -> nn.Module:
    """``kind`` in ENCODERS; the LSTMs are sized to the Transformer's non-embedding parameters."""
    transformer = TextTransformer(
        vocab_size, cfg.text_dim, cfg.text_depth, heads=4, max_len=cfg.text_seq_len, dropout=0.0
    )
    if kind == "transformer":
        return transformer
    if kind in ("lstm", "bilstm"):
        bidirectional = kind == "bilstm"
        hidden = lstm_hidden_for(_body(transformer), cfg.text_dim, vocab_size, bidirectional)
        return LSTMEncoder(vocab_size, cfg.text_dim, hidden, layers=1, bidirectional=bidirectional)
    raise ValueError(f"unknown encoder {kind!r}: expected one of {', '.join(ENCODERS)}")


def mlm_config(cfg: Profile, **changes) -> TrainConfig:
    """AdamW, lr 1e-3, weight decay 0.01 (BERT §A.2), warmup for a third of an epoch, cosine."""
    settings = dict(
        epochs=cfg.text_epochs,
        batch_size=cfg.text_batch_size,
        lr=1e-3,
        weight_decay=0.01,
        warmup_epochs=min(0.3, cfg.text_epochs / 4),
        log_every=20,
        amp=cfg.amp,
    )
    return TrainConfig(**(settings | changes))


def train_mlm(
    kind: str,
    data: TextData,
    cfg: Profile,
    device=None,
    checkpoint_dir: str | Path | None = None,
    eval_fn=None,
    seed: int = 0,
    **changes,
):
    """A :class:`MaskedLanguageModel` around encoder ``kind``; returns ``(model, history)``."""
    vocab = data.tokenizer.vocab_size
    with seeded(seed):
        model = MaskedLanguageModel(build_encoder(kind, vocab, cfg), vocab)
    config = mlm_config(cfg, seed=seed, checkpoint_dir=checkpoint_dir, **changes)
    history = fit(model, data.train_ids, config, eval_fn=eval_fn, device=device, loss_fn=mlm_loss)
    return model, history


def _fixed_masks(ids: torch.Tensor, vocab_size: int, seed: int = 0):
    generator = torch.Generator(device=ids.device).manual_seed(seed)
    return bert_mask(ids, vocab_size, SPECIAL_IDS, generator=generator)


@torch.no_grad()
def masked_token_scores(
    model: MaskedLanguageModel, ids: torch.Tensor, seed: int = 0, batch_size: int = 256
) -> dict[str, float]:
    """Accuracy, cross-entropy and perplexity at the selected tokens of ``ids`` under one
    seeded BERT masking (the same masks for every model), in eval mode.

    Returns:
        {"val_accuracy", "val_loss", "val_perplexity"}
    """
    inputs, labels = _fixed_masks(ids, model.vocab_size, seed)
    device = next(model.parameters()).device
    correct = loss = count = 0.0
    with eval_mode(model):
        for i in range(0, len(ids), batch_size):
            x, y = inputs[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
            n = (y != IGNORE_INDEX).sum().item()
            out = model(x, y, ids[i : i + batch_size].to(device) == model.encoder.pad_id)
            correct += out["accuracy"].item() * n
            loss += out["loss"].item() * n
            count += n
    return {
        "val_accuracy": correct / count,
        "val_loss": loss / count,
        "val_perplexity": math.exp(loss / count),
    }


def unigram_baseline(data: TextData, seed: int = 0) -> dict[str, float]:
    """What word frequencies alone achieve at the same validation targets: accuracy of always
    answering the most frequent training word, and the cross-entropy of the training unigram
    distribution (add-one smoothed over the ordinary vocabulary)."""
    vocab = data.tokenizer.vocab_size
    counts = Counter(data.train_ids[data.train_ids >= len(SPECIAL_IDS)].tolist())
    freq = torch.ones(vocab)
    freq[: len(SPECIAL_IDS)] = 0
    for token, c in counts.items():
        freq[token] += c
    log_p = (freq / freq.sum()).log()
    _, labels = _fixed_masks(data.val_ids, vocab, seed)
    targets = labels[labels != IGNORE_INDEX]
    loss = F.nll_loss(log_p.expand(len(targets), -1), targets).item()
    top = int(freq.argmax())
    return {
        "val_accuracy": (targets == top).float().mean().item(),
        "val_loss": loss,
        "val_perplexity": math.exp(loss),
        "most_frequent_word": data.tokenizer.tokens[top],
    }


def speaker_probe(
    model: MaskedLanguageModel, data: TextData, cfg: Profile, top_k: int = 8, every: int = 5
) -> dict[str, float]:
    """Linear probe: which of the ``top_k`` most talkative characters of the training split
    speaks a speech, from frozen mean-pooled features of its first tokens.

    Every ``every``-th speech is held out for testing; the rest train the probe. Returns the
    probe's test accuracy and the majority-class accuracy of the same test speeches.
    """
    pairs = speaker_lines(data.train_text, top_k=top_k, unit="speech")
    speakers = sorted({s for s, _ in pairs})
    labels = torch.tensor([speakers.index(s) for s, _ in pairs])
    ids = encode_batch(data.tokenizer, [u for _, u in pairs], cfg.text_seq_len)
    test = torch.arange(len(pairs)) % every == 0
    features = text_features(model, ids)
    accuracy = linear_probe(
        features[~test], labels[~test], features[test], labels[test], cfg.probe_epochs
    )
    majority = Counter(labels[~test].tolist()).most_common(1)[0][0]
    return {
        "speaker_accuracy": accuracy,
        "speaker_majority": (labels[test] == majority).float().mean().item(),
        "speaker_classes": len(speakers),
        "speaker_test_speeches": int(test.sum()),
    }


def run(cfg: Profile, device=None, checkpoint_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Train the three encoders with the masked-LM objective; score and probe them.

    ``"models"`` hands the three trained models to :func:`sslbook.run.run_experiment`.
    """
    data = load_text(cfg)
    rows, models = [], {}
    for kind in ENCODERS:
        folder = None if checkpoint_dir is None else Path(checkpoint_dir) / kind
        model, history = train_mlm(
            kind,
            data,
            cfg,
            device,
            folder,
            eval_fn=lambda m: masked_token_scores(m, data.val_ids),
            seed=seed,
        )
        models[f"mlm-{kind}"] = {"model": model}
        rows.append(
            {
                "encoder": ENCODER_NAMES[kind],
                "parameters": count_parameters(model.encoder, embeddings=False),
                **masked_token_scores(model, data.val_ids),
                **(speaker_probe(model, data, cfg) if kind == "transformer" else {}),
                "curve": {
                    key: history.series(key, level="epochs")[1]
                    for key in ("val_accuracy", "val_perplexity")
                }
                | {"epoch": history.series("val_accuracy", level="epochs")[0]},
                "loss_curve": dict(zip(("step", "loss"), history.series("loss"), strict=True)),
            }
        )
    vocab = data.tokenizer.vocab_size
    with seeded(seed):
        random_encoder = build_encoder("transformer", vocab, cfg)
        random_model = MaskedLanguageModel(random_encoder, vocab).to(device)
    return {
        "vocabulary": vocab,
        "unknown_rate_val": data.tokenizer.unknown_rate(data.val_text),
        "unigram": unigram_baseline(data),
        "rows": rows,
        "models": models,
        "random_init_probe": speaker_probe(random_model, data, cfg),
        "data": {
            "train": f"{len(data.train_ids)} sequences of {cfg.text_seq_len} tokens "
            "(Tiny Shakespeare, first 90 %)",
            "val": f"{len(data.val_ids)} sequences (the last 10 %, from a speech boundary)",
        },
    }
