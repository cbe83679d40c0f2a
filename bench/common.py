"""What every benchmark script does around its timing: arguments, images, bookkeeping, output."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sslbook.data import DataUnavailableError, cifar10
from sslbook.device import autocast
from sslbook.provenance import provenance, write_json

QUICK_DIR = Path(tempfile.gettempdir()) / "sslbook-bench-quick"  # --quick never overwrites results


def arguments(doc: str, name: str, rounds: int, steps: int) -> argparse.ArgumentParser:
    """The options every benchmark takes; a script adds its own before :func:`parse`.

    ``--quick`` runs 3 rounds of 1 step and writes under the temporary folder unless ``--out``
    is given: it checks that a script runs and gives sane output, not a timing to publish.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=rounds, help="timed rounds per contender (median reported)"
    )
    parser.add_argument("--steps", type=int, default=steps, help="timed steps per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 step, a smoke test")
    parser.add_argument("--out", default=None, help=f"default bench/results/{name}.json")
    parser.set_defaults(name=name)
    return parser


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 3, 1
    if args.out is None:
        folder = QUICK_DIR if args.quick else Path("bench/results")
        args.out = str(folder / f"{args.name}.json")
    return args


class Run:
    """When a benchmark started and how busy the machine was: timings on a loaded machine
    (other processes on its cores) are slower and noisier, so every result file records it."""

    def __init__(self):
        self.started = time.perf_counter()
        self.load_before = os.getloadavg()[0]
        cores = os.cpu_count() or 1
        if self.load_before > cores / 2:
            print(
                f"warning: load average {self.load_before:.1f} on {cores} cores before the "
                "benchmark; its timings will be noisy",
                file=sys.stderr,
            )

    def describe(self) -> str:
        return (
            f"torch threads {torch.get_num_threads()}, load average before {self.load_before:.1f}"
        )

    def write(self, out: str, payload: dict, device) -> None:
        """Write ``payload`` with the load average before and after and the provenance."""
        payload["load_average"] = [self.load_before, os.getloadavg()[0]]
        payload["provenance"] = provenance(device=device, started=self.started)
        print(f"wrote {write_json(out, payload)}")


def load_images(n: int) -> tuple[torch.Tensor, str]:
    """``n`` CIFAR-10 training images, uint8 (n, 3, 32, 32), and where they came from.

    Read through :func:`sslbook.data.cifar10`, as the book reads them, and repeated when the set
    holds fewer than ``n``; random images where CIFAR-10 is unavailable, since the timings do
    not depend on what the pictures show.
    """
    try:
        data = cifar10("train")
        images, source = data.images, data.source
    except DataUnavailableError:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (min(n, 10_000), 3, 32, 32), dtype=torch.uint8, generator=g)
        source = "random uint8 images (CIFAR-10 unavailable: see sslbook.data.cifar10)"
    if len(images) < n:
        images = images.repeat(-(-n // len(images)), 1, 1, 1)
    return images[:n].contiguous(), source


def batches(data, size: int, shuffle: bool = False):
    """A function returning the next ``size`` items of ``data`` (a tensor or a list), wrapping
    around; with ``shuffle``, in one fixed random order of a tensor's items."""
    order = None
    if shuffle:
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
        order = order.to(data.device)
    position = [0]

    def take():
        i = position[0] = (position[0] + size) % (len(data) - size)
        return data[i : i + size] if order is None else data[order[i : i + size]]

    return take


def training_step(loss_fn, optimizer: torch.optim.Optimizer, device="cpu", amp: bool = False):
    """A step function for :func:`timing.time_alternating`: ``loss_fn()`` (under autocast when
    ``amp``, as ``TrainConfig(amp=True)`` runs it), backward, ``optimizer.step()``."""

    def step() -> None:
        with autocast(device, amp):
            loss = loss_fn()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def to_nhwc(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, 3, H, W) tensor -> (N, H, W, 3) array, the layout PIL images are made from."""
    return np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy())
