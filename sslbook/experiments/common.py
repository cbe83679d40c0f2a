"""What every experiment shares: the profile's CIFAR-10 splits, the frozen-feature protocol that
scores a representation (weighted kNN and linear probe, :mod:`sslbook.evaluate`, with all and
with a few of the training labels), and the ``"data"`` entry of a result file.
"""

from __future__ import annotations

import torch

from ..data import ImageData, balanced_subset, cifar10
from ..evaluate import extract_features, knn_accuracy, label_efficiency, linear_probe
from ..profiles import Profile
from ..results import load_result

__all__ = [
    "LABEL_FRACTIONS",
    "VALIDATION_FRACTION",
    "SELECTION_RULE",
    "load_splits",
    "validation_split",
    "protocol",
    "encoder_protocol",
    "choose",
    "reference_choice",
    "describe_splits",
]

LABEL_FRACTIONS = (0.01, 0.1)  # the few-label probes every result row records, next to 100 %
VALIDATION_FRACTION = 0.1  # of the training shard, class-balanced: where settings are chosen
SELECTION_RULE = (
    "highest linear-probe accuracy on a class-balanced tenth of the training shard "
    "(probe fitted on the other nine tenths); the held-out shard only reports"
)


def load_splits(cfg: Profile, device=None) -> tuple[ImageData, ImageData]:
    """The profile's training subset and held-out subset of CIFAR-10, on ``device``."""
    train = cifar10("train").subset(cfg.train_size).to(device)
    test = cifar10("test").subset(cfg.test_size).to(device)
    return train, test


def validation_split(
    train: ImageData, fraction: float = VALIDATION_FRACTION, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(rest, validation)`` of ``train``: a class-balanced ``fraction`` and the others."""
    val = balanced_subset(train.labels, fraction=fraction, seed=seed)
    keep = torch.ones(len(train), dtype=torch.bool, device=val.device)
    keep[val] = False
    return keep.nonzero().squeeze(1), val


def protocol(
    cfg: Profile,
    train: ImageData,
    test: ImageData,
    train_x: torch.Tensor,
    test_x: torch.Tensor,
    fractions: tuple[float, ...] = LABEL_FRACTIONS,
    validation: bool = False,
) -> dict:
    """The book's frozen-feature protocol at the profile's settings.

    Returns kNN and linear-probe accuracy, and under ``"label_fractions"`` the linear probe trained
    on ``fractions`` (1 % and 10 %) of the training labels (class-balanced, seeded) next to 100 %.
    ``validation=True`` adds ``"val_linear"``: the probe fitted on nine tenths of the training
    shard and scored on the remaining tenth, the number a study chooses its setting by
    (:data:`SELECTION_RULE`), so that the held-out shard never chooses.

    Shape:
        train_x: (len(train), D), test_x: (len(test), D) features of the two splits
    """
    splits = (train_x, train.labels, test_x, test.labels)
    knn = knn_accuracy(*splits, k=cfg.knn_k, temperature=cfg.knn_temperature)
    linear = linear_probe(*splits, epochs=cfg.probe_epochs)
    few = label_efficiency(*splits, fractions, epochs=cfg.probe_epochs)
    scores = {"knn": knn, "linear": linear, "label_fractions": few | {"1.0": linear}}
    if validation:
        rest, val = validation_split(train)
        scores["val_linear"] = linear_probe(
            train_x[rest],
            train.labels[rest],
            train_x[val],
            train.labels[val],
            epochs=cfg.probe_epochs,
        )
    return scores


def encoder_protocol(
    cfg: Profile,
    encoder,
    train: ImageData,
    test: ImageData,
    fractions: tuple[float, ...] = LABEL_FRACTIONS,
    validation: bool = False,
) -> dict:
    """:func:`protocol` on the frozen features of ``encoder`` for both splits."""
    return protocol(
        cfg,
        train,
        test,
        extract_features(encoder, train.images),
        extract_features(encoder, test.images),
        fractions,
        validation,
    )


def choose(rows: list[dict]) -> dict:
    """The row a study reports as its choice: the highest ``"val_linear"``, SELECTION_RULE."""
    candidates = [r for r in rows if "val_linear" in r]
    if not candidates:
        raise ValueError("expected rows with a 'val_linear' score, got none: run with validation")
    return max(candidates, key=lambda r: r["val_linear"])


def reference_choice(experiment: str, cfg: Profile, setting: str):
    """The setting that the seed-0 run of ``experiment`` chose, for the runs of other seeds.

    Raises:
        ValueError: when that result file does not exist or records no choice.
    """
    result = load_result(experiment, cfg.name) or {}
    if setting not in result.get("selected", {}):
        raise ValueError(
            f"expected results/{experiment}-{cfg.name}.json with a selected {setting!r}: run "
            f"python -m sslbook.run {experiment} --profile {cfg.name} (seed 0) first"
        )
    return result["selected"][setting]


def describe_splits(train: ImageData, test: ImageData) -> dict[str, str]:
    """The ``"data"`` entry of a result file: how many images, and where they came from."""
    return {
        "train": f"{len(train)} images from {train.source}",
        "test": f"{len(test)} images from {test.source}",
    }
