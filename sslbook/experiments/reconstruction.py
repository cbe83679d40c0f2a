"""Reconstruction as a pretext task: autoencoders, denoising autoencoders and MAE.

    python -m sslbook.run autoencoder --profile cpu   # bottleneck sizes 64 / 128 / 256 / 384
    python -m sslbook.run denoising --profile cpu     # input noise std 0 / 0.1 / 0.2 / 0.4
    python -m sslbook.run mae --profile cpu           # mask ratios 25 / 50 / 75 / 90 %

Each trains one model per setting with everything else fixed, and reports how well it
reconstructs held-out images next to the error of the best constant prediction, and how good its
representation is under the book's protocol (kNN and linear probe on frozen features), next to
the same network left at its random initialisation. The chapter on autoencoders calls the same
functions at smoke scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import ImageData, to_float
from ..device import seeded
from ..flops import training_flops_per_image
from ..methods import MAE, ConvAutoencoder
from ..models.vit import ViT, vit_mini, vit_tiny
from ..profiles import Profile
from ..train import TrainConfig, call_model, fit
from .common import (
    SELECTION_RULE,
    choose,
    describe_splits,
    encoder_protocol,
    load_splits,
    reference_choice,
)

__all__ = [
    "BOTTLENECKS",
    "NOISE_STDS",
    "MASK_RATIOS",
    "autoencoder_config",
    "mae_config",
    "mae_encoder",
    "train_autoencoder",
    "train_mae",
    "mean_image_error",
    "reconstruction_error",
    "masked_patch_error",
    "run_autoencoder",
    "run_denoising",
    "run_mae",
]

BOTTLENECKS = (64, 128, 256, 384)
NOISE_STDS = (0.0, 0.1, 0.2, 0.4)  # on pixels in [0, 1]
MASK_RATIOS = (0.25, 0.5, 0.75, 0.9)
_VITS = {"vit_mini": vit_mini, "vit_tiny": vit_tiny}


def _flops(model, train: ImageData) -> float:
    """Training FLOPs of one image (for the TFLOP/s and MFU in the history)."""
    return training_flops_per_image(model, call_model, (train.images[:2].cpu(),))


def _fit(model, train: ImageData, config: TrainConfig, device, eval_fn=None):
    """:func:`fit` on ``train``'s images, recording TFLOP/s and MFU in the history."""
    flops = _flops(model, train)
    return fit(model, train.images, config, eval_fn=eval_fn, device=device, flops_per_sample=flops)


def autoencoder_config(cfg: Profile, **changes) -> TrainConfig:
    """AdamW at lr 1e-3, no weight decay, cosine schedule, the profile's epochs and batch."""
    settings = dict(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=1e-3, log_every=10, amp=cfg.amp
    )
    return TrainConfig(**(settings | changes))


def mae_config(cfg: Profile, **changes) -> TrainConfig:
    """AdamW with weight decay 0.05 and a cosine schedule after a linear warmup, as MAE [0] §A.1.

    MAE's base learning rate 1.5e-4 x batch/256 is tuned for 800+ epochs at batch 4096; for the
    short runs here 1e-3 works better at the profile's ``mae_batch_size`` (64 on a CPU, where a
    small ViT needs many steps more than big ones). Warmup: 5 % of the epochs, at least half one.
    """
    settings = dict(
        epochs=cfg.epochs,
        batch_size=cfg.mae_batch_size,
        lr=1e-3,
        weight_decay=0.05,
        warmup_epochs=max(0.5, 0.05 * cfg.epochs),
        log_every=20,
        amp=cfg.amp,
    )
    return TrainConfig(**(settings | changes))


def mae_encoder(cfg: Profile) -> ViT:
    """The profile's ViT with 4x4 patches (an 8 x 8 grid on CIFAR-10)."""
    if cfg.vit not in _VITS:
        raise ValueError(f"unknown ViT {cfg.vit!r}: expected one of {', '.join(_VITS)}")
    return _VITS[cfg.vit](patch_size=4)


