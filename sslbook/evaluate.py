"""How good is a representation? Frozen-feature evaluation and collapse indicators.

- :func:`knn_accuracy`: weighted k-nearest-neighbour classification (Wu et al., 2018,
  arXiv:1805.01978, the kNN monitor used by InstDisc, MoCo and lightly's benchmarks): each of the
  k most cosine-similar training features votes for its label with weight exp(sim / T).
- :func:`linear_probe`: a linear classifier trained on frozen, standardised features.
- :func:`alignment` and :func:`uniformity`: Wang & Isola, 2020, arXiv:2005.10242.
- :func:`embedding_std` and :func:`effective_rank`: collapse indicators, from
  :mod:`sslbook.collapse`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .collapse import effective_rank, embedding_std
from .data import balanced_subset, to_float
from .modules import eval_mode

__all__ = [
    "extract_features",
    "knn_predict",
    "knn_accuracy",
    "linear_probe",
    "label_efficiency",
    "alignment",
    "uniformity",
    "embedding_std",
    "effective_rank",
    "nearest_neighbours",
]


@torch.no_grad()
def extract_features(
    encoder: nn.Module, images: torch.Tensor, batch_size: int = 512, device=None
) -> torch.Tensor:
    """Frozen features of ``images`` in eval mode (batch norm uses its running statistics).

    Shape:
        images: (N, 3, H, W) uint8 or float in [0, 1]
        return: (N, D) float32, on ``images``' device
    """
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    with eval_mode(encoder):
        feats = [
            encoder(to_float(images[i : i + batch_size].to(device))).float().to(images.device)
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(feats)


def _check_features(train_x, train_y, test_x, test_y):
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(
            f"expected features (N, D) and (M, D), got {tuple(train_x.shape)} and "
            f"{tuple(test_x.shape)}"
        )
    if train_y.shape != (len(train_x),) or test_y.shape != (len(test_x),):
        raise ValueError(
            f"expected labels ({len(train_x)},) and ({len(test_x)},), got "
            f"{tuple(train_y.shape)} and {tuple(test_y.shape)}"
        )


@torch.no_grad()
def knn_predict(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Class scores of a weighted kNN vote.

    Shape:
        train_x: (N, D), train_y: (N,), test_x: (M, D); return: (M, C) vote totals
    """
    num_classes = num_classes or int(train_y.max()) + 1
    k = min(k, len(train_x))
    train_x = F.normalize(train_x.float(), dim=1)
    scores = []
    for i in range(0, len(test_x), chunk_size):
        q = F.normalize(test_x[i : i + chunk_size].float(), dim=1)
        sim, idx = (q @ train_x.T).topk(k, dim=1)  # (m, k) cosine similarities
        weight = (sim / temperature).exp()  # (m, k)
        votes = torch.zeros(len(q), num_classes, device=q.device)
        votes.scatter_add_(1, train_y[idx], weight)  # sum weights per class
        scores.append(votes)
    return torch.cat(scores)


def knn_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    *,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Top-1 accuracy of the weighted kNN classifier (k=200, T=0.1 as in InstDisc)."""
    _check_features(train_x, train_y, test_x, test_y)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    scores = knn_predict(train_x, train_y, test_x, k, temperature, num_classes)
    return (scores.argmax(1) == test_y).float().mean().item()


def linear_probe(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 512,
    seed: int = 0,
) -> float:
    """Top-1 test accuracy of a linear classifier trained on frozen features.

    Features are standardised with the training mean and std, then a single ``nn.Linear`` is
    trained with AdamW, cross-entropy and a cosine learning-rate schedule. Only the linear layer
    learns: the probe measures what the features make linearly separable.
    """
    _check_features(train_x, train_y, test_x, test_y)
    g = torch.Generator(device="cpu").manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    xs, xt = (train_x - mean) / std, (test_x - mean) / std
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    probe = nn.Linear(xs.shape[1], num_classes).to(xs.device)
    with torch.no_grad():  # seeded init, independent of the global RNG
        probe.weight.copy_(torch.randn(probe.weight.shape, generator=g) * 0.01)
        probe.bias.zero_()
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = max(1, len(xs) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=g).to(xs.device)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size : (i + 1) * batch_size]
            loss = F.cross_entropy(probe(xs[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return (probe(xt).argmax(1) == test_y).float().mean().item()


def label_efficiency(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    fractions: tuple[float, ...] = (0.01, 0.1),
    epochs: int = 100,
    seed: int = 0,
) -> dict[str, float]:
    """Linear-probe accuracy on all of ``test`` with only ``fraction`` of the training labels.

    The probe sees the features and labels of a class-balanced ``fraction`` of the training set
    only (:func:`sslbook.data.balanced_subset`, seeded); the representation was
    learned without labels (or, for a supervised network, with whatever it was trained on).
    Returns ``{str(fraction): accuracy}``.
    """
    scores = {}
    for fraction in fractions:
        idx = balanced_subset(train_y, fraction=fraction, seed=seed)
        scores[str(fraction)] = linear_probe(
            train_x[idx], train_y[idx], test_x, test_y, epochs=epochs, seed=seed
        )
    return scores


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean distance between the normalised embeddings of positive pairs (lower: more aligned).

    Shape:
        z1, z2: (N, D), row i of each is one view of the same image; return: scalar
    """
    if z1.shape != z2.shape:
        raise ValueError(
            f"expected two views of equal shape, got {tuple(z1.shape)}, {tuple(z2.shape)}"
        )
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    return (z1 - z2).norm(dim=1).pow(alpha).mean()


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log E exp(-t ||z_i - z_j||^2) over distinct pairs (lower: more uniform on the sphere).

    Shape:
        z: (N, D); return: scalar
    """
    z = F.normalize(z, dim=1)
    return torch.pdist(z, p=2).pow(2).mul(-t).exp().mean().log()


@torch.no_grad()
def nearest_neighbours(query: torch.Tensor, bank: torch.Tensor, k: int = 5) -> torch.Tensor:
    """Indices of the ``k`` most cosine-similar rows of ``bank`` for each query, best first.

    Shape:
        query: (M, D), bank: (N, D); return: (M, k) int64
    """
    if query.ndim != 2 or bank.ndim != 2 or query.shape[1] != bank.shape[1]:
        raise ValueError(
            f"expected features (M, D) and (N, D), got {tuple(query.shape)} and {tuple(bank.shape)}"
        )
    sim = F.normalize(query.float(), dim=1) @ F.normalize(bank.float(), dim=1).T  # (M, N)
    return sim.topk(min(k, len(bank)), dim=1).indices
