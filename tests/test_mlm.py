"""Tests of the text encoders and the masked language model (sslbook.models.text, methods.mlm)."""

import copy

import pytest
import torch
import torch.nn as nn

from sslbook.article import ArticleMaskedLM
from sslbook.methods import MaskedLanguageModel, mlm_loss, text_features
from sslbook.models import LSTMEncoder, TextTransformer, count_parameters
from sslbook.text import (
    IGNORE_INDEX,
    MASK_ID,
    PAD_ID,
    SPECIAL_IDS,
    WordTokenizer,
    bert_mask,
    make_sequences,
)
from sslbook.train import TrainConfig, fit

V = 40  # vocabulary size of the synthetic tests


class FixedStates(nn.Module):
    """A stand-in encoder whose output is a given tensor, to probe the head and the loss."""

    def __init__(self, hidden: torch.Tensor):
        super().__init__()
        self.hidden = nn.Parameter(hidden)
        self.token_embedding = nn.Embedding(V, hidden.shape[-1])
        self.out_dim, self.pad_id = hidden.shape[-1], PAD_ID

    def forward(self, ids, padding_mask=None):
        return self.hidden


def _batch(b=6, t=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL_IDS), V, (b, t), generator=g)
    ids[:, 0], ids[1, 8:] = 1, PAD_ID  # [CLS] first; row 1 padded
    return ids, *bert_mask(ids, V, SPECIAL_IDS, MASK_ID, generator=g)


def test_loss_only_sees_selected_positions_and_matches_float64_reference():
    ids, inputs, labels = _batch()
    model = MaskedLanguageModel(FixedStates(torch.randn(6, 12, 16)), V)
    seen = []
    model.head[-1].register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
    out = model(inputs, labels)
    selected = labels != IGNORE_INDEX
    assert seen == [(int(selected.sum()), 16)]  # the head ran at the M selected positions only
    # naive float64: the head at EVERY position, then the mean over the selected ones
    logits = copy.deepcopy(model.head).double()(model.encoder.hidden.double())  # (B, T, V)
    nll = -logits.log_softmax(-1).gather(-1, labels.clamp_min(0)[..., None])[..., 0]
    assert out["loss"].item() == pytest.approx(nll[selected].mean().item(), rel=1e-5)
    accuracy = (logits.argmax(-1) == labels)[selected].double().mean().item()
    assert out["accuracy"].item() == pytest.approx(accuracy)
    # changing the states (hence the logits) at unselected positions changes nothing
    with torch.no_grad():
        model.encoder.hidden[~selected] += 10 * torch.randn(int((~selected).sum()), 16)
    assert torch.equal(model(inputs, labels)["loss"], out["loss"])
    with torch.no_grad():
        model.encoder.hidden[selected] += torch.randn(int(selected.sum()), 16)
    assert not torch.equal(model(inputs, labels)["loss"], out["loss"])


def test_head_is_tied_and_parameters_are_counted_once():
    encoder = TextTransformer(V, dim=16, depth=1, heads=2, max_len=12)
    tied, untied = MaskedLanguageModel(encoder, V), MaskedLanguageModel(encoder, V, False)
    assert tied.head[-1].weight is encoder.token_embedding.weight
    assert count_parameters(untied) - count_parameters(tied) == V * 16
    body = count_parameters(tied, embeddings=False)
    assert count_parameters(tied) - body == V * 16 + 12 * 16  # token + position embeddings


def test_no_target_or_wrong_shapes_raise():
    model = MaskedLanguageModel(FixedStates(torch.randn(2, 5, 8)), V)
    ids = torch.full((2, 5), 7)
    with pytest.raises(ValueError, match="no position"):
        model(ids, torch.full_like(ids, IGNORE_INDEX))
    with pytest.raises(ValueError, match="labels of shape"):
        model(ids, ids[:, :4])


def test_padding_never_changes_real_positions():
    ids = _batch()[0]
    mask = ids == PAD_ID
    other = ids.masked_scatter(mask, torch.randint(5, V, (int(mask.sum()),)))
    for encoder in (
        TextTransformer(V, dim=16, depth=2, heads=2, max_len=12).eval(),
        LSTMEncoder(V, dim=16, hidden=8, layers=2, bidirectional=True).eval(),
    ):
        out, out_other = encoder(ids, mask), encoder(other, mask)
        torch.testing.assert_close(out[~mask], out_other[~mask])
        assert not torch.allclose(encoder(other, torch.zeros_like(mask))[~mask], out[~mask])
    model = TextTransformer(V, dim=16, depth=2, heads=2, max_len=12).eval()
    states, attention = model(ids, mask, return_attention=True)
    torch.testing.assert_close(states, model(ids))  # default mask: ids == PAD_ID
    assert len(attention) == 2 and attention[0].shape == (6, 2, 12, 12)
    assert (attention[1][1, :, :, 8:] == 0).all()  # nobody attends to row 1's padding
    torch.testing.assert_close(attention[0].sum(-1), torch.ones(6, 2, 12))


