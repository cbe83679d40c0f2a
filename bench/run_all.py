"""Run every benchmark, then print one summary table and write bench/results.json.

    python bench/run_all.py [--only augment,simclr_step,...] [--device cpu|cuda]

Each benchmark script runs in its own process (so one's threads and caches do not affect the
next), prints its own table and writes ``bench/results/<name>.json``. The summary holds one row
per benchmark: the ratio it measures, its target and whether the target is met, with the
hardware, torch version and git commit of this run. Every ratio divides the medians of rounds in
which the contenders took turns (``bench/timing.py``); each benchmark's file holds the min,
median and max per contender. The SimCLR step's target is judged in float32; its bf16 row, where
the hardware has bf16, is for information.

``--quick`` passes ``--quick`` on: 3 rounds of 1 step each, written under the temporary folder,
to check that every script runs, not to publish a timing.

``--device cuda`` (the default where CUDA is available) runs the benchmarks that time a GPU
(augmentation, the SimCLR step against lightly, the fast-path switches with MFU, and float32 vs
mixed precision) on it, and writes ``bench/results/cuda/<name>.json`` and
``bench/results-cuda.json``, beside the CPU files rather than over them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from common import QUICK_DIR  # bench/common.py

from sslbook.provenance import provenance, write_json

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("augment", "simclr_step", "fast_path", "precision", "mae_step", "mlm_step")
ON_GPU = ("augment", "simclr_step", "fast_path", "precision")  # the ones that time a GPU
TAKES_DEVICE = ("simclr_step", "fast_path", "precision")  # augment adds its GPU rows itself


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def summary_rows(name: str, result: dict) -> list[dict]:
    """The headline ratio(s) of one benchmark's result file."""
    if name == "augment":
        return [
            {
                "benchmark": "augmentation, per CPU core",
                "comparison": "sslbook batched vs torchvision per-image PIL",
                "ratio": result["ratio_per_core"],
                "target": result["target_ratio_per_core"],
            }
        ] + (
            [
                {
                    "benchmark": "augmentation, per CPU core",
                    "comparison": "sslbook batched vs kornia batched",
                    "ratio": result["ratio_per_core_vs_kornia"],
                    "target": None,
                }
            ]
            if result.get("ratio_per_core_vs_kornia") is not None
            else []
        )
    if name == "simclr_step":
        # the target is judged in float32; bf16, where the device has it, is for information
        held = result["target_precision"]
        return [
            {
                "benchmark": f"SimCLR training step, {precision}",
                "comparison": "sslbook vs lightly's documented pipeline, both one pass per view",
                "ratio": ratio,
                "target": result["target"] if precision == held else None,
            }
            for precision, ratio in result["ratio_by_precision"].items()
        ] + [
            {
                "benchmark": f"SimCLR step, sslbook's default, {precision}",
                "comparison": "one pass over both views (batch norm over 2B) vs lightly",
                "ratio": ratio,
                "target": None,
            }
            for precision, ratio in result["ratio_joint_batchnorm_by_precision"].items()
        ]
    if name == "precision":
        return [
            {
                "benchmark": f"training step in {result['amp_dtype']}, {row['model']}",
                "comparison": f"float32 vs {result['amp_dtype']} autocast on {result['device']}",
                "ratio": row["ratio"],
                "target": None,
            }
            for row in result["rows"]
        ]
    if name == "mae_step":
        return [
            {
                "benchmark": f"MAE step, {row['encoder']}",
                "comparison": "encoder on visible patches vs on all patches",
                "ratio": row["speedup"],
                "target": result["target"],
            }
            for row in result["rows"]
        ]
    if name == "mlm_step":
        acc = result["masked_token_accuracy"]
        return [
            {
                "benchmark": "masked-LM training step",
                "comparison": "sslbook vs transformers BertForMaskedLM "
                f"(accuracy {acc['sslbook']:.3f} vs {acc['transformers']:.3f} "
                f"after {result['quality_steps']} steps)",
                "ratio": result["ratio"],
                "target": result["target"],
                "met": result["target_met"],
            }
        ]
    if name == "fast_path":
        last = result["rows"][-1]
        rows = [
            {
                "benchmark": f"SimCLR step, fast path on {last.get('device', 'this device')}",
                "comparison": f"all switches ({last['configuration'].lstrip('+ ')} last) vs "
                "float32, NCHW, a host sync per step",
                "ratio": result["speedup_all_switches"],
                "target": None,
            }
        ]
        if last["mfu"] is not None:  # a GPU whose peak is known: the MFU target applies
            rows.append(
                {
                    "benchmark": f"SimCLR step MFU, {result['backbone']}",
                    "comparison": "model FLOPs utilisation, all switches",
                    "unit": "fraction",
                    "ratio": last["mfu"],
                    "target": result["mfu_target"],
                }
            )
        return rows
    raise ValueError(f"unknown benchmark {name!r}: expected one of {', '.join(BENCHMARKS)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"))
    parser.add_argument("--out", default=None, help="summary file (default: by device)")
    parser.add_argument("--quick", action="store_true", help="smoke-test every benchmark")
    args = parser.parse_args()
    device = args.device or ("cuda" if _cuda_available() else "cpu")
    default = BENCHMARKS if device == "cpu" else ON_GPU
    names = [n for n in (args.only or ",".join(default)).split(",") if n]
    unknown = sorted(set(names) - set(default))
    if unknown:
        parser.error(
            f"unknown benchmark(s) {unknown} on {device}: expected some of {', '.join(default)}"
        )
    results_dir = QUICK_DIR if args.quick else HERE / "results"
    results_dir = results_dir if device == "cpu" else results_dir / device
    summary_path = args.out or str(
        (QUICK_DIR if args.quick else HERE)
        / ("results.json" if device == "cpu" else f"results-{device}.json")
    )
    started = time.perf_counter()
    # each benchmark imports the sslbook of this checkout (and records its commit), whichever
    # copy the environment has installed
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(HERE.parent), *_pythonpath()])}
    rows, results = [], {}
    for name in names:
        out = results_dir / f"{name}.json"
        command = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out)]
        if name in TAKES_DEVICE:
            command += ["--device", device]
        if args.quick:
            command.append("--quick")
        print(f"\n## {name} ({device})\n", flush=True)
        subprocess.run(command, check=True, env=env)
        results[name] = json.loads(out.read_text())
        rows += summary_rows(name, results[name])
    for row in rows:
        row.setdefault("met", None if row["target"] is None else row["ratio"] >= row["target"])

    print("\n## Summary\n\n| benchmark | comparison | ratio | target | met |")
    print("|---|---|---:|---:|---|")
    for r in rows:
        unit = "" if r.get("unit") == "fraction" else "x"
        target = "-" if r["target"] is None else f"≥ {r['target']}{unit}"
        met = {True: "yes", False: "no", None: "-"}[r["met"]]
        print(
            f"| {r['benchmark']} | {r['comparison']} | {r['ratio']:.2f}{unit} | {target} | {met} |"
        )
    payload = {"summary": rows, "benchmarks": results}
    payload["provenance"] = provenance(None, device, started)
    print(f"\nwrote {write_json(summary_path, payload)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
