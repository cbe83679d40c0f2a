"""What each speed switch of ``sslbook.train.fit`` buys: SimCLR training throughput with the
switches turned on one after another.

    python bench/fast_path.py [--rounds R] [--steps N] [--quick] [--device cpu|cuda]
                              [--out bench/results/fast_path.json]

Every row trains SimCLR through ``fit`` itself, with the dataset resident on the device as uint8
and both views augmented there in batches; each row adds one switch to the row above:

1. float32, default (NCHW) memory layout, a host sync after every step (``log_every=1``);
2. + one host sync every 20 steps: the loss stays on the device in between;
3. + ``channels_last`` activations (how ``sslbook.models`` runs its CNNs; the rows above build the
   backbone with ``channels_last=False``);
4. + automatic mixed precision (bf16 where supported, fp16 with a gradient scaler elsewhere):
   on GPUs, and on CPUs that multiply bf16 matrices natively (``sslbook.device.cpu_has_bf16``);
5. + a fused optimizer step (one kernel for all parameters): CUDA only;
6. + ``torch.compile`` of the training step.

On a CPU without bf16 units the mixed-precision row is left out: autocast to bf16 is slower than
float32 there. The network and batch are the ``cpu`` profile's on a CPU (small CNN, batch 256)
and the ``full`` profile's on CUDA (CIFAR ResNet-18, batch 512), so the last row on an
A100/H100-class GPU is the setting of the >= 30 % MFU target. A round of a row is one call of
``fit``, one epoch of ``--steps`` steps, its setup (optimizer, compile wrapper) included; after
one untimed call each (which compiles and warms up caches), the rows take turns for ``--rounds``
rounds (``bench/timing.py``), and each reports its median round with the range of the rounds.
FLOPs per image are counted with ``torch.utils.flop_counter``; MFU is reported where
``sslbook.flops.peak_flops`` knows the GPU.
"""

from __future__ import annotations

import torch
from common import Run, arguments, load_images, parse  # bench/common.py
from timing import Timing, time_alternating  # bench/timing.py

from sslbook.device import amp_dtype, cpu_has_bf16, pick_device
from sslbook.flops import method_flops_per_image, mfu, peak_flops
from sslbook.methods import SimCLR
from sslbook.models import backbone
from sslbook.profiles import profile
from sslbook.train import TrainConfig, fit

SWITCHES = [
    ("float32, NCHW, host sync every step", {}),
    ("+ host sync every 20 steps", {"log_every": 20}),
    ("+ channels_last", {"channels_last": True}),
    ("+ mixed precision (autocast)", {"amp": True}),
    ("+ fused optimizer", {"fused": True}),
    ("+ torch.compile", {"compile": True}),
]


AMP_AND_AFTER = [name for name, _ in SWITCHES[3:]]  # the rows that run under autocast


def applies(switch: dict, device: torch.device) -> bool:
    if "amp" in switch:
        return device.type != "cpu" or cpu_has_bf16()
    if "fused" in switch:
        return device.type == "cuda"
    return True


def training_round(settings: dict, data: torch.Tensor, cfg, device, losses: list):
    """A function that trains SimCLR with ``settings`` through ``fit`` for one epoch of ``data``
    and appends the epoch's mean loss to ``losses``; the model carries over from call to call."""
    torch.manual_seed(0)
    method = SimCLR(backbone(cfg.backbone, cfg.width, settings.get("channels_last", False)))
    config = TrainConfig(
        epochs=1,
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

    def train() -> None:
        history = fit(method, data, config, device=device)
        losses.append(history.last("loss"))

    return train


def main() -> None:
    parser = arguments(__doc__, "fast_path", rounds=5, steps=10)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: best available)")
    args = parse(parser)
    run = Run()
    device = pick_device(args.device)
    cfg = profile("full" if device.type == "cuda" else "cpu")
    images, source = load_images(cfg.batch_size * args.steps)
    data = images.to(device)

    torch.manual_seed(0)
    flops = method_flops_per_image(SimCLR(backbone(cfg.backbone, cfg.width)).to(device), data[:2])
    settings, rounds, losses = {}, {}, {}
    for name, switch in SWITCHES:
        if applies(switch, device):
            settings = settings | switch
            losses[name] = []
            rounds[name] = training_round(settings, data, cfg, device, losses[name])
    per_fit = time_alternating(rounds, device, args.rounds, steps_per_round=1, warmup=1)

    rows, base = [], None
    for name, timing in per_fit.items():
        per_step = Timing([s / args.steps for s in timing.rounds])
        dtype = amp_dtype(device, True) if name in AMP_AND_AFTER else torch.float32
        peak = peak_flops(device, dtype)
        images_per_s = cfg.batch_size / per_step.median
        row = {"configuration": name, "device": device.type}
        row |= per_step.fields("s_per_step")
        row |= {
            "images_per_s": round(images_per_s, 1),
            "tflops": flops * images_per_s / 1e12,
            "mfu": None if peak is None else mfu(flops, images_per_s, peak),
            "loss": round(losses[name][-1], 4),  # the rows train alike: a sanity check
            "spread": str(per_step),
        }
        base = base or per_step.median  # the first row's
        row["speedup"] = base / per_step.median
        rows.append(row)
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"\nSimCLR on {source}: {cfg.backbone} (width {cfg.width}), batch {cfg.batch_size}, "
        f"{device.type} ({hardware}), {flops / 1e9:.2f} GFLOPs per training image, "
        f"{run.describe()}.\n"
    )
    print("| configuration | s/step: median (min-max) | images/s | speed-up | TFLOP/s | MFU |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        util = "-" if r["mfu"] is None else f"{r['mfu']:.1%}"
        print(
            f"| {r['configuration']} | {r['spread']} | {r['images_per_s']:,.0f} | "
            f"{r['speedup']:.2f}x | {r['tflops']:.3f} | {util} |"
        )
    payload = {
        "benchmark": "SimCLR training step, speed switches of sslbook.train.fit",
        "data": source,
        "backbone": f"{cfg.backbone} (width {cfg.width})",
        "batch_size": cfg.batch_size,
        "flops_per_image": flops,
        "rounds": args.rounds,
        "steps_per_round": args.steps,
        "rows": rows,
        "speedup_all_switches": rows[-1]["speedup"],
        "mfu_target": 0.30,
        "mfu_target_applies": device.type == "cuda",
    }
    run.write(args.out, payload, device)


if __name__ == "__main__":
    main()
