"""Pretrain a method that compares views (SimCLR, MoCo, BYOL, SimSiam, Barlow Twins, VICReg,
DINO) and evaluate its encoder.

The chapters and ``python -m sslbook.run simclr|moco|...|dino`` share these steps, so the
numbers in a notebook and in ``results/`` come from the same code:

1. :func:`build_method` — the profile's backbone wrapped in the method, with
   :func:`method_options`;
2. :func:`pretrain_config` — one optimisation recipe for all methods on CIFAR-10;
3. :func:`pretrain` — :func:`sslbook.train.fit` with a kNN monitor every ``eval_every`` epochs;
4. :func:`evaluate_method` — kNN and linear probe on the frozen backbone, the probe on the
   projection head's output too (to show why the head is thrown away), and alignment /
   uniformity of held-out views.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..augment import MultiCropAugment, SimCLRAugment, two_views
from ..data import ImageData
from ..device import seeded
from ..evaluate import alignment, extract_features, knn_accuracy, linear_probe, uniformity
from ..flops import method_flops_per_image
from ..methods import BYOL, DINO, BarlowTwins, MoCo, SimCLR, SimSiam, VICReg
from ..models import backbone
from ..profiles import Profile
from ..train import TrainConfig, fit
from .common import describe_splits, load_splits, protocol

__all__ = [
    "METHODS",
    "REDUNDANCY_METHODS",
    "ADAMW_RECIPE",
    "recipe_changes",
    "method_options",
    "build_method",
    "saved_part",
    "pretrain_config",
    "encoder_knn",
    "knn_monitor",
    "pretrain",
    "geometry",
    "evaluate_method",
    "run",
    "run_simclr_adamw",
]

METHODS = ("simclr", "moco", "byol", "simsiam")  # the contrastive and non-contrastive chapters
REDUNDANCY_METHODS = ("barlow_twins", "vicreg", "dino")  # the redundancy chapter


def method_options(name: str) -> dict:
    """The options of method ``name`` in its reference run and in its chapter.

    Barlow Twins: lambda = 0.02, not the paper's 5e-3, for a 512-d projector with 256 times
    fewer off-diagonal terms than the paper's 8192-d one. DINO: 2 local crops (the paper uses up
    to 10; each costs a quarter of a global view) and batch norm in the head, as convolutional
    backbones usually have it. The other methods: their classes' defaults.
    """
    if name == "barlow_twins":
        return {"lambd": 0.02}
    if name == "dino":
        return {"augment": MultiCropAugment(n_local=2), "batch_norm": True}
    return {}


# the redundancy chapter's optimiser, for its methods' reference runs too (see recipe_changes)
ADAMW_RECIPE = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-6}


def recipe_changes(name: str) -> dict:
    """What method ``name``'s reference run changes in :func:`pretrain_config`.

    Barlow Twins, VICReg and DINO train with :data:`ADAMW_RECIPE`. Their losses are far larger
    than the InfoNCE and cosine losses of the other four (Barlow Twins sums D^2 squared
    correlations, hundreds at the start), and at the other four's SGD learning rate Barlow
    Twins' projections fall onto a few directions within its first epochs. The papers use LARS,
    which sizes each layer's step relative to its weights; AdamW, dividing each step by a
    running estimate of the gradient's size, serves the same purpose. The other methods: none.
    """
    return dict(ADAMW_RECIPE) if name in REDUNDANCY_METHODS else {}


def build_method(name: str, cfg: Profile, total_steps: int | None = None, **kwargs) -> nn.Module:
    """Method ``name`` around a fresh ``cfg.backbone``; ``kwargs`` go to the method's class.

    ``total_steps`` drives BYOL's and DINO's momentum schedules (ignored by the others).
    """
    encoder = backbone(cfg.backbone, cfg.width)
    if name == "simclr":
        return SimCLR(encoder, **kwargs)
    if name == "moco":
        return MoCo(encoder, **kwargs)
    if name == "byol":
        return BYOL(encoder, total_steps=total_steps, **kwargs)
    if name == "simsiam":
        return SimSiam(encoder, **kwargs)
    if name == "barlow_twins":
        return BarlowTwins(encoder, **kwargs)
    if name == "vicreg":
        return VICReg(encoder, **kwargs)
    if name == "dino":
        return DINO(encoder, total_steps=total_steps, **kwargs)
    known = ", ".join(METHODS + REDUNDANCY_METHODS)
    raise ValueError(f"unknown method {name!r}: expected one of {known}")


def saved_part(method: nn.Module) -> nn.Module:
    """What a reference run saves of a trained ``method``, and :func:`sslbook.pretrained` loads.

    The whole method, except DINO's: its student only (:meth:`~sslbook.methods.DINO.student`).
    The teacher is an average of past students and the centre a training statistic, and the
    ``weights/`` budget has no room for both networks.
    """
    return method.student() if isinstance(method, DINO) else method


def pretrain_config(cfg: Profile, **changes) -> TrainConfig:
    """SGD with momentum 0.9, lr 0.06 x batch/256, weight decay 5e-4, cosine schedule.

    The recipe of lightly's CIFAR-10 benchmarks for all four methods (and close to SimSiam's
    CIFAR recipe, arXiv:2011.10566 §D: lr 0.03 x batch/256 at batch 512): one recipe keeps the
    comparison between methods about the methods.
    """
    batch_size = changes.pop("batch_size", cfg.batch_size)
    settings = dict(
        epochs=cfg.epochs,
        batch_size=batch_size,
        optimizer="sgd",
        lr=0.06 * batch_size / 256,
        momentum=0.9,
        weight_decay=5e-4,
        log_every=10,
        amp=cfg.amp,
    )
    return TrainConfig(**(settings | changes))


def encoder_knn(encoder: nn.Module, cfg: Profile, train: ImageData, test: ImageData) -> float:
    """Weighted kNN accuracy of a frozen encoder's features, ``train`` as the labelled bank."""
    train_x = extract_features(encoder, train.images)
    test_x = extract_features(encoder, test.images)
    return knn_accuracy(
        train_x, train.labels, test_x, test.labels, k=cfg.knn_k, temperature=cfg.knn_temperature
    )