def test_which_context_each_encoder_sees():
    ids = _batch()[0][[0, 2]]
    later = ids.clone()
    later[:, 6:] = torch.randint(5, V, (2, 6))  # change everything right of position 5
    encoders = {
        "transformer": TextTransformer(V, dim=16, depth=1, heads=2, max_len=12),
        "bilstm": LSTMEncoder(V, dim=16, hidden=8, layers=1, bidirectional=True),
        "lstm": LSTMEncoder(V, dim=16, hidden=8, layers=1, bidirectional=False),
    }
    for name, encoder in encoders.items():
        same = torch.allclose(encoder.eval()(ids)[:, :6], encoder(later)[:, :6])
        assert same == (name == "lstm"), name  # only left-to-right is blind to the right


def test_over_long_input_raises():
    model = TextTransformer(V, dim=16, depth=1, heads=2, max_len=8)
    with pytest.raises(ValueError, match="max_len=8"):
        model(torch.ones(1, 9, dtype=torch.int64))


def test_features_mean_over_real_tokens():
    ids = _batch()[0]
    model = MaskedLanguageModel(TextTransformer(V, dim=16, depth=1, heads=2, max_len=12), V)
    model.eval()
    states = model.encoder(ids)
    torch.testing.assert_close(model.features(ids)[1], states[1, :8].mean(0))
    torch.testing.assert_close(model.features(ids, pool="cls"), states[:, 0])
    torch.testing.assert_close(text_features(model, ids, batch_size=4), model.features(ids))


def test_top_k_predictions_are_a_distribution_over_ordinary_words():
    ids, inputs, _ = _batch()
    model = MaskedLanguageModel(TextTransformer(V, dim=16, depth=1, heads=2, max_len=12), V)
    probs, top = model.top_k_predictions(inputs, k=V - len(SPECIAL_IDS))  # every ordinary word
    assert len(probs) == int((inputs == MASK_ID).sum())
    assert (top.sort(-1).values == torch.arange(len(SPECIAL_IDS), V)).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(probs)))


def test_fit_lowers_the_loss_and_fill_mask_lists_words():
    torch.manual_seed(0)
    text = " ".join(f"the {a} saw the {b} ." for a in "abcd" for b in "efgh" for _ in range(8))
    tok = WordTokenizer.from_corpus(text)
    ids = make_sequences(tok.encode(text), 13)  # (70, 13)
    model = MaskedLanguageModel(
        TextTransformer(tok.vocab_size, dim=32, depth=1, heads=2, max_len=13, dropout=0.0),
        tok.vocab_size,
    )
    config = TrainConfig(epochs=20, batch_size=16, lr=3e-3, progress=False, log_every=5)
    history = fit(model, ids, config, device="cpu", loss_fn=mlm_loss)
    epochs = [r["loss"] for r in history.epochs]  # means over each epoch's 4 steps
    assert sum(epochs[-3:]) / 3 < epochs[0] - 0.3  # from ~ln(16) = 2.8 to the unigram's ~2.0
    guesses = model.fill_mask(tok, "the [MASK] saw the e .", k=3)
    assert len(guesses) == 1 and len(guesses[0]) == 3
    words, probs = zip(*guesses[0], strict=True)
    assert list(probs) == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert not set(words) & {"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"}
    assert model.training  # fill_mask restores the mode


def test_article_model_sees_its_targets_and_no_right_context():
    torch.manual_seed(0)
    model = ArticleMaskedLM(V, embedding_dim=8, hidden_dim=16).eval()
    x = torch.randint(5, V, (3, 10))
    keep = (torch.rand(3, 10) > 0.15).float()
    keep[:, 4] = 1.0
    logits = model(x, keep)
    # the target at a kept position is in the input: changing it changes the output there
    y = x.clone()
    y[:, 4] = (x[:, 4] + 1 - 5) % (V - 5) + 5
    assert not torch.allclose(model(y, keep)[:, 4], logits[:, 4])
    # left to right: the outputs up to t ignore every token after t
    torch.testing.assert_close(model(y, keep)[:, :4], logits[:, :4])
    # the loss is the mean over ALL positions with the input as target (float64 reference)
    reference = -logits.double().log_softmax(-1).gather(-1, x[..., None]).mean()
    assert model.loss(x, keep).item() == pytest.approx(reference.item(), rel=1e-5)
    with pytest.raises(ValueError, match="mask of shape"):
        model(x, keep[:, :5])
