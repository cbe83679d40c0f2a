"""Write every schematic of :mod:`sslbook.diagrams` to ``book/figures/<name>.svg``.

Run it from anywhere after changing a diagram, and commit the SVGs with the code:

    python scripts/make_figures.py

``tests/test_diagrams.py`` fails while a file in ``book/figures`` is out of date.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from sslbook.diagrams import DIAGRAMS, save_svg  # noqa: E402

FIGURES = Path(__file__).resolve().parents[1] / "book" / "figures"


def main() -> None:
    FIGURES.mkdir(exist_ok=True)
    for name, draw in DIAGRAMS.items():
        fig = draw()
        save_svg(fig, FIGURES / f"{name}.svg")
        plt.close(fig)
        print(f"wrote {FIGURES / name}.svg")


if __name__ == "__main__":
    main()
