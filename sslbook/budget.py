"""How long each chapter runs at each profile, estimated from the arithmetic it does.

A chapter's cost is the sum of its pieces of work: each training run (the training FLOPs of one
sample, counted by :mod:`sslbook.flops` on the chapter's real models, times the samples it sees)
and each pass that extracts frozen features (forward FLOPs times images). The time on a device is

    seconds = FLOPs / effective FLOP/s  +  optimizer steps x overhead per step

- **T4** (the free Colab GPU): 65 TFLOP/s fp16 peak (NVIDIA T4 datasheet) at
  :data:`T4_UTILISATION` of it. NVIDIA's own ResNet-50 numbers on a T4 reach about 15 % of the
  peak in mixed precision (1198 images/s at batch 256, 8.2 GFLOPs each, DeepLearningExamples,
  ``PyTorch/Classification/ConvNets/resnet50v1.5``); the book's networks are smaller and see
  32 x 32 images, so the estimate assumes 10 %, plus :data:`GPU_STEP_OVERHEAD_S` per optimizer
  step for the kernel launches and the augmentation that a small network cannot hide.
- **2 CPU cores**: the model TFLOP/s measured in the SimCLR reference run
  (``results/simclr-cpu.json``), no per-step overhead.

These are estimates, labelled so in the chapters; the linear probes (under 1 % of the FLOPs) are
left out. ``chapter_minutes("moco", profile("colab"), T4)`` gives one number;
``python -m sslbook.budget`` writes them all to ``results/chapter_times.json``, and
:func:`time_table` formats a chapter's for the list at its top.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .evaluate import extract_features
from .flops import method_flops_per_image, training_flops_per_image
from .profiles import PROFILES, Profile
from .provenance import provenance, write_json
from .results import RESULTS_DIR, _load, load_result

__all__ = [
    "T4",
    "T4_UTILISATION",
    "GPU_STEP_OVERHEAD_S",
    "CHAPTERS",
    "Device",
    "Work",
    "cpu_device",
    "chapter_work",
    "chapter_minutes",
    "estimate_all",
    "load_times",
    "time_table",
    "main",
]

CIFAR10_SIZES = {"train": 50_000, "test": 10_000}
T4_PEAK_FLOPS = 65e12  # fp16 tensor cores, dense (NVIDIA T4 datasheet)
T4_UTILISATION = 0.10
GPU_STEP_OVERHEAD_S = 0.01
TIMES_FILE = "chapter_times.json"
MONITOR_BANK = 10_000  # training images in the kNN monitor's bank (pretrain.knn_monitor)
FEATURE_BATCH = 512  # extract_features' batch


@dataclass(frozen=True)
class Work:
    """One piece of a chapter: ``flops`` of arithmetic in ``steps`` optimizer or batch steps."""

    what: str
    flops: float
    steps: int


@dataclass(frozen=True)
class Device:
    name: str
    flops_per_s: float  # effective model FLOP/s
    step_overhead_s: float

    def seconds(self, work: list[Work]) -> float:
        return sum(w.flops / self.flops_per_s + w.steps * self.step_overhead_s for w in work)


T4 = Device("T4 GPU (estimated)", T4_PEAK_FLOPS * T4_UTILISATION, GPU_STEP_OVERHEAD_S)


def cpu_device() -> Device | None:
    """2 CPU cores at the model TFLOP/s of the SimCLR ``cpu`` reference run (None without it)."""
    result = load_result("simclr", "cpu")
    if result is None:
        return None
    tflops = [s["tflops"] for s in result["history"]["steps"] if "tflops" in s]
    cores = result["provenance"]["hardware"]["cpu_count"]
    return Device(f"{cores} CPU cores (estimated)", sum(tflops) / len(tflops) * 1e12, 0.0)


def _images(size: int | None, split: str) -> int:
    return min(size or CIFAR10_SIZES[split], CIFAR10_SIZES[split])


def _sample_images() -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator())


def _lstm_flops(model: nn.Module, tokens: int) -> float:
    """Training FLOPs of the LSTMs in ``model`` over ``tokens`` tokens: FlopCounterMode sees none.

    Per token, direction and layer the four gates cost 2 x 4h(i + h) forward, 3x that trained.
    """
    total = 0.0
    for lstm in (m for m in model.modules() if isinstance(m, nn.LSTM)):
        h, i = lstm.hidden_size, lstm.input_size
        directions = 2 if lstm.bidirectional else 1
        total += 3 * 2 * 4 * h * (i + h) * directions * lstm.num_layers * tokens
    return total


def _forward_flops(encoder: nn.Module) -> float:
    """Forward FLOPs of one image through a frozen ``encoder``."""
    with FlopCounterMode(display=False) as counter:
        extract_features(encoder, _sample_images())
    return counter.get_total_flops() / 2


def _features(what: str, encoder: nn.Module, images: int, passes: int = 1) -> Work:
    return Work(what, _forward_flops(encoder) * images * passes, passes * images // FEATURE_BATCH)


def _pretrain(cfg: Profile, name: str, evals: int, batch_size: int | None = None, **kwargs):
    from .experiments.pretrain import build_method

    batch_size = batch_size or cfg.batch_size
    n_train, n_test = _images(cfg.train_size, "train"), _images(cfg.test_size, "test")
    method = build_method(name, cfg, total_steps=1, **kwargs)
    flops = method_flops_per_image(method, _sample_images())
    steps = cfg.epochs * (n_train // batch_size)
    return [
        Work(f"{name} pretraining", flops * n_train * cfg.epochs, steps),
        _features(
            f"{name} kNN monitor", method.encoder, min(n_train, MONITOR_BANK) + n_test, evals
        ),
    ]


def _supervised(cfg: Profile) -> list[Work]:
    from .methods import Supervised
    from .models import backbone

    n_train = _images(cfg.train_size, "train")
    model = Supervised(backbone(cfg.backbone, cfg.width))
    flops = training_flops_per_image(
        model, lambda m, b: m(*b), (_sample_images(), torch.zeros(2, dtype=torch.long))
    )
    epochs = cfg.supervised_epochs
    return [Work("supervised", flops * n_train * epochs, epochs * n_train // cfg.batch_size)]


def _collapse(cfg: Profile) -> list[Work]:
    from .methods import NaiveInvariance
    from .models import backbone

    flops = method_flops_per_image(
        NaiveInvariance(backbone(cfg.backbone, cfg.width), proj_dim=128), _sample_images()
    )
    return [Work("naive invariance", flops * 128 * cfg.collapse_steps, cfg.collapse_steps)]


def _random_features(cfg: Profile) -> list[Work]:
    from .models import backbone

    images = _images(cfg.train_size, "train") + _images(cfg.test_size, "test")
    return [_features("random-init features", backbone(cfg.backbone, cfg.width), images)]


def _reconstruction(cfg: Profile) -> list[Work]:
    from .experiments.reconstruction import mae_encoder
    from .methods import MAE
    from .methods.autoencoder import ConvAutoencoder
    from .train import call_model

    n_train = _images(cfg.train_size, "train")
    n_all = n_train + _images(cfg.test_size, "test")
    work = []
    for what, model, batch in (
        ("autoencoder", ConvAutoencoder(cfg.width, 128), cfg.batch_size),
        ("denoising autoencoder", ConvAutoencoder(cfg.width, 128, noise_std=0.2), cfg.batch_size),
        ("MAE", MAE(mae_encoder(cfg), mask_ratio=0.75), cfg.mae_batch_size),
    ):
        flops = training_flops_per_image(model, call_model, (_sample_images(),))
        work.append(Work(what, flops * n_train * cfg.epochs, cfg.epochs * n_train // batch))
        work.append(_features(f"{what} features", model.encoder, n_all, passes=2))
    return work


def _mlm(cfg: Profile) -> list[Work]:
    from .experiments.mlm import ENCODERS, build_encoder, load_text
    from .methods.mlm import MaskedLanguageModel, mlm_loss

    data = load_text(cfg)
    vocab = data.tokenizer.vocab_size
    n_seq, seq_len = data.train_ids.shape
    work = []
    for kind in ENCODERS:
        model = MaskedLanguageModel(build_encoder(kind, vocab, cfg), vocab)
        per_seq = training_flops_per_image(model, mlm_loss, (data.train_ids[:2],))
        flops = (per_seq * n_seq + _lstm_flops(model, n_seq * seq_len)) * cfg.text_epochs
        work.append(
            Work(f"{kind} masked LM", flops, cfg.text_epochs * n_seq // cfg.text_batch_size)
        )
    return work


def _contrastive(cfg):
    evaluation = _features("evaluation features", _method_encoder(cfg), _all_images(cfg), 2)
    return _random_features(cfg) + _pretrain(cfg, "simclr", cfg.epochs) + [evaluation]


def _method_encoder(cfg: Profile) -> nn.Module:
    from .models import backbone

    return backbone(cfg.backbone, cfg.width)


def _all_images(cfg: Profile) -> int:
    return _images(cfg.train_size, "train") + _images(cfg.test_size, "test")


def _moco(cfg):
    small = 64  # the chapter's batch size
    return (
        _random_features(cfg)
        + _pretrain(cfg, "simclr", cfg.epochs, batch_size=small)
        + _pretrain(cfg, "moco", cfg.epochs, batch_size=small)
    )


def _non_contrastive(cfg):
    runs = [("byol", {}), ("simsiam", {}), ("simsiam", {"stop_gradient": False})]
    work = _random_features(cfg)
    for name, options in runs:
        work += _pretrain(cfg, name, 1, **options)
    return work


def _redundancy(cfg):
    # eight runs at half the profile's epochs, no kNN monitor; DINO's student also sees two
    # 16 x 16 local crops (counted: the multi-crop augmentation is part of the method)
    from .augment import MultiCropAugment

    half = cfg.with_(epochs=max(1, cfg.epochs // 2))
    dino = {"augment": MultiCropAugment(n_local=2), "batch_norm": True}
    runs = [
        ("simsiam", {}),
        ("barlow_twins", {"lambd": 0.02}),
        ("vicreg", {}),
        ("vicreg", {"std_coeff": 0.0}),
        ("vicreg", {"cov_coeff": 0.0}),
        ("dino", dino),
        ("dino", dino | {"teacher_temp": 0.1}),
        ("dino", dino | {"centering": False}),
    ]
    work = []
    for name, options in runs:
        work += _pretrain(half, name, 0, **options)[:1]
    return work


def _principles(cfg):
    return _random_features(cfg) + _supervised(cfg) + _collapse(cfg)


def _performance(cfg):
    return _pretrain(cfg.with_(epochs=1), "simclr", 0)


def _scaling(cfg):
    # the width axis of the scaling study: SimCLR at a quarter, a half and all of the width,
    # half the profile's epochs each, kNN once at the end, then the probes' features
    from .experiments.scaling import FRACTIONS

    half = cfg.with_(epochs=max(1, cfg.epochs // 2))
    work = []
    for fraction in (*FRACTIONS, 1.0):
        narrow = half.with_(width=max(1, round(cfg.width * fraction)))
        work += _pretrain(narrow, "simclr", 1)
        work.append(_features("probe features", _method_encoder(narrow), _all_images(cfg)))
    return work


CHAPTERS = {
    "principles": _principles,
    "contrastive": _contrastive,
    "moco": _moco,
    "non_contrastive": _non_contrastive,
    "redundancy": _redundancy,
    "autoencoders": _reconstruction,
    "mlm": _mlm,
    "scaling": _scaling,
    "performance": _performance,
}


def chapter_work(chapter: str, cfg: Profile) -> list[Work]:
    """The pieces of work chapter ``chapter`` does at profile ``cfg``."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}: expected one of {', '.join(CHAPTERS)}")
    return CHAPTERS[chapter](cfg)


