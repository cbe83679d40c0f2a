"""Timing shared by the benchmarks: contenders take turns, and every result keeps its spread."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    """Seconds per step of one contender, one value per timed round.

    A ratio of two contenders divides their medians: one slow round (another process woke up)
    moves a median little and a mean a lot. ``min`` and ``max`` show how far the rounds spread.
    """

    rounds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def min(self) -> float:
        return min(self.rounds)

    @property
    def max(self) -> float:
        return max(self.rounds)

    def fields(self, key: str = "s_per_step", digits: int = 4) -> dict:
        """``{key: median, key_min: min, key_max: max}`` to ``digits`` significant digits, for a
        result file's row (a GPU step of a few milliseconds keeps its digits too)."""
        return {
            key: float(f"{self.median:.{digits}g}"),
            f"{key}_min": float(f"{self.min:.{digits}g}"),
            f"{key}_max": float(f"{self.max:.{digits}g}"),
        }

    def __str__(self) -> str:
        """The median with the range of the rounds: ``0.123 (0.120-0.131)``."""
        return f"{self.median:.4g} ({self.min:.4g}-{self.max:.4g})"


def time_alternating(
    contenders: dict,
    device: torch.device | str,
    rounds: int = 7,
    steps_per_round: int = 2,
    warmup: int = 2,
    before: dict | None = None,
) -> dict[object, Timing]:
    """Seconds per step of each step function in ``contenders`` (name -> function).

    After ``warmup`` untimed steps each, the functions take turns for ``rounds`` rounds of
    ``steps_per_round`` timed steps, so that a slow spell of the machine hits all of them alike;
    the order rotates from round to round, so that no contender always runs right after the same
    other one. ``before`` (name -> function) runs before each of that contender's rounds, outside
    the clock: setting its thread count, say. On CUDA each round waits for its kernels to finish
    before the clock stops.
    """
    device = torch.device(device)
    before = before or {}
    names = list(contenders)

    def run(name, steps: int) -> float:
        before.get(name, lambda: None)()
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            contenders[name]()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for name in names:
        run(name, warmup)
    seconds: dict = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds[name].append(run(name, steps_per_round) / steps_per_round)
    return {name: Timing(s) for name, s in seconds.items()}
