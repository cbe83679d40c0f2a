"""Datasets as tensors: CIFAR-10 images as uint8 and text corpora as strings.

CIFAR-10 is small enough (50k images of 3x32x32 bytes = 150 MB) to live whole on the training
device, so the book uses no DataLoader workers for it: augmentation runs on batches of tensors
(:mod:`sslbook.augment`).

Where the data comes from, in order:

1. ``$SSLBOOK_DATA`` — an offline copy: ``cifar10/cifar10-train-{0,1}.npz`` (10k images each,
   disjoint; shard 0 trains, shard 1 is held out) and ``text/tinyshakespeare.txt``.
2. A download of the canonical dataset into ``$SSLBOOK_CACHE`` (default ``~/.cache/sslbook``):
   torchvision's CIFAR-10 (50k train / 10k official test images).
3. Otherwise a :class:`DataUnavailableError` that names both remedies.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "CIFAR10_CLASSES",
    "DataUnavailableError",
    "ImageData",
    "balanced_subset",
    "cache_dir",
    "check_images",
    "cifar10",
    "tiny_shakespeare",
    "to_float",
]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)


class DataUnavailableError(RuntimeError):
    """A dataset is neither in ``$SSLBOOK_DATA`` nor downloadable."""


@dataclass
class ImageData:
    """A labelled image dataset held as tensors.

    Shape:
        images: (N, 3, H, W) uint8, RGB
        labels: (N,) int64
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str  # where the images came from, for captions and result files

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device) -> ImageData:
        """The same data on ``device`` (images stay uint8 until augmentation)."""
        return ImageData(self.images.to(device), self.labels.to(device), self.classes, self.source)

    def subset(self, n: int | None, seed: int = 0) -> ImageData:
        """The first ``n`` images of a fixed class-balanced shuffle (all of them for ``None``):
        :func:`balanced_subset`, so that even a small smoke-scale subset holds every class in
        equal measure.
        """
        if n is None or n >= len(self):
            return self
        take = balanced_subset(self.labels, n, seed=seed)
        return ImageData(self.images[take], self.labels[take], self.classes, self.source)


def balanced_subset(
    labels: torch.Tensor, n: int | None = None, *, fraction: float | None = None, seed: int = 0
) -> torch.Tensor:
    """Indices of a class-balanced subset of ``labels``, the same for the same ``seed``.

    Give exactly one size:

    - ``n``: the first ``n`` examples of a round robin over the classes, taken in the order of
      one seeded shuffle of all examples. Class counts differ by at most one, and so do those of
      every prefix (:meth:`ImageData.subset`, the profiles' training and held-out images).
    - ``fraction``: each class keeps ``round(fraction * count)`` of its examples, at least one,
      drawn with one seeded permutation per class, so every method in a comparison sees the
      same labelled images (the few-label probes). Indices sorted.

    Shape:
        labels: (N,) int64; return: (n,) or (about fraction * N,) int64, on ``labels``' device
    """
    if (n is None) == (fraction is None):
        raise ValueError(f"expected exactly one of n and fraction, got n={n}, fraction={fraction}")
    if labels.ndim != 1:
        raise ValueError(f"expected labels of shape (N,), got {tuple(labels.shape)}")
    g = torch.Generator().manual_seed(seed)
    cpu = labels.cpu()
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"expected a label fraction in (0, 1], got {fraction}")
        keep = []
        for c in cpu.unique():
            members = (cpu == c).nonzero().squeeze(1)
            count = max(1, round(fraction * len(members)))
            keep.append(members[torch.randperm(len(members), generator=g)[:count]])
        return torch.cat(keep).sort().values.to(labels.device)
    if n <= 0:
        raise ValueError(f"expected a positive subset size, got {n}")
    order = torch.randperm(len(cpu), generator=g)
    shuffled = cpu[order]
    # Rank each example within its class, then take examples in order of that rank: round-robin.
    rank = torch.empty_like(shuffled)
    for c in shuffled.unique():
        where = (shuffled == c).nonzero().squeeze(1)
        rank[where] = torch.arange(len(where))
    take = order[torch.argsort(rank * len(cpu) + torch.arange(len(cpu)), stable=True)[:n]]
    return take.to(labels.device)


def data_dir() -> Path | None:
    """``$SSLBOOK_DATA`` as a path, or None when unset."""
    root = os.environ.get("SSLBOOK_DATA")
    return Path(root).expanduser() if root else None


