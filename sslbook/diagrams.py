"""Schematics of the book's ideas and methods, drawn in code so that they stay editable.

Every ``diagram_<name>(ax=None)`` draws boxes and arrows on an axes whose data units are inches
of its figure (7 inches wide, the book's text width) and returns the figure. The same colour
means the same thing in every diagram (see :data:`PALETTE`). :data:`DIAGRAMS` maps each name to
its function and :data:`ALT_TEXT` to the text a screen reader gives for it;
``scripts/make_figures.py`` writes them to ``book/figures/<name>.svg`` with :func:`save_svg`.

Nothing here imports torch: the diagrams are pictures of the methods, not runs of them.

[0] BYOL, Grill et al. 2020, arXiv:2006.07733
[1] SimSiam, Chen & He 2021, arXiv:2011.10566
[2] MoCo, He et al. 2020, arXiv:1911.05722
[3] MAE, He et al. 2022, arXiv:2111.06377
[4] BERT, Devlin et al. 2019, arXiv:1810.04805
[5] Barlow Twins, Zbontar et al. 2021, arXiv:2103.03230
[6] DINO, Caron et al. 2021, arXiv:2104.14294
[7] VICReg, Bardes, Ponce & LeCun 2022, arXiv:2105.04906
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.patches import (
    Circle,
    FancyArrowPatch,
    FancyBboxPatch,
    Polygon,
    Rectangle,
)
from matplotlib.textpath import TextPath

__all__ = [
    "PALETTE",
    "ALT_TEXT",
    "DIAGRAMS",
    "diagram_ssl_steps",
    "diagram_simclr",
    "diagram_moco",
    "diagram_byol",
    "diagram_simsiam",
    "diagram_barlow_twins",
    "diagram_vicreg",
    "diagram_dino",
    "diagram_autoencoder",
    "diagram_mae",
    "diagram_bert_masking",
    "diagram_families",
    "diagram_protocol",
    "diagram_scaling",
    "diagram_fast_path",
    "save_svg",
]

# (fill, edge) per role; one meaning per colour across all the diagrams.
PALETTE = {
    "data": ("#EEF1F5", "#5B6B7F"),  # images, views, tokens
    "encoder": ("#D6E6F5", "#2F6DB0"),  # the network kept after pre-training
    "head": ("#DCEFD9", "#3C8D40"),  # projection heads and decoders, dropped after pre-training
    "predictor": ("#FDE7CF", "#C8711D"),  # the extra MLP of the online branch (BYOL, SimSiam)
    "target": ("#E9E2F3", "#7452A8"),  # momentum / target networks and the keys they produce
    "loss": ("#F8D7D7", "#C0392B"),  # losses, and the positions a loss is computed on
    "masked": ("#BFC4CB", "#6B7280"),  # hidden patches and tokens
    "downstream": ("#FFF3C4", "#B08900"),  # the task the features are for
}
INK = "#222222"  # text
ARROW = "#3D4652"  # data flow
STOP = PALETTE["loss"][1]  # stop-gradient marks
POSITIVE = PALETTE["head"][1]  # positive pairs
FONT = 9  # box labels, points
SMALL = 8  # annotations, points


class _Box(NamedTuple):
    """A box by its centre and size, in inches; its sides are where arrows start and end."""

    x: float
    y: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)


def _canvas(ax: Axes | None, width: float, height: float) -> tuple[Figure, Axes]:
    """A frameless axes whose data units are inches of a ``width`` x ``height`` figure."""
    if ax is None:
        fig = plt.figure(figsize=(width, height))
        ax = fig.add_axes((0, 0, 1, 1))
    else:
        fig = ax.figure
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _text(ax, x: float, y: float, s: str, size: float = SMALL, **kwargs) -> None:
    kwargs = {"ha": "center", "va": "center", "color": INK, **kwargs}
    ax.text(x, y, s, fontsize=size, **kwargs)


def _box(
    ax, x: float, y: float, w: float, h: float, label: str, kind: str, size: float = FONT, **kwargs
) -> _Box:
    """A rounded box coloured by its role (a key of PALETTE), with a centred label."""
    fill, edge = PALETTE[kind]
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.06",
            facecolor=fill,
            edgecolor=edge,
            linewidth=1.2,
        )
    )
    if label:
        _text(ax, x, y, label, size, **kwargs)
    return _Box(x, y, w, h)


def _arrow(
    ax,
    start: tuple[float, float],
    end: tuple[float, float],
    label: str | None = None,
    *,
    offset: tuple[float, float] = (0.0, 0.13),
    color: str = ARROW,
    dashed: bool = False,
    rad: float = 0.0,
    size: float = SMALL,
    **text_kwargs,
) -> None:
    """An arrow from ``start`` to ``end``, labelled at its middle shifted by ``offset``."""
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=10,
            linewidth=1.2,
            color=color,
            linestyle=(0, (4, 2)) if dashed else "-",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=1,
            shrinkB=1,
        )
    )
    if label:
        x = (start[0] + end[0]) / 2 + offset[0]
        y = (start[1] + end[1]) / 2 + offset[1]
        _text(ax, x, y, label, size, **{"color": color, **text_kwargs})


def _line(ax, points: Sequence[tuple[float, float]], color: str = ARROW, **kwargs) -> None:
    xs, ys = zip(*points, strict=True)
    ax.plot(xs, ys, color=color, linewidth=kwargs.pop("linewidth", 1.2), **kwargs)


def _stop_gradient(ax, x: float, y: float, label_dy: float = 0.17) -> None:
    """Two red slashes across a horizontal arrow at (x, y), labelled above (or below) it."""
    for dx in (-0.04, 0.04):
        _line(ax, [(x + dx - 0.05, y - 0.11), (x + dx + 0.05, y + 0.11)], STOP, linewidth=1.8)
    _text(ax, x, y + label_dy, "stop-gradient", SMALL, color=STOP, fontweight="bold")


def _picture(
    ax, x: float, y: float, size: float, variant: str = "original", clip: Rectangle | None = None
) -> None:
    """A toy photograph (sky, sun, hill) centred at (x, y): the original, a zoomed crop, or a
    recoloured flip; ``clip`` (in data coordinates) shows only part of it, as a patch."""
    sky, sun, hill = {
        "original": ("#A9CCE3", "#F4D03F", "#58A65C"),
        "crop": ("#A9CCE3", "#F4D03F", "#58A65C"),
        "jitter": ("#D7BDE2", "#F5B041", "#7D9D3C"),
    }[variant]
    zoom, flip = {"original": (1.0, 1), "crop": (1.7, 1), "jitter": (1.0, -1)}[variant]

    def at(u: float, v: float) -> tuple[float, float]:  # picture coordinates in [-0.5, 0.5]
        return (x + flip * zoom * u * size, y + zoom * v * size)

    frame = Rectangle((x - size / 2, y - size / 2), size, size, transform=ax.transData)
    shapes = [
        Rectangle(frame.get_xy(), size, size, facecolor=sky, edgecolor="none"),
        Circle(at(0.22, 0.2), 0.12 * zoom * size, facecolor=sun, edgecolor="none"),
        Polygon(
            [at(-0.8, -0.5), at(-0.15, 0.05), at(0.45, -0.5)], facecolor=hill, edgecolor="none"
        ),
    ]
    for shape in shapes:
        ax.add_patch(shape)
        shape.set_clip_path(frame if clip is None else clip)
        shape.set_label("_picture")  # drawn outside its clip: the tests skip it
    if clip is None:
        edge = PALETTE["data"][1]
        ax.add_patch(Rectangle(frame.get_xy(), size, size, fill=False, edgecolor=edge, lw=1.0))


def _bracket(ax, x0: float, x1: float, y: float, label: str, color: str = ARROW) -> None:
    """A bracket under the span [x0, x1] at height y, labelled beneath."""
    _line(ax, [(x0, y + 0.08), (x0, y), (x1, y), (x1, y + 0.08)], color, linewidth=1.0)
    _text(ax, (x0 + x1) / 2, y - 0.15, label, SMALL, color=color)


def diagram_ssl_steps(ax: Axes | None = None) -> Figure:
    """The four steps of self-supervised learning, from unlabelled data to a downstream task."""
    fig, ax = _canvas(ax, 7.0, 2.0)
    steps = [
        ("1. Augment", "crop, recolour or\nmask unlabelled data", "data"),
        ("2. Pretext task", "a target made from\nthe data itself", "loss"),
        ("3. Train", "an encoder f learns\nto solve the task", "encoder"),
        ("4. Extract features", "keep f; fit a small\nhead on few labels", "downstream"),
    ]
    w, gap, y = 1.46, 0.34, 1.2
    boxes = []
    for i, (title, body, kind) in enumerate(steps):
        x = 0.1 + w / 2 + i * (w + gap)
        boxes.append(_box(ax, x, y, w, 1.0, "", kind))
        _text(ax, x, y + 0.27, title, FONT, fontweight="bold")
        _text(ax, x, y - 0.1, body, SMALL)
    for a, b in zip(boxes, boxes[1:], strict=False):
        _arrow(ax, a.right, b.left)
    _bracket(
        ax, boxes[0].x - w / 2, boxes[2].x + w / 2, 0.5, "self-supervised pre-training: no labels"
    )
    _bracket(ax, boxes[3].x - w / 2, boxes[3].x + w / 2, 0.5, "evaluation: few labels")
    return fig


def diagram_simclr(ax: Axes | None = None) -> Figure:
    """SimCLR: two views, a shared encoder f and head g, NT-Xent over 2N x 2N similarities."""
    fig, ax = _canvas(ax, 7.0, 3.2)
    top, bottom, mid = 2.45, 0.95, 1.7
    _picture(ax, 0.35, mid, 0.5)
    _text(ax, 0.35, mid - 0.4, "image x")
    for i, (y, variant, side) in enumerate(((top, "crop", 1), (bottom, "jitter", -1))):
        _picture(ax, 1.3, y, 0.5, variant)
        _text(ax, 1.3, y + 0.4 * side, f"view {i + 1}")
        _arrow(
            ax,
            (0.62, mid + 0.15 * side),
            (1.03, y),
            ("t ~ T", "t′ ~ T")[i],
            offset=(0.3, -0.1 * side),
        )
        f = _box(ax, 2.2, y, 0.75, 0.5, "encoder f", "encoder")
        g = _box(ax, 3.25, y, 0.75, 0.5, "head g", "head")
        _arrow(ax, (1.57, y), f.left)
        _arrow(ax, f.right, g.left, f"h{'₁₂'[i]}")
        _arrow(ax, g.right, (4.2, mid + 0.28 * side), f"z{'₁₂'[i]}", offset=(0.1, 0.1 * side))
    for x in (f.x, g.x):
        _line(ax, [(x, top - 0.25), (x, bottom + 0.25)], ARROW, linestyle=":", linewidth=1.0)
    _text(ax, (f.x + g.x) / 2, mid, "shared\nweights", color=ARROW)
    loss = _box(ax, 4.3, mid, 0.75, 0.55, "NT-Xent\nloss", "loss")

    # The 2N x 2N matrix of sim(z_a, z_b) / tau for N = 4, views ordered [view 1s, view 2s].
    n, cell, x0, y0 = 4, 0.19, 5.1, 0.75
    for row in range(2 * n):
        for col in range(2 * n):
            if row == col:
                fill, edge = PALETTE["masked"]
            elif abs(row - col) == n:
                fill, edge = POSITIVE, POSITIVE
            else:
                fill, edge = "white", PALETTE["data"][1]
            ax.add_patch(
                Rectangle(
                    (x0 + col * cell, y0 + (2 * n - 1 - row) * cell),
                    cell,
                    cell,
                    facecolor=fill,
                    edgecolor=edge,
                    linewidth=0.5,
                )
            )
    side = 2 * n * cell
    _line(ax, [(x0 + side / 2, y0), (x0 + side / 2, y0 + side)], INK, linewidth=1.0)
    _line(ax, [(x0, y0 + side / 2), (x0 + side, y0 + side / 2)], INK, linewidth=1.0)
    for k, name in enumerate(("view 1", "view 2")):
        _text(ax, x0 + (k + 0.5) * side / 2, y0 + side + 0.12, name)
        _text(ax, x0 - 0.12, y0 + side - (k + 0.5) * side / 2, name, rotation=90)
    _text(ax, x0 + side / 2, y0 + side + 0.4, "2N × 2N similarities (N = 4)", FONT)
    _arrow(ax, loss.right, (x0 - 0.25, mid), dashed=True)
    legend = [
        (POSITIVE, "positive pair"),
        (PALETTE["masked"][0], "self (excluded)"),
        ("white", "negative"),
    ]
    for k, (fill, label) in enumerate(legend):
        lx = 3.35 + k * 1.25
        ax.add_patch(
            Rectangle(
                (lx, 0.17), 0.15, 0.15, facecolor=fill, edgecolor=PALETTE["data"][1], linewidth=0.5
            )
        )
        _text(ax, lx + 0.22, 0.245, label, ha="left")
    _text(ax, 1.8, 0.245, "each row: softmax, target = its positive", ha="center")
    return fig


def diagram_moco(ax: Axes | None = None) -> Figure:
    """MoCo: query encoder, momentum key encoder, a queue of keys, InfoNCE against the queue."""
    fig, ax = _canvas(ax, 7.0, 3.3)
    top, middle = 2.75, 1.55
    key = PALETTE["target"][1]  # the colour of everything on the key side
    _picture(ax, 0.4, top, 0.5, "crop")
    _picture(ax, 0.4, middle, 0.5, "jitter")
    _text(ax, 0.4, top - 0.4, "query view")
    _text(ax, 0.4, middle - 0.4, "key view")
    fq = _box(ax, 1.6, top, 1.0, 0.5, "encoder $f_q$", "encoder")
    fk = _box(ax, 1.6, middle, 1.0, 0.55, "momentum\nencoder $f_k$", "target")
    _arrow(ax, (0.67, top), fq.left)
    _arrow(ax, (0.67, middle), fk.left)
    _arrow(ax, fq.bottom, fk.top, dashed=True, color=key)
    update = "momentum update (no gradient)\n$\\theta_k \\leftarrow m\\theta_k + (1 - m)\\theta_q$"
    _text(ax, 1.7, (top + middle) / 2, update, ha="left", color=key)  # [2] Eq. 2
    loss = _box(ax, 6.1, 2.15, 1.6, 0.75, "InfoNCE loss\n1 positive, K negatives", "loss")
    _arrow(ax, fq.right, (loss.x - 0.8, loss.y + 0.2), "query q", offset=(0, 0.14))
    split = (2.65, middle)
    _line(ax, [fk.right, split], key)
    into_loss = (loss.x - 0.8, loss.y - 0.2)
    _arrow(ax, split, into_loss, "positive key k₊", color=key, offset=(0.25, -0.17))

    # The queue: this batch's keys enter on the left, the oldest batch leaves on the right.
    cells, cell, qx, qy = 10, 0.26, 3.1, 0.55
    for i in range(cells):
        ax.add_patch(
            Rectangle(
                (qx + i * cell, qy - 0.15),
                cell,
                0.3,
                facecolor=key if i == 0 else PALETTE["target"][0],
                alpha=1.0 if i == 0 else 0.75 - 0.06 * i,  # older keys fade
                edgecolor=key,
                linewidth=0.8,
            )
        )
    end = qx + cells * cell
    _text(ax, (qx + end) / 2, qy - 0.33, "queue of K keys from past batches (the negatives)")
    _arrow(ax, split, (qx - 0.02, qy), "enqueue newest", color=key, offset=(-0.58, 0.0))
    grey = PALETTE["masked"][1]
    _arrow(ax, (end + 0.02, qy), (end + 0.45, qy), color=grey)
    _text(ax, end + 0.27, qy + 0.28, "dequeue\noldest", color=grey)
    from_queue = (qx + 0.6 * cells * cell, qy + 0.16)
    _arrow(ax, from_queue, (loss.x - 0.2, loss.y - 0.38), "negatives", color=key, offset=(-0.38, 0))
    return fig


ONLINE, TARGET, BETWEEN = 2.05, 0.75, 1.4  # heights of BYOL's and SimSiam's branches


def _asymmetric_branches(
    ax: Axes,
    online: tuple[str, str, str],
    target: tuple[str, str],
    target_kinds: tuple[str, str],
    outputs: tuple[str, str, str],
    loss_label: str,
) -> tuple[_Box, _Box, _Box, _Box]:
    """What BYOL and SimSiam share: view 1 through encoder, projector and predictor, view 2
    through encoder and projector behind a stop-gradient, and a loss comparing the two.

    ``online``: names of the encoder, projector and predictor; ``target``: of the target's
    encoder and projector; ``outputs``: labels of the projection, prediction and target.
    Returns the boxes of the online encoder and projector and of the target's.
    """
    _picture(ax, 0.35, ONLINE, 0.5, "crop")
    _picture(ax, 0.35, TARGET, 0.5, "jitter")
    _text(ax, 0.35, ONLINE + 0.38, "view 1")
    _text(ax, 0.35, TARGET - 0.38, "view 2")
    f = _box(ax, 1.35, ONLINE, 1.0, 0.5, online[0], "encoder")
    g = _box(ax, 2.55, ONLINE, 1.0, 0.5, online[1], "head")
    predictor = _box(ax, 3.95, ONLINE, 1.1, 0.5, online[2], "predictor")
    f_t = _box(ax, 1.35, TARGET, 1.0, 0.5, target[0], target_kinds[0])
    g_t = _box(ax, 2.55, TARGET, 1.0, 0.5, target[1], target_kinds[1])
    loss = _box(ax, 6.15, BETWEEN, 1.3, 0.7, loss_label, "loss")
    for y, encoder, projector in ((ONLINE, f, g), (TARGET, f_t, g_t)):
        _arrow(ax, (0.62, y), encoder.left)
        _arrow(ax, encoder.right, projector.left)
    _arrow(ax, g.right, predictor.left, outputs[0])
    into_top, into_bottom = (loss.x - 0.35, loss.y + 0.36), (loss.x - 0.35, loss.y - 0.36)
    _arrow(ax, predictor.right, into_top, outputs[1], offset=(0.0, 0.14))
    _arrow(ax, g_t.right, into_bottom, outputs[2], offset=(0.45, 0.17))
    t = 0.4  # the stop-gradient sits on the target's arrow, 40% of the way to the loss
    start = g_t.right
    _stop_gradient(
        ax,
        start[0] + t * (into_bottom[0] - start[0]),
        start[1] + t * (into_bottom[1] - start[1]),
        label_dy=-0.3,
    )
    return f, g, f_t, g_t


def diagram_byol(ax: Axes | None = None) -> Figure:
    """BYOL: an online network with a predictor regresses an EMA target network's projection."""
    fig, ax = _canvas(ax, 7.0, 2.75)
    f, g, f_t, g_t = _asymmetric_branches(
        ax,
        ("encoder $f_\\theta$", "projector $g_\\theta$", "predictor $q_\\theta$"),
        ("encoder $f_\\xi$", "projector $g_\\xi$"),
        ("target", "target"),
        ("$z_\\theta$", "$q_\\theta(z_\\theta)$", "$z'_\\xi$"),
        "loss\n$2 - 2\\cos(q_\\theta, z'_\\xi)$",  # BYOL [0] Eq. 2
    )
    purple = PALETTE["target"][1]
    for online, target in ((f, f_t), (g, g_t)):
        _arrow(ax, online.bottom, target.top, dashed=True, color=purple)
    ema = "EMA: $\\xi \\leftarrow \\tau\\xi + (1 - \\tau)\\theta$"
    _text(ax, 3.15, BETWEEN, ema, ha="left", color=purple)
    bold = {"size": FONT, "fontweight": "bold", "ha": "left"}
    _text(ax, 0.85, ONLINE + 0.42, "online network (trained)", **bold)
    _text(ax, 0.85, TARGET - 0.42, "target network (moving average, no gradient)", **bold)
    return fig


