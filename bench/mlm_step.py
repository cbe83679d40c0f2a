"""Masked-LM training throughput: sslbook vs Hugging Face transformers, same model size.

    python bench/mlm_step.py [--steps N] [--quality-steps N] [--out bench/results/mlm_step.json]

Both train a BERT-style encoder of the CPU profile's size (2 blocks, width 128, 4 heads, MLP
512, the Tiny Shakespeare word vocabulary, sequences of 32 tokens, batch 16) with AdamW at
lr 1e-3 on the same windows of the training split:

- sslbook: ``MaskedLanguageModel(TextTransformer(...))`` with ``sslbook.text.bert_mask`` drawn
  per batch, the output head run at the selected positions only;
- transformers: ``BertForMaskedLM`` with ``DataCollatorForLanguageModeling`` (its documented
  masked-LM pipeline: 15 % Bernoulli selection, 80/10/10), logits at every position and the
  loss over the selected ones. Its tokenizer wraps the same word vocabulary.

Throughput is training tokens per second over timed steps. Quality: both are trained for
``--quality-steps`` steps and scored with one fixed BERT masking of the validation split.
Target: sslbook >= 1.0x in tokens/s, and masked-token accuracy no worse.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from sslbook.experiments import mlm
from sslbook.methods.mlm import MaskedLanguageModel
from sslbook.models import TextTransformer, count_parameters
from sslbook.profiles import profile
from sslbook.provenance import provenance, write_json
from sslbook.text import IGNORE_INDEX, PAD_ID, SPECIAL_TOKENS

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


def train(step_fn, params, ids: torch.Tensor, steps: int, warmup: int = 0) -> float:
    """Run ``warmup`` + ``steps`` steps over shuffled windows; seconds per timed step."""
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))
    start = None
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        j = (i * BATCH) % (len(ids) - BATCH)
        loss = step_fn(ids[order[j : j + BATCH]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - start) / max(steps, 1)


@torch.no_grad()
def hf_scores(model, ids: torch.Tensor) -> float:
    """Masked-token accuracy of the HF model, same fixed masks as mlm.masked_token_scores."""
    inputs, labels = mlm._fixed_masks(ids, model.config.vocab_size)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per pipeline")
    parser.add_argument("--quality-steps", type=int, default=1500)
    parser.add_argument("--out", default="bench/results/mlm_step.json")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
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

    t_ours = train(ours_step, ours.parameters(), data.train_ids, args.steps, warmup=3)
    t_hf = train(hf_step, hf.parameters(), data.train_ids, args.steps, warmup=3)
    speed = {"sslbook": tokens_per_step / t_ours, "transformers": tokens_per_step / t_hf}

    # quality at equal steps, from fresh models
    ours, (hf, collator) = sslbook_model(data, cfg), hf_model_and_collator(data, cfg)
    train(ours_step, ours.parameters(), data.train_ids, args.quality_steps)
    train(hf_step, hf.parameters(), data.train_ids, args.quality_steps)
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
        f"{data.tokenizer.vocab_size}, {BATCH} x {cfg.text_seq_len} tokens per step, torch "
        f"threads {torch.get_num_threads()}, load average before {load_before:.1f}.\n"
    )
    print("| pipeline | parameters | training tokens/s | masked-token accuracy |")
    print("|---|---:|---:|---:|")
    for name in speed:
        print(
            f"| {name} | {sizes[name]:,} | {speed[name]:,.0f} | "
            f"{accuracy[name]:.3f} (after {args.quality_steps} steps) |"
        )
    target_met = ratio >= TARGET and accuracy["sslbook"] >= accuracy["transformers"]
    met = "met" if target_met else "NOT met"
    print(
        f"\nsslbook / transformers: {ratio:.2f}x tokens/s; unigram accuracy {unigram:.3f} "
        f"(target >= {TARGET}x and accuracy no worse: {met})"
    )
    payload = {
        "benchmark": "masked-LM training step on CPU, sslbook vs transformers BertForMaskedLM",
        "batch": [BATCH, cfg.text_seq_len],
        "model": {"blocks": cfg.text_depth, "width": cfg.text_dim, "heads": 4},
        "vocabulary": data.tokenizer.vocab_size,
        "parameters": sizes,
        "tokens_per_s": {k: round(v, 1) for k, v in speed.items()},
        "ratio": round(ratio, 2),
        "quality_steps": args.quality_steps,
        "masked_token_accuracy": accuracy,
        "unigram_accuracy": unigram,
        "target": TARGET,
        "target_met": target_met,
        "load_average": [load_before, os.getloadavg()[0]],
        "provenance": provenance(device="cpu", started=started),
    }
    print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
