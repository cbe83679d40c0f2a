"""What mixed precision buys each of the book's models: one training step in float32 and under
autocast, on the same device.

    python bench/precision.py [--steps N] [--device cpu|cuda] [--out bench/results/precision.json]

``TrainConfig(amp=...)`` (``python -m sslbook.run ... --amp``) autocasts the forward pass and
loss to bf16 (fp16 on GPUs without bf16). Whether that pays depends on the hardware and on the
model: the saving is in the large matrix products and convolutions, the cost is in casting
activations and weights back and forth. This bench times one training step of each model the
experiments train, at the profile of the device (``cpu`` on a CPU, ``full`` on CUDA), in both
precisions, in alternating rounds so that a slow spell of the machine hits both alike:

- SimCLR: the profile's CNN backbone and projection head, two augmented views per image, SGD;
- MAE: the profile's ViT encoder on the 25 % visible patches and its light decoder, AdamW;
- masked LM: the profile's Transformer on Tiny Shakespeare word windows (BERT's 15 % masking),
  AdamW.

The ratio is float32 seconds per step over mixed-precision seconds per step: above 1, autocast
trains faster. On a CPU, bf16 is native only with AVX-512 BF16 or AMX
(``sslbook.device.cpu_has_bf16``, recorded in the result); elsewhere it is emulated.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from images import load_images  # bench/images.py
from timing import time_alternating  # bench/timing.py

from sslbook.data import to_float
from sslbook.device import amp_dtype, autocast, cpu_has_bf16
from sslbook.experiments import mlm
from sslbook.experiments.pretrain import build_method, pretrain_config
from sslbook.experiments.reconstruction import mae_config, mae_encoder
from sslbook.methods import MAE
from sslbook.methods.mlm import MaskedLanguageModel, mlm_loss
from sslbook.profiles import profile
from sslbook.provenance import provenance, write_json
from sslbook.train import make_optimizer


def make_step(model: torch.nn.Module, loss_fn, batches, optimizer, device, dtype):
    """A training step function: next batch, forward and loss under autocast to ``dtype``."""
    model.train()
    position = [0]

    def step() -> None:
        batch = batches[position[0] % len(batches)]
        position[0] += 1
        with autocast(device, dtype != torch.float32):
            loss = loss_fn(model, batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def models(cfg, device, images: torch.Tensor, steps: int):
    """(name, factory) per model; a factory returns (model, loss_fn, batches, optimizer).

    Each model gets the optimizer of its experiment (``make_optimizer`` on the experiment's
    config), on ``device``.
    """

    def simclr():
        torch.manual_seed(0)
        method = build_method("simclr", cfg).to(device)
        opt = make_optimizer(method, pretrain_config(cfg))
        batches = [images[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(steps)]
        return method, lambda m, b: m(b), batches, opt

    def mae():
        torch.manual_seed(0)
        method = MAE(mae_encoder(cfg), mask_ratio=0.75).to(device)
        opt = make_optimizer(method, mae_config(cfg))
        n = cfg.mae_batch_size
        batches = [to_float(images[i * n : (i + 1) * n]) for i in range(steps)]
        return method, lambda m, b: m(b), batches, opt

    def masked_lm():
        torch.manual_seed(0)
        data = mlm.load_text(cfg)
        vocab = data.tokenizer.vocab_size
        model = MaskedLanguageModel(mlm.build_encoder("transformer", vocab, cfg), vocab).to(device)
        opt = make_optimizer(model, mlm.mlm_config(cfg))
        n = cfg.text_batch_size
        ids = data.train_ids.to(device)
        batches = [(ids[i * n : (i + 1) * n],) for i in range(steps)]
        return model, mlm_loss, batches, opt

    return [
        (f"SimCLR, {cfg.backbone} (width {cfg.width}), batch {cfg.batch_size}", simclr),
        (f"MAE, {cfg.vit}, batch {cfg.mae_batch_size}", mae),
        (
            f"masked LM, Transformer {cfg.text_depth}x{cfg.text_dim}, "
            f"batch {cfg.text_batch_size}x{cfg.text_seq_len}",
            masked_lm,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=9, help="timed steps per precision")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default="bench/results/precision.json")
    args = parser.parse_args()
    device = torch.device(args.device)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    cfg = profile("full" if device.type == "cuda" else "cpu")
    low = amp_dtype(device, True)
    n = max(cfg.batch_size, cfg.mae_batch_size) * args.steps
    raw, source = load_images(n)
    images = torch.from_numpy(raw).permute(0, 3, 1, 2).contiguous().to(device)
    if len(images) < n:  # fewer offline images than steps x batch: reuse them
        images = images.repeat(-(-n // len(images)), 1, 1, 1)[:n]

    rows = []
    for name, factory in models(cfg, device, images, args.steps):
        step_fns = {}
        for dtype in (torch.float32, low):
            model, loss_fn, batches, opt = factory()
            step_fns[dtype] = make_step(model, loss_fn, batches, opt, device, dtype)
        seconds = time_alternating(step_fns, args.steps, device, rounds=3)
        rows.append(
            {
                "model": name,
                "float32_s_per_step": round(seconds[torch.float32], 4),
                "amp_s_per_step": round(seconds[low], 4),
                "ratio": round(seconds[torch.float32] / seconds[low], 2),
            }
        )
        print(f"{name}: {rows[-1]['ratio']}x", flush=True)

    precision = str(low).removeprefix("torch.")
    native = cpu_has_bf16() if device.type == "cpu" else True
    print(
        f"\n{device.type}, torch threads {torch.get_num_threads()}, autocast to {precision} "
        f"({'native' if native else 'emulated'}), load average before {load_before:.1f}.\n"
    )
    print(f"| model | float32 s/step | {precision} s/step | float32 / {precision} |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['float32_s_per_step']} | {r['amp_s_per_step']} | {r['ratio']}x |"
        )
    payload = {
        "benchmark": "one training step per model, float32 vs mixed precision",
        "data": source,
        "device": device.type,
        "profile": cfg.name,
        "amp_dtype": precision,
        "native_low_precision": native,
        "rows": rows,
        "load_average": [load_before, os.getloadavg()[0]],
        "provenance": provenance(device=device, started=started),
    }
    print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