def train_autoencoder(
    cfg: Profile,
    train: ImageData,
    bottleneck: int = 128,
    noise_std: float = 0.0,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    **changes,
):
    """A :class:`ConvAutoencoder` (width ``cfg.width``) trained on ``train``'s images.

    ``noise_std > 0`` makes it a denoising autoencoder. ``changes`` go to the TrainConfig.
    Returns ``(model, history)``.
    """
    with seeded(seed):
        model = ConvAutoencoder(cfg.width, bottleneck, noise_std=noise_std)
    config = autoencoder_config(cfg, seed=seed, checkpoint_dir=checkpoint_dir, **changes)
    history = _fit(model, train, config, device)
    return model, history


def train_mae(
    cfg: Profile,
    train: ImageData,
    mask_ratio: float = 0.75,
    device=None,
    checkpoint_dir: str | Path | None = None,
    seed: int = 0,
    eval_fn=None,
    **changes,
):
    """An :class:`MAE` around the profile's ViT trained on ``train``'s images.

    ``eval_fn(model) -> dict`` is recorded every epoch; ``changes`` go to the TrainConfig.
    Returns ``(model, history)``.
    """
    with seeded(seed):
        model = MAE(mae_encoder(cfg), mask_ratio=mask_ratio)
    config = mae_config(cfg, seed=seed, checkpoint_dir=checkpoint_dir, **changes)
    history = _fit(model, train, config, device, eval_fn)
    return model, history


def mean_image_error(train: ImageData, test: ImageData) -> float:
    """MSE on ``test`` of predicting every image by the mean training image: the error to beat."""
    mean = to_float(train.images).mean(dim=0, keepdim=True)  # (1, 3, H, W)
    return F.mse_loss(mean.expand(len(test), -1, -1, -1), to_float(test.images)).item()


@torch.no_grad()
def reconstruction_error(model: ConvAutoencoder, images: torch.Tensor, seed: int = 0) -> float:
    """Held-out MSE against the clean images, from the model's (noisy, if denoising) input."""
    with seeded(seed):  # the corruption noise
        errors = [
            model.reconstruct(images[i : i + 1000])["loss"] * len(images[i : i + 1000])
            for i in range(0, len(images), 1000)
        ]
    return (sum(errors) / len(images)).item()


