"""Run a chapter's experiment outside a notebook and write its result file.

    python -m sslbook.run baselines --profile cpu

writes ``results/baselines-cpu.json``: the measured numbers plus their provenance (command, git
commit, profile, hardware, wall time, library versions). ``python -m sslbook.run all --profile
cpu`` runs every experiment in turn and so regenerates every result file the book reads at that
profile. Long runs checkpoint under
``--checkpoint-dir`` (default ``checkpoints/<name>-<profile>``) and continue from there when
started again, e.g. after a Colab disconnect.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .device import pick_device
from .experiments import EXPERIMENTS
from .profiles import PROFILES, profile
from .provenance import REPO_ROOT, provenance, write_json

__all__ = ["main", "run_experiment"]


def run_experiment(
    name: str,
    profile_name: str,
    out_dir: str | Path = REPO_ROOT / "results",
    checkpoint_dir: str | Path | None = None,
    device=None,
) -> Path:
    """Run experiment ``name`` at ``profile_name`` and write ``<out_dir>/<name>-<profile>.json``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    cfg = profile(profile_name)
    device = pick_device(device)
    if checkpoint_dir is None:
        checkpoint_dir = REPO_ROOT / "checkpoints" / f"{name}-{cfg.name}"
    started = time.perf_counter()
    result = EXPERIMENTS[name](cfg, device=device, checkpoint_dir=checkpoint_dir)
    command = f"python -m sslbook.run {name} --profile {cfg.name}"
    payload = {
        "experiment": name,
        "profile": cfg.name,
        "scale_note": {
            "smoke": "smoke scale: shows the code runs; the numbers mean little",
            "cpu": "cpu reference run on 2 CPU cores",
            "full": "full recipe on one GPU",
        }[cfg.name],
        "settings": cfg.__dict__,
        "provenance": provenance(command, device, started) | {"profile": cfg.name},
        **result,
    }
    return write_json(Path(out_dir) / f"{name}-{cfg.name}.json", payload)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sslbook.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("experiment", choices=["all", *sorted(EXPERIMENTS)])
    parser.add_argument("--profile", default=None, choices=sorted(PROFILES))
    parser.add_argument(
        "--out", default=str(REPO_ROOT / "results"), help="folder for the JSON file"
    )
    parser.add_argument("--checkpoint-dir", default=None, help="where checkpoints go")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    args = parser.parse_args(argv)
    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    if args.checkpoint_dir is not None and len(names) > 1:
        parser.error("--checkpoint-dir names one experiment's folder; it cannot be used with all")
    for name in names:
        path = run_experiment(
            name, args.profile or profile().name, args.out, args.checkpoint_dir, args.device
        )
        print(f"wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
