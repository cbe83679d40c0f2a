"""Read the result files that ``python -m sslbook.run`` writes, wherever the book runs.

In a clone of the repository they are under ``results/``; in Colab, where only the package is
installed, they are fetched from the repository the book is published from.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from .provenance import REPO_ROOT

__all__ = ["REPOSITORY_URL", "RESULTS_DIR", "load_result", "markdown_table"]

# The repository the book is published from (also in _config.yml; a test keeps them equal).
REPOSITORY_URL = "https://github.com/sslbook/sslbook"
RESULTS_DIR = REPO_ROOT / "results"


def _raw_url(relative: str, branch: str = "main") -> str:
    owner_repo = REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{owner_repo}/{branch}/{relative}"


def load_result(name: str, profile: str, results_dir: str | Path | None = None) -> dict | None:
    """The parsed ``results/<name>-<profile>.json``, or None when it exists nowhere reachable."""
    path = Path(results_dir or RESULTS_DIR) / f"{name}-{profile}.json"
    if path.exists():
        return json.loads(path.read_text())
    if results_dir is not None:
        return None
    try:
        with urllib.request.urlopen(_raw_url(f"results/{path.name}"), timeout=10) as r:
            return json.loads(r.read().decode("utf-8"))
    except Exception:  # offline, or the file was never published: the caller says so
        return None


def markdown_table(rows: list[dict], columns: dict[str, str], digits: int = 3) -> str:
    """Rows of dicts as a Markdown table; ``columns`` maps a row key to its header.

    Floats are printed with ``digits`` decimals, so a table in the book shows the measured
    values themselves and nothing typed by hand.
    """

    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(cell(r.get(k, "")) for k in columns) + " |" for r in rows]
    return "\n".join(lines)
