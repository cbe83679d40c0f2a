"""SimCLR training throughput: sslbook's tensor pipeline vs lightly's documented pipeline.

    python bench/simclr_step.py [--steps N] [--out bench/results/simclr_step.json]

Both train the same network (the cpu profile's backbone + SimCLR's projection head) with the same
batch (256 images, two views each), optimizer (SGD, lr 0.06, momentum 0.9, wd 5e-4) and loss
(NT-Xent, T = 0.5), and differ only in how the views are made and fed:

- sslbook: the dataset lives as one uint8 tensor; ``sslbook.methods.SimCLR`` makes both views of
  a batch with ``sslbook.augment`` and computes ``sslbook.losses.nt_xent_loss``.
- lightly: its SimCLR example for CIFAR-10, ``SimCLRTransform`` (colour strength 0.5, no blur,
  no normalisation, matching sslbook's recipe) applied per PIL image in a ``DataLoader``, and
  ``lightly.loss.NTXentLoss``. Worker counts 0 and 2 are both timed and the faster is kept.

A training "image" is one source image (two views). Target: sslbook >= 1.3x lightly on the CPU.
``--device cuda`` runs both networks (and sslbook's uint8 dataset) on the GPU, with lightly's
DataLoader feeding it from the CPU as in its examples: the setting of a Colab GPU with two cores.

The pipelines are timed with the network computing the same thing. lightly's example calls the
model once per view, so batch norm normalises each view's B images on their own; sslbook's
``SimCLR(joint_batchnorm=False)`` does the same, and that row is the one held to the target. The
default ``SimCLR()`` encodes both views in one pass of 2B images, so that batch norm normalises
over all of them as in the official SimCLR code; on a CPU that pass is slower than two over B
(the activations no longer fit in cache), and its row shows what that choice costs.

Every pipeline is timed in float32 and, where the hardware multiplies bf16 matrices natively (a
GPU, or a CPU with AVX-512 BF16 / AMX, see ``sslbook.device.cpu_has_bf16``), again with its
forward pass and loss under bf16 autocast: ``TrainConfig(amp=True)`` for sslbook, the same
autocast around lightly's model and loss. Both pipelines then do the same arithmetic again, only
faster, so the data pipeline's share of the step grows. The ratio held to the target is the one
in the fastest precision both pipelines can use on the machine (bf16 where it is native).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from images import load_images  # bench/images.py
from PIL import Image
from timing import time_alternating  # bench/timing.py
from torch.utils.data import DataLoader, Dataset

from sslbook.device import autocast, cpu_has_bf16
from sslbook.losses import nt_xent_loss
from sslbook.methods import SimCLR
from sslbook.models import backbone
from sslbook.profiles import profile
from sslbook.provenance import provenance, write_json

TARGET = 1.3
BATCH = 256


DEVICE = torch.device("cpu")  # --device: where the networks (and sslbook's data) live
LIGHTLY = "lightly (SimCLRTransform + DataLoader)"


def precisions() -> list[torch.dtype]:
    """float32, plus bf16 where the device multiplies bf16 matrices natively."""
    native = cpu_has_bf16() if DEVICE.type == "cpu" else torch.cuda.is_bf16_supported()
    return [torch.float32, torch.bfloat16] if native else [torch.float32]


def make_model(seed: int = 0, joint_batchnorm: bool = True) -> tuple[SimCLR, torch.optim.Optimizer]:
    cfg = profile("cpu")
    torch.manual_seed(seed)
    model = SimCLR(backbone(cfg.backbone, cfg.width), joint_batchnorm=joint_batchnorm)
    model.to(DEVICE)
    opt = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    return model, opt


def sslbook_step(images: np.ndarray, joint_batchnorm: bool, dtype: torch.dtype):
    """One training step of sslbook's SimCLR on the next batch of a uint8 tensor dataset.

    As ``sslbook.train.fit`` runs it: augmentation, forward and loss under autocast to ``dtype``.
    """
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(DEVICE)  # uint8
    model, opt = make_model(joint_batchnorm=joint_batchnorm)
    order = torch.randperm(len(data), device=DEVICE)
    position = [0]

    def step() -> None:
        i = position[0] = (position[0] + BATCH) % (len(data) - BATCH)
        with autocast(DEVICE, dtype != torch.float32):
            loss = model(data[order[i : i + BATCH]])["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


class PILImages(Dataset):
    """CIFAR-10 as PIL images through a per-image transform, as torchvision's dataset does."""

    def __init__(self, images: np.ndarray, transform):
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i]))


