"""What each speed switch of ``sslbook.train.fit`` buys: SimCLR training throughput with the
switches turned on one after another.

    python bench/fast_path.py [--steps N] [--out bench/results/fast_path.json]

Every row trains SimCLR through ``fit`` itself, with the dataset resident on the device as uint8
and both views augmented there in batches; each row adds one switch to the row above:

1. float32, default (NCHW) memory layout, a host sync after every step (``log_every=1``);
2. + one host sync every 20 steps: the loss stays on the device in between;
3. + ``channels_last`` activations (how ``sslbook.models`` runs its CNNs);
4. + automatic mixed precision (bf16 where supported, fp16 with a gradient scaler elsewhere):
   on GPUs, and on CPUs that multiply bf16 matrices natively (``sslbook.device.cpu_has_bf16``);
5. + a fused optimizer step (one kernel for all parameters): CUDA only;
6. + ``torch.compile`` of the training step.

On a CPU without bf16 units the mixed-precision row is left out: autocast to bf16 is slower than
float32 there. The network and batch are the ``cpu`` profile's on a CPU (small CNN, batch 256)
and the ``full`` profile's on CUDA (CIFAR ResNet-18, batch 512), so the last row on an
A100/H100-class GPU is the setting of the >= 30 % MFU target. Each row trains two epochs of
``--steps`` steps and times the second (the first compiles and warms up caches). FLOPs per image
are counted with ``torch.utils.flop_counter``; MFU is reported where
``sslbook.flops.peak_flops`` knows the GPU.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from images import load_images  # bench/images.py

import sslbook.models.cnn as cnn
from sslbook.device import amp_dtype, cpu_has_bf16, pick_device
from sslbook.flops import method_flops_per_image, mfu, peak_flops
from sslbook.methods import SimCLR
from sslbook.models import backbone
from sslbook.profiles import profile
from sslbook.provenance import provenance, write_json
from sslbook.train import TrainConfig, fit

SWITCHES = [
    ("float32, NCHW, host sync every step", {}),
    ("+ host sync every 20 steps", {"log_every": 20}),
    ("+ channels_last", {"channels_last": True}),
    ("+ mixed precision (autocast)", {"amp": True}),
    ("+ fused optimizer", {"fused": True}),
    ("+ torch.compile", {"compile": True}),
]


def applies(switch: dict, device: torch.device) -> bool:
    if "amp" in switch:
        return device.type != "cpu" or cpu_has_bf16()
    if "fused" in switch:
        return device.type == "cuda"
    return True


def train_row(settings: dict, data: torch.Tensor, cfg, device, steps: int) -> dict:
    """Two epochs of ``steps`` SimCLR steps with ``settings``; images/s of the second epoch."""
    layout = cnn._channels_last
    if not settings.get("channels_last"):
        cnn._channels_last = lambda x: x.contiguous()  # the default NCHW layout
    try:
        torch.manual_seed(0)
        method = SimCLR(backbone(cfg.backbone, cfg.width))
        config = TrainConfig(
            epochs=2,
            batch_size=cfg.batch_size,
            optimizer="sgd",
            lr=0.06 * cfg.batch_size / 256,
            weight_decay=5e-4,
            log_every=settings.get("log_every", 1),
            amp=settings.get("amp", False),
            fused=settings.get("fused", False),
            compile=settings.get("compile", False),
            progress=False,
        )
        history = fit(method, lambda m, batch: m(batch[0]), data, config, device=device)
    finally:
        cnn._channels_last = layout
    seconds = history.epochs[1]["time_s"]
    return {"s_per_step": seconds / steps, "images_per_s": steps * cfg.batch_size / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per row")
    parser.add_argument("--out", default="bench/results/fast_path.json")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: best available)")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    device = pick_device(args.device)
    cfg = profile("full" if device.type == "cuda" else "cpu")
    images, source = load_images(cfg.batch_size * args.steps)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    if len(data) < cfg.batch_size * args.steps:  # fewer offline images than steps x batch
        data = data.repeat(-(-cfg.batch_size * args.steps // len(data)), 1, 1, 1)
    data = data[: cfg.batch_size * args.steps].to(device)

    torch.manual_seed(0)
    flops = method_flops_per_image(SimCLR(backbone(cfg.backbone, cfg.width)).to(device), data[:2])
    settings, rows = {}, []
    for name, switch in SWITCHES:
        if not applies(switch, device):
            continue
        settings |= switch
        row = {"configuration": name, "device": device.type}
        row |= train_row(settings, data, cfg, device, args.steps)
        dtype = amp_dtype(device, True) if settings.get("amp") else torch.float32
        peak = peak_flops(device, dtype)
        row["tflops"] = flops * row["images_per_s"] / 1e12
        row["mfu"] = None if peak is None else mfu(flops, row["images_per_s"], peak)
        rows.append(row)
        print(f"{name}: {row['images_per_s']:.0f} images/s", flush=True)

    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / base
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\nSimCLR on {source}: {cfg.backbone} (width {cfg.width}), batch {cfg.batch_size}, "
        f"{device.type} ({hardware}), {flops / 1e9:.2f} GFLOPs per training image.\n"
    )
    print("| configuration | s/step | images/s | speed-up | TFLOP/s | MFU |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        util = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(
            f"| {r['configuration']} | {r['s_per_step']:.3f} | {r['images_per_s']:,.0f} | "
            f"{r['speedup']:.2f}x | {r['tflops']:.3f} | {util} |"
        )
    payload = {
        "benchmark": "SimCLR training step, speed switches of sslbook.train.fit",
        "data": source,
        "backbone": f"{cfg.backbone} (width {cfg.width})",
        "batch_size": cfg.batch_size,
        "flops_per_image": flops,
        "rows": [
            r
            | {"s_per_step": round(r["s_per_step"], 4), "images_per_s": round(r["images_per_s"], 1)}
            for r in rows
        ],
        "speedup_all_switches": rows[-1]["speedup"],
        "mfu_target": 0.30,
        "mfu_target_applies": device.type == "cuda",
        "load_average": [load_before, os.getloadavg()[0]],
        "provenance": provenance(device=device, started=started),
    }
    print(f"wrote {write_json(args.out, payload)}")


if __name__ == "__main__":
    main()
