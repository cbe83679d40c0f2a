"""One training loop for every method in the book: ``fit(model, loss_fn, data, config)``.

A method supplies only ``loss_fn(model, batch)``; the loop does the rest the same way for all:
shuffling, mixed precision, linear warmup + cosine learning rate, weight decay on weights only,
logging without a host sync per step, a guard against NaN/inf, and atomic checkpoints that resume
bitwise-exactly at epoch boundaries::

    history = fit(model, loss_fn, (images, labels), TrainConfig(epochs=10), eval_fn=knn_monitor)
    plt.plot(*history.series("loss"))

The same call trains on several GPUs when the process was started by ``torchrun`` (see
:mod:`sslbook.distributed`): ``batch_size`` stays the global batch, every process takes its
share of each batch, DistributedDataParallel averages the gradients, and only rank 0 writes
checkpoints.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import device as _device
from . import distributed
from .checkpoint import (
    CHECKPOINT_NAME,
    CheckpointError,
    config_to_dict,
    load_checkpoint,
    restore_training_state,
    rng_state,
    save_checkpoint,
)
from .device import amp_dtype, autocast, pick_device
from .flops import mfu, peak_flops
from .history import History
from .losses import finite_checks

__all__ = [
    "TrainConfig",
    "History",
    "fit",
    "learning_rate_at",
    "parameter_groups",
    "make_optimizer",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "NonFiniteLossError",
]


@dataclass
class TrainConfig:
    """Settings of one :func:`fit` run (stored in every checkpoint, compared on resume)."""

    epochs: int = 10  # passes over the training tensors
    batch_size: int = 256  # samples per optimizer step (over all processes under torchrun)
    lr: float = 1e-3  # peak learning rate (after warmup)
    weight_decay: float = 0.0  # applied to weights only, never to biases or norm parameters
    optimizer: str = "adamw"  # "adamw" | "sgd" (momentum, nesterov off)
    momentum: float = 0.9  # SGD momentum (unused by AdamW)
    warmup_epochs: float = 0.0  # linear warmup from ~0 to lr, then the schedule
    schedule: str = "cosine"  # "cosine" (to 0 at the end) | "constant"
    grad_clip: float | None = None  # max global gradient norm (None: no clipping)
    amp: bool | None = None  # autocast: None on GPUs only; True on the CPU too, see amp_dtype
    seed: int = 0  # seeds the global RNG at the start of every epoch, see _epoch_seed
    checkpoint_dir: str | Path | None = None  # where last.pt goes (None: no checkpoints)
    checkpoint_every: int = 1  # epochs between checkpoints (the last epoch is always saved)
    log_every: int = 20  # steps between history records (and the only host syncs)
    progress: bool = True  # tqdm.auto progress bar
    drop_last: bool = True  # drop the incomplete last batch of every epoch
    sync_batchnorm: bool = False  # BatchNorm over the global batch (only matters under DDP)
    fused: bool = True  # fused optimizer kernel on CUDA (no effect elsewhere)
    compile: bool = False  # torch.compile the training step's forward (loss_fn and the model)


class NonFiniteLossError(FloatingPointError):
    """The loss (or the gradient norm, or a parameter) became NaN or inf during training."""


def learning_rate_at(step: int, total_steps: int, warmup_steps: int, config: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` (from 0): linear warmup, then the schedule.

    Warmup: ``lr * (step + 1) / warmup_steps``. Cosine (SGDR, Loshchilov & Hutter 2017, without
    restarts): ``lr * (1 + cos(pi * t)) / 2`` with ``t = (step - warmup) / (total - warmup)``,
    which reaches 0 at ``step == total_steps``.
    """
    # 1) linear warmup; step + 1 so that the first step already learns
    if step < warmup_steps:
        return config.lr * (step + 1) / warmup_steps
    # 2) constant after warmup
    if config.schedule == "constant":
        return config.lr
    # 3) cosine decay from lr to 0 over the remaining steps
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: weights (ndim >= 2) decay; biases and norms (ndim <= 1) do not.

    Decaying a norm layer's scale or a bias only fights the normalisation (as in nanoGPT and
    the BYOL/LARS recipes), so they are excluded.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` over :func:`parameter_groups`.

    On CUDA the fused implementation updates all parameters in one kernel per step instead of
    a few per parameter tensor (``config.fused``; the CPU keeps the default implementation).
    """
    groups = parameter_groups(model, config.weight_decay)
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    fused = {"fused": True} if config.fused and on_cuda else {}
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, **fused)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=config.lr, momentum=config.momentum, nesterov=False, **fused
        )
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {config.optimizer!r}")


def fit(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor | dict],
    data: torch.Tensor | tuple[torch.Tensor, ...],
    config: TrainConfig | None = None,
    *,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 1,
    device: str | torch.device | None = None,
    resume: bool = True,
    flops_per_sample: float | None = None,
) -> History:
    """Train ``model`` in place on ``data`` by minimising ``loss_fn``; return the :class:`History`.

    Args:
        model: trained in place and left on ``device``.
        loss_fn: ``loss_fn(model, batch)`` with ``batch`` a tuple of slices of ``data`` (one per
            tensor, even for a single tensor); returns a scalar loss, or a dict with a ``"loss"``
            key plus extra scalars to log (e.g. ``{"loss": l, "std": s}``).
        data: a tensor or a tuple of tensors with the same first dimension, e.g.
            ``(images_uint8, labels)``; moved to ``device`` once.
        config: see :class:`TrainConfig`.
        eval_fn: ``eval_fn(model) -> {"metric": value}``, called in eval mode every ``eval_every``
            epochs and after the last one; the metrics go into ``history.epochs``.
        eval_every: epochs between evaluations.
        device: where to train; default :func:`sslbook.device.pick_device`.
        resume: continue from ``config.checkpoint_dir/last.pt`` if it exists. If that run
            already finished, load its model and return its history without training.
        flops_per_sample: training FLOPs of one sample, e.g. from
            :func:`sslbook.flops.method_flops_per_image`; the step records then carry
            ``tflops`` (model TFLOP/s of all processes together) and, where
            :func:`sslbook.flops.peak_flops` knows the GPU, ``mfu``. Both are computed from
            ``images_per_s`` at log time: no extra host sync.

    Raises:
        NonFiniteLossError: the loss became NaN/inf; nothing from the bad state is saved.
        CheckpointError: ``last.pt`` exists but cannot be resumed from; it is left untouched.

    The global torch RNG is re-seeded from ``(config.seed, epoch)`` at the start of every epoch, so
    shuffling, augmentation and dropout that draw from it replay exactly after a resume.

    Under ``torchrun`` (an initialised process group, :mod:`sslbook.distributed`): every rank
    draws the same shuffle and takes its own ``batch_size // world_size`` slice of each global
    batch; then it re-seeds from ``(config.seed, epoch, rank)``, so that the ranks' augmentations
    differ. ``loss_fn`` runs inside DistributedDataParallel. The logged values (loss, extras) are
    means over the ranks, i.e. over the global batch, all-reduced at log time only; so every rank
    holds the same history and the NaN guard stops all ranks at once. ``images_per_s`` counts the
    images of all ranks. Every rank runs ``eval_fn``; only rank 0 writes checkpoints (the others
    wait for it) and shows the progress bar.
    """
    config = config or TrainConfig()
    _check_config(config, eval_every)

    # 1) model and data on the device, once
    device = torch.device(device) if device is not None else pick_device()
    model.to(device).train()
    tensors = _as_tensors(data, device)
    n = len(tensors[0])
    world, rank = distributed.world_size(), distributed.rank()
    if config.batch_size % world:
        raise ValueError(
            f"batch_size={config.batch_size} is the global batch and must split evenly over "
            f"{world} processes; use a multiple of {world}"
        )
    if world > 1 and not config.drop_last:
        raise ValueError(
            f"drop_last=False is not supported with {world} processes: the short last batch of "
            "an epoch may not split evenly over them; set drop_last=True"
        )
    local_batch = config.batch_size // world
    if config.drop_last and config.batch_size > n:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the dataset ({n} samples) and "
            "drop_last=True would leave no batch; lower batch_size or set drop_last=False"
        )
    steps_per_epoch = (
        n // config.batch_size if config.drop_last else math.ceil(n / config.batch_size)
    )
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)

    # 2) loss through DDP when distributed (before the optimizer: SyncBatchNorm swaps layers),
    #    optimizer and precision; the scaler is a no-op unless autocast runs in fp16
    compute_loss = distributed.data_parallel_loss(model, loss_fn, device, config.sync_batchnorm)
    if config.compile:  # the model itself stays uncompiled: eval_fn and checkpoints see it as is
        compute_loss = torch.compile(compute_loss)
    optimizer = make_optimizer(model, config)
    precision = amp_dtype(device, config.amp)  # None: float32
    if precision is not None and device.type == "cpu" and not _device.cpu_has_bf16():
        warnings.warn(
            "amp=True on a CPU without bf16 matrix units (AVX-512 BF16 or AMX): bf16 autocast "
            "is emulated there and slower than float32; leave amp unset to train in float32",
            stacklevel=2,
        )
    use_scaler = precision == torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    # with a scaler, inf/NaN gradients are expected now and then: the scaler skips those steps
    guard_grad_norm = config.grad_clip is not None and not use_scaler
    peak = peak_flops(device, precision or torch.float32)

    # 3) resume from the last checkpoint, if any
    history, epoch_done, step = History(), 0, 0
    path = Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir else None
    last_good: tuple[Path, int] | None = None
    if resume and path is not None and path.exists():
        state = load_checkpoint(path)
        epoch_done, step, history = restore_training_state(
            path, state, model, optimizer, scaler, config, device, steps_per_epoch
        )
        last_good = (path, epoch_done)
        if epoch_done >= config.epochs:
            return history

    # 4) the loop
    window = _Window()
    bar = tqdm(
        total=total_steps,
        initial=step,
        disable=not (config.progress and distributed.is_main_process()),
        mininterval=0.5,
        unit="step",
    )
    # the losses' finiteness checks would sync with an accelerator at every step; the NaN guard
    # below catches a non-finite loss at the next log instead
    with bar, finite_checks(device.type == "cpu"):
        for epoch in range(epoch_done + 1, config.epochs + 1):
            bar.set_description(f"epoch {epoch}/{config.epochs}", refresh=False)
            torch.manual_seed(_epoch_seed(config.seed, epoch))
            epoch_start = time.perf_counter()
            window.start_epoch()
            order = torch.randperm(n).to(device)  # the same on every rank
            if world > 1:
                torch.manual_seed(_epoch_seed(config.seed, epoch) * world + rank)
            for i in range(steps_per_epoch):
                index = order[i * config.batch_size : (i + 1) * config.batch_size]
                index = index[rank * local_batch : (rank + 1) * local_batch]  # this rank's slice
                batch = tuple(t[index] for t in tensors)
                lr = learning_rate_at(step, total_steps, warmup_steps, config)
                for group in optimizer.param_groups:
                    group["lr"] = lr

                # one step: forward in autocast, backward (scaled for fp16), clip, update
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, config.amp):
                    loss, extras = _split_loss(compute_loss(batch))
                scaler.scale(loss).backward()
                grad_norm = None
                if config.grad_clip is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                step += 1
                bar.update()
                samples = len(batch[0]) * world  # the global batch
                window.add(loss, extras, grad_norm if guard_grad_norm else None, samples)

                # host sync only every log_every steps and at the end of the epoch
                if step % config.log_every == 0 or i == steps_per_epoch - 1:
                    record = window.pull(step, epoch, last_good)
                    if flops_per_sample is not None:
                        record["tflops"] = flops_per_sample * record["images_per_s"] / 1e12
                        if peak is not None:
                            record["mfu"] = mfu(
                                flops_per_sample, record["images_per_s"], peak * world
                            )
                    history.steps.append({"step": step, "epoch": epoch, **record, "lr": lr})
                    bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{lr:.2e}", refresh=False)

            # 5) end of epoch: means, evaluation, checkpoint
            summary = {"epoch": epoch, "step": step, **window.epoch_means()}
            if eval_fn is not None and (epoch % eval_every == 0 or epoch == config.epochs):
                summary.update(_evaluate(eval_fn, model, reserved=summary.keys()))
            summary["time_s"] = time.perf_counter() - epoch_start
            history.epochs.append(summary)
            if path is not None and (
                epoch % config.checkpoint_every == 0 or epoch == config.epochs
            ):
                _check_parameters_finite(model, step, epoch, last_good)
                state = {
                    "epoch": epoch,
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "history": history.to_dict(),
                    "config": config_to_dict(config),
                    "rng": rng_state(device),
                }
                if distributed.is_main_process():
                    save_checkpoint(path, state)
                distributed.barrier()  # no rank reads or resumes from a half-written file
                last_good = (path, epoch)
    return history


class _Window:
    """The per-step values between two host syncs, kept on the device until :meth:`pull`."""

    def start_epoch(self) -> None:
        self.epoch_sums: dict[str, list[float]] = {}  # key -> [sum, count] over the epoch
        self._clear()

    def _clear(self) -> None:
        self.values: dict[str, list] = {"loss": []}
        self.grad_norms: list[torch.Tensor] = []
        self.samples = 0
        self.start = time.perf_counter()

    def epoch_means(self) -> dict[str, float]:
        return {key: total / count for key, (total, count) in self.epoch_sums.items()}

    def add(self, loss, extras: dict, grad_norm: torch.Tensor | None, samples: int) -> None:
        self.values["loss"].append(loss.detach().float())
        for key, value in extras.items():
            value = value.detach().float() if torch.is_tensor(value) else float(value)
            self.values.setdefault(key, []).append(value)
        if grad_norm is not None:
            self.grad_norms.append(grad_norm.detach().float())
        self.samples += samples

    def pull(self, step: int, epoch: int, last_good: tuple[Path, int] | None) -> dict:
        """Copy the window to the host in one transfer, check it is finite, return its means."""
        device = self.values["loss"][0].device
        columns = {
            key: torch.stack([torch.as_tensor(v, dtype=torch.float32, device=device) for v in vs])
            for key, vs in self.values.items()
        }
        if self.grad_norms:
            columns["grad_norm"] = torch.stack(self.grad_norms)
        flat = distributed.all_reduce_mean(torch.cat(list(columns.values())))  # over ranks
        flat = flat.cpu().tolist()  # the one host sync
        host, offset = {}, 0
        for key, column in columns.items():
            host[key], offset = flat[offset : offset + len(column)], offset + len(column)

        # NaN/inf guard: name the first bad step of this window
        first_step = step - len(host["loss"]) + 1
        for what in ("loss", "grad_norm"):
            for j, value in enumerate(host.get(what, [])):
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"non-finite {what} ({value}) at step {first_step + j} (epoch {epoch}). "
                        + _last_good_message(last_good)
                    )
        host.pop("grad_norm", None)
        for key, vs in host.items():
            total = self.epoch_sums.setdefault(key, [0.0, 0])
            total[0], total[1] = total[0] + math.fsum(vs), total[1] + len(vs)
        record = {key: math.fsum(vs) / len(vs) for key, vs in host.items()}
        record["images_per_s"] = self.samples / max(time.perf_counter() - self.start, 1e-9)
        self._clear()
        return record


def _epoch_seed(seed: int, epoch: int) -> int:
    """The global-RNG seed of an epoch: distinct for every (seed, epoch) with epoch < 1_000_003."""
    return seed * 1_000_003 + epoch


def _split_loss(out) -> tuple[torch.Tensor, dict]:
    """``loss_fn``'s output as ``(scalar loss, extras)``, checked without a host sync."""
    if isinstance(out, dict):
        if "loss" not in out:
            raise ValueError(f"loss_fn returned a dict without a 'loss' key: {sorted(out)}")
        extras = {k: v for k, v in out.items() if k != "loss"}
        reserved = {"step", "epoch", "lr", "images_per_s", "time_s", "grad_norm", "tflops", "mfu"}
        reserved &= extras.keys()
        if reserved:
            raise ValueError(f"loss_fn's extra keys {sorted(reserved)} clash with History's keys")
        out = out["loss"]
    else:
        extras = {}
    if not torch.is_tensor(out) or out.ndim != 0:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(f"loss_fn must return a scalar tensor (shape ()), got {shape}")
    return out, extras


def _evaluate(eval_fn, model: nn.Module, reserved) -> dict[str, float]:
    model.eval()
    try:
        metrics = eval_fn(model) or {}
    finally:
        model.train()
    clash = set(metrics) & (set(reserved) | {"time_s"})
    if clash:
        raise ValueError(f"eval_fn's metric names {sorted(clash)} clash with History's keys")
    return {key: float(value) for key, value in metrics.items()}


def _as_tensors(data, device: torch.device) -> tuple[torch.Tensor, ...]:
    tensors = (data,) if torch.is_tensor(data) else tuple(data)
    if not tensors or not all(torch.is_tensor(t) for t in tensors):
        raise ValueError("data must be a tensor or a non-empty tuple of tensors")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"data tensors must share their first dimension, got lengths {lengths}")
    if lengths[0] == 0:
        raise ValueError("data is empty")
    return tuple(t.to(device) for t in tensors)


def _check_config(config: TrainConfig, eval_every: int) -> None:
    positive = {
        "batch_size": config.batch_size,
        "checkpoint_every": config.checkpoint_every,
        "log_every": config.log_every,
        "eval_every": eval_every,
    }
    for name, value in positive.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if config.epochs < 0 or config.warmup_epochs < 0:
        raise ValueError(f"epochs and warmup_epochs must be >= 0, got {config}")
    if config.schedule not in ("cosine", "constant"):
        raise ValueError(f"schedule must be 'cosine' or 'constant', got {config.schedule!r}")
    if config.optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {config.optimizer!r}")


def _check_parameters_finite(model, step: int, epoch: int, last_good) -> None:
    """Refuse to checkpoint a model whose weights went NaN/inf (e.g. with a finite loss)."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise NonFiniteLossError(
            f"non-finite parameters {bad[:5]} after step {step} (epoch {epoch}); not saved. "
            + _last_good_message(last_good)
        )


def _last_good_message(last_good: tuple[Path, int] | None) -> str:
    if last_good is None:
        return (
            "There is no good checkpoint from this run to go back to. "
            "Try a lower lr, a longer warmup or grad_clip."
        )
    path, epoch = last_good
    return (
        f"The last good checkpoint is {path} (epoch {epoch}); nothing later was saved. "
        "Fix the cause (a lower lr, a longer warmup, grad_clip) and call fit again to resume."
    )