def chapter_minutes(chapter: str, cfg: Profile, device: Device) -> float:
    """Estimated minutes chapter ``chapter`` trains and evaluates at ``cfg`` on ``device``."""
    return device.seconds(chapter_work(chapter, cfg)) / 60


def estimate_all(chapters=None) -> dict:
    """Estimated minutes of every chapter at every profile, on the device each profile runs on."""
    cpu = cpu_device()
    if cpu is None:
        raise FileNotFoundError(
            "results/simclr-cpu.json is missing: the CPU's throughput comes from it "
            "(python -m sslbook.run simclr --profile cpu)"
        )
    devices = {"cpu": cpu, "colab": T4, "full": T4}
    return {
        chapter: {
            name: {"minutes": chapter_minutes(chapter, PROFILES[name], dev), "device": dev.name}
            for name, dev in devices.items()
        }
        for chapter in chapters or CHAPTERS
    }


def load_times() -> dict | None:
    """The parsed ``results/chapter_times.json`` (``python -m sslbook.budget``), or None."""
    return _load(f"results/{TIMES_FILE}", RESULTS_DIR / TIMES_FILE, remote=True)


def _duration(minutes: float) -> str:
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"about {minutes:.0f} min"
    return f"about {minutes / 60:.1f} h"


USES = {
    "cpu": "the reference runs",
    "colab": "the default on a GPU",
    "full": "the papers' recipe, opt-in",
}