def diagram_simsiam(ax: Axes | None = None) -> Figure:
    """SimSiam: BYOL with the target network replaced by the same weights and a stop-gradient."""
    fig, ax = _canvas(ax, 7.0, 2.75)
    f, g, _, _ = _asymmetric_branches(
        ax,
        ("backbone", "projector", "predictor h"),
        ("backbone", "projector"),
        ("encoder", "head"),
        ("z", "p", "z′"),
        "loss\n$-\\cos(p, z')$",  # SimSiam [1] Eq. 1
    )
    for x in (f.x, g.x):
        _line(ax, [(x, ONLINE - 0.25), (x, TARGET + 0.25)], ARROW, linestyle=":", linewidth=1.0)
    _text(ax, 1.95, BETWEEN, "shared\nweights", color=ARROW)
    _text(ax, 3.15, BETWEEN, "no target network:\nthe same f on both views", ha="left")
    title = "encoder f = backbone + projector, one for both views"
    _text(ax, 0.85, ONLINE + 0.42, title, FONT, fontweight="bold", ha="left")
    return fig


def _shared_branches(
    ax: Axes, top: float, bottom: float, names: tuple[str, str]
) -> tuple[_Box, _Box]:
    """What Barlow Twins and VICReg share: two views through one encoder and one projector.

    Draws the views (at heights ``top`` and ``bottom``), the encoder and projector of each,
    named ``names``, and the "shared weights" mark between them; no predictor, no
    stop-gradient. Returns the two projector boxes, for the caller to continue from.
    """
    projectors = []
    for y, variant, side, view in ((top, "crop", 1, "view A"), (bottom, "jitter", -1, "view B")):
        _picture(ax, 0.35, y, 0.5, variant)
        _text(ax, 0.35, y + 0.38 * side, view)
        f = _box(ax, 1.3, y, 0.85, 0.5, names[0], "encoder")
        g = _box(ax, 2.4, y, 0.85, 0.5, names[1], "head")
        _arrow(ax, (0.62, y), f.left)
        _arrow(ax, f.right, g.left)
        projectors.append(g)
    for x in (f.x, g.x):
        _line(ax, [(x, top - 0.25), (x, bottom + 0.25)], ARROW, linestyle=":", linewidth=1.0)
    _text(ax, (f.x + g.x) / 2, (top + bottom) / 2, "shared\nweights", color=ARROW)
    return projectors[0], projectors[1]


