"""Reference weights: the trained models that the chapters' figures are drawn from.

``python -m sslbook.run simclr --profile cpu`` saves the trained model's ``state_dict`` as
``weights/simclr-cpu.pt`` (floating-point tensors stored in float16, half the bytes) and records
the file's name, size and sha256 in ``results/simclr-cpu.json``. :func:`pretrained` rebuilds the
model from the profile, checks the file against that record and loads it::

    model = sslbook.pretrained("simclr")           # the cpu reference run, in eval mode
    features = extract_features(model.encoder, images)

A missing, truncated or altered file raises :class:`WeightsError` naming the command that trains
it again. Weights of the ``full`` profile are too large for the repository: they are published
as release assets of the book's repository and downloaded (checksum verified) into the cache.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoint import save_checkpoint
from .profiles import Profile, profile
from .provenance import REPO_ROOT
from .results import REPOSITORY_URL, load_result, raw_url

__all__ = [
    "WEIGHTS_DIR",
    "MODELS",
    "WeightsError",
    "save_weights",
    "sha256",
    "pretrained",
    "recorded_score",
    "rescore",
    "describe",
]

WEIGHTS_DIR = REPO_ROOT / "weights"
RELEASE_TAG = "weights-v1"  # the release of the book's repository that holds the full weights


class WeightsError(RuntimeError):
    """Reference weights that are missing, unreadable, or not the ones the result file records."""


# pretrain.METHODS + pretrain.REDUNDANCY_METHODS, named here to keep this import light
_VIEW_METHODS = ("simclr", "moco", "byol", "simsiam", "barlow_twins", "vicreg", "dino")


def _pretrain(name: str) -> Callable[[Profile, dict], nn.Module]:
    def build(cfg: Profile, result: dict) -> nn.Module:
        from .experiments.pretrain import build_method, method_options, saved_part

        return saved_part(build_method(name, cfg, **method_options(name)))

    return build


def _supervised(cfg: Profile, result: dict) -> nn.Module:
    from .methods import Supervised
    from .models import backbone

    return Supervised(backbone(cfg.backbone, cfg.width), num_classes=10)


def _autoencoder(cfg: Profile, result: dict) -> nn.Module:
    from .methods import ConvAutoencoder

    return ConvAutoencoder(cfg.width, result["weights"]["autoencoder"]["bottleneck"])


def _mae(cfg: Profile, result: dict) -> nn.Module:
    from .experiments.reconstruction import mae_encoder
    from .methods import MAE

    return MAE(mae_encoder(cfg), mask_ratio=result["weights"]["mae"]["mask_ratio"])


def _mlm(kind: str) -> Callable[[Profile, dict], nn.Module]:
    def build(cfg: Profile, result: dict) -> nn.Module:
        from .experiments.mlm import build_encoder
        from .methods import MaskedLanguageModel

        vocab = result["vocabulary"]
        return MaskedLanguageModel(build_encoder(kind, vocab, cfg), vocab)

    return build


# model name -> (the experiment whose run saves it, how to build the untrained model)
MODELS: dict[str, tuple[str, Callable[[Profile, dict], nn.Module]]] = {
    **{name: (name, _pretrain(name)) for name in _VIEW_METHODS},
    "supervised": ("baselines", _supervised),
    "autoencoder": ("autoencoder", _autoencoder),
    "mae": ("mae", _mae),
    **{f"mlm-{kind}": ("mlm", _mlm(kind)) for kind in ("lstm", "bilstm", "transformer")},
}


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: nn.Module, path: str | Path) -> dict:
    """Save ``model.state_dict()`` to ``path`` (atomically), floating tensors as float16.

    Returns the record a result file keeps: ``{"file", "bytes", "sha256", "dtype"}``.
    """
    state = {
        k: v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()
        for k, v in model.state_dict().items()
    }
    path = Path(path)
    save_checkpoint(path, state)
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256(path),
        "dtype": "float16",
    }


def _command(experiment: str, profile_name: str) -> str:
    return f"python -m sslbook.run {experiment} --profile {profile_name}"


def _cache_dir() -> Path:
    return Path(os.environ.get("SSLBOOK_CACHE", Path(torch.hub.get_dir()) / "sslbook"))


def _url(record: dict, profile_name: str) -> str:
    if profile_name == "full":  # too large for the repository: a release asset
        return f"{REPOSITORY_URL}/releases/download/{RELEASE_TAG}/{record['file']}"
    return raw_url(f"weights/{record['file']}")


def _download(record: dict, profile_name: str, command: str) -> Path:
    """``record["file"]`` in the cache, downloaded once, its sha256 checked by the caller."""
    path = _cache_dir() / record["file"]
    if path.is_file() and path.stat().st_size == record["bytes"]:
        return path
    url = _url(record, profile_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except (urllib.error.URLError, OSError) as e:
        raise WeightsError(
            f"no local copy of {record['file']} and cannot download {url} ({type(e).__name__}: "
            f"{e}); offline, train the model instead: {command}"
        ) from e
    return path


def _locate(record: dict, profile_name: str, weights_dir: Path | None, command: str) -> Path:
    """The local file (``weights_dir``, default ``weights/``); without one, a downloaded copy."""
    path = (weights_dir or WEIGHTS_DIR) / record["file"]
    if path.is_file():
        return path
    if weights_dir is not None:
        raise WeightsError(f"missing weights file {path}; regenerate it with: {command}")
    return _download(record, profile_name, command)


def pretrained(name: str, profile_name: str = "cpu", weights_dir: str | Path | None = None):
    """The reference model ``name`` of profile ``profile_name``, trained weights loaded, eval mode.

    ``name`` is one of :data:`MODELS` (``"simclr"``, ``"moco"``, ``"byol"``, ``"simsiam"``,
    ``"barlow_twins"``, ``"vicreg"``, ``"dino"`` (its student network), ``"supervised"``,
    ``"autoencoder"``, ``"mae"``, ``"mlm-lstm"``, ``"mlm-bilstm"``,
    ``"mlm-transformer"``). The file is read with ``torch.load(weights_only=True)`` after its
    sha256 matches the one in the result file.

    Raises:
        ValueError: an unknown model name.
        WeightsError: no result file or no weights record for it; the weights file missing,
            truncated or altered (sha256 mismatch); or, outside a clone, the download failing.
            The message names the command that regenerates the file.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    experiment, build = MODELS[name]
    command = _command(experiment, profile_name)
    result = load_result(experiment, profile_name)
    record = (result or {}).get("weights", {}).get(name)
    if record is None:
        raise WeightsError(
            f"no weights recorded for {name!r} at profile {profile_name!r} "
            f"(results/{experiment}-{profile_name}.json); create them with: {command}"
        )
    path = _locate(record, profile_name, Path(weights_dir) if weights_dir else None, command)
    if (got := sha256(path)) != record["sha256"]:
        raise WeightsError(
            f"{path} is not the file the result records (sha256 {got[:12]}…, expected "
            f"{record['sha256'][:12]}…, {path.stat().st_size} bytes against {record['bytes']}): "
            f"it is truncated or from another run; regenerate it with: {command}"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise WeightsError(f"cannot read {path} ({e}); regenerate it with: {command}") from e
    model = build(profile(profile_name), result)
    reference = model.state_dict()
    try:
        model.load_state_dict({k: v.to(reference[k].dtype) for k, v in state.items()})
    except (KeyError, RuntimeError) as e:
        raise WeightsError(
            f"{path} does not fit the {name} model of profile {profile_name!r} ({e}); the code "
            f"changed since it was trained: regenerate it with: {command}"
        ) from e
    return model.eval()


_LABELS = {
    "simclr": "SimCLR",
    "moco": "MoCo v2",
    "byol": "BYOL",
    "simsiam": "SimSiam",
    "barlow_twins": "Barlow Twins",
    "vicreg": "VICReg",
    "dino": "DINO (student)",
    "supervised": "supervised",
    "autoencoder": "autoencoder",
    "mae": "MAE",
    "mlm-lstm": "masked-LM LSTM (left to right)",
    "mlm-bilstm": "masked-LM bidirectional LSTM",
    "mlm-transformer": "masked-LM Transformer",
}


def _reference(name: str, profile_name: str) -> tuple[dict, dict]:
    """The result file of model ``name``'s reference run and the row that scores the model."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    experiment = MODELS[name][0]
    result = load_result(experiment, profile_name)
    if result is None or name not in result.get("weights", {}):
        raise WeightsError(
            f"no weights recorded for {name!r} at profile {profile_name!r}; create them with: "
            + _command(experiment, profile_name)
        )
    record = result["weights"][name]
    if experiment in _VIEW_METHODS:
        return result, result["metrics"]
    if experiment == "baselines":
        rows = [r for r in result["rows"] if r["representation"].startswith("supervised")]
    elif experiment == "autoencoder":
        rows = [
            r
            for r in result["rows"]
            if r["model"] == "autoencoder" and r["bottleneck"] == record["bottleneck"]
        ]
    elif experiment == "mae":
        rows = [
            r
            for r in result["rows"]
            if r["model"] == "MAE" and r["mask_ratio"] == record["mask_ratio"]
        ]
    else:
        from .experiments.mlm import ENCODER_NAMES

        rows = [r for r in result["rows"] if r["encoder"] == ENCODER_NAMES[name[len("mlm-") :]]]
    if len(rows) != 1:
        raise WeightsError(f"results/{experiment}-{profile_name}.json has no single row for {name}")
    return result, rows[0]


def recorded_score(name: str, profile_name: str = "cpu") -> tuple[str, float]:
    """The score the result file records for reference model ``name``: ``("knn", 0.61)`` for
    an image model (weighted kNN on the held-out images), ``("val_accuracy", ...)`` for a masked
    LM (masked-token accuracy on the validation split)."""
    _, row = _reference(name, profile_name)
    metric = "val_accuracy" if name.startswith("mlm-") else "knn"
    return metric, row[metric]


def rescore(name: str, model: nn.Module, profile_name: str = "cpu", device=None) -> float:
    """:func:`recorded_score`'s number measured again on ``model``, on the same data the same way.

    Equal to the recorded one (within float16 rounding of the stored weights) exactly when
    ``model`` is the trained model of the reference run: the check a chapter and the tests make
    before drawing figures from it.
    """
    from .evaluate import extract_features, knn_accuracy

    cfg = profile(profile_name)
    model = model.to(device)
    if name.startswith("mlm-"):
        from .experiments.mlm import load_text, masked_token_scores

        return masked_token_scores(model, load_text(cfg).val_ids)["val_accuracy"]
    from .experiments.common import load_splits

    train, test = load_splits(cfg, device)
    train_x, test_x = (extract_features(model.encoder, s.images) for s in (train, test))
    return knn_accuracy(
        train_x, train.labels, test_x, test.labels, k=cfg.knn_k, temperature=cfg.knn_temperature
    )


def describe(name: str, profile_name: str = "cpu") -> str:
    """A caption for a figure drawn from reference model ``name``: which run, how long it trained,
    how good it is, and the result file that says so."""
    result, row = _reference(name, profile_name)
    settings, record = result["settings"], result["weights"][name]
    experiment = result["experiment"]
    epochs = {"baselines": settings["supervised_epochs"], "mlm": settings["text_epochs"]}.get(
        experiment, settings["epochs"]
    )
    details = ""
    if experiment == "autoencoder":
        details = f"{record['bottleneck']}-d code, "
    elif experiment == "mae":
        details = f"{record['mask_ratio']:.0%} of patches hidden, "
    metric, value = recorded_score(name, profile_name)
    score = (
        f"masked-token accuracy {value:.3f} on the validation split"
        if metric == "val_accuracy"
        else f"kNN accuracy {value:.3f} on {result['data']['test'].split(' (')[0]}"
    )
    return (
        f"Reference {_LABELS[name]} model: `{profile_name}` profile, {details}{epochs} epochs, "
        f"{score} (results/{experiment}-{profile_name}.json)"
    )
