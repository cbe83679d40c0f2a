"""Masked-LM training throughput: sslbook vs Hugging Face transformers, same model size.

    python bench/mlm_step.py [--rounds R] [--steps N] [--quality-steps N] [--quick]
                             [--out bench/results/mlm_step.json]

Both train a BERT-style encoder of the CPU profile's size (2 blocks, width 128, 4 heads, MLP
512, the Tiny Shakespeare word vocabulary, sequences of 32 tokens, batch 16) with AdamW at
lr 1e-3 on the same windows of the training split:

- sslbook: ``MaskedLanguageModel(TextTransformer(...))`` with ``sslbook.text.bert_mask`` drawn
  per batch, the output head run at the selected positions only;
- transformers: ``BertForMaskedLM`` with ``DataCollatorForLanguageModeling`` (its documented
  masked-LM pipeline: 15 % Bernoulli selection, 80/10/10), logits at every position and the
  loss over the selected ones. Its tokenizer wraps the same word vocabulary.

Throughput is training tokens per second over timed steps, the two pipelines taking turns in
rounds (``bench/timing.py``); the ratio divides medians. Quality: both are trained for
``--quality-steps`` steps and scored with one fixed BERT masking of the validation split.
Target: sslbook >= 1.0x in tokens/s, and masked-token accuracy no worse.
"""

from __future__ import annotations

import torch
from common import Run, arguments, batches, parse, training_step  # bench/common.py
from timing import time_alternating  # bench/timing.py

from sslbook.experiments import mlm
from sslbook.methods.mlm import MaskedLanguageModel
from sslbook.models import TextTransformer, count_parameters
from sslbook.profiles import profile
from sslbook.results import markdown_table
from sslbook.text import IGNORE_INDEX, PAD_ID, SPECIAL_IDS, SPECIAL_TOKENS, bert_mask

TARGET = 1.0
BATCH = 16


def hf_model_and_collator(data: mlm.TextData, cfg):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
        PreTrainedTokenizerFast,
    )

    vocab = {token: i for i, token in enumerate(data.tokenizer.tokens)}
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = WhitespaceSplit()
    names = dict(zip(("pad", "cls", "sep", "mask", "unk"), SPECIAL_TOKENS, strict=True))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, **{f"{k}_token": v for k, v in names.items()}
    )
    config = BertConfig(
        vocab_size=data.tokenizer.vocab_size,
        hidden_size=cfg.text_dim,
        num_hidden_layers=cfg.text_depth,
        num_attention_heads=4,
        intermediate_size=4 * cfg.text_dim,
        max_position_embeddings=cfg.text_seq_len,
        type_vocab_size=1,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=PAD_ID,
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, return_tensors="pt")
    return model, collator


def sslbook_model(data: mlm.TextData, cfg) -> MaskedLanguageModel:
    torch.manual_seed(0)
    encoder = TextTransformer(
        data.tokenizer.vocab_size, cfg.text_dim, cfg.text_depth, 4, cfg.text_seq_len, dropout=0.0
    )
    return MaskedLanguageModel(encoder, data.tokenizer.vocab_size)


def mlm_training_step(loss_fn, params, ids: torch.Tensor):
    """A step function: ``loss_fn`` on the next batch of shuffled windows, backward, AdamW."""
    take = batches(ids, BATCH, shuffle=True)
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    return training_step(lambda: loss_fn(take()), opt)


@torch.no_grad()
def hf_scores(model, ids: torch.Tensor) -> float:
    """Masked-token accuracy of the HF model, same fixed masks as mlm.masked_token_scores."""
    generator = torch.Generator(device=ids.device).manual_seed(0)  # masked_token_scores' seed
    inputs, labels = bert_mask(ids, model.config.vocab_size, SPECIAL_IDS, generator=generator)
    model.eval()
    correct = count = 0
    for i in range(0, len(ids), 256):
        x, y = inputs[i : i + 256], labels[i : i + 256]
        logits = model(input_ids=x, attention_mask=(ids[i : i + 256] != PAD_ID).long()).logits
        keep = y != IGNORE_INDEX
        correct += (logits[keep].argmax(-1) == y[keep]).sum().item()
        count += keep.sum().item()
    model.train()
    return correct / count


