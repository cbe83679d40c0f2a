"""Run a chapter's experiment outside a notebook and write its result file.

    python -m sslbook.run baselines --profile cpu

writes ``results/baselines-cpu.json``: the measured numbers plus their provenance (command, git
commit, profile, hardware, wall time, library versions). ``python -m sslbook.run all --profile
cpu`` runs every experiment in turn and so regenerates every result file the book reads at that
profile. Long runs checkpoint under
``--checkpoint-dir`` (default ``checkpoints/<name>-<profile>``) and continue from there when
started again, e.g. after a Colab disconnect.

On several GPUs, start it with torchrun; ``--profile``'s batch size is then the global batch::

    torchrun --nproc_per_node=4 -m sslbook.run simclr --profile full

Every process runs the experiment (:func:`sslbook.train.fit` splits each batch over them, see
:mod:`sslbook.distributed`); only rank 0 prints and writes the result file, which records the
number of processes as ``provenance.world_size``.

``--seed 1`` trains from another seed and writes ``<name>-<profile>-seed1.json`` beside the
seed-0 file; ``--seeds 0 1 2`` runs the seeds in turn. The chapters report the mean and spread
over the seed files they find (:func:`sslbook.results.load_seeds`). The seed-0 run is the
reference: it also saves the trained models the chapters draw their figures from, as
``weights/<model>-<profile>.pt`` (:mod:`sslbook.weights`), recorded with their sha256 in its
result file.

``--amp`` trains in mixed precision on the CPU too (bf16 autocast; GPUs use it by default) and
writes ``<name>-<profile>-amp.json``, beside the float32 result. On a processor with bf16 matrix
units (:func:`sslbook.device.cpu_has_bf16`) it makes the CNN experiments' steps about twice as
fast and the small Transformers' slower: ``bench/precision.py`` times each model.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import distributed
from .device import pick_device
from .experiments import EXPERIMENTS
from .profiles import PROFILES, profile
from .provenance import REPO_ROOT, provenance, write_json
from .weights import save_weights

__all__ = ["main", "run_experiment"]


def run_experiment(
    name: str,
    profile_name: str,
    out_dir: str | Path = REPO_ROOT / "results",
    checkpoint_dir: str | Path | None = None,
    device=None,
    amp: bool = False,
    seed: int = 0,
    weights_dir: str | Path | None = None,
) -> Path:
    """Run experiment ``name`` at ``profile_name`` and write ``<out_dir>/<name>-<profile>.json``.

    ``amp=True`` autocasts on every device, the CPU included (bf16), and writes
    ``<name>-<profile>-amp.json`` (checkpoints under ``checkpoints/<name>-<profile>-amp``).
    ``seed`` other than 0 writes ``<name>-<profile>-seed<seed>.json``. The seed-0 float32 run
    saves the models the experiment returns under ``"models"`` to ``weights_dir`` (default: a
    ``weights`` folder beside ``out_dir``) and records them under ``"weights"``.

    In a process group (torchrun) every rank runs the experiment and only rank 0 writes the file;
    every rank returns its path.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}: expected one of {', '.join(EXPERIMENTS)}")
    cfg = profile(profile_name).with_(amp=True) if amp else profile(profile_name)
    device = pick_device(device)
    options = (f" --seed {seed}" if seed else "") + (" --amp" if amp else "")
    stem = f"{name}-{cfg.name}" + (f"-seed{seed}" if seed else "") + ("-amp" if amp else "")
    if checkpoint_dir is None:
        checkpoint_dir = REPO_ROOT / "checkpoints" / stem
    # a run continued from checkpoints times only what this process trained
    resumed = any(Path(checkpoint_dir).rglob("*.pt")) if Path(checkpoint_dir).is_dir() else False
    started = time.perf_counter()
    result = EXPERIMENTS[name](cfg, device=device, checkpoint_dir=checkpoint_dir, seed=seed)
    models = result.pop("models", {})
    world = distributed.world_size()
    launcher = f"torchrun --nproc_per_node={world}" if world > 1 else "python"
    command = f"{launcher} -m sslbook.run {name} --profile {cfg.name}" + options
    path = Path(out_dir) / f"{stem}.json"
    if not distributed.is_main_process():
        return path
    if models and seed == 0 and not amp:
        folder = Path(weights_dir) if weights_dir else Path(out_dir).resolve().parent / "weights"
        result["weights"] = {
            key: save_weights(entry["model"], folder / f"{key}-{cfg.name}.pt")
            | {k: v for k, v in entry.items() if k != "model"}
            for key, entry in models.items()
        }
    payload = {
        "experiment": name,
        "profile": cfg.name,
        "scale_note": {
            "smoke": "smoke scale: shows the code runs; the numbers mean little",
            "cpu": "cpu reference run on 2 CPU cores",
            "colab": "colab profile: a chapter's budget on one GPU",
            "full": "full recipe on one GPU" if world == 1 else f"full recipe on {world} GPUs",
        }[cfg.name],
        "settings": cfg.__dict__,
        "seed": seed,
        "provenance": provenance(command, device, started)
        | {"profile": cfg.name, "world_size": world}
        | ({"resumed_from_checkpoint": True} if resumed else {}),
        **result,
    }
    return write_json(path, payload)


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
    parser.add_argument("--seed", type=int, default=None, help="training seed (default 0)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="several, in turn")
    parser.add_argument("--weights-dir", default=None, help="where the seed-0 weights go")
    parser.add_argument(
        "--amp",
        action="store_true",
        help="mixed precision on the CPU too (bf16); writes <name>-<profile>-amp.json",
    )
    args = parser.parse_args(argv)
    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    if args.seed is not None and args.seeds is not None:
        parser.error("give --seed or --seeds, not both")
    seeds = args.seeds or [args.seed or 0]
    if args.checkpoint_dir is not None and len(names) * len(seeds) > 1:
        parser.error(
            "--checkpoint-dir names one run's folder; it cannot be used with all or --seeds"
        )
    # under torchrun: join the process group, one GPU per process (a no-op otherwise)
    device = distributed.init_from_env(args.device)
    try:
        for name in names:
            for seed in seeds:
                path = run_experiment(
                    name,
                    args.profile or profile().name,
                    args.out,
                    args.checkpoint_dir,
                    str(device),
                    amp=args.amp,
                    seed=seed,
                    weights_dir=args.weights_dir,
                )
                if distributed.is_main_process():
                    print(f"wrote {path}", flush=True)
    finally:
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
