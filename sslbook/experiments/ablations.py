"""Ablations: SimCLR's temperature and augmentations, and SimCLR against MoCo by batch size.

    python -m sslbook.run simclr_ablations --profile cpu
    python -m sslbook.run batch_size --profile cpu --seeds 0 1 2

trains SimCLR once per variant below with everything else fixed (backbone, optimiser, seed,
data), for half the profile's epochs so that five runs cost about two full ones, and evaluates
each backbone with the book's protocol (kNN and linear probe on held-out images).

- temperature 0.05 / 0.2 / 0.5 / 1.0 with the full augmentation recipe: the temperature sets
  how sharply the loss concentrates on the hardest negatives (SimCLR Table 5; Wang & Liu 2021);
- random crop and flip only, at SimCLR's CIFAR temperature 0.5: without colour distortion the
  views of an image share their colour histogram, a shortcut that solves the task without
  learning what the image shows (SimCLR §3, Fig. 5-6).

``batch_size`` pretrains SimCLR and MoCo at a batch of 32 images, the learning rate scaled
linearly, for the profile's epochs; the reference ``simclr`` and ``moco`` runs are the same
recipe at the profile's batch (256). SimCLR's negatives are the other 2B - 2 views of its
batch, MoCo's a queue of ``queue_size`` keys whatever the batch, so if the number of negatives
matters, SimCLR should lose more than MoCo as the batch shrinks (MoCo §3.1 and Fig. 3, [1]).

[0] SimCLR, Chen et al. 2020, arXiv:2002.05709
[1] MoCo, He et al. 2020, arXiv:1911.05722; MoCo v2, Chen et al. 2020, arXiv:2003.04297
"""

from __future__ import annotations

from pathlib import Path

from ..augment import SimCLRAugment
from ..profiles import Profile
from .common import SELECTION_RULE, choose, describe_splits, encoder_protocol, load_splits
from .pretrain import pretrain, pretrain_config

__all__ = ["VARIANTS", "SMALL_BATCH", "ablation_epochs", "run", "run_batch_size"]

# name -> keyword arguments of sslbook.methods.SimCLR
VARIANTS: dict[str, dict] = {
    "T=0.05": {"temperature": 0.05},
    "T=0.2": {"temperature": 0.2},
    "T=0.5": {"temperature": 0.5},
    "T=1.0": {"temperature": 1.0},
    "crop only, T=0.5": {"temperature": 0.5, "augment": SimCLRAugment.crop_only()},
}


def ablation_epochs(cfg: Profile) -> int:
    """Half the profile's pretraining epochs (at least one) per variant."""
    return max(1, cfg.epochs // 2)


def run(
    cfg: Profile,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    variants: dict[str, dict] | None = None,
) -> dict:
    """Pretrain SimCLR once per variant and evaluate each backbone; rows in variant order."""
    variants = VARIANTS if variants is None else variants
    train, test = load_splits(cfg, device)
    epochs = ablation_epochs(cfg)
    rows = []
    for name, kwargs in variants.items():
        folder = None
        if checkpoint_dir is not None:
            folder = Path(checkpoint_dir) / name.replace(", ", "-").replace(" ", "-")
        method, history = pretrain(
            "simclr",
            cfg,
            train,
            test,
            device,
            folder,
            eval_every=max(1, epochs // 5),
            seed=seed,
            train_changes={"epochs": epochs},
            **kwargs,
        )
        scores = encoder_protocol(cfg, method.encoder, train, test, validation=True)
        curve = history.series("knn", level="epochs")
        augment = "crop and flip only" if "augment" in kwargs else "full SimCLR recipe"
        rows.append(
            {
                "variant": name,
                "temperature": method.temperature,
                "augmentation": augment,
                **scores,
                "final_loss": history.steps[-1]["loss"],
                "knn_curve": dict(zip(("epoch", "knn"), curve, strict=True)),
            }
        )
    return {
        "method": "simclr",
        "epochs_per_variant": epochs,
        "rows": rows,
        "selected": {"variant": choose(rows)["variant"], "rule": SELECTION_RULE},
        "data": describe_splits(train, test),
    }


SMALL_BATCH = 32


def run_batch_size(
    cfg: Profile,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    batch_size: int = SMALL_BATCH,
) -> dict:
    """SimCLR and MoCo v2 pretrained at ``batch_size`` images per step, otherwise as their runs.

    The reference ``simclr`` and ``moco`` runs of the profile are the other end of the
    comparison: the same recipe (:func:`sslbook.experiments.pretrain.pretrain_config`, the
    learning rate scaled linearly with the batch), the same epochs and seed, at the profile's
    batch size. Each row records the negatives per view (``2B - 2`` for SimCLR, the queue's
    length for MoCo), the learning rate and the number of steps.
    """
    if batch_size < 2 or batch_size >= cfg.batch_size:
        raise ValueError(
            f"expected a batch size from 2 to {cfg.batch_size - 1}, below the profile's "
            f"{cfg.batch_size}, got {batch_size}"
        )
    train, test = load_splits(cfg, device)
    rows = []
    for name in ("simclr", "moco"):
        folder = Path(checkpoint_dir) / name if checkpoint_dir is not None else None
        changes = {"batch_size": batch_size}
        method, history = pretrain(
            name, cfg, train, test, device, folder, cfg.epochs, seed=seed, train_changes=changes
        )
        negatives = 2 * batch_size - 2 if name == "simclr" else method.queue.shape[0]
        rows.append(
            {
                "method": name,
                "batch_size": batch_size,
                "negatives": negatives,
                "lr": pretrain_config(cfg, **changes).lr,
                "steps": history.steps[-1]["step"],
            }
            | encoder_protocol(cfg, method.encoder, train, test, fractions=())
            | {"images_per_s": history.mean("images_per_s")}
        )
    return {
        "epochs": cfg.epochs,
        "reference": {"batch_size": cfg.batch_size, "experiments": ["simclr", "moco"]},
        "rows": rows,
        "data": describe_splits(train, test),
    }
