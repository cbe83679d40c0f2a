"""Reference points for every representation in the book: raw pixels, a randomly initialised
network, and a network trained with labels, all under the same frozen-feature protocol
(weighted kNN and linear probe, :mod:`sslbook.experiments.common`).

A self-supervised method is worth its compute when it beats the first two clearly and closes part
of the gap to the third.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data import ImageData, balanced_subset, to_float
from ..device import seeded
from ..evaluate import extract_features, linear_probe
from ..methods import Supervised
from ..models import backbone
from ..profiles import Profile
from ..train import TrainConfig, fit
from .common import LABEL_FRACTIONS, describe_splits, encoder_protocol, load_splits, protocol

__all__ = [
    "raw_pixel_features",
    "random_encoder",
    "train_supervised",
    "run",
    "run_few_labels",
]


def raw_pixel_features(data: ImageData) -> torch.Tensor:
    """Each image as its 3072 pixel values in [0, 1]: the representation with no learning at all.

    Shape:
        return: (N, 3 * H * W)
    """
    return to_float(data.images).flatten(1)


def random_encoder(cfg: Profile, seed: int = 0, device=None) -> torch.nn.Module:
    """The profile's backbone with freshly initialised weights (seeded)."""
    with seeded(seed):
        return backbone(cfg.backbone, cfg.width).to(device)


def train_supervised(
    cfg: Profile,
    train: ImageData,
    device=None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
    **changes,
):
    """Train the profile's backbone with labels (cross-entropy, crop and flip).

    SGD with momentum 0.9, peak learning rate 0.1 with one warmup epoch and cosine decay, weight
    decay 5e-4: the usual CIFAR recipe. ``changes`` go to the TrainConfig. Returns
    ``(method, history)``; ``method.encoder`` is the trained backbone.
    """
    with seeded(seed):
        method = Supervised(backbone(cfg.backbone, cfg.width), num_classes=len(train.classes))
    settings = dict(
        epochs=cfg.supervised_epochs,
        batch_size=cfg.batch_size,
        optimizer="sgd",
        lr=0.1,
        weight_decay=5e-4,
        warmup_epochs=min(1.0, cfg.supervised_epochs / 4),
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
        amp=cfg.amp,
    )
    config = TrainConfig(**(settings | changes))
    history = fit(method, (train.images, train.labels), config, device=device)
    return method, history


def run(cfg: Profile, device=None, checkpoint_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Measure the three baselines at the scale of ``cfg``; return rows ready for a table.

    ``seed`` draws the random-init network and the supervised network's training.
    """
    train, test = load_splits(cfg, device)
    raw = protocol(cfg, train, test, raw_pixel_features(train), raw_pixel_features(test))
    rows = [{"representation": "raw pixels", "dim": 3 * 32 * 32} | raw]
    encoder = random_encoder(cfg, seed, device)
    rows.append(
        {"representation": f"random-init {cfg.backbone}", "dim": encoder.out_dim}
        | encoder_protocol(cfg, encoder, train, test)
    )
    ckpt = Path(checkpoint_dir) / "supervised" if checkpoint_dir else None
    method, history = train_supervised(cfg, train, device, ckpt, seed=seed)
    rows.append(
        {"representation": f"supervised {cfg.backbone}", "dim": method.encoder.out_dim}
        | encoder_protocol(cfg, method.encoder, train, test)
    )
    return {
        "rows": rows,
        "models": {"supervised": {"model": method}},
        "data": describe_splits(train, test),
        "supervised_history": history.to_dict(),
    }


def _labelled(train: ImageData, fraction: float, seed: int = 0) -> ImageData:
    idx = balanced_subset(train.labels, fraction=fraction, seed=seed)
    return ImageData(train.images[idx], train.labels[idx], train.classes, train.source)


def run_few_labels(
    cfg: Profile,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    fractions=LABEL_FRACTIONS,
) -> dict:
    """What a few labels buy without self-supervision: the supervised network trained on them.

    For each fraction, the backbone is trained from scratch with labels on the class-balanced
    subset that the few-label probes of :func:`protocol` use, for as many optimizer steps as the
    network trained on all labels (:func:`run`), then read out like every other representation:
    a linear probe on its frozen features, fitted on the same labelled subset. Raw pixels and the
    random-init network are reported at the same fractions.
    """
    train, test = load_splits(cfg, device)
    full_steps = cfg.supervised_epochs * (len(train) // cfg.batch_size)
    raw_x = raw_pixel_features(train), raw_pixel_features(test)
    raw = protocol(cfg, train, test, *raw_x, fractions)
    encoder = random_encoder(cfg, seed, device)
    rows = [
        {"representation": "raw pixels"} | raw["label_fractions"],
        {"representation": f"random-init {cfg.backbone}"}
        | encoder_protocol(cfg, encoder, train, test, fractions)["label_fractions"],
    ]
    supervised = {"representation": f"supervised {cfg.backbone}, trained on the labelled part"}
    runs = []
    for fraction in fractions:
        labelled = _labelled(train, fraction)
        batch_size = min(cfg.batch_size, len(labelled))
        steps_per_epoch = len(labelled) // batch_size
        epochs = max(1, round(full_steps / steps_per_epoch))
        method, history = train_supervised(
            cfg,
            labelled,
            device,
            Path(checkpoint_dir) / f"labels{fraction}" if checkpoint_dir else None,
            batch_size=batch_size,
            epochs=epochs,
            warmup_epochs=min(epochs / 4, max(1.0, 0.03 * epochs)),
            checkpoint_every=max(1, epochs // 10),
            log_every=max(1, full_steps // 50),
            seed=seed,
        )
        train_x = extract_features(method.encoder, labelled.images)
        test_x = extract_features(method.encoder, test.images)
        supervised[str(fraction)] = linear_probe(
            train_x, labelled.labels, test_x, test.labels, epochs=cfg.probe_epochs
        )
        runs.append(
            {
                "fraction": fraction,
                "labelled_images": len(labelled),
                "epochs": epochs,
                "steps": epochs * steps_per_epoch,
                "final_train_accuracy": history.steps[-1]["accuracy"],
            }
        )
    rows.append(supervised)
    return {
        "fractions": [*map(str, fractions), "1.0"],
        "rows": rows,
        "supervised_runs": runs,
        "note": "the 1.0 column of the supervised network is in the baselines result file",
        "data": describe_splits(train, test),
    }