def diagram_barlow_twins(ax: Axes | None = None) -> Figure:
    """Barlow Twins: one network for two views; their D x D cross-correlation -> the identity."""
    fig, ax = _canvas(ax, 7.0, 2.75)
    g_a, g_b = _shared_branches(ax, ONLINE, TARGET, ("encoder f", "projector"))
    for g, name in ((g_a, "A"), (g_b, "B")):
        _arrow(ax, g.right, (3.25, g.y), f"$z^{name}$", offset=(0.0, 0.14))
        _box(ax, 3.8, g.y, 1.1, 0.5, f"standardise each\ndimension of $z^{name}$", "data", SMALL)
    _text(ax, 3.8, BETWEEN, "over the batch:\nmean 0, std 1", color=ARROW)

    # C for D = 6: row i is dimension i of z^A, column j dimension j of z^B ([5] Eq. 2).
    d, cell = 6, 0.19
    side = d * cell
    x0, y0 = 4.75, BETWEEN - side / 2 + 0.1
    for i in range(d):
        for j in range(d):
            ax.add_patch(
                Rectangle(
                    (x0 + j * cell, y0 + (d - 1 - i) * cell),
                    cell,
                    cell,
                    facecolor=POSITIVE if i == j else "white",
                    edgecolor=PALETTE["data"][1],
                    linewidth=0.5,
                    label="_correlation",  # the tests find C's cells by it
                )
            )
    for y, dy in ((ONLINE, 0.3), (TARGET, -0.3)):
        _arrow(ax, (4.35, y), (x0 - 0.05, y0 + side / 2 + dy))
    _text(ax, x0 + side / 2, y0 + side + 0.15, "$\\mathcal{C}$: D × D correlations", FONT)
    axes = "rows: dimensions of $z^A$\ncolumns: dimensions of $z^B$"
    _text(ax, x0 + side / 2, y0 - 0.25, axes, color=ARROW)
    legend = [
        (POSITIVE, "$\\mathcal{C}_{ii} \\to 1$:\ninvariance"),
        ("white", "$\\mathcal{C}_{ij} \\to 0$:\nredundancy\nreduction"),
    ]
    for k, (fill, label) in enumerate(legend):
        ly = y0 + side - 0.07 - 0.55 * k
        ax.add_patch(
            Rectangle(
                (6.02, ly - 0.07),
                0.14,
                0.14,
                facecolor=fill,
                edgecolor=PALETTE["data"][1],
                linewidth=0.5,
            )
        )
        _text(ax, 6.22, ly + 0.07, label, ha="left", va="top")
    loss = (
        "loss $\\sum_i (1 - \\mathcal{C}_{ii})^2 + \\lambda \\sum_i \\sum_{j \\neq i}"
        " \\mathcal{C}_{ij}^2$: drive $\\mathcal{C}$ to the identity"
    )
    _text(ax, 4.3, 0.15, loss, color=STOP)  # [5] Eq. 1
    return fig


