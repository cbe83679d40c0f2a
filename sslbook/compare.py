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
from .results import load_result, load_seeds, mean_std

__all__ = [
    "FAMILIES",
    "EXPERIMENT_OF",
    "comparison",
    "over_seeds",
    "batch_size_rows",
    "selected_row",
    "score_text",
    "beyond_spread",
    "hardware_name",
    "knn_vs_time",
]

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
    "Barlow Twins": "redundancy reduction",
    "VICReg": "redundancy reduction",
    "DINO": "self-distillation",
}
EXPERIMENT_OF = {
    "raw pixels": "baselines",
    "random init": "baselines",
    "supervised": "baselines",
    "autoencoder": "autoencoder",
    "denoising autoencoder": "denoising",
    "MAE": "mae",
    "SimCLR": "simclr",
    "MoCo v2": "moco",
    "BYOL": "byol",
    "SimSiam": "simsiam",
    "Barlow Twins": "barlow_twins",
    "VICReg": "vicreg",
    "DINO": "dino",
}
# the methods that compare views of an image (DINO's multi-crop too): sslbook.experiments.pretrain
_VIEWS = ("SimCLR", "MoCo v2", "BYOL", "SimSiam", "Barlow Twins", "VICReg", "DINO")
_TWO_VIEW = {method: EXPERIMENT_OF[method] for method in _VIEWS}
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


def over_seeds(experiment: str, profile: str, results_dir, pick, keys=("knn", "linear")) -> dict:
    """Scores (kNN and linear probe by default) as mean and sample std over the seed files.

    ``pick(result)`` returns the scores of the row in one result file of ``experiment``.
    Returns each of ``keys`` (the mean), ``"<key>_std"`` and ``"seeds"`` (how many files).
    """
    found = [pick(r) for r in load_seeds(experiment, profile, results_dir)]
    spread = {"seeds": len(found)}
    for key in keys:
        spread[key], spread[f"{key}_std"] = mean_std(s[key] for s in found)
    return spread


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
        "knn_std": 0.0,
        "linear_std": 0.0,
        "seeds": 1,
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
    # raw pixels too: no seed changes their features, but the spread over seed files shows it
    for i, row in enumerate(rows):
        row |= over_seeds("baselines", profile, results_dir, lambda r, i=i: r["rows"][i])
    return rows


def selected_row(result: dict, setting: str, model: str | None = None) -> dict:
    """The row of the setting a study chose on its validation split (``result["selected"]``).

    A result file written before the studies chose on a validation split has no
    ``"selected"``; its row with the best held-out linear probe stands in, marked
    ``"chosen_on": "held-out"`` so that the table says so, until the file is written again.
    """
    candidates = [
        r for r in result["rows"] if setting in r and (model is None or r.get("model") == model)
    ]
    if setting not in result.get("selected", {}):
        return max(candidates, key=lambda r: r["linear"]) | {"chosen_on": "held-out"}
    return _matching(setting, result["selected"][setting], model)(result) | {
        "chosen_on": "validation"
    }


def _how(row: dict, among: int) -> str:
    if row["chosen_on"] == "validation":
        return f"chosen on validation among {among}"
    return f"best on the held-out images among {among}: an older file, before validation choices"


def _matching(setting: str, value, model: str | None = None):
    """``pick`` for :func:`over_seeds`: the row with ``setting == value`` (of ``model``)."""

    def pick(result: dict) -> dict:
        return next(
            r
            for r in result["rows"]
            if r.get(setting) == value and (model is None or r.get("model") == model)
        )

    return pick


