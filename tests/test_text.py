"""Tests of sslbook.text: tokenizer round trip, corpus prep, speaker examples, BERT masking."""

import os
from pathlib import Path

import pytest
import torch

from sslbook.text import (
    CLS_ID,
    IGNORE_INDEX,
    MASK_ID,
    PAD_ID,
    SEP_ID,
    SPECIAL_IDS,
    SPECIAL_TOKENS,
    UNK_ID,
    WordTokenizer,
    bert_mask,
    encode_batch,
    make_sequences,
    normalize,
    padding_mask,
    speaker_lines,
    split_corpus,
)

CORPUS = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?
We know't, we know't.

All:
Resolved. resolved.

MENENIUS:
What work's, my countrymen, in hand? where go you
With bats and clubs? The matter? speak, I pray you.

First Citizen:
Our business is not unknown to the senate.
"""


@pytest.fixture(scope="module")
def shakespeare() -> str:
    root = os.environ.get("SSLBOOK_DATA")
    path = Path(root) / "text" / "tinyshakespeare.txt" if root else None
    if path is None or not path.exists():
        pytest.skip("$SSLBOOK_DATA/text/tinyshakespeare.txt is not available")
    return path.read_text(encoding="utf-8")


def test_normalisation_rules():
    text = "First Citizen:\nBefore we proceed,  hear me speak!\n'Tis we'll know't [MASK]."
    expected = "first citizen: before we proceed, hear me speak! ' tis we'll know't [MASK]."
    assert normalize(text) == expected
    assert normalize(expected) == expected  # idempotent


def test_round_trip_in_vocabulary():
    tok = WordTokenizer.from_corpus(CORPUS, min_count=1)
    assert tok.tokens[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert (PAD_ID, CLS_ID, SEP_ID, MASK_ID, UNK_ID) == (0, 1, 2, 3, 4)
    assert UNK_ID not in tok.encode(CORPUS)
    assert tok.decode(tok.encode(CORPUS)) == normalize(CORPUS)
    typed = "speak, i pray you: we know't [MASK]?"
    assert tok.decode(tok.encode(typed)) == typed
    assert tok.decode(tok.encode(typed), skip_special=True) == "speak, i pray you: we know't?"


def test_decode_then_encode_is_the_identity_on_any_token_sequence():
    tok = WordTokenizer.from_corpus(CORPUS, min_count=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        ids = torch.randint(1, tok.vocab_size, (20,), generator=g).tolist()  # specials too
        assert tok.encode(tok.decode(ids)) == ids


def test_unknown_words_and_vocabulary_from_training_text_only():
    train, val = "the the the cat cat sat", "the dog sat"
    tok = WordTokenizer.from_corpus(train)  # min_count=2: "sat", seen once, is left out
    assert tok.tokens[len(SPECIAL_TOKENS) :] == ["the", "cat"]  # by falling frequency
    small = WordTokenizer.from_corpus(train, max_vocab=len(SPECIAL_TOKENS) + 2, min_count=1)
    assert small.tokens == tok.tokens  # "sat" is now cut off by max_vocab
    assert WordTokenizer.from_corpus(train, min_count=1).tokens[-1] == "sat"
    assert tok.encode(val) == [tok.index["the"], UNK_ID, UNK_ID]
    assert tok.decode(tok.encode(val)) == "the [UNK] [UNK]"
    assert tok.unknown_rate(val) == pytest.approx(2 / 3)


def test_empty_text_raises():
    tok = WordTokenizer.from_corpus(CORPUS, min_count=1)
    for empty in ("", "  \n\n "):
        with pytest.raises(ValueError, match="at least one token"):
            tok.encode(empty)
        with pytest.raises(ValueError):
            WordTokenizer.from_corpus(empty)
    with pytest.raises(ValueError):
        make_sequences([], 8)
    with pytest.raises(ValueError):
        split_corpus("")
    with pytest.raises(ValueError):
        bert_mask(torch.zeros(0, 5, dtype=torch.int64), 10, SPECIAL_IDS, MASK_ID)


def test_save_load(tmp_path):
    tok = WordTokenizer.from_corpus(CORPUS, min_count=1)
    tok.save(tmp_path / "vocab.json")
    assert WordTokenizer.load(tmp_path / "vocab.json").tokens == tok.tokens


def test_encode_batch_truncates_over_long_text_and_pads_short_text():
    tok = WordTokenizer.from_corpus(CORPUS, min_count=1)
    long, short = "hear me speak , " * 5, "speak"
    batch = encode_batch(tok, [long, short], max_len=8)
    assert batch.shape == (2, 8) and batch.dtype == torch.int64
    assert batch[0].tolist() == [CLS_ID, *tok.encode(long)[:6], SEP_ID]  # first 6 kept
    assert batch[1].tolist() == [CLS_ID, tok.index["speak"], SEP_ID] + [PAD_ID] * 5
    assert padding_mask(batch).tolist()[1] == [False] * 3 + [True] * 5


def test_padding_mask_is_ids_equal_pad_or_a_checked_given_mask():
    ids = torch.tensor([[5, 6, PAD_ID], [7, PAD_ID, PAD_ID]])
    assert padding_mask(ids).tolist() == [[False, False, True], [False, True, True]]
    assert padding_mask(ids, pad_id=7).tolist() == [[False, False, False], [True, False, False]]
    given = torch.zeros(2, 3, dtype=torch.bool)
    assert padding_mask(ids, given) is given
    with pytest.raises(ValueError, match=r"token ids of shape \(B, T\), got \(6,\)"):
        padding_mask(ids.flatten())
    with pytest.raises(ValueError, match="integer token ids, got torch.float32"):
        padding_mask(ids.float())
    with pytest.raises(ValueError, match=r"bool padding_mask of shape \(2, 3\), got torch.int64"):
        padding_mask(ids, given.long())
    with pytest.raises(ValueError, match=r"shape \(2, 3\), got torch.bool \(2, 2\)"):
        padding_mask(ids, given[:, :2])


def test_make_sequences_frames_consecutive_windows():
    ids = torch.arange(10, 33)  # 23 tokens, windows of 6
    seqs = make_sequences(ids, seq_len=8)
    assert seqs.shape == (4, 8)
    assert (seqs[:, 0] == CLS_ID).all()
    body = seqs[:, 1:-1][~torch.isin(seqs[:, 1:-1], torch.tensor([PAD_ID, SEP_ID]))]
    assert torch.equal(body, ids)  # every token once, in order
    assert (seqs[:3, -1] == SEP_ID).all() and seqs[3].tolist() == [1, 28, 29, 30, 31, 32, 2, 0]
    assert make_sequences(ids, seq_len=8, drop_last=True).shape == (3, 8)


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_split_is_contiguous_ordered_and_cut_between_speeches(fraction):
    text = "\n".join([CORPUS] * 5)
    train, val = split_corpus(text, fraction)
    assert train + val == text  # no overlap, nothing lost, order kept
    assert (1 - fraction) * len(text) - 1 <= len(train) < len(text)  # cut moves forward only
    assert train.endswith("\n") and val.startswith("\n") and val.strip().split("\n")[0][-1] == ":"


def test_speaker_lines_strip_the_header():
    pairs = speaker_lines(CORPUS, top_k=2)
    # First Citizen has 4 lines; All and MENENIUS 2 each, the tie broken alphabetically
    assert {s for s, _ in pairs} == {"First Citizen", "All"}
    assert pairs[0] == ("First Citizen", "Before we proceed any further, hear me speak.")
    assert len(pairs) == 4 + 2
    for speaker, utterance in pairs:
        assert f"{speaker}:" not in utterance and not utterance.startswith(speaker)
    speeches = speaker_lines(CORPUS, top_k=1, unit="speech")
    assert speeches[1] == (
        "First Citizen",
        "You are all resolved rather to die than to famish? We know't, we know't.",
    )
    assert {s for s, _ in speaker_lines(CORPUS, top_k=8, min_count=3)} == {"First Citizen"}


def test_speaker_lines_real_corpus(shakespeare):
    pairs = speaker_lines(shakespeare, top_k=8)
    speakers = {s for s, _ in pairs}
    assert len(speakers) == 8 and len(pairs) > 4000
    assert not any(u in {f"{s}:" for s in speakers} for _, u in pairs)  # no header kept
    train, val = split_corpus(shakespeare)
    assert train + val == shakespeare and 0.09 < len(val) / len(shakespeare) < 0.11


def _check_bert_mask_statistics(ids, vocab_size, special_ids, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, labels = bert_mask(ids, vocab_size, special_ids, MASK_ID, 0.15, generator=g)
    special = torch.tensor(special_ids)
    eligible, selected = ~torch.isin(ids, special), labels != IGNORE_INDEX
    assert not (selected & ~eligible).any()  # specials and padding never selected
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(inputs[~selected], ids[~selected])
    assert selected.sum() / eligible.sum() == pytest.approx(0.15, abs=0.005)
    assert (selected.sum(1) >= 1)[eligible.any(1)].all()
    # each sequence: 15 % of its ordinary tokens rounded down or up (at least one)
    k, share = selected.sum(1), 0.15 * eligible.sum(1)
    ok = (k == share.floor()) | (k == share.ceil()) | ((k == 1) & (share < 1))
    assert ok[eligible.any(1)].all()
    masked = inputs[selected] == MASK_ID
    unchanged = inputs[selected] == ids[selected]
    replaced = ~masked & ~unchanged
    n_ordinary = vocab_size - len(special_ids)
    assert masked.float().mean() == pytest.approx(0.8, abs=0.015)
    assert replaced.float().mean() == pytest.approx(0.1 * (1 - 1 / n_ordinary), abs=0.015)
    assert unchanged.float().mean() == pytest.approx(0.1 + 0.1 / n_ordinary, abs=0.015)
    assert not torch.isin(inputs[selected][~masked], special).any()  # random tokens ordinary
    return inputs, labels


def test_bert_mask_statistics_on_synthetic_batch():
    vocab_size, g = 30, torch.Generator().manual_seed(1)
    ids = torch.randint(len(SPECIAL_IDS), vocab_size, (1000, 128), generator=g)
    ids[:, 0], ids[::7, 5] = CLS_ID, UNK_ID
    lengths = torch.randint(2, 129, (1000,), generator=g)
    ids[torch.arange(1000), lengths - 1] = SEP_ID
    ids[torch.arange(128) >= lengths[:, None]] = PAD_ID
    inputs, labels = _check_bert_mask_statistics(ids, vocab_size, SPECIAL_IDS)
    # random replacements cover the ordinary vocabulary
    replaced = inputs[(labels != IGNORE_INDEX) & (inputs != MASK_ID) & (inputs != ids)]
    assert set(replaced.tolist()) == set(range(len(SPECIAL_IDS), vocab_size))
    # deterministic with a seed, different with another
    again = _check_bert_mask_statistics(ids, vocab_size, SPECIAL_IDS, seed=0)
    other = _check_bert_mask_statistics(ids, vocab_size, SPECIAL_IDS, seed=1)
    assert torch.equal(again[0], inputs) and torch.equal(again[1], labels)
    assert not torch.equal(other[1], labels)


def test_bert_mask_rate_is_unbiased_on_short_sequences():
    # 30 ordinary tokens per sequence: rounding 4.5 to the nearest integer would give 13.3 %
    vocab_size, g = 50, torch.Generator().manual_seed(2)
    ids = torch.randint(len(SPECIAL_IDS), vocab_size, (4000, 32), generator=g)
    ids[:, 0], ids[:, -1] = CLS_ID, SEP_ID
    _check_bert_mask_statistics(ids, vocab_size, SPECIAL_IDS)


def test_bert_mask_statistics_on_tiny_shakespeare(shakespeare):
    train, val = split_corpus(shakespeare)
    tok = WordTokenizer.from_corpus(train)
    seqs = make_sequences(tok.encode(val), 128)  # includes [UNK]s and a padded last window
    assert 0.03 < tok.unknown_rate(val) < 0.08
    _check_bert_mask_statistics(seqs, tok.vocab_size, tok.special_ids)


def test_bert_mask_rejects_bad_arguments():
    ids = torch.full((2, 4), 7)
    with pytest.raises(ValueError, match="mask_prob"):
        bert_mask(ids, 10, SPECIAL_IDS, MASK_ID, mask_prob=0.0)
    with pytest.raises(ValueError, match="mask_id"):
        bert_mask(ids, 10, (0, 1, 2), mask_id=3)
    with pytest.raises(ValueError, match="ids in"):
        bert_mask(ids, 5, SPECIAL_IDS, MASK_ID)
