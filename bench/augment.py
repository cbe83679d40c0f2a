"""Two-view SimCLR augmentation throughput: sslbook's batched tensors vs torchvision's PIL pipeline.

    python bench/augment.py [--rounds R] [--steps N] [--quick] [--out bench/results/augment.json]

An "image" is one source image turned into two views. Compared:
(a) ``sslbook.augment.two_views`` on uint8 batches of 512 on the CPU, one thread (per core) and all;
(b) torchvision's per-image PIL pipeline applied twice per image in one process, the work of one
    DataLoader worker (= one core); PIL images are made beforehand and views are not collated,
    both in PIL's favour;
(c) kornia's batched augmentation of the same recipe (``kornia.augmentation``), one thread, when
    kornia is installed (``bench/requirements.txt``): the other library that augments tensors
    in batches;
(d) (a), and (c) if installed, on the GPU when CUDA is available.
All pipelines take turns in rounds (``bench/timing.py``), so load from other processes on the
machine affects them alike; each row reports the median round and the range of the rounds.
Target: (a) per core >= 5x (b) per core, medians.
"""

from __future__ import annotations

import torch
from common import Run, arguments, batches, load_images, parse, to_nhwc  # bench/common.py
from PIL import Image
from timing import time_alternating  # bench/timing.py
from torchvision import transforms as T

from sslbook.augment import SimCLRAugment, two_views
from sslbook.results import markdown_table

TARGET = 5.0  # sslbook images/s per core over the PIL pipeline's
BATCH = 512  # source images per sslbook (and kornia) step: 1024 views
PIL_BATCH = 64  # source images per PIL step, about as long as one sslbook step on one core
SSLBOOK, PIL, KORNIA = "sslbook two_views", "torchvision PIL per image", "kornia.augmentation"


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


def main() -> None:
    args = parse(arguments(__doc__, "augment", rounds=9, steps=20))
    run = Run()
    all_threads = torch.get_num_threads()
    images, source = load_images(10_000)
    pils = [Image.fromarray(a) for a in to_nhwc(images)]
    augment, pil, korn = SimCLRAugment(), pil_pipeline(), kornia_pipeline()

    def sslbook_step(data: torch.Tensor):
        take = batches(data, BATCH)
        return lambda: two_views(take(), augment)

    def pil_step():
        take = batches(pils, PIL_BATCH)
        return lambda: [(pil(img), pil(img)) for img in take()]

    def kornia_step(data: torch.Tensor, kornia_augment):
        take = batches(data, BATCH)

        def step() -> None:
            batch = take().float().div(255)
            kornia_augment(torch.cat([batch, batch]))  # two views, as two_views makes them

        return step

    # (pipeline, device, threads) -> step function; the first two make the target's ratio
    steps = {
        (SSLBOOK, "cpu", 1): sslbook_step(images),
        (PIL, "cpu", 1): pil_step(),
        (SSLBOOK, "cpu", all_threads): sslbook_step(images),
    }
    if korn is not None:
        steps[(KORNIA, "cpu", 1)] = kornia_step(images, korn)
    if torch.cuda.is_available():
        on_gpu = images.cuda()
        steps[(SSLBOOK, "cuda", all_threads)] = sslbook_step(on_gpu)
        if korn is not None:
            steps[(KORNIA, "cuda", all_threads)] = kornia_step(on_gpu, korn.cuda())
    before = {key: (lambda n=key[2]: torch.set_num_threads(n)) for key in steps}
    # the CPU clock stops only after the GPU finished: time_alternating syncs on "cuda"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    timings = time_alternating(steps, device, args.rounds, args.steps, before=before)
    torch.set_num_threads(all_threads)

    rows = []
    for (name, on, threads), timing in timings.items():
        per_step = PIL_BATCH if name == PIL else BATCH
        rate = per_step / timing.median
        rows.append(
            {
                "pipeline": f"{name} (batch {per_step})" if name != PIL else name,
                "device": on,
                "threads": threads,
                "images_per_step": per_step,
                **timing.fields("s_per_step"),
                "images_per_s": round(rate, 1),
                "images_per_s_per_core": round(rate / threads, 1) if on == "cpu" else None,
                "spread": str(timing),
            }
        )
    ratio = rows[0]["images_per_s_per_core"] / rows[1]["images_per_s_per_core"]
    kornia_cpu = [r for r in rows if r["pipeline"].startswith(KORNIA) and r["device"] == "cpu"]
    kornia_ratio = (
        rows[0]["images_per_s_per_core"] / kornia_cpu[0]["images_per_s_per_core"]
        if kornia_cpu
        else None
    )
    print(f"Data: {source}. An image = one source image -> two 32x32 views. {run.describe()}.\n")
    columns = {
        "pipeline": "pipeline",
        "device": "device",
        "threads": "threads",
        "spread": "s/step: median (min-max)",
        "images_per_s": "images/s",
        "images_per_s_per_core": "images/s per core",
    }
    print(markdown_table([r | {"images_per_s_per_core": r["images_per_s_per_core"] or "-"}
                          for r in rows], columns, digits=0))  # fmt: skip
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"\nsslbook / PIL per core, medians: {ratio:.1f}x (target >= {TARGET:.0f}x: {verdict})")
    if kornia_ratio is not None:
        print(f"sslbook / kornia per core, medians: {kornia_ratio:.1f}x")
    payload = {
        "benchmark": "two-view SimCLR augmentation of 32x32 images",
        "data": source,
        "batch_size": BATCH,
        "augment": repr(augment),
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "results": rows,
        "ratio_per_core": round(ratio, 2),
        "target_ratio_per_core": TARGET,
        "target_met": ratio >= TARGET,
        "ratio_per_core_vs_kornia": None if kornia_ratio is None else round(kornia_ratio, 2),
    }
    run.write(args.out, payload, device)


if __name__ == "__main__":
    main()