def diagram_vicreg(ax: Axes | None = None) -> Figure:
    """VICReg: invariance between the branches, variance and covariance on each branch alone."""
    fig, ax = _canvas(ax, 7.0, 3.6)
    top, bottom = 2.75, 0.85
    mid = (top + bottom) / 2
    g_a, g_b = _shared_branches(ax, top, bottom, ("encoder f", "expander"))
    terms_x, w = 4.75, 2.3
    # the three terms of [7] Eq. 6, each in its own box, with its weight beside it
    similar = "invariance s(Z, Z′): mean squared\ndistance of the two views"
    invariance = _box(ax, terms_x, mid, w, 0.5, similar, "loss", SMALL)
    rows = []
    for g, z, side in ((g_a, "Z", 1), (g_b, "Z′", -1)):
        node = _box(ax, 3.1, g.y, 0.36, 0.4, z, "data", FONT, fontweight="bold")
        _arrow(ax, g.right, node.left)
        spread = f"variance v({z}): std of every\ndimension over the batch ≥ γ"
        variance = _box(ax, terms_x, g.y + 0.35 * side, w, 0.5, spread, "loss", SMALL)
        decorrelate = f"covariance c({z}): off-diagonal\ncovariances of {z} → 0"
        covariance = _box(ax, terms_x, g.y - 0.35 * side, w, 0.5, decorrelate, "loss", SMALL)
        for box in (variance, covariance):
            _arrow(ax, node.right, box.left)
        _arrow(ax, node.right, (invariance.left[0], mid + 0.12 * side))
        rows += [(variance, "× μ"), (covariance, "× ν")]
    for box, weight in [*rows, (invariance, "× λ")]:
        _text(ax, box.x + w / 2 + 0.2, box.y, weight, FONT, color=STOP)
    for y in (top, bottom):
        _text(ax, 6.65, y, "this branch\nonly", color=STOP)
    _text(ax, 6.65, mid, "both\nbranches", color=STOP)
    _text(ax, 1.75, 0.15, "no predictor, no stop-gradient, no target network")
    return fig


