"""The book's schematics: each one draws, has alt text, names its parts, keeps its text legible,
and ``book/figures`` holds its current drawing (``python scripts/make_figures.py``)."""

import itertools
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyArrowPatch  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from sslbook.diagrams import ALT_TEXT, DIAGRAMS, POSITIVE, save_svg  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "book" / "figures"

# The labels that name each diagram's key parts: a reader must find each of them on it.
KEY_LABELS = {
    "ssl_steps": ["Augment", "Pretext task", "Train", "Extract features", "no labels"],
    "simclr": ["encoder f", "head g", "shared", "NT-Xent", "2N × 2N", "positive pair", "negative"],
    "moco": ["$f_q$", "momentum", "queue", "enqueue", "dequeue", "InfoNCE", "negatives"],
    "byol": ["online", "target", "predictor", "stop-gradient", "EMA", "projector"],
    "simsiam": ["predictor", "stop-gradient", "shared", "backbone", "projector"],
    "barlow_twins": [
        "shared",
        "projector",
        "standardise",
        "D × D",
        "invariance",
        "redundancy\nreduction",
        "identity",
    ],
    "vicreg": ["shared", "expander", "invariance", "variance v(Z)", "variance v(Z′)", "covariance"],
    "dino": [
        "2 global views",
        "local views",
        "teacher: global views only",
        "student: every view",
        "EMA of the student",
        "centre",
        "sharpen",
        "stop-gradient",
        "$H(P_t, P_s)$",
    ],
    "autoencoder": ["encoder", "bottleneck", "decoder", "reconstruction", "denoising"],
    "mae": ["75% masked", "visible", "encoder", "mask tokens", "decoder", "masked\npatches only"],
    "bert_masking": [
        "[MASK]",
        "80%",
        "10%: random token",
        "10%: unchanged",
        "15%",
        "Transformer",
        "only",
    ],
    "families": [
        "Contrastive",
        "Non-contrastive",
        "masked image modelling",
        "Masked language modelling",
        *["SimCLR", "MoCo", "BYOL", "SimSiam", "Barlow Twins", "VICReg", "DINO"],
        *["autoencoder", "denoising AE", "MAE", "BERT"],
    ],
    "protocol": [
        "frozen",
        "training shard",
        "held-out shard",
        "weighted kNN",
        "linear probe",
        "validation",
        "accuracy on\nthe held-out",
        "no setting is chosen",
    ],
    "scaling": [
        "reference run",
        "epochs",
        "batch size",
        "width",
        "pretraining images",
        "same number of steps",
    ],
    "fast_path": [
        "DataLoader",
        "waits",
        "uint8",
        "augment the whole\nbatch",
        "channels_last, bf16",
        "float32",
        "fused optimizer",
        "log_every",
        "torchrun",
    ],
}


def texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def layout_problems(fig) -> list[str]:
    """Text that overlaps other text, leaves the figure, or spills out of the box it is in."""
    renderer = fig.canvas.get_renderer()
    extents = [(t, t.get_window_extent(renderer)) for t in texts(fig)]
    problems = [
        f"{a.get_text()!r} overlaps {b.get_text()!r}"
        for (a, box_a), (b, box_b) in itertools.combinations(extents, 2)
        if box_a.padded(-1).overlaps(box_b.padded(-1))  # 1 pixel of tolerance
    ]
    problems += [
        f"{t.get_text()!r} leaves the figure"
        for t, box in extents
        if not (fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1)
        or not (fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1)
    ]
    # Boxes are patches drawn within their clip; the toy pictures' shapes are not.
    boxes = [
        p
        for ax in fig.axes
        for p in ax.patches
        if not isinstance(p, FancyArrowPatch) and p.get_label() != "_picture"
    ]
    for t, text_box in extents:
        anchor = t.get_transform().transform(t.get_position())
        for p in boxes:
            outer = p.get_window_extent(renderer).padded(1)
            if p.contains_point(anchor) and not (
                outer.x0 <= text_box.x0
                and text_box.x1 <= outer.x1
                and outer.y0 <= text_box.y0
                and text_box.y1 <= outer.y1
            ):
                problems.append(f"{t.get_text()!r} spills out of its box")
    return problems


def svg_labels(path: Path) -> list[str]:
    """The texts of an SVG written by save_svg: Matplotlib precedes each glyph path by a comment."""
    return re.findall(r"<!-- (.*?) -->", path.read_text(encoding="utf-8"))