def cache_dir() -> Path:
    """Where downloads go: ``$SSLBOOK_CACHE``, default ``~/.cache/sslbook``."""
    return Path(os.environ.get("SSLBOOK_CACHE", "~/.cache/sslbook")).expanduser()


def _from_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path) as f:
        return f["images"], f["labels"]


def _offline_cifar10(split: str) -> ImageData | None:
    root = data_dir()
    if root is None:
        return None
    # Shard 0 trains; shard 1 is held out and stands in for the official test split.
    path = root / "cifar10" / f"cifar10-train-{0 if split == 'train' else 1}.npz"
    if not path.exists():
        return None
    images, labels = _from_npz(path)
    note = "" if split == "train" else " (held-out shard, not the official test split)"
    return _as_image_data(images, labels, f"offline CIFAR-10 {path.name}{note}")


def _download_cifar10(split: str) -> ImageData:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(root=str(cache_dir() / "cifar10"), train=split == "train", download=True)
    name = "train" if split == "train" else "official test"
    return _as_image_data(ds.data, np.asarray(ds.targets), f"CIFAR-10 {name} split (torchvision)")


def _as_image_data(images: np.ndarray, labels: np.ndarray, source: str) -> ImageData:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"expected CIFAR-10 images as uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}"
        )
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    return ImageData(x, y, CIFAR10_CLASSES, source)


def cifar10(split: str = "train", download: bool = True) -> ImageData:
    """CIFAR-10 (Krizhevsky, 2009) as uint8 tensors.

    Args:
        split: "train" or "test". With the offline copy, "test" is the held-out shard 1.
        download: allow a torchvision download when no offline copy is found.

    Raises:
        DataUnavailableError: neither ``$SSLBOOK_DATA`` nor a download provided the data.
    """
    if split not in ("train", "test"):
        raise ValueError(f"expected split 'train' or 'test', got {split!r}")
    data = _offline_cifar10(split)
    if data is not None:
        return data
    failure = "downloads were disabled (download=False)"
    if download:
        try:
            return _download_cifar10(split)
        except Exception as e:  # no network, a proxy, a full disk: all end the same way
            failure = f"the download failed: {type(e).__name__}: {e}"
    root = data_dir()
    where = (
        f"$SSLBOOK_DATA={root} has no cifar10/cifar10-train-*.npz"
        if root is not None
        else "$SSLBOOK_DATA is not set"
    )
    raise DataUnavailableError(
        f"CIFAR-10 ({split}) is not available: {where}, and {failure}.\n"
        "Either (1) set SSLBOOK_DATA to a folder holding cifar10/cifar10-train-0.npz and "
        "cifar10-train-1.npz (the offline copy), or (2) connect to the internet so that "
        f"torchvision can download CIFAR-10 into {cache_dir() / 'cifar10'} "
        "(set SSLBOOK_CACHE to choose another folder)."
    )


def tiny_shakespeare(download: bool = True) -> str:
    """The Tiny Shakespeare corpus (1,115,394 characters) used by char-rnn.

    Raises:
        DataUnavailableError: neither ``$SSLBOOK_DATA`` nor a download provided the text.
    """
    root = data_dir()
    if root is not None and (root / "text" / "tinyshakespeare.txt").exists():
        return (root / "text" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    cached = cache_dir() / "text" / "tinyshakespeare.txt"
    if cached.exists():
        return cached.read_text(encoding="utf-8")
    failure = "downloads were disabled (download=False)"
    if download:
        try:
            with urllib.request.urlopen(TINY_SHAKESPEARE_URL, timeout=30) as r:
                text = r.read().decode("utf-8")
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, cached)
            return text
        except Exception as e:
            failure = f"the download failed: {type(e).__name__}: {e}"
    raise DataUnavailableError(
        f"Tiny Shakespeare is not available: {failure}. Either set SSLBOOK_DATA to a folder "
        f"holding text/tinyshakespeare.txt, or connect to the internet so that it can be "
        f"downloaded from {TINY_SHAKESPEARE_URL} into {cached}."
    )


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [0, 1]; float images are checked and cast to float32.

    Float input is assumed to lie in [0, 1] already (checking it would cost a device sync).

    Shape:
        images: (B, 3, H, W), uint8 or floating. Returns (B, 3, H, W), float32.
    """
    check_images(images)
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


def check_images(images: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``images`` is a non-empty (B, 3, H, W) uint8 or float tensor."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"expected images as a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.shape[0] == 0 or images.shape[2] == 0 or images.shape[3] == 0:
        raise ValueError(f"expected a non-empty batch of images, got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"expected images of dtype uint8 or floating, got {images.dtype}")