def diagram_dino(ax: Axes | None = None) -> Figure:
    """DINO: a student on every view predicts an EMA teacher's centred, sharpened output."""
    fig, ax = _canvas(ax, 7.0, 3.5)
    teacher_y, student_y = 2.7, 0.95
    mid = (teacher_y + student_y) / 2
    purple = PALETTE["target"][1]
    _picture(ax, 0.32, mid, 0.45)
    _text(ax, 0.32, mid - 0.35, "image")
    # multi-crop: 2 global views (large crops) and small local ones, here 2 ([6] §3.1)
    for y, variant in ((2.65, "crop"), (2.15, "jitter")):
        _picture(ax, 1.1, y, 0.42, variant)
    for y, variant in ((1.35, "crop"), (1.02, "jitter")):
        _picture(ax, 1.1, y, 0.26, variant)
    _text(ax, 1.1, 3.08, "2 global views")
    _text(ax, 1.1, 0.62, "local views\n(small crops)")
    _arrow(ax, (0.56, mid + 0.1), (0.87, 2.4))
    _arrow(ax, (0.56, mid - 0.1), (0.95, 1.2))

    teacher = _box(ax, 2.5, teacher_y, 1.2, 0.55, "teacher\nencoder + head", "target")
    centre = _box(ax, 3.7, teacher_y, 0.7, 0.55, "centre\n− c", "target")
    sharpen = _box(ax, 4.7, teacher_y, 0.9, 0.55, "softmax\n(· / $\\tau_t$)", "target")
    student = _box(ax, 2.5, student_y, 1.2, 0.55, "student\nencoder + head", "encoder")
    soft_s = _box(ax, 4.7, student_y, 0.9, 0.55, "softmax\n(· / $\\tau_s$)", "data")
    pairs = "cross-entropy\n$H(P_t, P_s)$\nover pairs of\ndifferent views"
    loss = _box(ax, 6.45, mid, 1.0, 2.1, pairs, "loss", SMALL)
    _arrow(ax, (1.33, 2.4), teacher.left)  # the teacher sees the global views only
    _arrow(ax, (1.33, 2.3), (student.left[0], student_y + 0.15))
    _arrow(ax, (1.25, 1.2), (student.left[0], student_y - 0.05))
    _arrow(ax, teacher.right, centre.left)
    _arrow(ax, centre.right, sharpen.left)
    _arrow(ax, student.right, soft_s.left)
    _arrow(ax, sharpen.right, (loss.left[0], teacher_y), "$P_t$", offset=(0.17, 0.14))
    _arrow(ax, soft_s.right, (loss.left[0], student_y), "$P_s$", offset=(0.0, 0.14))
    _stop_gradient(ax, (sharpen.right[0] + loss.left[0]) / 2, teacher_y, label_dy=-0.42)
    _arrow(ax, student.top, teacher.bottom, dashed=True, color=purple)
    ema = "EMA of the student,\nno gradient"
    _text(ax, 2.6, mid, ema, ha="left", color=purple)
    note = "c: EMA of the\nteacher's outputs"
    _text(ax, centre.x, teacher_y - 0.5, note, color=purple)
    _text(ax, sharpen.x, teacher_y - 0.5, "$\\tau_t < \\tau_s$:\nsharpen", color=purple)
    bold = {"size": FONT, "fontweight": "bold", "ha": "left"}
    _text(ax, 1.9, teacher_y + 0.45, "teacher: global views only", **bold)
    _text(ax, 1.9, student_y - 0.45, "student: every view, trained", **bold)
    return fig


def _trapezoid(ax, x0: float, x1: float, y: float, h0: float, h1: float, label: str, kind: str):
    """A box that narrows (encoder) or widens (decoder) from height h0 at x0 to h1 at x1."""
    fill, edge = PALETTE[kind]
    corners = [(x0, y - h0 / 2), (x1, y - h1 / 2), (x1, y + h1 / 2), (x0, y + h0 / 2)]
    ax.add_patch(Polygon(corners, facecolor=fill, edgecolor=edge, linewidth=1.2))
    _text(ax, (x0 + x1) / 2, y, label, FONT)


def diagram_autoencoder(ax: Axes | None = None) -> Figure:
    """An autoencoder: encoder, low-dimensional bottleneck, decoder, reconstruction loss."""
    fig, ax = _canvas(ax, 7.0, 2.3)
    y = 1.15
    _picture(ax, 0.45, y, 0.6)
    _text(ax, 0.45, y - 0.45, "input x")
    _trapezoid(ax, 1.05, 2.35, y, 1.1, 0.5, "encoder", "encoder")
    _box(ax, 2.85, y, 0.5, 0.5, "z", "data", FONT, fontweight="bold")
    _text(ax, 2.85, y - 0.45, "bottleneck\n(few numbers)")
    _trapezoid(ax, 3.35, 4.65, y, 0.5, 1.1, "decoder", "head")
    _picture(ax, 5.25, y, 0.6)
    _text(ax, 5.25, y - 0.45, "reconstruction x̂")
    for start, end in ((0.77, 1.05), (2.35, 2.6), (3.1, 3.35), (4.65, 4.93)):
        _arrow(ax, (start, y), (end, y))
    loss = _box(ax, 6.35, y, 0.95, 0.55, "loss\n$\\|x - \\hat{x}\\|^2$", "loss")
    _arrow(ax, (5.57, y), loss.left)
    over = y + 0.75  # the target goes over the network, straight to the loss
    _line(ax, [(0.45, y + 0.32), (0.45, over), (loss.x, over)])
    _arrow(ax, (loss.x, over), loss.top)
    _text(ax, 3.4, over + 0.14, "target: the input itself", color=ARROW)
    note = (
        "denoising autoencoder: the encoder sees a corrupted x, the loss compares with the clean x"
    )
    _text(ax, 3.5, 0.2, note, color=ARROW)
    return fig


def _patch(ax, x: float, y: float, cell: float, row: int, col: int) -> None:
    """Patch (row, col) of the toy picture cut in 4 x 4, its lower-left corner put at (x, y)."""
    size = 4 * cell
    clip = Rectangle((x, y), cell, cell, transform=ax.transData)
    _picture(ax, x - col * cell + size / 2, y - (3 - row) * cell + size / 2, size, clip=clip)


def _patch_grid(ax, x: float, y: float, cell: float, grey: set[int], red: set[int]) -> None:
    """The toy picture as 4 x 4 patches centred at (x, y); ``grey`` hidden, ``red`` outlined."""
    for i in range(16):
        row, col = divmod(i, 4)
        corner = (x + (col - 2) * cell, y + (1 - row) * cell)
        if i in grey:
            ax.add_patch(Rectangle(corner, cell, cell, facecolor=PALETTE["masked"][0]))
        else:
            _patch(ax, *corner, cell, row, col)
        ax.add_patch(Rectangle(corner, cell, cell, fill=False, edgecolor="white", lw=1.5))
        if i in red:
            inset = 0.025
            ax.add_patch(
                Rectangle(
                    (corner[0] + inset, corner[1] + inset),
                    cell - 2 * inset,
                    cell - 2 * inset,
                    fill=False,
                    edgecolor=STOP,
                    lw=1.3,
                )
            )