def time_table(chapter: str, times: dict | None = None) -> str:
    """Markdown: the estimated time of ``chapter`` at each profile, from ``chapter_times.json``."""
    times = times or load_times()
    if times is None:
        return "(results/chapter_times.json is not available: `python -m sslbook.budget` makes it)"
    rows = times["chapters"][chapter]
    lines = [
        f"- `{name}` ({USES[name]}): {_duration(row['minutes'])} on {row['device']}"
        for name, row in rows.items()
    ]
    return "\n".join(["- `smoke` (this page, CI): a minute or two on 2 CPU cores", *lines])


def main() -> int:
    started = time.perf_counter()
    payload = {
        "what": "estimated minutes per chapter and profile: training FLOPs / effective FLOP/s "
        "+ optimizer steps x overhead (sslbook.budget)",
        "assumptions": {
            "t4_peak_flops": T4_PEAK_FLOPS,
            "t4_utilisation": T4_UTILISATION,
            "gpu_step_overhead_s": GPU_STEP_OVERHEAD_S,
            "cpu_flops_per_s": cpu_device().flops_per_s if cpu_device() else None,
        },
        "chapters": estimate_all(),
    }
    payload["provenance"] = provenance("python -m sslbook.budget", "cpu", started)
    path = write_json(RESULTS_DIR / TIMES_FILE, payload)
    for chapter, rows in payload["chapters"].items():
        print(chapter, {name: round(row["minutes"], 1) for name, row in rows.items()})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
