"""How SimCLR's representation scales with batch size, network width and the number of images.

    python -m sslbook.run scaling --profile cpu

pretrains SimCLR at the profile's setting (its width, batch size and training shard, half its
epochs, as the ablations) and then moves one axis at a time to a half and a quarter of that
value, everything else fixed, and scores each encoder with the book's protocol (kNN and linear
probe on the held-out shard, the labelled bank always the whole training shard):

- **batch size**, at a fixed number of epochs with the learning rate scaled linearly: a smaller
  batch takes more, noisier steps and gives each view fewer negatives (SimCLR Fig. 9, [0]);
- **width** of the backbone (channels of its first stage; the FLOPs grow with its square):
  self-supervised representations gain more from width than supervised ones ([0] Fig. 7, [1]);
- **pretraining images** (a class-balanced subset of the training shard), at a fixed number of
  steps, so that a smaller set is seen for more epochs and the runs cost the same: only the
  amount of distinct data changes ([2] varies it from 1M to 100M images).

The length of training, the fourth axis of the chapter, needs no run here: every pretraining
run records its kNN accuracy every other epoch (``history`` of each result file).

[0] SimCLR, Chen et al. 2020, arXiv:2002.05709
[1] Revisiting self-supervised visual representation learning, Kolesnikov et al. 2019,
    arXiv:1901.09005
[2] Scaling and benchmarking self-supervised visual representation learning, Goyal et al. 2019,
    arXiv:1905.01235
"""

from __future__ import annotations

from pathlib import Path

from ..models import count_parameters
from ..profiles import Profile
from .ablations import ablation_epochs
from .common import describe_splits, encoder_protocol, load_splits
from .pretrain import pretrain

__all__ = ["AXES", "FRACTIONS", "settings", "run"]

AXES = ("batch_size", "width", "train_size")
FRACTIONS = (0.25, 0.5)  # of the profile's value, next to the value itself


def settings(cfg: Profile, n_train: int) -> list[dict]:
    """The runs of the study: the profile's setting, then each axis at a quarter and a half."""
    base = {"batch_size": cfg.batch_size, "width": cfg.width, "train_size": n_train}
    runs = [{"axis": "reference"} | base]
    for axis in AXES:
        for fraction in FRACTIONS:
            runs.append({"axis": axis} | base | {axis: max(1, round(base[axis] * fraction))})
    return runs


def run(
    cfg: Profile,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    axes: tuple[str, ...] = AXES,
) -> dict:
    """Pretrain SimCLR at each setting of :func:`settings` on ``axes``; one row per run."""
    unknown = set(axes) - set(AXES)
    if unknown:
        raise ValueError(f"unknown scaling axes {sorted(unknown)}: expected some of {AXES}")
    train, test = load_splits(cfg, device)
    epochs = ablation_epochs(cfg)
    steps = epochs * (len(train) // cfg.batch_size)  # of the reference run
    rows = []
    for setting in settings(cfg, len(train)):
        if setting["axis"] not in ("reference", *axes):
            continue
        images = train.subset(setting["train_size"])
        # the pretraining-images axis holds the number of steps, the others the epochs
        run_epochs = epochs
        if setting["axis"] == "train_size":
            run_epochs = max(1, round(steps / (len(images) // setting["batch_size"])))
        name = "-".join(f"{k}{setting[k]}" for k in AXES)
        folder = Path(checkpoint_dir) / name if checkpoint_dir is not None else None
        method, history = pretrain(
            "simclr",
            cfg.with_(width=setting["width"]),
            images,
            test,
            device,
            folder,
            eval_every=run_epochs,
            seed=seed,
            train_changes={"epochs": run_epochs, "batch_size": setting["batch_size"]},
        )
        last = history.steps[-1]
        scores = encoder_protocol(cfg, method.encoder, train, test, fractions=())
        rows.append(
            setting
            | {
                "epochs": run_epochs,
                "steps": history.epochs[-1]["step"],
                "parameters": count_parameters(method.encoder),
                "flops_per_image": last["tflops"] * 1e12 / last["images_per_s"],
                "knn": scores["knn"],
                "linear": scores["linear"],
                "images_per_s": history.mean("images_per_s"),
                "final_loss": history.steps[-1]["loss"],
            }
        )
    return {
        "method": "simclr",
        "epochs": epochs,
        "rows": rows,
        "data": describe_splits(train, test),
    }