def test_every_diagram_has_alt_text_and_key_labels():
    assert set(DIAGRAMS) == set(ALT_TEXT) == set(KEY_LABELS)
    for name, alt in ALT_TEXT.items():
        assert 60 < len(alt) < 500 and alt.endswith("."), name


@pytest.mark.parametrize("name", list(DIAGRAMS))
def test_diagram_draws_names_its_parts_and_keeps_its_text_legible(name):
    fig = DIAGRAMS[name]()
    assert fig.get_figwidth() == 7.0  # the book's text width
    fig.canvas.draw()
    shown = [t.get_text() for t in texts(fig)]
    missing = [label for label in KEY_LABELS[name] if not any(label in s for s in shown)]
    assert not missing, f"{name} lacks {missing}"
    assert layout_problems(fig) == []
    plt.close(fig)


@pytest.mark.parametrize("name", list(DIAGRAMS))
def test_diagram_draws_on_a_given_axes(name):
    fig, ax = plt.subplots(figsize=(7, 4))
    assert DIAGRAMS[name](ax=ax) is fig
    fig.canvas.draw()
    assert len(ax.patches) > 3 and len(texts(fig)) > 3
    plt.close(fig)


def shown_text(name: str) -> str:
    fig = DIAGRAMS[name]()
    shown = "\n".join(t.get_text() for t in texts(fig))
    plt.close(fig)
    return shown


def test_protocol_diagram_matches_the_protocol_the_experiments_run():
    """The figure states the validation share and the few-label fractions that the code uses."""
    from sslbook.experiments.common import LABEL_FRACTIONS, VALIDATION_FRACTION

    shown = shown_text("protocol")
    assert VALIDATION_FRACTION == 0.1 and "9/10" in shown and "1/10" in shown
    assert LABEL_FRACTIONS == (0.01, 0.1) and "100 %,\n10 % or 1 %" in shown


def test_dino_diagram_shows_the_views_the_method_draws():
    """As many global views as the teacher sees by default, and local views for the student."""
    from sslbook.augment import MultiCropAugment

    augment = MultiCropAugment()
    assert augment.n_global == 2 and augment.n_local > 0
    assert f"{augment.n_global} global views" in shown_text("dino")


def test_barlow_twins_diagram_marks_the_diagonal_of_c_only():
    """The cells of C drawn in the positive colour are exactly its diagonal: the identity."""
    fig = DIAGRAMS["barlow_twins"]()
    cells = [p for p in fig.axes[0].patches if p.get_label() == "_correlation"]
    d = round(len(cells) ** 0.5)
    assert d > 2 and d * d == len(cells)
    xs = sorted({round(p.get_x(), 6) for p in cells})
    ys = sorted({round(p.get_y(), 6) for p in cells}, reverse=True)  # row 0 at the top
    green = matplotlib.colors.to_rgba(POSITIVE)
    for p in cells:
        row, col = ys.index(round(p.get_y(), 6)), xs.index(round(p.get_x(), 6))
        assert (p.get_facecolor() == green) == (row == col), (row, col)
    plt.close(fig)


def test_layout_check_catches_overlapping_and_spilling_text():
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.text(0.5, 0.5, "one label")
    ax.text(0.52, 0.5, "another label")
    ax.add_patch(plt.Rectangle((0.1, 0.1), 0.05, 0.05))
    ax.text(0.12, 0.12, "too long for its box")
    fig.canvas.draw()
    problems = layout_problems(fig)
    assert "'one label' overlaps 'another label'" in problems
    assert "'too long for its box' spills out of its box" in problems
    plt.close(fig)


def test_book_figures_are_up_to_date_with_the_code(tmp_path):
    """Regenerate each SVG and compare its text labels: ids and float digits may vary."""
    assert sorted(p.stem for p in FIGURES.glob("*.svg")) == sorted(DIAGRAMS), (
        "run python scripts/make_figures.py"
    )
    for name, draw in DIAGRAMS.items():
        fig = draw()
        save_svg(fig, tmp_path / f"{name}.svg")
        plt.close(fig)
        fresh, stored = svg_labels(tmp_path / f"{name}.svg"), svg_labels(FIGURES / f"{name}.svg")
        assert fresh == stored, f"book/figures/{name}.svg is stale: run scripts/make_figures.py"
        assert stored, name


def test_save_svg_is_deterministic(tmp_path):
    fig = DIAGRAMS["ssl_steps"]()
    save_svg(fig, tmp_path / "a.svg")
    save_svg(fig, tmp_path / "b.svg")
    plt.close(fig)
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