def diagram_mae(ax: Axes | None = None) -> Figure:
    """MAE: mask 75% of the patches, encode the visible ones, decode all, loss on the masked."""
    fig, ax = _canvas(ax, 7.0, 2.05)
    y, cell, below = 1.1, 0.25, 1.1 - 0.8  # centre line, patch size, height of the captions
    visible = [1, 6, 8, 15]  # 4 of 16: MAE's mask ratio of 75% ([3] §4.1)
    masked = set(range(16)) - set(visible)
    _patch_grid(ax, 0.75, y, cell, grey=masked, red=set())
    _text(ax, 0.75, y + 0.7, "image as 16 patches", FONT)
    _text(ax, 0.75, below, "75% masked\nat random")
    _arrow(ax, (1.3, y), (1.58, y))
    for k, i in enumerate(visible):
        _patch(ax, 1.65, y + (1 - k) * 0.3 + 0.025, cell, *divmod(i, 4))
    _text(ax, 1.775, y + 0.7, "visible", FONT)
    _arrow(ax, (1.95, y), (2.15, y))
    encoder = _box(ax, 2.55, y, 0.8, 1.1, "encoder\n(ViT)", "encoder")
    _text(ax, 2.55, below, "sees 25% of\nthe patches")
    _arrow(ax, encoder.right, (3.15, y))
    for i in range(16):
        row, col = divmod(i, 4)
        fill = PALETTE["encoder"][1] if i in visible else PALETTE["masked"][0]
        corner = (3.65 + (col - 2) * cell, y + (1 - row) * cell)
        ax.add_patch(Rectangle(corner, cell, cell, facecolor=fill, edgecolor="white", lw=1.5))
    _text(ax, 3.65, y + 0.7, "+ mask tokens", FONT)
    _text(ax, 3.65, below, "encoded (blue) and\nmask tokens (grey)")
    _arrow(ax, (4.17, y), (4.37, y))
    decoder = _box(ax, 4.77, y, 0.8, 1.1, "decoder", "head")
    _arrow(ax, decoder.right, (5.35, y))
    _patch_grid(ax, 5.9, y, cell, grey=set(), red=masked)
    _text(ax, 5.9, y + 0.7, "reconstruction", FONT)
    _text(ax, 5.9, below, "loss on the masked\npatches only (red)", color=STOP)
    return fig


def diagram_bert_masking(ax: Axes | None = None) -> Figure:
    """BERT's masking: select 15% of tokens; of those 80% [MASK], 10% random, 10% unchanged."""
    fig, ax = _canvas(ax, 7.0, 3.6)
    words = ["the", "cat", "sat", "on", "the", "mat", "and", "fell", "asleep", "."]
    # Three selected positions, one per case of the 80/10/10 rule ([4] §3.1).
    replaced = {
        1: ("[MASK]", "80%: [MASK]"),
        5: ("sky", "10%: random token"),
        8: ("asleep", "10%: unchanged"),
    }
    x0, step, w = 1.35, 0.56, 0.5
    _text(
        ax,
        3.5,
        3.42,
        "15% of the positions are selected; here 3 of 10, one for each case",
        color=STOP,
    )
    rows = {"text": 3.0, "input": 2.05, "model": 1.25, "output": 0.45}
    _text(ax, 0.6, rows["text"], "text", FONT, fontweight="bold")
    _text(ax, 0.6, (rows["text"] + rows["input"]) / 2, "select 15%,\nthen replace")
    _text(ax, 0.6, rows["input"], "model input", FONT, fontweight="bold")
    _text(ax, 0.6, rows["output"], "predict the\noriginals", FONT, fontweight="bold")
    for i, word in enumerate(words):
        x = x0 + i * step
        selected = i in replaced
        _box(ax, x, rows["text"], w, 0.36, word, "loss" if selected else "data", SMALL)
        if selected:
            token, rule = replaced[i]
            kind = "masked" if token == "[MASK]" else "loss"
            _box(ax, x, rows["input"], w, 0.36, token, kind, SMALL)
            _arrow(ax, (x, rows["text"] - 0.19), (x, rows["input"] + 0.19))
            _text(ax, x + 0.07, (rows["text"] + rows["input"]) / 2, rule, ha="left")
            _arrow(ax, (x, rows["model"] - 0.25), (x, rows["output"] + 0.19))
            _box(ax, x, rows["output"], w, 0.36, word, "loss", SMALL)
        else:
            _box(ax, x, rows["input"], w, 0.36, word, "data", SMALL)
            _text(ax, x, rows["output"], "·", FONT, color=PALETTE["masked"][1])
        _arrow(ax, (x, rows["input"] - 0.19), (x, rows["model"] + 0.25))
    span = (x0 - w / 2, x0 + (len(words) - 1) * step + w / 2)
    _box(
        ax,
        (span[0] + span[1]) / 2,
        rows["model"],
        span[1] - span[0],
        0.5,
        "Transformer encoder (sees every position)",
        "encoder",
    )
    _text(
        ax,
        (span[0] + span[1]) / 2,
        0.1,
        "cross-entropy at the selected positions only; the others (·) carry no loss",
        SMALL,
        color=STOP,
    )
    return fig


def _text_width(s: str, size: float, weight: str = "normal") -> float:
    """Width in inches of ``s`` set in the default font, without a renderer."""
    path = TextPath((0, 0), s, size=size, prop=FontProperties(weight=weight))
    return path.get_extents().width / 72


class _Family(NamedTuple):
    """One box of the map of families."""

    x: float  # centre, inches
    y: float
    name: str
    summary: str  # what its loss asks for
    rows: list[tuple[list[str], str]]  # rows of the book's methods, each with a note
    kind: str  # a key of PALETTE


def diagram_families(ax: Axes | None = None) -> Figure:
    """A map of the families of self-supervised learning, with the book's methods placed on it.

    Here the colours only tell the four families apart.
    """
    fig, ax = _canvas(ax, 7.0, 3.85)
    families = [
        _Family(
            1.75,
            2.65,
            "Contrastive",
            "pull views of one image together,\npush other images away",
            [(["SimCLR", "MoCo"], "")],
            "encoder",
        ),
        _Family(
            1.75,
            0.85,
            "Non-contrastive",
            "no negatives; something else\nprevents collapse:",
            [
                (["BYOL", "SimSiam", "DINO"], "a stop-gradient target"),
                (["Barlow Twins", "VICReg"], "redundancy reduction"),
            ],
            "target",
        ),
        _Family(
            5.25,
            2.65,
            "Reconstruction and\nmasked image modelling",
            "rebuild the input from a compressed,\ncorrupted or masked version",
            [(["autoencoder", "denoising AE", "MAE"], "")],
            "head",
        ),
        _Family(
            5.25,
            0.85,
            "Masked language modelling",
            "predict hidden words\nfrom their context",
            [(["BERT"], "")],
            "predictor",
        ),
    ]
    _text(ax, 1.75, 3.68, "Joint embedding: compare two views", FONT, fontweight="bold")
    _text(ax, 5.25, 3.68, "Predict the input: fill in what is hidden", FONT, fontweight="bold")
    _line(ax, [(3.5, 0.05), (3.5, 3.8)], PALETTE["masked"][0], linestyle="--", linewidth=1.0)
    for family in families:
        x, y, edge = family.x, family.y, PALETTE[family.kind][1]
        _box(ax, x, y, 3.3, 1.55, "", family.kind)
        _text(ax, x - 1.55, y + 0.5, family.name, FONT, fontweight="bold", ha="left")
        _text(ax, x - 1.55, y + 0.1, family.summary, ha="left", color=ARROW)
        for r, (methods, note) in enumerate(family.rows):
            left, row_y = x - 1.55, y - 0.3 - 0.3 * r
            for method in methods:
                width = _text_width(method, SMALL, "bold") + 0.14
                ax.add_patch(
                    FancyBboxPatch(
                        (left, row_y - 0.12),
                        width,
                        0.24,
                        boxstyle="round,pad=0,rounding_size=0.1",
                        facecolor="white",
                        edgecolor=edge,
                        linewidth=1.0,
                    )
                )
                _text(ax, left + width / 2, row_y, method, fontweight="bold", color=edge)
                left += width + 0.07
            if note:
                _text(ax, left + 0.05, row_y, note, ha="left", color=edge, style="italic")
    return fig


