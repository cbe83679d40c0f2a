"""The images the benchmarks run on: real CIFAR-10 when the offline copy is there."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def load_images(n: int = 10_000) -> tuple[np.ndarray, str]:
    """CIFAR-10 training images, uint8 [N, 32, 32, 3]; random ones without the offline copy."""
    path = Path(os.environ.get("SSLBOOK_DATA", "")) / "cifar10" / "cifar10-train-0.npz"
    if os.environ.get("SSLBOOK_DATA") and path.exists():
        return np.load(path)["images"][:n], f"CIFAR-10 ({path.name})"
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    return images, "random uint8 images (no $SSLBOOK_DATA/cifar10/cifar10-train-0.npz)"
