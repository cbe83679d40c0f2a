"""Reference points for every representation in the book: raw pixels, a randomly initialised
network, and a network trained with labels, all under the same frozen-feature protocol
(weighted kNN and linear probe, :mod:`sslbook.evaluate`).

A self-supervised method is worth its compute when it beats the first two clearly and closes part
of the gap to the third.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..augment import to_float
from ..data import ImageData, cifar10
from ..evaluate import evaluate_features, extract_features
from ..methods import Supervised
from ..models import backbone
from ..profiles import Profile
from ..train import TrainConfig, fit

__all__ = [
    "load_splits",
    "protocol",
    "encoder_protocol",
    "describe_splits",
    "raw_pixel_features",
    "random_encoder",
    "train_supervised",
    "run",
]


def load_splits(cfg: Profile, device=None) -> tuple[ImageData, ImageData]:
    """The profile's training subset and held-out subset of CIFAR-10, on ``device``."""
    train = cifar10("train").subset(cfg.train_size).to(device)
    test = cifar10("test").subset(cfg.test_size).to(device)
    return train, test


def protocol(
    cfg: Profile, train: ImageData, test: ImageData, train_x: torch.Tensor, test_x: torch.Tensor
) -> dict[str, float]:
    """The book's frozen-feature protocol at the profile's settings: kNN and linear-probe accuracy.

    Shape:
        train_x: (len(train), D), test_x: (len(test), D) features of the two splits
    """
    return evaluate_features(
        train_x,
        train.labels,
        test_x,
        test.labels,
        k=cfg.knn_k,
        temperature=cfg.knn_temperature,
        probe_epochs=cfg.probe_epochs,
    )


def encoder_protocol(cfg: Profile, encoder, train: ImageData, test: ImageData) -> dict[str, float]:
    """:func:`protocol` on the frozen features of ``encoder`` for both splits."""
    return protocol(
        cfg,
        train,
        test,
        extract_features(encoder, train.images),
        extract_features(encoder, test.images),
    )


def describe_splits(train: ImageData, test: ImageData) -> dict[str, str]:
    """The ``"data"`` entry of a result file: how many images, and where they came from."""
    return {
        "train": f"{len(train)} images from {train.source}",
        "test": f"{len(test)} images from {test.source}",
    }


def raw_pixel_features(data: ImageData) -> torch.Tensor:
    """Each image as its 3072 pixel values in [0, 1]: the representation with no learning at all.

    Shape:
        return: (N, 3 * H * W)
    """
    return to_float(data.images).flatten(1)


def random_encoder(cfg: Profile, seed: int = 0, device=None) -> torch.nn.Module:
    """The profile's backbone with freshly initialised weights (seeded)."""
    torch.manual_seed(seed)
    return backbone(cfg.backbone, cfg.width).to(device)


def train_supervised(
    cfg: Profile,
    train: ImageData,
    device=None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
):
    """Train the profile's backbone with labels (cross-entropy, crop and flip).

    SGD with momentum 0.9, peak learning rate 0.1 with one warmup epoch and cosine decay, weight
    decay 5e-4: the usual CIFAR recipe. Returns ``(method, history)``; ``method.encoder`` is the
    trained backbone.
    """
    torch.manual_seed(seed)
    method = Supervised(backbone(cfg.backbone, cfg.width), num_classes=len(train.classes))
    config = TrainConfig(
        epochs=cfg.supervised_epochs,
        batch_size=cfg.batch_size,
        optimizer="sgd",
        lr=0.1,
        weight_decay=5e-4,
        warmup_epochs=min(1.0, cfg.supervised_epochs / 4),
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        progress=progress,
    )
    history = fit(
        method, lambda m, batch: m(*batch), (train.images, train.labels), config, device=device
    )
    return method, history


def run(cfg: Profile, device=None, checkpoint_dir: str | Path | None = None) -> dict:
    """Measure the three baselines at the scale of ``cfg``; return rows ready for a table."""
    train, test = load_splits(cfg, device)
    rows = []

    def add(name: str, dim: int, train_x: torch.Tensor, test_x: torch.Tensor) -> None:
        rows.append(
            {"representation": name, "dim": dim} | protocol(cfg, train, test, train_x, test_x)
        )

    add("raw pixels", 3 * 32 * 32, raw_pixel_features(train), raw_pixel_features(test))
    encoder = random_encoder(cfg, device=device)
    add(
        f"random-init {cfg.backbone}",
        encoder.out_dim,
        extract_features(encoder, train.images),
        extract_features(encoder, test.images),
    )
    ckpt = Path(checkpoint_dir) / "supervised" if checkpoint_dir else None
    method, history = train_supervised(cfg, train, device, ckpt)
    add(
        f"supervised {cfg.backbone}",
        method.encoder.out_dim,
        extract_features(method.encoder, train.images),
        extract_features(method.encoder, test.images),
    )
    return {
        "rows": rows,
        "data": describe_splits(train, test),
        "supervised_history": history.to_dict(),
    }
