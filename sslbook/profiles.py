"""Named experiment scales: ``smoke``, ``cpu``, ``colab`` and ``full``.

A chapter reads every size, length and width from ``cfg = sslbook.profile()``; nothing else in a
notebook branches on the environment. ``$SSLBOOK_PROFILE`` picks the profile; without it,
``colab`` where CUDA is available and ``smoke`` elsewhere.

- ``smoke``: every notebook runs in at most 90 s on 2 CPU cores (CI and the book build). Numbers
  printed at this scale only show that the code works; the text labels them as such.
- ``cpu``: a reference run of about 30 minutes per experiment on 2 CPU cores over the offline
  CIFAR-10 shards (10k images to train on, 10k held out).
- ``colab``: all of CIFAR-10 and wider networks, sized so that every chapter runs in at most
  15 minutes on a free Colab T4 (:mod:`sslbook.budget` estimates each chapter's time from its
  FLOPs; ``results/chapter_times.json``).
- ``full``: the papers' recipe (ResNet-18, 200 epochs) on one GPU: hours per chapter, opt-in
  with ``SSLBOOK_PROFILE=full``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

__all__ = ["Profile", "PROFILES", "profile"]


@dataclass(frozen=True)
class Profile:
    name: str
    train_size: int | None  # CIFAR-10 training images used (None: all of the split)
    test_size: int | None  # held-out images for kNN / linear probe (None: all)
    backbone: str  # "small_cnn" (fast, CPU) or "resnet18" (CIFAR ResNet-18)
    width: int  # channels of the backbone's first stage
    batch_size: int  # images per step (each gives two views in two-view methods)
    epochs: int  # self-supervised pretraining epochs
    supervised_epochs: int  # epochs of the supervised reference network
    probe_epochs: int  # epochs of the linear probe on frozen features
    collapse_steps: int  # steps of the naive invariance objective (Principles chapter)
    knn_k: int = 200  # neighbours in the weighted kNN monitor (InstDisc, Wu et al. 2018)
    knn_temperature: float = 0.1  # temperature of the kNN vote weights
    vit: str = "vit_mini"  # the MAE encoder: "vit_mini" (CPU) or "vit_tiny" (ViT-Tiny/4)
    mae_batch_size: int = 64  # images per MAE step: a small ViT needs many steps, not big ones
    text_dim: int = 128  # width of the masked-LM Transformer (and of the LSTMs' embeddings)
    text_depth: int = 2  # Transformer blocks of the masked-LM encoder
    text_seq_len: int = 32  # tokens per sequence, [CLS] and [SEP] included
    text_batch_size: int = 16  # sequences per step: the masked LM needs many small steps
    text_epochs: int = 2  # passes over the Tiny Shakespeare training split
    amp: bool | None = None  # TrainConfig.amp: None autocasts on GPUs; True on the CPU too

    def with_(self, **changes) -> Profile:
        """A copy with some fields changed, e.g. ``cfg.with_(epochs=5)``."""
        return replace(self, **changes)


# One line per concern: data, networks, training lengths, text (``fmt: off`` keeps the groups).
# fmt: off
# smoke: every notebook in <= 90 s on 2 CPU cores (CI, `make book`)
_SMOKE = Profile(
    name="smoke",
    train_size=4_000, test_size=2_000,
    backbone="small_cnn", width=32,
    batch_size=256, epochs=2, supervised_epochs=4, probe_epochs=15, collapse_steps=40,
    text_epochs=2,
)
PROFILES: dict[str, Profile] = {
    "smoke": _SMOKE,
    # cpu: the same small networks, wider and trained longer on the 10k-image shard (~30 min)
    "cpu": _SMOKE.with_(
        name="cpu",
        train_size=10_000, test_size=10_000,
        width=64,
        epochs=20, supervised_epochs=30, probe_epochs=100, collapse_steps=300,
        text_epochs=30,
    ),
    # colab: every chapter in <= 15 min on a free Colab T4 (sslbook.budget estimates it)
    "colab": _SMOKE.with_(
        name="colab",
        train_size=None, test_size=None,
        width=128,
        batch_size=512, epochs=10, supervised_epochs=15, probe_epochs=100, collapse_steps=300,
        mae_batch_size=256,
        text_seq_len=64, text_batch_size=64, text_epochs=30,
    ),
    # full: the papers' networks on all of CIFAR-10, on one GPU
    "full": Profile(
        name="full",
        train_size=None, test_size=None,
        backbone="resnet18", width=64, vit="vit_tiny",
        batch_size=512, epochs=200, supervised_epochs=100, probe_epochs=100, collapse_steps=1_000,
        mae_batch_size=512,
        text_dim=256, text_depth=4, text_seq_len=128, text_batch_size=32, text_epochs=100,
    ),
}
# fmt: on


def profile(name: str | None = None) -> Profile:
    """The active profile: ``name``, else ``$SSLBOOK_PROFILE``, else ``colab`` on CUDA or ``smoke``.

    Raises:
        ValueError: for a name that is not a profile (the message lists the valid ones).
    """
    name = name or os.environ.get("SSLBOOK_PROFILE") or None
    if name is None:
        name = "colab" if torch.cuda.is_available() else "smoke"
    key = name.strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown profile {name!r}: expected one of {', '.join(PROFILES)} "
            "(set SSLBOOK_PROFILE or pass the name)"
        )
    return PROFILES[key]