def diagram_protocol(ax: Axes | None = None) -> Figure:
    """The book's one evaluation protocol: classifiers on the frozen features of two shards."""
    fig, ax = _canvas(ax, 7.0, 3.6)
    train_y, test_y, mid = 2.35, 0.95, 1.65
    train = _box(ax, 0.7, train_y, 1.2, 0.55, "training shard\nimages, labels", "data", SMALL)
    test = _box(ax, 0.7, test_y, 1.2, 0.55, "held-out shard\nimages, labels", "data", SMALL)
    encoder = _box(ax, 2.0, mid, 0.9, 2.0, "pretrained\nencoder f", "encoder")
    _text(ax, 2.0, mid - 0.6, "frozen,\neval mode", color=PALETTE["encoder"][1])
    train_x = _box(ax, 3.1, train_y, 0.8, 0.55, "training\nfeatures", "data", SMALL)
    test_x = _box(ax, 3.1, test_y, 0.8, 0.55, "held-out\nfeatures", "data", SMALL)
    for shard, features in ((train, train_x), (test, test_x)):
        _arrow(ax, shard.right, (encoder.left[0], shard.y))
        _arrow(ax, (encoder.right[0], shard.y), features.left)

    # the two read-outs of sslbook.evaluate, both fitted on the training features only
    edge = PALETTE["downstream"][1]
    ax.add_patch(
        FancyBboxPatch(
            (3.7, 0.95),
            1.9,
            1.4,
            boxstyle="round,pad=0,rounding_size=0.06",
            fill=False,
            edgecolor=edge,
            linestyle=(0, (4, 2)),
            linewidth=1.0,
        )
    )
    knn = "weighted kNN: votes of the\nk nearest training features"
    _box(ax, 4.65, 1.98, 1.7, 0.5, knn, "downstream", SMALL)
    probe = "linear probe, fitted on 100 %,\n10 % or 1 % of the labels"
    _box(ax, 4.65, 1.3, 1.7, 0.5, probe, "downstream", SMALL)
    _arrow(ax, train_x.right, (3.68, 2.2), "fit", offset=(0.08, 0.1))
    _arrow(ax, test_x.right, (3.68, 1.1), "classify", offset=(0.18, -0.17))
    result = "accuracy on\nthe held-out\nimages"
    accuracy = _box(ax, 6.35, mid, 1.0, 0.75, result, "downstream", SMALL)
    _arrow(ax, (5.62, mid), accuracy.left)

    # settings are chosen on a tenth of the training shard, never on the held-out one
    check = "validation: a probe fitted on 9/10 of\nthe training shard, scored on 1/10"
    validation = _box(ax, 4.65, 3.1, 2.1, 0.5, check, "downstream", SMALL)
    _line(ax, [train_x.top, (train_x.x, validation.y)])
    _arrow(ax, (train_x.x, validation.y), validation.left)
    _arrow(ax, validation.right, (6.0, validation.y), color=edge)
    _text(ax, 6.45, 3.1, "chooses a\nstudy's setting", color=edge)
    note = "the held-out images only report a score: no setting is chosen on them"
    _text(ax, 3.5, 0.25, note, color=STOP)
    return fig


def diagram_fast_path(ax: Axes | None = None) -> Figure:
    """A training step on a GPU: the usual data loader against sslbook's on-device pipeline."""
    fig, ax = _canvas(ax, 7.0, 3.7)
    bold = {"size": FONT, "fontweight": "bold", "ha": "left"}

    # the usual PyTorch recipe: the CPU prepares every image, the GPU waits for it
    usual_y = 2.85
    _text(ax, 0.1, usual_y + 0.5, "the usual recipe: a DataLoader on the CPU", **bold)
    loader = "CPU workers decode and\naugment one PIL image\nat a time"
    cpu = _box(ax, 1.15, usual_y, 1.9, 0.6, loader, "data", SMALL)
    gpu = _box(ax, 4.0, usual_y, 1.6, 0.6, "GPU: forward,\nbackward, update", "encoder", SMALL)
    _arrow(ax, cpu.right, gpu.left, "copy each batch", offset=(0.0, 0.13))
    _text(ax, 5.95, usual_y, "the GPU waits\nfor the data", FONT, color=STOP)

    # sslbook.train.fit: data, augmentation and step all on the device
    step_y = 1.45
    _text(ax, 0.1, 2.15, "sslbook: everything on the GPU", **bold)
    ax.add_patch(
        FancyBboxPatch(
            (0.1, 0.62),
            5.75,
            1.3,
            boxstyle="round,pad=0,rounding_size=0.06",
            fill=False,
            edgecolor=PALETTE["encoder"][1],
            linestyle=(0, (4, 2)),
            linewidth=1.0,
        )
    )
    data = _box(ax, 0.8, step_y, 1.2, 0.55, "dataset: one\nuint8 tensor", "data", SMALL)
    views = "augment the whole\nbatch, 2 views"
    augment = _box(ax, 2.4, step_y, 1.3, 0.55, views, "data", SMALL)
    model = "encoder + head\nchannels_last, bf16"
    encoder = _box(ax, 4.0, step_y, 1.3, 0.55, model, "encoder", SMALL)
    loss = _box(ax, 5.3, step_y, 0.8, 0.55, "loss\n(float32)", "loss", SMALL)
    _arrow(ax, data.right, augment.left, "index", offset=(0.0, 0.12))
    _arrow(ax, augment.right, encoder.left)
    _arrow(ax, encoder.right, loss.left)
    _arrow(ax, loss.bottom, encoder.bottom, rad=-0.35, color=PALETTE["encoder"][1])
    update = "backward, fused optimizer step"
    _text(ax, 4.65, 0.76, update, color=PALETTE["encoder"][1])
    host = "host CPU reads\nthe losses every\nlog_every steps"
    reader = _box(ax, 6.45, step_y, 0.95, 0.75, host, "data", SMALL)
    _arrow(ax, loss.right, reader.left, dashed=True)

    many = (
        "on k GPUs (torchrun): each rank runs this step on 1/k of the batch, DDP averages the\n"
        "gradients, and SimCLR gathers the embeddings of all ranks with their gradients"
    )
    _text(ax, 3.5, 0.27, many, color=ARROW)
    return fig


def diagram_scaling(ax: Axes | None = None) -> Figure:
    """The scaling study: one reference run, and one axis moved at a time from it."""
    fig, ax = _canvas(ax, 7.0, 3.5)
    centre = (3.5, 1.95)
    reference = "reference run\nSimCLR at the profile's\nbatch, width, images,\nhalf its epochs"
    ref = _box(ax, *centre, 1.75, 0.95, reference, "encoder", SMALL)
    axes = [
        (1.15, 3.05, "epochs", "kNN every other epoch\nof each pretraining run"),
        (5.85, 3.05, "batch size", "1/4, 1/2, 1 of the profile's\nsame epochs, lr ∝ batch"),
        (1.15, 0.85, "width", "1/4, 1/2, 1 of the channels\nFLOPs grow as width²"),
        (5.85, 0.85, "pretraining images", "1/4, 1/2, 1 of the shard\nsame number of steps"),
    ]
    for x, y, name, detail in axes:
        box = _box(ax, x, y, 2.0, 0.75, "", "data")
        _text(ax, x, y + 0.18, name, FONT, fontweight="bold")
        _text(ax, x, y - 0.14, detail, color=ARROW)
        start = (ref.left[0], ref.y) if x < centre[0] else (ref.right[0], ref.y)
        end = box.bottom if y > centre[1] else box.top
        _arrow(ax, start, end, rad=-0.25 if (x < centre[0]) == (y > centre[1]) else 0.25)
    note = "one axis moves, the rest stay fixed; every encoder is scored by the same probes"
    _text(ax, 3.5, 0.1, note, color=PALETTE["downstream"][1])
    return fig


