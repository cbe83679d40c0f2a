"""Figures for the book: image grids, augmentation galleries, training curves, tables.

Every function draws on a Matplotlib figure it returns (or an axes it is given), sets a title and
labelled axes, and leaves showing or saving to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import torch

from .data import to_float

__all__ = [
    "to_image",
    "image_grid",
    "augmentation_gallery",
    "curves",
    "attention_map",
    "similarity_heatmap",
    "tsne_scatter",
]


def to_image(x: torch.Tensor) -> torch.Tensor:
    """(3, H, W) uint8 or float in [0, 1] -> (H, W, 3) float on the CPU, ready for ``imshow``."""
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected an image of shape (3, H, W), got {tuple(x.shape)}")
    x = to_float(x[None])[0] if x.dtype == torch.uint8 else x
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu()


def image_grid(
    images: torch.Tensor | Sequence[torch.Tensor],
    nrow: int = 8,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    row_labels: Sequence[str] | None = None,
    cell_size: float = 1.2,
):
    """Show images in a grid of ``nrow`` columns, optionally with a title per image and per row.

    Shape:
        images: (N, 3, H, W) uint8 or float in [0, 1], or a list of (3, H, W)
    """
    n = len(images)
    ncols = min(nrow, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(cell_size * ncols, cell_size * nrows + 0.4), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < n:
            ax.imshow(to_image(images[i]).numpy(), interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            axes[r, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def augmentation_gallery(
    images: torch.Tensor,
    augment: Callable[[torch.Tensor], torch.Tensor],
    n_views: int = 6,
    labels: Sequence[str] | None = None,
    suptitle: str = "Augmented views (first column: original)",
):
    """One row per image: the original, then ``n_views`` independent augmentations of it.

    Shape:
        images: (N, 3, H, W) uint8
    """
    views = [augment(images) for _ in range(n_views)]  # n_views x (N, 3, h, w)
    size = views[0].shape[-2:]
    originals = torch.nn.functional.interpolate(to_float(images), size=tuple(size), mode="nearest")
    cells = [img for i in range(len(images)) for img in (originals[i], *[v[i] for v in views])]
    titles = (["original"] + [f"view {j + 1}" for j in range(n_views)]) * len(images)
    fig = image_grid(cells, nrow=n_views + 1, titles=titles, suptitle=suptitle, row_labels=labels)
    return fig


def curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str,
    ax=None,
    logy: bool = False,
):
    """Line plot of named (x, y) series, e.g. ``{"loss": history.series("loss")}``."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def similarity_heatmap(sim: torch.Tensor, title: str, ax=None, labels: Sequence[str] | None = None):
    """A matrix of pairwise similarities as a heatmap with a colour bar.

    Shape:
        sim: (M, M), e.g. cosine similarities of 2N views ordered [view 1 of all, view 2 of all]
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
    else:
        fig = ax.figure
    image = ax.imshow(sim.detach().float().cpu().numpy(), cmap="viridis", vmin=-1, vmax=1)
    fig.colorbar(image, ax=ax, label="cosine similarity")
    ax.set_title(title)
    ax.set_xlabel("view index")
    ax.set_ylabel("view index")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
        ax.set_yticks(range(len(labels)), labels, fontsize=6)
    fig.tight_layout()
    return fig


def attention_map(weights: torch.Tensor, tokens: Sequence[str], title: str, ax=None):
    """One head's attention weights: row i is how much token i attends to each token.

    Shape:
        weights: (T, T), rows summing to 1; tokens: T labels
    """
    if weights.ndim != 2 or weights.shape != (len(tokens), len(tokens)):
        raise ValueError(
            f"expected ({len(tokens)}, {len(tokens)}) weights for {len(tokens)} tokens, "
            f"got {tuple(weights.shape)}"
        )
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
    else:
        fig = ax.figure
    ax.imshow(weights.detach().float().cpu().numpy(), cmap="Blues", vmin=0)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=7)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=7)
    ax.set_xlabel("attended token")
    ax.set_ylabel("querying token")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def tsne_scatter(
    features: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    title: str,
    seed: int = 0,
    ax=None,
):
    """Features embedded in 2-D with t-SNE (scikit-learn), one colour per class.

    Shape:
        features: (N, D), labels: (N,)
    """
    from sklearn.manifold import TSNE

    xy = TSNE(n_components=2, init="pca", perplexity=30, random_state=seed).fit_transform(
        features.detach().float().cpu().numpy()
    )
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 5))
    else:
        fig = ax.figure
    labels = labels.cpu()
    for c, name in enumerate(classes):
        where = labels == c
        ax.scatter(xy[where, 0], xy[where, 1], s=4, label=name, color=plt.cm.tab10(c))
    ax.set_title(title)
    ax.set_xlabel("t-SNE dimension 1")
    ax.set_ylabel("t-SNE dimension 2")
    ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig
