"""How much arithmetic a training step does, and how much of the GPU's peak that uses.

Model FLOPs utilisation (MFU; PaLM, Chowdhery et al. 2022, arXiv:2204.02311, App. B) is the
model FLOPs a run performs per second divided by the hardware's dense peak:

    mfu = flops_per_image * images_per_s / peak_flops

"Model FLOPs" are those of the forward and backward pass as the model defines them, counted by
``torch.utils.flop_counter.FlopCounterMode``: matrix multiplications, convolutions and attention.
Elementwise work, normalisation and the augmentation are left out, as is usual for MFU, so a
small CNN whose time goes into those reaches a low MFU however well the loop is written.

    flops = method_flops_per_image(method, images[:4])
    history = fit(method, images, config, flops_per_sample=flops)  # records tflops, mfu
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .modules import train_mode

__all__ = [
    "training_flops",
    "training_flops_per_image",
    "method_flops_per_image",
    "peak_flops",
    "mfu",
]

# Dense (no 2:4 sparsity) 16-bit tensor-core peaks in FLOP/s, from NVIDIA's datasheets: A100
# Tensor Core GPU (SXM and PCIe), H100 Tensor Core GPU (SXM, PCIe), H200 Tensor Core GPU, L4,
# T4, A10 (the A10G is AWS's variant of the A10) and V100. The datasheets quote the sparse
# figure with an asterisk; these are half of it. Patterns match torch.cuda.get_device_name, e.g.
# "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3" (the SXM part), "Tesla T4".
# Columns: (pattern, fp16 peak, bf16 peak or None where the chip has no bf16 tensor cores).
PEAK_FLOPS = (
    (r"\bH100\b.*\bPCIe\b", 756e12, 756e12),
    (r"\bH100\b.*\b(SXM|HBM3)\b", 989e12, 989e12),  # not the H100 NVL (a lower peak)
    (r"\bH200\b(?!.*\bNVL\b)", 989e12, 989e12),
    (r"\bA100\b", 312e12, 312e12),
    (r"\bL4\b", 121e12, 121e12),  # \b: not the L40 / L40S
    (r"\bA10G\b", 125e12, 125e12),
    (r"\bT4\b", 65e12, None),
    (r"\bV100\b", 125e12, None),
)


def training_flops(fn: Callable, *args) -> int:
    """FLOPs of ``fn(*args)`` plus the backward of the loss it returns (a scalar or ``{"loss"}``).

    A linear layer ``(B, I) -> (B, O)`` costs ``2*B*I*O`` forward and twice that backward (one
    matmul for the input's gradient, one for the weight's), ``6*B*I*O`` in all; a layer whose
    input needs no gradient (the first one) skips the input's matmul.
    """
    with FlopCounterMode(display=False) as counter:
        out = fn(*args)
        loss = out["loss"] if isinstance(out, dict) else out
        loss.backward()
    return counter.get_total_flops()


def training_flops_per_image(
    model: nn.Module, loss_fn: Callable, batch: tuple[torch.Tensor, ...]
) -> float:
    """FLOPs of one training forward+backward of ``loss_fn(model, batch)``, per sample.

    Counts on the batch given (a few samples are enough: FLOPs grow linearly with the batch)
    in train mode, without an optimizer step. Afterwards the gradients are None again, and the
    model's state (BatchNorm statistics, MoCo's queue, BYOL's target) and the global RNG are as
    they were, so counting does not change the training that follows.

    Shape:
        batch: tuple of (B, ...) tensors; the count is divided by B
    """
    state = copy.deepcopy(model.state_dict())
    cuda = sorted({p.device for p in model.parameters() if p.device.type == "cuda"}, key=str)
    with torch.random.fork_rng(devices=cuda), train_mode(model):
        try:
            flops = training_flops(loss_fn, model, batch)
        finally:
            model.zero_grad(set_to_none=True)
            model.load_state_dict(state)
    return flops / len(batch[0])


def method_flops_per_image(method: nn.Module, images: torch.Tensor) -> float:
    """Training FLOPs per image of a two-view method (``method(images) -> {"loss": ...}``).

    Both views' forward and backward count, so this is the cost of one image of
    :func:`sslbook.train.fit`'s ``images_per_s``.

    Shape:
        images: (B, 3, H, W) uint8 on the method's device; B = 2 is enough
    """
    return training_flops_per_image(method, lambda m, batch: m(batch[0]), (images,))


def peak_flops(device: str | torch.device, dtype: torch.dtype = torch.bfloat16) -> float | None:
    """The dense tensor-core peak FLOP/s of ``device`` in ``dtype``; None where it is not known.

    Known: the 16-bit peaks of the GPUs in :data:`PEAK_FLOPS`. None for the CPU, MPS, an unlisted
    GPU, float32 (whose TF32/FP32 peaks differ by GPU and by a global torch setting) and bf16 on
    a GPU without bf16 tensor cores.
    """
    device = torch.device(device)
    if device.type != "cuda" or dtype not in (torch.float16, torch.bfloat16):
        return None
    name = torch.cuda.get_device_name(device)
    for pattern, fp16, bf16 in PEAK_FLOPS:
        if re.search(pattern, name):
            return fp16 if dtype == torch.float16 else bf16
    return None


def mfu(flops_per_image: float, images_per_s: float, peak: float) -> float:
    """Model FLOPs utilisation: the achieved model FLOP/s as a fraction of ``peak``.

    For several GPUs pass the global ``images_per_s`` and the sum of their peaks.
    """
    if peak <= 0:
        raise ValueError(f"peak must be a positive FLOP/s, got {peak}")
    return flops_per_image * images_per_s / peak
