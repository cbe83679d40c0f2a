"""Timing shared by the benchmarks that compare pipelines step by step."""

from __future__ import annotations

import time

import torch


def time_alternating(
    steps: dict, total: int, device: torch.device, rounds: int = 4, warmup: int = 2
) -> dict:
    """Seconds per step of each step function in ``steps`` (name -> function).

    After ``warmup`` untimed steps each, the functions take turns in ``rounds`` rounds of
    ``total / rounds`` timed steps, so that a slow spell of the machine hits all of them alike.
    On CUDA each round waits for its kernels to finish before the clock stops.
    """
    for step in steps.values():
        for _ in range(warmup):
            step()
    seconds = dict.fromkeys(steps, 0.0)
    per_round = max(1, total // rounds)
    for _ in range(rounds):
        for name, step in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(per_round):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[name] += time.perf_counter() - start
    return {name: t / (per_round * rounds) for name, t in seconds.items()}
