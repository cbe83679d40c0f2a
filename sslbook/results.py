"""Read the result files that ``python -m sslbook.run`` writes, wherever the book runs.

In a clone of the repository they are under ``results/``; in Colab, where only the package is
installed, they are fetched from the repository the book is published from.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from .provenance import REPO_ROOT

__all__ = [
    "REPOSITORY_URL",
    "raw_url",
    "RESULTS_DIR",
    "BENCH_DIR",
    "SEEDS",
    "load_result",
    "load_seeds",
    "mean_std",
    "load_bench",
    "markdown_table",
]

# The repository the book is published from (also in _config.yml; a test keeps them equal).
REPOSITORY_URL = "https://github.com/sslbook/sslbook"
RESULTS_DIR = REPO_ROOT / "results"
BENCH_DIR = REPO_ROOT / "bench" / "results"
SEEDS = (0, 1, 2)  # the seeds of the headline reference runs


def raw_url(relative: str, branch: str = "main") -> str:
    """The download address of a file of the book's repository, e.g. ``"results/x.json"``."""
    owner_repo = REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://raw.githubusercontent.com/{owner_repo}/{branch}/{relative}"


def _load(relative: str, local: Path, remote: bool) -> dict | None:
    if local.exists():
        return json.loads(local.read_text())
    if not remote:
        return None
    try:
        with urllib.request.urlopen(raw_url(relative), timeout=10) as r:
            return json.loads(r.read().decode("utf-8"))
    except Exception:  # offline, or the file was never published: the caller says so
        return None


def load_result(
    name: str,
    profile: str,
    results_dir: str | Path | None = None,
    amp: bool = False,
    seed: int = 0,
) -> dict | None:
    """The parsed ``results/<name>-<profile>.json``, or None when it exists nowhere reachable.

    ``amp=True``: the run in mixed precision on every device, ``<name>-<profile>-amp.json``
    (``python -m sslbook.run <name> --profile <profile> --amp``). ``seed=k`` (k > 0): the run
    from seed k, ``<name>-<profile>-seed<k>.json`` (``... --seed k``).
    """
    suffix = (f"-seed{seed}" if seed else "") + ("-amp" if amp else "")
    path = Path(results_dir or RESULTS_DIR) / f"{name}-{profile}{suffix}.json"
    return _load(f"results/{path.name}", path, remote=results_dir is None)


def load_seeds(
    name: str, profile: str, results_dir: str | Path | None = None, seeds=SEEDS
) -> list[dict]:
    """The result files of ``name`` at ``profile`` for those of ``seeds`` that exist, in order."""
    found = (load_result(name, profile, results_dir, seed=s) for s in seeds)
    return [r for r in found if r is not None]


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1 in the denominator; 0.0 for one value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("expected at least one value, got none")
    mean = sum(values) / len(values)
    if len(values) == 1:
        return mean, 0.0
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def load_bench(name: str, bench_dir: str | Path | None = None, device: str = "cpu") -> dict | None:
    """The parsed ``bench/results/<name>.json`` that ``make bench`` wrote, or None.

    ``device="cuda"``: the GPU run's ``bench/results/cuda/<name>.json``
    (``python bench/run_all.py --device cuda``).
    """
    relative = f"{name}.json" if device == "cpu" else f"{device}/{name}.json"
    path = Path(bench_dir or BENCH_DIR) / relative
    return _load(f"bench/results/{relative}", path, remote=bench_dir is None)


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
