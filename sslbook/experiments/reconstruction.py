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
from ..flops import training_flops_per_image
from ..methods import MAE, ConvAutoencoder
from ..models.vit import ViT, vit_mini, vit_tiny
from ..profiles import Profile
from ..train import TrainConfig, fit
from .baselines import describe_splits, encoder_protocol, load_splits

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


def _loss(model, batch):
    return model(batch[0])


def _flops(model, train: ImageData) -> float:
    """Training FLOPs of one image (for the TFLOP/s and MFU in the history)."""
    return training_flops_per_image(model, _loss, (train.images[:2].cpu(),))


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
    torch.manual_seed(seed)
    model = ConvAutoencoder(cfg.width, bottleneck, noise_std=noise_std)
    config = autoencoder_config(cfg, seed=seed, checkpoint_dir=checkpoint_dir, **changes)
    history = fit(
        model,
        _loss,
        train.images,
        config,
        device=device,
        flops_per_sample=_flops(model, train),
    )
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
    torch.manual_seed(seed)
    model = MAE(mae_encoder(cfg), mask_ratio=mask_ratio)
    config = mae_config(cfg, seed=seed, checkpoint_dir=checkpoint_dir, **changes)
    history = fit(
        model,
        _loss,
        train.images,
        config,
        eval_fn=eval_fn,
        device=device,
        flops_per_sample=_flops(model, train),
    )
    return model, history


def mean_image_error(train: ImageData, test: ImageData) -> float:
    """MSE on ``test`` of predicting every image by the mean training image: the error to beat."""
    mean = to_float(train.images).mean(dim=0, keepdim=True)  # (1, 3, H, W)
    return F.mse_loss(mean.expand(len(test), -1, -1, -1), to_float(test.images)).item()


@torch.no_grad()
def reconstruction_error(model: ConvAutoencoder, images: torch.Tensor, seed: int = 0) -> float:
    """Held-out MSE against the clean images, from the model's (noisy, if denoising) input."""
    torch.manual_seed(seed)  # the corruption noise
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


def run_autoencoder(cfg: Profile, device=None, checkpoint_dir=None, bottlenecks=BOTTLENECKS):
    """Bottleneck-size study of the convolutional autoencoder."""
    train, test = load_splits(cfg, device)
    torch.manual_seed(0)
    random_init = ConvAutoencoder(cfg.width, 128).to(device)
    rows = [
        {"model": "random init", "bottleneck": 128}
        | encoder_protocol(cfg, random_init.encoder, train, test)
    ]
    rows[0]["mse"] = reconstruction_error(random_init, test.images)
    for size in bottlenecks:
        model, history = train_autoencoder(
            cfg, train, size, device=device, checkpoint_dir=_folder(checkpoint_dir, f"code{size}")
        )
        rows.append(
            {
                "model": "autoencoder",
                "bottleneck": size,
                "mse": reconstruction_error(model, test.images),
            }
            | encoder_protocol(cfg, model.encoder, train, test)
            | {"final_loss": history.steps[-1]["loss"]}
            | _cost(model, history, train)
        )
    return {
        "width": cfg.width,
        "mean_image_mse": mean_image_error(train, test),
        "rows": rows,
        "data": describe_splits(train, test),
    }


def run_denoising(cfg: Profile, device=None, checkpoint_dir=None, noise_stds=NOISE_STDS):
    """Input-noise study of the autoencoder with a 128-dimensional code."""
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
        )
        rows.append(
            {"noise_std": std, "mse": reconstruction_error(model, test.images)}
            | encoder_protocol(cfg, model.encoder, train, test)
            | {"final_loss": history.steps[-1]["loss"]}
            | _cost(model, history, train)
        )
    return {
        "width": cfg.width,
        "bottleneck": 128,
        "mean_image_mse": mean_image_error(train, test),
        "rows": rows,
        "data": describe_splits(train, test),
    }


def run_mae(cfg: Profile, device=None, checkpoint_dir=None, mask_ratios=MASK_RATIOS):
    """Mask-ratio study of MAE, with the same ViT at random initialisation as the reference."""
    train, test = load_splits(cfg, device)
    torch.manual_seed(0)
    random_vit = mae_encoder(cfg).to(device)
    rows = [{"model": "random init"} | encoder_protocol(cfg, random_vit, train, test)]
    for ratio in mask_ratios:
        model, history = train_mae(
            cfg, train, ratio, device, checkpoint_dir=_folder(checkpoint_dir, f"mask{ratio}")
        )
        rows.append(
            {"model": "MAE", "mask_ratio": ratio}
            | masked_patch_error(model, test.images)
            | encoder_protocol(cfg, model.encoder, train, test)
            | {"loss_curve": dict(zip(("step", "loss"), history.series("loss"), strict=True))}
            | _cost(model, history, train)
        )
    return {
        "encoder": f"{cfg.vit}, 4x4 patches, [CLS] feature ({random_vit.out_dim}-d)",
        "rows": rows,
        "data": describe_splits(train, test),
    }
