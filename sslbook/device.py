"""Where to compute, how to seed, and which low-precision dtype to use.

Every chapter calls :func:`pick_device` once in its setup cell; nothing else in a notebook
asks which hardware it runs on.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import torch

__all__ = [
    "pick_device",
    "seed_everything",
    "seeded",
    "amp_dtype",
    "autocast",
    "cpu_has_bf16",
    "describe_hardware",
]


def pick_device(preferred: str | None = None) -> torch.device:
    """Return the best available device: CUDA, then Apple's MPS, then the CPU.

    Args:
        preferred: force a device ("cuda", "mps", "cpu"); ``$SSLBOOK_DEVICE`` does the same.
    """
    name = preferred or os.environ.get("SSLBOOK_DEVICE")
    if name:
        if name.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available")
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy (if present) and torch on every device; return a seeded CPU generator."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # pragma: no cover - numpy ships with torch in practice
        pass
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Within the block torch's global RNG draws exactly what it would after
    ``torch.manual_seed(seed)`` (on the CPU and every CUDA device); afterwards the caller's RNG
    state is back, as if the block had drawn nothing.

    So a function can build its model from a fixed seed without reseeding its caller::

        with seeded(seed):
            model = ConvAutoencoder(width, bottleneck)  # the same weights for the same seed
    """
    with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
        torch.manual_seed(seed)
        yield


def cpu_has_bf16() -> bool:
    """True where the CPU multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX, as on Intel
    Xeons since Cooper Lake / Sapphire Rapids); elsewhere bf16 autocast on the CPU is emulated."""
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_avx512_bf16_supported() or cpu._is_amx_tile_supported())
    except AttributeError:  # an older torch without the probes: assume no
        return False


def amp_dtype(device: torch.device | str, enabled: bool | None = None) -> torch.dtype | None:
    """The autocast dtype :func:`sslbook.train.fit` uses on ``device``, or None for float32.

    Args:
        enabled: None (the default of ``TrainConfig.amp``): bf16 on CUDA GPUs that support it,
            else fp16; fp16 on MPS; None on the CPU, so that a CPU run computes in float32 on
            every processor alike. True: the same on GPUs, and bf16 on the CPU too. Where
            :func:`cpu_has_bf16`, that makes a CNN's step about twice as fast, but small
            Transformers slower (casts cost more than their small matrix products save);
            ``bench/precision.py`` measures each model. False: None everywhere.

    fp16 needs a gradient scaler (``torch.amp.GradScaler``); bf16 does not.
    """
    device = torch.device(device)
    if enabled is False:
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    if device.type == "cpu" and enabled:
        return torch.bfloat16
    return None


def autocast(device: torch.device | str, enabled: bool | None = None):
    """A ``torch.autocast`` context for ``device`` with :func:`amp_dtype`, or a no-op."""
    device = torch.device(device)
    dtype = amp_dtype(device, enabled)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def describe_hardware(device: torch.device | str | None = None) -> dict:
    """A small JSON-able description of the machine, for result provenance."""
    import platform

    device = torch.device(device) if device is not None else pick_device()
    info = {
        "device": device.type,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_count"] = torch.cuda.device_count()
    return info
