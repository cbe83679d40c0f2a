"""Every method of the book in one table, read from the result files the experiments wrote.

Each chapter measures its own methods; :func:`comparison` puts them side by side under the one
protocol they share (same training images, same held-out images, kNN and linear probe on
frozen features, few-label probes on the same labelled subsets). Nothing here trains: it reads
``results/<experiment>-<profile>.json`` through :func:`sslbook.results.load_result` and reports,
per method, the file and the command each number came from.

Training time is ``epochs x training images / images per second``, from the throughput the
training loop measured, so that time spent on kNN monitoring or on other work sharing the
machine is not counted.
"""

from __future__ import annotations

from .history import History
from .results import load_result

__all__ = ["FAMILIES", "EXPERIMENT_OF", "comparison", "hardware_name", "knn_vs_time"]

# method -> (family, experiment whose result file holds it)
FAMILIES = {
    "raw pixels": "no learning",
    "random init": "no learning",
    "supervised": "labels",
    "autoencoder": "reconstruction",
    "denoising autoencoder": "reconstruction",
    "MAE": "masked modelling",
    "SimCLR": "contrastive",
    "MoCo v2": "contrastive",
    "BYOL": "non-contrastive",
    "SimSiam": "non-contrastive",
}
EXPERIMENT_OF = {
    "raw pixels": "baselines",
    "random init": "baselines",
    "supervised": "baselines",
    "autoencoder": "denoising",
    "denoising autoencoder": "denoising",
    "MAE": "mae",
    "SimCLR": "simclr",
    "MoCo v2": "moco",
    "BYOL": "byol",
    "SimSiam": "simsiam",
}
_TWO_VIEW = {"SimCLR": "simclr", "MoCo v2": "moco", "BYOL": "byol", "SimSiam": "simsiam"}
FRACTIONS = ("0.01", "0.1", "1.0")


def hardware_name(result: dict) -> str:
    """'2 CPU threads' or the GPU's name (with a count when more than one), from the provenance."""
    hw = result["provenance"]["hardware"]
    if hw.get("device") == "cuda":
        count = hw.get("gpu_count", 1)
        return f"{count} x {hw['gpu']}" if count > 1 else hw["gpu"]
    return f"{hw.get('torch_threads', hw.get('cpu_count'))} CPU threads"


def _train_minutes(epochs: int, images: int, images_per_s: float | None) -> float | None:
    return None if not images_per_s else epochs * images / images_per_s / 60


def _row(method: str, result: dict, scores: dict, backbone: str, epochs: int, speed) -> dict:
    images = result["settings"]["train_size"] or 50_000  # None: all of CIFAR-10's training split
    fractions = scores.get("label_fractions", {})
    return {
        "method": method,
        "family": FAMILIES[method],
        "backbone": backbone,
        "epochs": epochs,
        "train_minutes": _train_minutes(epochs, images, speed) if epochs else 0.0,
        "hardware": hardware_name(result),
        "knn": scores["knn"],
        "linear": scores["linear"],
        "images_per_s": speed,
        "flops_per_image": scores.get("flops_per_image", result.get("flops_per_image")),
        "labels": {f: fractions[f] for f in FRACTIONS if f in fractions},
        "file": f"results/{result['experiment']}-{result['profile']}.json",
        "command": result["provenance"]["command"],
        "commit": (result["provenance"].get("commit") or "")[:7],
    }


def _baselines(profile: str, results_dir) -> list[dict]:
    base = load_result("baselines", profile, results_dir)
    if base is None:
        return []
    few = load_result("few_labels", profile, results_dir)
    few_rows = few["rows"] if few else [{}, {}, {}]
    raw, rand, sup = base["rows"]
    s = base["settings"]
    rows = [
        _row("raw pixels", base, raw, "none (3072 pixel values)", 0, None),
        _row("random init", base, rand, f"{s['backbone']}, untrained", 0, None),
        _row(
            "supervised",
            base,
            sup,
            s["backbone"],
            s["supervised_epochs"],
            History.from_dict(base["supervised_history"]).mean("images_per_s"),
        ),
    ]
    # few_labels wins: its supervised network saw only the labelled part, while the baselines
    # file's few-label probes read the network trained on all labels
    for row, extra in zip(rows, few_rows, strict=True):
        row["labels"] = row["labels"] | {f: extra[f] for f in FRACTIONS if f in extra}
    rows[2]["labels"]["1.0"] = sup["linear"]  # trained on all labels: the baselines file
    return rows


def _reconstruction(profile: str, results_dir) -> list[dict]:
    rows = []
    den = load_result("denoising", profile, results_dir)
    if den is not None:
        epochs = den["settings"]["epochs"]
        backbone = f"conv encoder, {den['bottleneck']}-d code"
        plain = next(r for r in den["rows"] if r["noise_std"] == 0)
        rows.append(
            _row("autoencoder", den, plain, backbone, epochs, plain.get("images_per_s"))
            | {"setting": "no noise"}
        )
        noisy = [r for r in den["rows"] if r["noise_std"] > 0]
        best = max(noisy, key=lambda r: r["linear"])
        rows.append(
            _row("denoising autoencoder", den, best, backbone, epochs, best.get("images_per_s"))
            | {"setting": f"noise std {best['noise_std']} (best of {len(noisy)})"}
        )
    mae = load_result("mae", profile, results_dir)
    if mae is not None:
        trained = [r for r in mae["rows"] if r.get("model") == "MAE"]
        row = max(trained, key=lambda r: r["linear"])
        rows.append(
            _row(
                "MAE",
                mae,
                row,
                mae["encoder"].split(",")[0],
                mae["settings"]["epochs"],
                row.get("images_per_s"),
            )
            | {"setting": f"{row['mask_ratio']:.0%} of patches masked (best of {len(trained)})"}
        )
    return rows


def _two_view(profile: str, results_dir) -> list[dict]:
    rows = []
    for method, name in _TWO_VIEW.items():
        result = load_result(name, profile, results_dir)
        if result is None:
            continue
        rows.append(
            _row(
                method,
                result,
                result["metrics"],
                result["settings"]["backbone"],
                result["settings"]["epochs"],
                result["images_per_s"],
            )
        )
    return rows


def comparison(profile: str = "cpu", results_dir=None) -> list[dict]:
    """One row per method with a result file at ``profile``; methods without one are left out.

    Each row: method, family, backbone, epochs, train_minutes, hardware, knn, linear,
    images_per_s, flops_per_image (training FLOPs of one image; None where not recorded),
    labels (``{"0.01": acc, "0.1": acc, "1.0": acc}``, the fractions the file has), and the
    file, command and code commit it came from.
    """
    return (
        _baselines(profile, results_dir)
        + _reconstruction(profile, results_dir)
        + _two_view(profile, results_dir)
    )


def knn_vs_time(result: dict) -> tuple[list[float], list[float]]:
    """A two-view method's kNN monitor against training minutes.

    The minutes of epoch e are ``e x training images / images per second`` with the run's mean
    throughput, the same reckoning as the ``train_minutes`` of :func:`comparison`, so a curve
    ends where its method's row puts it. Returns ``(minutes, knn)`` at every epoch where the
    monitor ran.
    """
    images = result["settings"]["train_size"] or 50_000
    minutes_per_epoch = images / result["images_per_s"] / 60
    records = [r for r in result["history"]["epochs"] if "knn" in r]
    return [r["epoch"] * minutes_per_epoch for r in records], [r["knn"] for r in records]