def lightly_step(images: np.ndarray, workers: int, dtype: torch.dtype):
    """One training step of lightly's documented pipeline on the next DataLoader batch.

    The forward pass and loss run under autocast to ``dtype``, as a Lightning ``Trainer`` with
    ``precision="bf16-mixed"`` would run them.
    """
    from lightly.loss import NTXentLoss
    from lightly.transforms.simclr_transform import SimCLRTransform

    transform = SimCLRTransform(input_size=32, cj_strength=0.5, gaussian_blur=0.0, normalize=None)
    loader = DataLoader(
        PILImages(images, transform),
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=DEVICE.type == "cuda",  # as lightly's examples do on a GPU
    )
    model, opt = make_model()
    criterion = NTXentLoss(temperature=0.5)
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            x0, x1 = next(batches)
        except StopIteration:
            batches = iter(loader)
            x0, x1 = next(batches)
        x0, x1 = x0.to(DEVICE, non_blocking=True), x1.to(DEVICE, non_blocking=True)
        with autocast(DEVICE, dtype != torch.float32):
            z0, z1 = model.project(x0), model.project(x1)
            loss = criterion(z0, z1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per pipeline")
    parser.add_argument("--out", default="bench/results/simclr_step.json")
    parser.add_argument("--device", default="cpu", help="cpu (the target's setting) or cuda")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    images, source = load_images()

    # the two losses agree, so the pipelines train the same objective
    z0, z1 = torch.randn(BATCH, 128), torch.randn(BATCH, 128)
    from lightly.loss import NTXentLoss

    gap = (nt_xent_loss(z0, z1, 0.5) - NTXentLoss(temperature=0.5)(z0, z1)).abs().item()

    # in-process pipelines take turns; DataLoader workers would prefetch during the others' turns,
    # so the pipeline with workers runs afterwards, on its own
    rows, ratios, joint_ratios = [], {}, {}
    for dtype in precisions():
        precision = str(dtype).removeprefix("torch.")
        pipelines = {
            ("sslbook SimCLR(joint_batchnorm=False): one pass per view, as lightly", 0): (
                sslbook_step(images, False, dtype)
            ),
            ("sslbook SimCLR() default: one pass over both views", 0): (
                sslbook_step(images, True, dtype)
            ),
            (LIGHTLY, 0): lightly_step(images, 0, dtype),
        }
        seconds = time_alternating(pipelines, args.steps, DEVICE)
        seconds |= time_alternating(
            {(LIGHTLY, 2): lightly_step(images, 2, dtype)}, args.steps, DEVICE, rounds=1
        )
        block = [
            {
                "pipeline": name,
                "precision": precision,
                "workers": workers,
                "s_per_step": round(s, 3),
                "images_per_s": round(BATCH / s, 1),
            }
            for (name, workers), s in seconds.items()
        ]
        best_lightly = max(r["images_per_s"] for r in block if r["pipeline"] == LIGHTLY)
        ratios[precision] = round(block[0]["images_per_s"] / best_lightly, 2)  # same passes
        joint_ratios[precision] = round(block[1]["images_per_s"] / best_lightly, 2)
        rows += block
    headline = precision  # the last: the fastest precision native to the device
    ratio = ratios[headline]
    fastest = max(r["images_per_s"] for r in rows if r["pipeline"] != LIGHTLY)
    lightly_float32 = max(
        r["images_per_s"] for r in rows if r["pipeline"] == LIGHTLY and r["precision"] == "float32"
    )

    print(
        f"Data: {source}. Batch {BATCH} images (two views each), "
        f"{profile('cpu').backbone} width {profile('cpu').width}, torch threads "
        f"{torch.get_num_threads()}, load average before {load_before:.1f}.\n"
    )
    print("| pipeline | precision | DataLoader workers | s/step | images/s |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['pipeline']} | {r['precision']} | {r['workers']} | {r['s_per_step']} | "
            f"{r['images_per_s']:,} |"
        )
    print()
    for precision in ratios:
        print(
            f"{precision}: sslbook / best lightly, same forward passes {ratios[precision]:.2f}x; "
            f"sslbook's default (one pass over both views) {joint_ratios[precision]:.2f}x"
        )
    met = "met" if ratio >= TARGET else "NOT met"
    print(
        f"held to the target ({headline}): {ratio:.2f}x (target >= {TARGET}x: {met}); "
        f"NT-Xent values differ by {gap:.2e}"
    )
    print(f"sslbook's fastest / lightly's float32 pipeline: {fastest / lightly_float32:.2f}x")
    payload = {
        "benchmark": "SimCLR training step on CPU, sslbook vs lightly",
        "data": source,
        "batch_size": BATCH,
        "rows": rows,
        "ratio": ratio,
        "ratio_joint_batchnorm": joint_ratios[headline],
        "target_precision": headline,
        "ratio_by_precision": ratios,
        "ratio_joint_batchnorm_by_precision": joint_ratios,
        "speedup_over_lightly_float32": round(fastest / lightly_float32, 2),
        "target": TARGET,
        "target_met": ratio >= TARGET,
        "loss_difference": gap,
        "load_average": [load_before, os.getloadavg()[0]],
        "device": str(DEVICE),
        "provenance": provenance(device=DEVICE, started=started),
    }
    print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
