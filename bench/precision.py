"""What mixed precision buys each of the book's models: one training step in float32 and under
autocast, on the same device.

    python bench/precision.py [--rounds R] [--steps N] [--quick] [--device cpu|cuda]
                              [--out bench/results/precision.json]

``TrainConfig(amp=...)`` (``python -m sslbook.run ... --amp``) autocasts the forward pass and
loss to bf16 (fp16 on GPUs without bf16). Whether that pays depends on the hardware and on the
model: the saving is in the large matrix products and convolutions, the cost is in casting
activations and weights back and forth. This bench times one training step of each model the
experiments train, at the profile of the device (``cpu`` on a CPU, ``full`` on CUDA), in both
precisions, in alternating rounds (``bench/timing.py``) so that a slow spell of the machine hits
both alike; each reports the median round with the range of the rounds:

- SimCLR: the profile's CNN backbone and projection head, two augmented views per image, SGD;
- MAE: the profile's ViT encoder on the 25 % visible patches and its light decoder, AdamW;
- masked LM: the profile's Transformer on Tiny Shakespeare word windows (BERT's 15 % masking),
  AdamW.

The ratio is float32 seconds per step over mixed-precision seconds per step, medians: above 1,
autocast trains faster. On a CPU, bf16 is native only with AVX-512 BF16 or AMX
(``sslbook.device.cpu_has_bf16``, recorded in the result); elsewhere it is emulated.
"""

from __future__ import annotations

import torch
from common import Run, arguments, load_images, parse, training_step  # bench/common.py
from timing import time_alternating  # bench/timing.py

from sslbook.data import to_float
from sslbook.device import amp_dtype, cpu_has_bf16
from sslbook.experiments import mlm
from sslbook.experiments.pretrain import build_method, pretrain_config
from sslbook.experiments.reconstruction import mae_config, mae_encoder
from sslbook.methods import MAE
from sslbook.methods.mlm import MaskedLanguageModel, mlm_loss
from sslbook.profiles import profile
from sslbook.results import markdown_table
from sslbook.train import make_optimizer


def make_step(model: torch.nn.Module, loss_fn, batches, optimizer, device, dtype):
    """A training step function: next batch, forward and loss under autocast to ``dtype``."""
    model.train()
    position = [0]

    def loss() -> torch.Tensor:
        position[0] += 1
        return loss_fn(model, batches[position[0] % len(batches)])["loss"]

    return training_step(loss, optimizer, device, amp=dtype != torch.float32)


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
    parser = arguments(__doc__, "precision", rounds=7, steps=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parse(parser)
    device = torch.device(args.device)
    run = Run()
    cfg = profile("full" if device.type == "cuda" else "cpu")
    low = amp_dtype(device, True)
    batches = args.steps * args.rounds + 2  # the timed steps and the warmup ones
    images, source = load_images(max(cfg.batch_size, cfg.mae_batch_size) * batches)
    images = images.to(device)

    rows = []
    for name, factory in models(cfg, device, images, batches):
        step_fns = {}
        for dtype in (torch.float32, low):
            model, loss_fn, model_batches, opt = factory()
            step_fns[dtype] = make_step(model, loss_fn, model_batches, opt, device, dtype)
        timings = time_alternating(step_fns, device, args.rounds, args.steps)
        full, mixed = timings[torch.float32], timings[low]
        rows.append(
            {
                "model": name,
                **full.fields("float32_s_per_step"),
                **mixed.fields("amp_s_per_step"),
                "ratio": round(full.median / mixed.median, 2),
                "float32_spread": str(full),
                "amp_spread": str(mixed),
            }
        )
        print(f"{name}: {rows[-1]['ratio']}x", flush=True)

    precision = str(low).removeprefix("torch.")
    native = cpu_has_bf16() if device.type == "cpu" else True
    print(
        f"\n{device.type}, autocast to {precision} "
        f"({'native' if native else 'emulated'}), {run.describe()}.\n"
    )
    columns = {
        "model": "model",
        "float32_spread": "float32 s/step: median (min-max)",
        "amp_spread": f"{precision} s/step: median (min-max)",
        "ratio": f"float32 / {precision}, medians",
    }
    print(markdown_table(rows, columns, digits=2))
    payload = {
        "benchmark": "one training step per model, float32 vs mixed precision",
        "data": source,
        "device": device.type,
        "profile": cfg.name,
        "amp_dtype": precision,
        "native_low_precision": native,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "rows": rows,
    }
    run.write(args.out, payload, device)


if __name__ == "__main__":
    main()
