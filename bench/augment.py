"""Two-view SimCLR augmentation throughput: sslbook's batched tensors vs torchvision's PIL pipeline.

    python bench/augment.py [--seconds S] [--out bench/results/augment.json]

An "image" is one source image turned into two views. Compared:
(a) ``sslbook.augment.two_views`` on uint8 batches of 512 on the CPU, one thread (per core) and all;
(b) torchvision's per-image PIL pipeline applied twice per image in one process, the work of one
    DataLoader worker (= one core); PIL images are made beforehand and views are not collated,
    both in PIL's favour;
(c) kornia's batched augmentation of the same recipe (``kornia.augmentation``), one thread, when
    kornia is installed (``bench/requirements.txt``): the other library that augments tensors
    in batches;
(d) (a), and (c) if installed, on the GPU when CUDA is available.
The timed runs of (a, one thread) and (b) alternate in short rounds, so load from other processes
on the machine affects both alike. Target: (a) per core >= 5x (b) per core.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from images import load_images  # bench/images.py
from PIL import Image
from torchvision import transforms as T

from sslbook.augment import SimCLRAugment, two_views
from sslbook.provenance import provenance, write_json

TARGET = 5.0  # sslbook images/s per core over the PIL pipeline's
BATCH = 512  # source images per sslbook call (1024 views)


def pil_pipeline() -> T.Compose:
    """SimCLR's CIFAR-10 augmentation as a DataLoader worker applies it, one PIL image at a time."""
    return T.Compose(
        [
            T.RandomResizedCrop(32),
            T.RandomHorizontalFlip(),
            T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
            T.RandomGrayscale(p=0.2),
            T.ToTensor(),
        ]
    )


def kornia_pipeline():
    """The same recipe with kornia's batched augmentations, or None without kornia."""
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    return K.AugmentationSequential(
        K.RandomResizedCrop((32, 32)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    )


class Runner:
    """Accumulates images and seconds of one pipeline over timed rounds."""

    def __init__(self, name: str, device: str, threads: int, step, sync=lambda: None):
        self.name, self.device, self.threads = name, device, threads
        self.step, self.sync = step, sync  # step() augments one batch and returns its size
        self.images, self.seconds = 0, 0.0

    def round(self, seconds: float) -> None:
        torch.set_num_threads(self.threads)
        self.sync()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            self.images += self.step()
        self.sync()
        self.seconds += time.perf_counter() - start

    def row(self) -> dict:
        rate = self.images / self.seconds
        per_core = rate / self.threads if self.device == "cpu" else None
        return {
            "pipeline": self.name,
            "device": self.device,
            "threads": self.threads,
            "images": self.images,
            "seconds": round(self.seconds, 2),
            "images_per_s": round(rate, 1),
            "images_per_s_per_core": None if per_core is None else round(per_core, 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per pipeline")
    parser.add_argument("--out", default="bench/results/augment.json")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    all_threads = torch.get_num_threads()

    images, source = load_images()
    tensors = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32) uint8
    pils = [Image.fromarray(a) for a in images]
    augment, pil = SimCLRAugment(), pil_pipeline()

    def sslbook_step(data: torch.Tensor):
        position = [0]

        def step() -> int:
            i = position[0] = (position[0] + BATCH) % (len(data) - BATCH)
            two_views(data[i : i + BATCH], augment)
            return BATCH

        return step

    pil_position = [0]

    def pil_step() -> int:
        for img in pils[pil_position[0] : pil_position[0] + 64]:
            pil(img), pil(img)
        pil_position[0] = (pil_position[0] + 64) % (len(pils) - 64)
        return 64

    def kornia_step(data: torch.Tensor, kornia_augment):
        position = [0]

        def step() -> int:
            i = position[0] = (position[0] + BATCH) % (len(data) - BATCH)
            batch = data[i : i + BATCH].float().div(255)
            kornia_augment(torch.cat([batch, batch]))  # two views, as two_views makes them
            return BATCH

        return step

    ours_1 = Runner("sslbook two_views (batch 512)", "cpu", 1, sslbook_step(tensors))
    ours_all = Runner("sslbook two_views (batch 512)", "cpu", all_threads, sslbook_step(tensors))
    theirs = Runner("torchvision PIL per image", "cpu", 1, pil_step)
    runners = [ours_1, theirs, ours_all]
    korn = kornia_pipeline()
    if korn is not None:
        runners.append(
            Runner("kornia.augmentation (batch 512)", "cpu", 1, kornia_step(tensors, korn))
        )
    if torch.cuda.is_available():
        on_gpu = tensors.cuda()
        sync = torch.cuda.synchronize
        runners.append(
            Runner("sslbook two_views (batch 512)", "cuda", all_threads, sslbook_step(on_gpu), sync)
        )
        if korn is not None:
            step = kornia_step(on_gpu, korn.cuda())
            runners.append(
                Runner("kornia.augmentation (batch 512)", "cuda", all_threads, step, sync)
            )

    for runner in runners:  # warm up
        runner.round(0.5)
        runner.images, runner.seconds = 0, 0.0
    rounds = max(1, round(args.seconds / 0.5))
    for _ in range(rounds):  # alternate short rounds: shared-machine load hits all alike
        for runner in runners:
            runner.round(args.seconds / rounds)

    rows = [r.row() for r in runners]
    ratio = rows[0]["images_per_s_per_core"] / rows[1]["images_per_s_per_core"]
    kornia_cpu = [r for r in rows if r["pipeline"].startswith("kornia") and r["device"] == "cpu"]
    kornia_ratio = (
        rows[0]["images_per_s_per_core"] / kornia_cpu[0]["images_per_s_per_core"]
        if kornia_cpu
        else None
    )
    payload = {
        "benchmark": "two-view SimCLR augmentation of 32x32 images",
        "data": source,
        "batch_size": BATCH,
        "augment": repr(augment),
        "results": rows,
        "ratio_per_core": round(ratio, 2),
        "target_ratio_per_core": TARGET,
        "target_met": ratio >= TARGET,
        "ratio_per_core_vs_kornia": None if kornia_ratio is None else round(kornia_ratio, 2),
        # other processes on the machine slow batched code (shared caches, OpenMP) most
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "provenance": provenance(device=runners[-1].device, started=started),
    }
    load = payload["load_average_1min"]
    print(f"Data: {source}. An image = one source image -> two 32x32 views.")
    print(f"Load average (1 min) before/after: {load['before']:.1f}/{load['after']:.1f}.\n")
    print("| pipeline | device | threads | images/s | images/s per core |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        per_core = (
            "-" if r["images_per_s_per_core"] is None else f"{r['images_per_s_per_core']:,.0f}"
        )
        print(f"| {r['pipeline']} | {r['device']} | {r['threads']} | {r['images_per_s']:,.0f} "
              f"| {per_core} |")  # fmt: skip
    verdict = "met" if payload["target_met"] else "NOT met"
    print(f"\nsslbook / PIL per core: {ratio:.1f}x (target >= {TARGET:.0f}x: {verdict})")
    if kornia_ratio is not None:
        print(f"sslbook / kornia per core: {kornia_ratio:.1f}x")
    print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