DIAGRAMS: dict[str, Callable[..., Figure]] = {
    "ssl_steps": diagram_ssl_steps,
    "simclr": diagram_simclr,
    "moco": diagram_moco,
    "byol": diagram_byol,
    "simsiam": diagram_simsiam,
    "barlow_twins": diagram_barlow_twins,
    "vicreg": diagram_vicreg,
    "dino": diagram_dino,
    "autoencoder": diagram_autoencoder,
    "mae": diagram_mae,
    "bert_masking": diagram_bert_masking,
    "families": diagram_families,
    "protocol": diagram_protocol,
    "scaling": diagram_scaling,
    "fast_path": diagram_fast_path,
}

# What a screen reader says for each figure; the book passes it as the image's alt text.
ALT_TEXT = {
    "ssl_steps": (
        "Four boxes joined by arrows: 1. augment unlabelled data, 2. make a pretext task whose "
        "target comes from the data itself, 3. train an encoder f to solve it, 4. keep f and fit "
        "a small head on few labels. Steps 1 to 3 are pre-training without labels, step 4 is "
        "evaluation with few labels."
    ),
    "simclr": (
        "SimCLR: an image is augmented twice, and both views go through the same encoder f and "
        "projection head g to embeddings z1 and z2 that feed the NT-Xent loss. Beside it, the "
        "2N by 2N similarity matrix for N = 4 marks the positive pairs in green, excludes the "
        "diagonal, and treats every other entry as a negative."
    ),
    "moco": (
        "MoCo: a query view goes through the encoder f_q to the query q, a key view through the "
        "momentum encoder f_k, a moving average of f_q with no gradient, to the positive key. "
        "The InfoNCE loss scores q against its positive key and against the negatives in a "
        "queue of past keys, into which each batch's keys are enqueued while the oldest batch "
        "is dequeued."
    ),
    "byol": (
        "BYOL: view 1 goes through the online network (encoder, projector, predictor) and view 2 "
        "through the target network (encoder, projector), an exponential moving average of the "
        "online one. The loss compares the online prediction with the target's projection, "
        "with a stop-gradient on the target branch."
    ),
    "simsiam": (
        "SimSiam: both views go through the same backbone and projector (shared weights, no "
        "target network), and only view 1's branch has the predictor h. The loss is the "
        "negative cosine similarity between its output p and view 2's z', with a stop-gradient "
        "on z'."
    ),
    "barlow_twins": (
        "Barlow Twins: views A and B of an image go through the same encoder and projector "
        "(shared weights) to embeddings z^A and z^B, each dimension standardised over the batch. "
        "Their D by D cross-correlation matrix C is driven to the identity: diagonal entries "
        "to 1 (invariance), off-diagonal entries to 0 (redundancy reduction)."
    ),
    "vicreg": (
        "VICReg: two views go through the same encoder and expander to embeddings Z and Z'. "
        "The invariance term, the mean squared distance between Z and Z', joins the two "
        "branches; a variance term (every dimension's std over the batch at least gamma) and "
        "a covariance term (off-diagonal covariances to 0) act on each branch alone."
    ),
    "dino": (
        "DINO: an image gives 2 global views and smaller local views. The student, encoder and "
        "head, sees every view; the teacher, an EMA of the student without gradient, sees the "
        "global views only. The teacher's output is centred (minus c, an EMA of its outputs) and "
        "sharpened by a softmax at a low temperature; a cross-entropy between different views, "
        "with a stop-gradient on the teacher, trains the student."
    ),
    "autoencoder": (
        "An autoencoder: an encoder narrows the input image to a small bottleneck z and a "
        "decoder widens it back to a reconstruction, trained by the squared error against the "
        "input. A note says that a denoising autoencoder encodes a corrupted input but still "
        "reconstructs the clean one."
    ),
    "mae": (
        "A masked autoencoder: of an image cut into 16 patches, 12 (75%) are masked at random "
        "and only the 4 visible ones go through the ViT encoder. Mask tokens are put back in "
        "the masked positions, the decoder reconstructs all 16 patches, and the loss is taken "
        "on the masked patches only."
    ),
    "bert_masking": (
        "BERT's masking on the sentence 'the cat sat on the mat and fell asleep .': of the "
        "selected tokens, 'cat' becomes [MASK] (80% of cases), 'mat' a random token 'sky' (10%) "
        "and 'asleep' stays unchanged (10%). A Transformer encoder reads the whole sequence and "
        "is trained to predict the original tokens at the selected positions only."
    ),
    "families": (
        "A map of four families: joint-embedding methods compare two views, either contrastive "
        "(SimCLR, MoCo) or non-contrastive (BYOL, SimSiam and DINO with a stop-gradient target, "
        "Barlow Twins and VICReg with redundancy reduction). Methods that predict the input fill "
        "in what is hidden: reconstruction and masked image modelling (autoencoder, denoising "
        "autoencoder, MAE) and masked language modelling (BERT)."
    ),
    "protocol": (
        "The evaluation protocol: a frozen pretrained encoder turns the training shard and the "
        "held-out shard into features. A weighted kNN classifier and a linear probe (on all, 10% "
        "or 1% of the labels) are fitted on the training features and classify the held-out "
        "ones, giving the accuracy. Settings are chosen by a probe on a validation tenth of the "
        "training shard, never on the held-out images."
    ),
    "scaling": (
        "The scaling study: a reference SimCLR run at the profile's batch size, width and "
        "number of images, for half its epochs, in the centre, and four axes moved one at a "
        "time: epochs (kNN every other epoch), batch size at a quarter and a half (same "
        "epochs), width at a quarter and a half, and pretraining images at a quarter and a half "
        "(same number of steps). Every encoder is scored by the same probes."
    ),
    "fast_path": (
        "A training step on a GPU. In the usual recipe CPU workers decode and augment one image "
        "at a time and the GPU waits for the data. In sslbook the dataset is a uint8 tensor on "
        "the GPU, whole batches are augmented there, the model runs channels_last in bf16, the "
        "loss in float32, a fused optimizer updates, and the CPU reads the losses only every "
        "log_every steps; on k GPUs each rank takes 1/k of the batch."
    ),
}


def save_svg(fig: Figure, path: str | Path) -> None:
    """Write ``fig`` as an SVG that is byte-identical from run to run (no date, fixed ids)."""
    with matplotlib.rc_context({"svg.hashsalt": "sslbook", "svg.fonttype": "path"}):
        fig.savefig(path, format="svg", metadata={"Date": None})