def _reconstruction(profile: str, results_dir) -> list[dict]:
    rows = []
    ae = load_result("autoencoder", profile, results_dir)
    if ae is not None:
        row = selected_row(ae, "bottleneck", "autoencoder")
        size = row["bottleneck"]
        trained = [r for r in ae["rows"] if r.get("model") == "autoencoder"]
        rows.append(
            _row(
                "autoencoder",
                ae,
                row,
                "conv encoder",
                ae["settings"]["epochs"],
                row.get("images_per_s"),
            )
            | {"setting": f"{size}-d code ({_how(row, len(trained))})"}
            | over_seeds(
                "autoencoder",
                profile,
                results_dir,
                _matching("bottleneck", size, "autoencoder"),
            )
        )
    den = load_result("denoising", profile, results_dir)
    if den is not None:
        row = selected_row(den, "noise_std")
        rows.append(
            _row(
                "denoising autoencoder",
                den,
                row,
                f"conv encoder, {den['bottleneck']}-d code",
                den["settings"]["epochs"],
                row.get("images_per_s"),
            )
            | {"setting": f"noise std {row['noise_std']} ({_how(row, len(den['rows']))})"}
            | over_seeds(
                "denoising", profile, results_dir, _matching("noise_std", row["noise_std"])
            )
        )
    mae = load_result("mae", profile, results_dir)
    if mae is not None:
        row = selected_row(mae, "mask_ratio", "MAE")
        ratio = row["mask_ratio"]
        trained = [r for r in mae["rows"] if r.get("model") == "MAE"]
        rows.append(
            _row(
                "MAE",
                mae,
                row,
                mae["encoder"].split(",")[0],
                mae["settings"]["epochs"],
                row.get("images_per_s"),
            )
            | {"setting": f"{ratio:.0%} of patches masked ({_how(row, len(trained))})"}
            | over_seeds(
                "mae",
                profile,
                results_dir,
                _matching("mask_ratio", ratio, "MAE"),
            )
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
            | over_seeds(name, profile, results_dir, lambda r: r["metrics"])
        )
    return rows


PARTS = ("baselines", "reconstruction", "two_view")


def comparison(profile: str = "cpu", results_dir=None, parts=PARTS) -> list[dict]:
    """One row per method with a result file at ``profile``; methods without one are left out.

    Each row: method, family, backbone, epochs, train_minutes, hardware, knn, linear (means over
    the seed files found, :func:`sslbook.results.load_seeds`), knn_std, linear_std and seeds
    (their sample standard deviation and number; 0.0 and 1 for one file), images_per_s,
    flops_per_image (training FLOPs of one image; None where not recorded), labels
    (``{"0.01": acc, "0.1": acc, "1.0": acc}`` of seed 0, the fractions the file has), and the
    file, command and code commit it came from. Where a study tried several settings, the row
    is the one it chose on its validation split (:func:`selected_row`), never the best on the
    held-out images. ``parts`` picks among ``"baselines"`` (raw pixels, random init,
    supervised), ``"reconstruction"`` and ``"two_view"`` (the contrastive and non-contrastive
    methods).
    """
    builders = {"baselines": _baselines, "reconstruction": _reconstruction, "two_view": _two_view}
    unknown = set(parts) - set(builders)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}: expected some of {', '.join(PARTS)}")
    return [row for part in PARTS if part in parts for row in builders[part](profile, results_dir)]


def score_text(row: dict, key: str = "knn") -> str:
    """``"0.612 ± 0.008"``: a row's mean and sample std over seeds; just the value for one seed."""
    if row.get("seeds", 1) < 2:
        return f"{row[key]:.3f}"
    return f"{row[key]:.3f} ± {row[key + '_std']:.3f}"


def beyond_spread(a: dict, b: dict, key: str = "knn") -> bool:
    """Row ``a`` beats row ``b`` on ``key`` by more than their two standard deviations over seeds
    added up: the condition under which the book calls a difference real. With one seed per row
    the spread is unknown (0), and this is a plain comparison."""
    return a[key] - b[key] > a.get(key + "_std", 0.0) + b.get(key + "_std", 0.0)


def batch_size_rows(profile: str, results_dir=None) -> list[dict]:
    """The ``batch_size`` study next to the reference runs it is compared with.

    One row per method and batch size: SimCLR and MoCo v2 at the study's small batch, from its
    seed files, and at the profile's batch, from the seed files of the ``simclr`` and ``moco``
    runs (the same recipe, :func:`sslbook.experiments.ablations.run_batch_size`). Each row has
    method, batch_size, negatives per view (2B - 2 for SimCLR, the queue for MoCo), lr (scaled
    linearly with the batch), steps, and kNN and linear probe over seeds (:func:`over_seeds`).
    Empty when a file is missing.
    """
    small = load_result("batch_size", profile, results_dir)
    if small is None:
        return []
    big = small["reference"]["batch_size"]
    rows = []
    for row in small["rows"]:
        name = row["method"]
        reference = load_result(name, profile, results_dir)
        if reference is None:
            return []
        at_big = {
            "method": name,
            "batch_size": big,
            "negatives": 2 * big - 2 if name == "simclr" else row["negatives"],
            "lr": row["lr"] * big / row["batch_size"],
            "steps": reference["history"]["steps"][-1]["step"],
        }
        rows.append(row | over_seeds("batch_size", profile, results_dir, _matching("method", name)))
        rows.append(at_big | over_seeds(name, profile, results_dir, lambda r: r["metrics"]))
    return rows


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
