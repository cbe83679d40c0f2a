"""Provenance for result files: which code, on which machine, with which versions, took how long."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from .device import describe_hardware

__all__ = ["git_commit", "provenance", "write_json"]

REPO_ROOT = Path(__file__).resolve().parent.parent


# Outputs of runs and benchmarks: a run that rewrites them has not changed the code.
OUTPUTS = ("results", "weights", "bench/results", "bench/results.json")


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The checked-out commit, ``-dirty`` appended when tracked files other than result files
    (:data:`OUTPUTS`) differ from it; None outside git."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."]
            + [f":(exclude){path}" for path in OUTPUTS],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return sha + ("-dirty" if dirty else "")


def _command_line() -> str:
    """This process's command line, with paths under the working directory made relative to it
    (``python bench/augment.py``, not a path that exists only on the machine that ran it)."""
    cwd = Path.cwd()

    def short(arg: str) -> str:
        path = Path(arg)
        if path.is_absolute() and path.is_relative_to(cwd):
            return str(path.relative_to(cwd))
        return arg

    return " ".join([Path(sys.executable).name, *map(short, sys.argv)])


def provenance(command: str | None = None, device=None, started: float | None = None) -> dict:
    """Everything a reader needs to reproduce a number: command, commit, hardware, versions, time.

    Args:
        command: the command line that produced the result (default: this process's argv).
        device: the device the work ran on.
        started: ``time.perf_counter()`` at the start of the work; gives ``wall_time_s``.
    """
    import torchvision

    from . import __version__

    info = {
        "command": command or _command_line(),
        "commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hardware": describe_hardware(device),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "sslbook": __version__,
        },
        "profile": os.environ.get("SSLBOOK_PROFILE"),
    }
    if started is not None:
        info["wall_time_s"] = round(time.perf_counter() - started, 2)
    return info


def write_json(path: str | Path, payload: dict) -> Path:
    """Write ``payload`` as indented JSON atomically (a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path
