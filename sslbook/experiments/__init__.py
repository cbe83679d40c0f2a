"""Experiments that write ``results/<name>-<profile>.json`` through ``python -m sslbook.run``.

Each module exposes ``run(cfg, device, checkpoint_dir) -> dict``: the measured numbers of one
chapter's experiment at the scale of profile ``cfg``. The chapters call the same building blocks
at smoke scale and plot the result files for the larger scales.
"""

from functools import partial

from . import ablations, baselines, mlm, pretrain, reconstruction, scaling

EXPERIMENTS = (
    {"baselines": baselines.run, "few_labels": baselines.run_few_labels}
    | {name: partial(pretrain.run, name) for name in pretrain.METHODS}
    | {name: partial(pretrain.run, name) for name in pretrain.REDUNDANCY_METHODS}
    | {"simclr_adamw": pretrain.run_simclr_adamw}
    | {"simclr_ablations": ablations.run, "batch_size": ablations.run_batch_size}
    | {"scaling": scaling.run}
    | {
        "autoencoder": reconstruction.run_autoencoder,
        "denoising": reconstruction.run_denoising,
        "mae": reconstruction.run_mae,
        "mlm": mlm.run,
    }
)

__all__ = ["EXPERIMENTS"]
