"""MAE training throughput: the encoder on the visible patches only vs on all of them.

    python bench/mae_step.py [--rounds R] [--steps N] [--quick] [--out bench/results/mae_step.json]

Both variants train the same ViT encoder and the same light decoder on the same augmented
images, and differ only in how many patches the networks see:

- MAE: the model's own training step, ``mae(images)["loss"]``: the encoder sees the 16 visible
  patches of 64 (plus [CLS]), the decoder adds the mask tokens and the loss counts the 48 hidden
  patches [He et al. 2022, §3];
- all patches: the encoder sees all 64 patches, the decoder decodes all 64 tokens, and the same
  loss counts every patch. No mask is drawn and nothing is gathered: this is the step a model
  without MAE's asymmetry pays for.

He et al. report a 3x or greater training speed-up from this asymmetry for ViT-L with an
8-block decoder. The ratio here depends on how much of a step the decoder takes, which is
why two encoder sizes are timed: the CPU-profile ViT (4 blocks of width 128) and ViT-Tiny
(12 blocks of width 192), each with its default decoder (2 blocks, half the encoder's width).
The two variants take turns in rounds (``bench/timing.py``); the speed-up divides medians.
"""

from __future__ import annotations

import torch
from common import Run, arguments, load_images, parse, training_step  # bench/common.py
from timing import time_alternating  # bench/timing.py

from sslbook.methods import MAE
from sslbook.models import vit_mini, vit_tiny
from sslbook.results import markdown_table

TARGET = 3.0  # about 3x cheaper per image at a 75 % mask ratio, He et al. 2022, §3
MASK_RATIO = 0.75


def all_patches_loss(mae: MAE, images: torch.Tensor) -> torch.Tensor:
    """MAE's loss with the encoder and decoder on every patch: no masking, no gather.

    Shape:
        images: (N, 3, H, W) uint8; returns a scalar
    """
    imgs = mae.augment(images)  # (N, 3, H, W) float, the same augmentation as mae(images)
    latent = mae.encoder.forward_blocks(mae.encoder.embed(imgs))  # (N, 1 + L, D)
    x = mae.decoder_embed(latent) + mae.decoder_pos_embed  # (N, 1 + L, Dd), no mask tokens
    for block in mae.decoder_blocks:
        x = block(x)
    pred = mae.decoder_pred(mae.decoder_norm(x))[:, 1:]  # (N, L, p*p*3), [CLS] dropped
    every_patch = torch.ones(pred.shape[:2], device=pred.device)  # (N, L): all count
    return mae.forward_loss(imgs, pred, every_patch)


def main() -> None:
    parser = arguments(__doc__, "mae_step", rounds=7, steps=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parse(parser)
    run = Run()
    images, source = load_images(args.batch)  # uint8, augmented anew at every step

    rows = []
    for name, make in (("vit_mini (cpu profile)", vit_mini), ("ViT-Tiny/4", vit_tiny)):
        torch.manual_seed(0)
        mae = MAE(make(patch_size=4), mask_ratio=MASK_RATIO)
        torch.manual_seed(0)
        full = MAE(make(patch_size=4), mask_ratio=MASK_RATIO)  # the same weights, its own copy
        steps = {  # AdamW as MAE's pre-training; the learning rate does not change the time
            "mae": training_step(
                lambda mae=mae: mae(images)["loss"], torch.optim.AdamW(mae.parameters(), lr=1e-4)
            ),
            "all": training_step(
                lambda full=full: all_patches_loss(full, images),
                torch.optim.AdamW(full.parameters(), lr=1e-4),
            ),
        }
        timings = time_alternating(steps, "cpu", args.rounds, args.steps)
        t_mae, t_all = timings["mae"], timings["all"]
        rows.append(
            {
                "encoder": name,
                "decoder_dim": mae.decoder_embed.out_features,
                "mae_images_per_s": round(args.batch / t_mae.median, 1),
                "all_patches_images_per_s": round(args.batch / t_all.median, 1),
                **t_mae.fields("mae_s_per_step"),
                **t_all.fields("all_patches_s_per_step"),
                "speedup": round(t_all.median / t_mae.median, 2),
                "mae_spread": str(t_mae),
                "all_patches_spread": str(t_all),
            }
        )

    print(f"Data: {source}. Batch {args.batch}, mask ratio {MASK_RATIO}, {run.describe()}.\n")
    columns = {
        "encoder": "encoder",
        "decoder_dim": "decoder width",
        "mae_spread": "MAE s/step: median (min-max)",
        "all_patches_spread": "all patches s/step: median (min-max)",
        "mae_images_per_s": "MAE images/s",
        "all_patches_images_per_s": "all patches images/s",
        "speedup": "speed-up, medians",
    }
    print(markdown_table(rows, columns, digits=2))
    payload = {
        "benchmark": "MAE training step on CPU: encoder on visible patches vs on all patches",
        "data": source,
        "batch_size": args.batch,
        "mask_ratio": MASK_RATIO,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "rows": rows,
        "target": TARGET,
        "target_met": {r["encoder"]: r["speedup"] >= TARGET for r in rows},
    }
    run.write(args.out, payload, "cpu")


if __name__ == "__main__":
    main()