@torch.no_grad()
def masked_patch_error(model: MAE, images: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """MAE's loss on held-out images, and the loss of predicting zero at every removed patch.

    With per-patch normalised targets zero is each patch's own mean: the best prediction that
    knows nothing of a patch's pattern. Same masks for both (seeded).

    Returns:
        {"held_out_loss": ..., "zero_loss": ...}, each averaged over the removed patches of
        all images (names that do not clash with the training loss in a History)
    """
    generator = torch.Generator(device=images.device).manual_seed(seed)
    loss = zero = count = 0.0
    for i in range(0, len(images), 500):
        batch = images[i : i + 500]
        out = model.reconstruct(batch, generator=generator)
        mask = out["mask"]  # (n, L), 1 is removed
        target = model.target(out["images"])  # (n, L, p*p*3)
        zero += (target.pow(2).mean(dim=-1) * mask).sum().item()
        loss += out["loss"].item() * mask.sum().item()
        count += mask.sum().item()
    return {"held_out_loss": loss / count, "zero_loss": zero / count}


def _cost(model, history, train: ImageData) -> dict[str, float]:
    """Mean training throughput and FLOPs per image of a run, to compare methods' cost."""
    return {"images_per_s": history.mean("images_per_s"), "flops_per_image": _flops(model, train)}


def _folder(checkpoint_dir, name: str) -> Path | None:
    return None if checkpoint_dir is None else Path(checkpoint_dir) / name


def _study(seed: int, settings, default, experiment: str, cfg: Profile, key: str):
    """The settings a study trains: all of them at seed 0, the seed-0 choice at other seeds."""
    if settings is not None:
        return settings
    return default if seed == 0 else (reference_choice(experiment, cfg, key),)


def run_autoencoder(cfg: Profile, device=None, checkpoint_dir=None, seed=0, bottlenecks=None):
    """Bottleneck-size study of the convolutional autoencoder.

    Every code size is scored on the held-out images; the study's choice (``"selected"``, saved
    as the reference weights) is made on a validation part of the training shard
    (:data:`~sslbook.experiments.common.SELECTION_RULE`). Seeds other than 0 train only the
    size that seed 0 chose.
    """
    bottlenecks = _study(seed, bottlenecks, BOTTLENECKS, "autoencoder", cfg, "bottleneck")
    train, test = load_splits(cfg, device)
    with seeded(seed):
        random_init = ConvAutoencoder(cfg.width, 128).to(device)
    rows = [
        {"model": "random init", "bottleneck": 128}
        | encoder_protocol(cfg, random_init.encoder, train, test)
    ]
    rows[0]["mse"] = reconstruction_error(random_init, test.images)
    models = {}
    for size in bottlenecks:
        folder = _folder(checkpoint_dir, f"code{size}")
        model, history = train_autoencoder(
            cfg, train, size, device=device, checkpoint_dir=folder, seed=seed
        )
        models[size] = model
        rows.append(
            {
                "model": "autoencoder",
                "bottleneck": size,
                "mse": reconstruction_error(model, test.images),
            }
            | encoder_protocol(cfg, model.encoder, train, test, validation=True)
            | {"final_loss": history.steps[-1]["loss"]}
            | _cost(model, history, train)
        )
    size = choose(rows)["bottleneck"]
    return {
        "width": cfg.width,
        "mean_image_mse": mean_image_error(train, test),
        "rows": rows,
        "selected": {"bottleneck": size, "rule": SELECTION_RULE},
        "models": {"autoencoder": {"model": models[size], "bottleneck": size}},
        "data": describe_splits(train, test),
    }


def run_denoising(cfg: Profile, device=None, checkpoint_dir=None, seed=0, noise_stds=None):
    """Input-noise study of the autoencoder with a 128-dimensional code.

    ``"selected"`` is the noise level chosen on the validation part of the training shard.
    Seeds other than 0 train only the level that seed 0 chose.
    """
    noise_stds = _study(seed, noise_stds, NOISE_STDS, "denoising", cfg, "noise_std")
    train, test = load_splits(cfg, device)
    rows = []
    for std in noise_stds:
        model, history = train_autoencoder(
            cfg,
            train,
            128,
            noise_std=std,
            device=device,
            checkpoint_dir=_folder(checkpoint_dir, f"noise{std}"),
            seed=seed,
        )
        rows.append(
            {"noise_std": std, "mse": reconstruction_error(model, test.images)}
            | encoder_protocol(cfg, model.encoder, train, test, validation=True)
            | {"final_loss": history.steps[-1]["loss"]}
            | _cost(model, history, train)
        )
    return {
        "width": cfg.width,
        "bottleneck": 128,
        "mean_image_mse": mean_image_error(train, test),
        "rows": rows,
        "selected": {"noise_std": choose(rows)["noise_std"], "rule": SELECTION_RULE},
        "data": describe_splits(train, test),
    }


def run_mae(cfg: Profile, device=None, checkpoint_dir=None, seed=0, mask_ratios=None):
    """Mask-ratio study of MAE, with the same ViT at random initialisation as the reference.

    The ratio reported as the study's choice (and saved as the reference weights) is chosen on
    the validation part of the training shard; seeds other than 0 train only that ratio.
    """
    mask_ratios = _study(seed, mask_ratios, MASK_RATIOS, "mae", cfg, "mask_ratio")
    train, test = load_splits(cfg, device)
    with seeded(seed):
        random_vit = mae_encoder(cfg).to(device)
    rows = [{"model": "random init"} | encoder_protocol(cfg, random_vit, train, test)]
    models = {}
    for ratio in mask_ratios:
        folder = _folder(checkpoint_dir, f"mask{ratio}")
        model, history = train_mae(cfg, train, ratio, device, folder, seed=seed)
        models[ratio] = model
        rows.append(
            {"model": "MAE", "mask_ratio": ratio}
            | masked_patch_error(model, test.images)
            | encoder_protocol(cfg, model.encoder, train, test, validation=True)
            | {"loss_curve": dict(zip(("step", "loss"), history.series("loss"), strict=True))}
            | _cost(model, history, train)
        )
    ratio = choose(rows)["mask_ratio"]
    return {
        "encoder": f"{cfg.vit}, 4x4 patches, [CLS] feature ({random_vit.out_dim}-d)",
        "rows": rows,
        "selected": {"mask_ratio": ratio, "rule": SELECTION_RULE},
        "models": {"mae": {"model": models[ratio], "mask_ratio": ratio}},
        "data": describe_splits(train, test),
    }
