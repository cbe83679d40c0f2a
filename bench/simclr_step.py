"""SimCLR training throughput: sslbook's tensor pipeline vs lightly's documented pipeline.

    python bench/simclr_step.py [--rounds R] [--steps N] [--quick] [--device cpu|cuda]
                                [--out bench/results/simclr_step.json]

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
faster, so the data pipeline's share of the step grows. The ratio held to the target is the
float32 one, the precision every machine runs and ``fit``'s default on a CPU; the bf16 ratio is
reported beside it, for information.

The in-process pipelines take turns in rounds (``bench/timing.py``); every row reports the
median round with the range of the rounds, and the ratios divide medians.
"""

from __future__ import annotations

import numpy as np
import torch
from common import (
    Run,
    arguments,
    batches,
    load_images,
    parse,
    to_nhwc,
    training_step,
)  # bench/common.py
from PIL import Image
from timing import time_alternating  # bench/timing.py
from torch.utils.data import DataLoader, Dataset

from sslbook.device import cpu_has_bf16
from sslbook.losses import nt_xent_loss
from sslbook.methods import SimCLR
from sslbook.models import backbone
from sslbook.profiles import profile
from sslbook.results import markdown_table

TARGET = 1.3  # sslbook / lightly images/s, float32 medians, same forward passes
BATCH = 256
HEADLINE = "float32"  # the precision held to the target; bf16 is reported beside it

DEVICE = torch.device("cpu")  # --device: where the networks (and sslbook's data) live
LIGHTLY = "lightly (SimCLRTransform + DataLoader)"
SAME_PASSES = "sslbook SimCLR(joint_batchnorm=False): one pass per view, as lightly"
JOINT = "sslbook SimCLR() default: one pass over both views"


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


def sslbook_step(images: torch.Tensor, joint_batchnorm: bool, dtype: torch.dtype):
    """One training step of sslbook's SimCLR on the next batch of a uint8 tensor dataset.

    As ``sslbook.train.fit`` runs it: augmentation, forward and loss under autocast to ``dtype``.
    """
    take = batches(images.to(DEVICE), BATCH, shuffle=True)  # uint8, resident on the device
    model, opt = make_model(joint_batchnorm=joint_batchnorm)
    return training_step(lambda: model(take())["loss"], opt, DEVICE, dtype != torch.float32)


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
    views = iter(loader)

    def loss() -> torch.Tensor:
        nonlocal views
        try:
            x0, x1 = next(views)
        except StopIteration:
            views = iter(loader)
            x0, x1 = next(views)
        x0, x1 = x0.to(DEVICE, non_blocking=True), x1.to(DEVICE, non_blocking=True)
        return criterion(model.project(x0), model.project(x1))

    # the DataLoader and the copy to the device run under autocast too, where they cast nothing
    return training_step(loss, opt, DEVICE, dtype != torch.float32)


def main() -> None:
    parser = arguments(__doc__, "simclr_step", rounds=7, steps=2)
    parser.add_argument("--device", default="cpu", help="cpu (the target's setting) or cuda")
    args = parse(parser)
    global DEVICE
    DEVICE = torch.device(args.device)
    run = Run()
    images, source = load_images(10_000)
    pixels = to_nhwc(images)  # what lightly's PIL images are made from

    # the two losses agree, so the pipelines train the same objective
    z0, z1 = torch.randn(BATCH, 128), torch.randn(BATCH, 128)
    from lightly.loss import NTXentLoss

    gap = (nt_xent_loss(z0, z1, 0.5) - NTXentLoss(temperature=0.5)(z0, z1)).abs().item()

    # in-process pipelines take turns; DataLoader workers would prefetch during the others' turns,
    # so the pipeline with workers takes its rounds afterwards, on its own
    rows, ratios, joint_ratios = [], {}, {}
    for dtype in precisions():
        precision = str(dtype).removeprefix("torch.")
        pipelines = {
            (SAME_PASSES, 0): sslbook_step(images, False, dtype),
            (JOINT, 0): sslbook_step(images, True, dtype),
            (LIGHTLY, 0): lightly_step(pixels, 0, dtype),
        }
        timings = time_alternating(pipelines, DEVICE, args.rounds, args.steps)
        alone = {(LIGHTLY, 2): lightly_step(pixels, 2, dtype)}
        timings |= time_alternating(alone, DEVICE, args.rounds, args.steps)
        for (name, workers), timing in timings.items():
            rows.append(
                {
                    "pipeline": name,
                    "precision": precision,
                    "workers": workers,
                    **timing.fields("s_per_step"),
                    "images_per_s": round(BATCH / timing.median, 1),
                    "spread": str(timing),
                }
            )
        lightly = min(t.median for (name, _), t in timings.items() if name == LIGHTLY)
        ratios[precision] = round(lightly / timings[(SAME_PASSES, 0)].median, 2)
        joint_ratios[precision] = round(lightly / timings[(JOINT, 0)].median, 2)
    ratio = ratios[HEADLINE]
    fastest = max(r["images_per_s"] for r in rows if r["pipeline"] != LIGHTLY)
    lightly_float32 = max(
        r["images_per_s"] for r in rows if r["pipeline"] == LIGHTLY and r["precision"] == HEADLINE
    )

    cfg = profile("cpu")
    print(
        f"Data: {source}. Batch {BATCH} images (two views each), {cfg.backbone} width "
        f"{cfg.width}, {run.describe()}.\n"
    )
    columns = {
        "pipeline": "pipeline",
        "precision": "precision",
        "workers": "DataLoader workers",
        "spread": "s/step: median (min-max)",
        "images_per_s": "images/s",
    }
    print(markdown_table(rows, columns, digits=1))
    print()
    for precision in ratios:
        role = "held to the target" if precision == HEADLINE else "for information"
        print(
            f"{precision} ({role}): sslbook / best lightly, same forward passes "
            f"{ratios[precision]:.2f}x; sslbook's default (one pass over both views) "
            f"{joint_ratios[precision]:.2f}x"
        )
    met = "met" if ratio >= TARGET else "NOT met"
    print(
        f"held to the target ({HEADLINE}, medians): {ratio:.2f}x (target >= {TARGET}x: {met}); "
        f"NT-Xent values differ by {gap:.2e}"
    )
    print(f"sslbook's fastest / lightly's float32 pipeline: {fastest / lightly_float32:.2f}x")
    payload = {
        "benchmark": f"SimCLR training step on {DEVICE.type}, sslbook vs lightly",
        "data": source,
        "batch_size": BATCH,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "rows": rows,
        "ratio": ratio,
        "ratio_joint_batchnorm": joint_ratios[HEADLINE],
        "target_precision": HEADLINE,
        "ratio_by_precision": ratios,
        "ratio_joint_batchnorm_by_precision": joint_ratios,
        "speedup_over_lightly_float32": round(fastest / lightly_float32, 2),
        "target": TARGET,
        "target_met": ratio >= TARGET,
        "loss_difference": gap,
        "device": str(DEVICE),
    }
    run.write(args.out, payload, DEVICE)


if __name__ == "__main__":
    main()
