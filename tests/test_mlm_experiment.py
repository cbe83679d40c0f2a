"""The masked-LM experiment (sslbook.experiments.mlm) on a small synthetic play."""

import math
import random

import pytest
import torch

from sslbook.experiments import EXPERIMENTS, mlm
from sslbook.models import count_parameters
from sslbook.profiles import profile
from sslbook.text import IGNORE_INDEX

TINY = profile("smoke").with_(
    text_dim=16, text_depth=1, text_seq_len=16, text_batch_size=8, text_epochs=1, probe_epochs=2
)


def play(speeches: int = 240, seed: int = 0) -> str:
    """Speeches of ten characters, each speaking mostly from their own small vocabulary."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(60)]
    blocks = []
    for i in range(speeches):
        speaker = i % 10
        own = words[speaker * 6 : speaker * 6 + 6]
        lines = [" ".join(rng.choice(own + words) for _ in range(8)) + "," for _ in range(2)]
        blocks.append(f"SPEAKER{speaker}:\n" + "\n".join(lines))
    return "\n\n".join(blocks) + "\n"


@pytest.fixture
def data():
    return mlm.load_text(TINY, play())


def test_mlm_is_an_experiment():
    assert EXPERIMENTS["mlm"] is mlm.run


def test_lstms_are_sized_to_the_transformer(data):
    vocab, cfg = data.tokenizer.vocab_size, TINY.with_(text_dim=64)
    sizes = {
        kind: count_parameters(mlm.build_encoder(kind, vocab, cfg), embeddings=False)
        for kind in mlm.ENCODERS
    }
    for kind in ("lstm", "bilstm"):
        assert abs(sizes[kind] - sizes["transformer"]) / sizes["transformer"] < 0.03, sizes
    with pytest.raises(ValueError, match="unknown encoder 'gru': expected one of"):
        mlm.build_encoder("gru", vocab, TINY)


def test_split_is_contiguous_and_vocabulary_comes_from_training_text(data):
    assert play().startswith(data.train_text) and play().endswith(data.val_text)
    assert data.train_ids.shape[1] == data.val_ids.shape[1] == TINY.text_seq_len


def test_unigram_baseline_matches_a_direct_count(data):
    base = mlm.unigram_baseline(data)
    _, labels = mlm._fixed_masks(data.val_ids, data.tokenizer.vocab_size)
    targets = labels[labels != IGNORE_INDEX]
    top = data.tokenizer.index[base["most_frequent_word"]]
    assert base["val_accuracy"] == pytest.approx((targets == top).float().mean().item())
    assert base["val_perplexity"] == pytest.approx(math.exp(base["val_loss"]))
    # the smoothed unigram cross-entropy is at most that of a uniform guess over the words
    assert base["val_loss"] < math.log(data.tokenizer.vocab_size - 5)


def test_scores_use_the_same_masks_every_time(data):
    torch.manual_seed(0)
    model = mlm.MaskedLanguageModel(
        mlm.build_encoder("transformer", data.tokenizer.vocab_size, TINY),
        data.tokenizer.vocab_size,
    )
    first, second = (mlm.masked_token_scores(model, data.val_ids) for _ in range(2))
    assert first == second
    assert 0 <= first["val_accuracy"] <= 1
    assert first["val_perplexity"] == pytest.approx(math.exp(first["val_loss"]))


def test_run_reports_each_encoder_the_baseline_and_the_probe(monkeypatch):
    monkeypatch.setattr(mlm, "tiny_shakespeare", lambda: play())
    result = mlm.run(TINY, "cpu")
    assert [r["encoder"] for r in result["rows"]] == [mlm.ENCODER_NAMES[k] for k in mlm.ENCODERS]
    transformer = result["rows"][-1]
    assert transformer["speaker_classes"] == 8
    assert 0 <= transformer["speaker_accuracy"] <= 1
    assert (
        result["random_init_probe"]["speaker_test_speeches"] == transformer["speaker_test_speeches"]
    )
    for row in result["rows"]:
        assert row["curve"]["epoch"] == [1] and len(row["curve"]["val_accuracy"]) == 1
        assert row["val_perplexity"] > 1