def main() -> None:
    parser = arguments(__doc__, "mlm_step", rounds=7, steps=6)
    parser.add_argument("--quality-steps", type=int, default=1500)
    args = parse(parser)
    if args.quick:
        args.quality_steps = min(args.quality_steps, 20)
    run = Run()
    cfg = profile("cpu")
    data = mlm.load_text(cfg)
    tokens_per_step = BATCH * cfg.text_seq_len

    ours = sslbook_model(data, cfg)
    hf, collator = hf_model_and_collator(data, cfg)

    def ours_step(batch):
        return ours.mask_and_predict(batch)["loss"]

    def hf_step(batch):
        examples = collator([{"input_ids": row} for row in batch])
        mask = (batch != PAD_ID).long()
        return hf(
            input_ids=examples["input_ids"], attention_mask=mask, labels=examples["labels"]
        ).loss

    steps = {
        "sslbook": mlm_training_step(ours_step, ours.parameters(), data.train_ids),
        "transformers": mlm_training_step(hf_step, hf.parameters(), data.train_ids),
    }
    timings = time_alternating(steps, "cpu", args.rounds, args.steps, warmup=3)
    speed = {name: tokens_per_step / t.median for name, t in timings.items()}

    # quality at equal steps, from fresh models
    ours, (hf, collator) = sslbook_model(data, cfg), hf_model_and_collator(data, cfg)
    for model, loss_fn in ((ours, ours_step), (hf, hf_step)):  # the steps see the fresh ones
        step = mlm_training_step(loss_fn, model.parameters(), data.train_ids)
        for _ in range(args.quality_steps):
            step()
    accuracy = {
        "sslbook": mlm.masked_token_scores(ours, data.val_ids)["val_accuracy"],
        "transformers": hf_scores(hf, data.val_ids),
    }
    unigram = mlm.unigram_baseline(data)["val_accuracy"]
    sizes = {
        "sslbook": count_parameters(ours),
        "transformers": sum(p.numel() for p in hf.parameters()),
    }
    ratio = speed["sslbook"] / speed["transformers"]

    print(
        f"Tiny Shakespeare, {cfg.text_depth} blocks width {cfg.text_dim}, vocabulary "
        f"{data.tokenizer.vocab_size}, {BATCH} x {cfg.text_seq_len} tokens per step, "
        f"{run.describe()}.\n"
    )
    rows = [
        {
            "pipeline": name,
            "parameters": f"{sizes[name]:,}",
            "spread": str(timings[name]),
            "tokens_per_s": f"{speed[name]:,.0f}",
            "accuracy": f"{accuracy[name]:.3f} (after {args.quality_steps} steps)",
        }
        for name in speed
    ]
    columns = {
        "pipeline": "pipeline",
        "parameters": "parameters",
        "spread": "s/step: median (min-max)",
        "tokens_per_s": "training tokens/s",
        "accuracy": "masked-token accuracy",
    }
    print(markdown_table(rows, columns))
    target_met = ratio >= TARGET and accuracy["sslbook"] >= accuracy["transformers"]
    met = "met" if target_met else "NOT met"
    print(
        f"\nsslbook / transformers: {ratio:.2f}x tokens/s (medians); unigram accuracy "
        f"{unigram:.3f} (target >= {TARGET}x and accuracy no worse: {met})"
    )
    payload = {
        "benchmark": "masked-LM training step on CPU, sslbook vs transformers BertForMaskedLM",
        "batch": [BATCH, cfg.text_seq_len],
        "model": {"blocks": cfg.text_depth, "width": cfg.text_dim, "heads": 4},
        "vocabulary": data.tokenizer.vocab_size,
        "parameters": sizes,
        "tokens_per_s": {k: round(v, 1) for k, v in speed.items()},
        "s_per_step": {name: t.fields("s_per_step") for name, t in timings.items()},
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "ratio": round(ratio, 2),
        "quality_steps": args.quality_steps,
        "masked_token_accuracy": accuracy,
        "unigram_accuracy": unigram,
        "target": TARGET,
        "target_met": target_met,
    }
    run.write(args.out, payload, "cpu")


if __name__ == "__main__":
    main()
