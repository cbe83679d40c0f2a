"""Checkpoints that survive crashes and refuse to lie.

- Written atomically (temporary file, fsync, rename): a crash mid-write leaves the previous
  checkpoint intact.
- Read only with ``torch.load(weights_only=True)``: tensors and plain containers, never arbitrary
  pickled objects (unpickling can run code).
- A checkpoint that cannot be used raises :class:`CheckpointError` and is left untouched; nothing
  silently starts over and overwrites it.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import torch

from .history import History

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "restore_training_state",
]

CHECKPOINT_NAME = "last.pt"
CHECKPOINT_KEYS = {"epoch", "step", "model", "optimizer", "scaler", "history", "config", "rng"}
# Config fields that may change between a run and its resumption without changing the result
# (fused and compile are speed switches: the same computation up to floating-point rounding).
RESUMABLE_CHANGES = {
    "epochs",
    "progress",
    "checkpoint_dir",
    "checkpoint_every",
    "log_every",
    "fused",
    "compile",
}


class CheckpointError(RuntimeError):
    """A checkpoint exists but cannot be used: truncated, unsafe, or from another model or run."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: readers see the old file or the new one, never half.

    The state is written to a temporary file in the same directory, flushed to disk, then renamed
    over ``path`` (``os.replace`` is atomic on POSIX and Windows). If anything fails, ``path`` is
    left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``: tensors and plain containers, no code.

    Raises:
        FileNotFoundError: there is no file at ``path``.
        CheckpointError: the file is truncated or corrupt, holds arbitrary Python objects, or is
            not a dict. The file is never modified.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        if isinstance(e, pickle.UnpicklingError) and "weights only" in str(e).lower():
            what = (
                "it contains Python objects other than tensors and plain containers, which "
                "torch.load(weights_only=True) refuses to unpickle (unpickling can run code)"
            )
        else:
            first_line = (str(e).splitlines() or [""])[0]
            what = f"it is truncated or corrupt ({type(e).__name__}: {first_line})"
        raise CheckpointError(f"cannot load checkpoint {path}: {what}. {remedy(path)}") from e
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {path} holds a {type(state).__name__}, not a dict. {remedy(path)}"
        )
    return state


def config_to_dict(config) -> dict:
    """A training config dataclass as a plain dict (paths as strings) for a weights-only file."""
    d = asdict(config)
    if d["checkpoint_dir"] is not None:
        d["checkpoint_dir"] = str(d["checkpoint_dir"])
    return d


def rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_training_state(
    path, state, model, optimizer, scaler, config, device, steps_per_epoch
) -> tuple[int, int, History]:
    """Load a checkpoint's model, optimizer, scaler and RNG state; return (epoch, step, history)."""
    check_checkpoint_fits(path, state, model, config, steps_per_epoch)
    # load everything; the RNG states are re-seeded per epoch anyway, restored for completeness
    model.load_state_dict(state["model"])
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"optimizer state in {path} does not fit: {e}. {remedy(path)}") from e
    if scaler.is_enabled() and state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["cpu"])
    if device.type == "cuda" and "cuda" in state["rng"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return state["epoch"], state["step"], History.from_dict(state["history"])


def check_checkpoint_fits(path, state, model, config, steps_per_epoch) -> None:
    """Raise CheckpointError unless ``state`` can resume this model, optimizer and data;
    warn when a config field changed that resuming tolerates but that changes the result."""
    missing = CHECKPOINT_KEYS - state.keys()
    if missing:
        raise CheckpointError(
            f"{path} is not a checkpoint written by sslbook.train.fit: it lacks {sorted(missing)}. "
            + remedy(path)
        )

    # 1) the model must be the same architecture: same keys, same shapes
    saved, current = state["model"], model.state_dict()
    problems = [f"missing {k}" for k in current.keys() - saved.keys()]
    problems += [f"unexpected {k}" for k in saved.keys() - current.keys()]
    problems += [
        f"{k}: saved {tuple(saved[k].shape)} vs model {tuple(v.shape)}"
        for k, v in current.items()
        if k in saved and torch.is_tensor(v) and tuple(saved[k].shape) != tuple(v.shape)
    ]
    if problems:
        raise CheckpointError(
            f"checkpoint {path} was written for a different model "
            f"({'; '.join(sorted(problems)[:5])}{'; ...' if len(problems) > 5 else ''}). "
            "Use another checkpoint_dir for this model, "
            "or delete the file to start over."
        )

    # 2) the optimizer state only fits the optimizer that wrote it
    saved_config = state["config"]
    if saved_config.get("optimizer") != config.optimizer:
        raise CheckpointError(
            f"checkpoint {path} holds {saved_config.get('optimizer')!r} optimizer state but "
            f"config.optimizer is {config.optimizer!r}. {remedy(path)}"
        )
    # 3) the same data and batch size, or the step count (and so the schedule) would be off
    if state["step"] != state["epoch"] * steps_per_epoch:
        raise CheckpointError(
            f"checkpoint {path} was written after {state['step']} steps in {state['epoch']} "
            f"epochs, but this data and batch_size give {steps_per_epoch} steps per epoch: the "
            f"data or batch_size changed. {remedy(path)}"
        )
    # a field added to TrainConfig after the checkpoint was written counts at its default
    saved_config = {f.name: f.default for f in fields(config)} | saved_config
    changed = {
        k: (saved_config.get(k), v)
        for k, v in config_to_dict(config).items()
        if k not in RESUMABLE_CHANGES and saved_config.get(k) != v
    }
    if config.schedule == "cosine" and saved_config.get("epochs") != config.epochs:
        changed["epochs"] = (saved_config.get("epochs"), config.epochs)  # stretches the cosine
    if changed:
        warnings.warn(
            f"resuming {path} with a changed config {changed} (saved, now): the result will "
            "differ from an uninterrupted run with either config",
            stacklevel=4,
        )


def remedy(path: Path) -> str:
    return (
        f"It has been left untouched: delete {path} to start training over, "
        "or restore a good copy of it, then call fit again."
    )