def knn_monitor(cfg: Profile, train: ImageData, test: ImageData, max_train: int = 10_000):
    """An ``eval_fn`` for :func:`fit`: weighted kNN accuracy of the method's frozen encoder."""
    bank = train.subset(max_train)
    return lambda method: {"knn": encoder_knn(method.encoder, cfg, bank, test)}


def pretrain(
    name: str,
    cfg: Profile,
    train: ImageData,
    test: ImageData,
    device=None,
    checkpoint_dir: str | Path | None = None,
    eval_every: int = 1,
    seed: int = 0,
    train_changes: dict | None = None,
    **method_kwargs,
):
    """Pretrain method ``name`` on ``train``'s images (labels unused); return ``(method, history)``.

    The kNN monitor, which does use labels, only reads the frozen encoder every ``eval_every``
    epochs: it measures, it does not train. The history's step records carry the model TFLOP/s
    (and, on a GPU whose peak is known, the MFU) from the FLOPs of one training image.
    """
    config = pretrain_config(cfg, seed=seed, checkpoint_dir=checkpoint_dir, **(train_changes or {}))
    total_steps = config.epochs * (len(train) // config.batch_size)
    with seeded(seed):
        method = build_method(name, cfg, total_steps=total_steps, **method_kwargs)
    flops = method_flops_per_image(method, train.images[:2].cpu())
    history = fit(
        method,
        train.images,
        config,
        eval_fn=knn_monitor(cfg, train, test),
        eval_every=eval_every,
        device=device,
        flops_per_sample=flops,
    )
    return method, history


@torch.no_grad()
def _projections(method: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """g(f(x)) for every image: the projection head's output, where the loss is computed (for
    DINO, its head's K outputs, before the softmax)."""
    projector = method.head if isinstance(method, DINO) else method.projector
    head = nn.Sequential(method.encoder, projector)
    return extract_features(head, images, batch_size)


def geometry(method: nn.Module, views: tuple[torch.Tensor, torch.Tensor]) -> dict[str, float]:
    """Alignment and uniformity (Wang & Isola, 2020) of the embedding the loss acts on.

    That is the projection head's output g(f(x)), normalised (as the InfoNCE losses and BYOL's
    and SimSiam's cosine losses normalise it), for two augmented views of the same images.
    """
    z1, z2 = (_projections(method, v) for v in views)
    return {"alignment": alignment(z1, z2).item(), "uniformity": uniformity(z1).item()}


def evaluate_method(
    method: nn.Module,
    cfg: Profile,
    train: ImageData,
    test: ImageData,
    seed: int = 0,
    untrained: nn.Module | None = None,
) -> dict:
    """The book's protocol on a pretrained method, plus what the chapters discuss.

    Returns kNN and linear-probe accuracy of the backbone features, the linear probe on the
    projection-head outputs (to show why the head is thrown away), and :func:`geometry` of two
    augmented views of 1000 held-out images; with ``untrained`` (the same method at its initial
    weights) the same geometry before training under ``"before_training"``, for reference.
    """
    encoder = method.encoder
    train_x, test_x = (
        extract_features(encoder, train.images),
        extract_features(encoder, test.images),
    )
    train_z, test_z = _projections(method, train.images), _projections(method, test.images)
    generator = torch.Generator().manual_seed(seed)
    device = next(encoder.parameters()).device
    views = two_views(test.images[:1000].cpu(), SimCLRAugment(), generator=generator)
    views = tuple(v.to(device) for v in views)
    scores = protocol(cfg, train, test, train_x, test_x) | {
        "linear_projection_head": linear_probe(
            train_z, train.labels, test_z, test.labels, epochs=cfg.probe_epochs
        ),
        **geometry(method, views),
    }
    if untrained is not None:
        scores["before_training"] = geometry(untrained.to(device), views)
    return scores


def run(
    name: str,
    cfg: Profile,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    changes: dict | None = None,
) -> dict:
    """Pretrain and evaluate method ``name`` at the scale of ``cfg`` (``python -m sslbook.run``).

    ``changes`` go to :func:`pretrain_config` after :func:`recipe_changes`. ``"models"`` hands
    the trained method to :func:`sslbook.run.run_experiment`, which saves it.
    """
    changes = recipe_changes(name) | (changes or {})
    options = method_options(name)
    train, test = load_splits(cfg, device)
    with seeded(seed):  # the initial weights of the run below, for the geometry before training
        untrained = build_method(name, cfg, **options)
    method, history = pretrain(
        name,
        cfg,
        train,
        test,
        device,
        checkpoint_dir,
        eval_every=max(1, cfg.epochs // 10),
        seed=seed,
        train_changes=changes,
        **options,
    )
    recipe = pretrain_config(cfg, **changes)
    return {
        "method": name,
        "options": {k: repr(v) for k, v in options.items()},
        "recipe": {k: getattr(recipe, k) for k in ("optimizer", "lr", "weight_decay", "epochs")},
        "backbone": f"{cfg.backbone} (width {cfg.width}, {method.encoder.out_dim}-d features)",
        "models": {name: {"model": saved_part(method)}},
        "metrics": evaluate_method(method, cfg, train, test, seed=seed, untrained=untrained),
        "images_per_s": history.mean("images_per_s"),
        "flops_per_image": method_flops_per_image(method, train.images[:2]),
        "data": describe_splits(train, test),
        "history": history.to_dict(),
    }


def run_simclr_adamw(
    cfg: Profile, device=None, checkpoint_dir: str | Path | None = None, seed: int = 0
) -> dict:
    """SimCLR trained with :data:`ADAMW_RECIPE`, the optimiser of Barlow Twins, VICReg and DINO.

    The control for comparing them with SimCLR's SGD run: whether a lead is the method's or
    the optimiser's (``python -m sslbook.run simclr_adamw``). It saves no weights: SimCLR's
    reference weights are those of its own recipe.
    """
    result = run("simclr", cfg, device, checkpoint_dir, seed, changes=ADAMW_RECIPE)
    del result["models"]
    return result
