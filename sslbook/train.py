"""One training loop for every method in the book: ``fit(model, data, config)``.

A method supplies only its forward, which returns the loss; the loop does the rest the same
way for all: shuffling, mixed precision, linear warmup + cosine learning rate, weight decay on
weights only, logging without a host sync per step, a guard against NaN/inf, and atomic
checkpoints that resume bitwise-exactly at epoch boundaries::

    history = fit(method, images, TrainConfig(epochs=10), eval_fn=knn_monitor)
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
from dataclasses import dataclass, field
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
from .history import History, LogWindow, NonFiniteLossError
from .modules import eval_mode

__all__ = [
    "TrainConfig",
    "History",
    "call_model",
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


def call_model(model: nn.Module, batch: tuple[torch.Tensor, ...]):
    """:func:`fit`'s default loss: the model's own forward on the batch, ``model(*batch)``."""
    return model(*batch)


def fit(
    model: nn.Module,
    data: torch.Tensor | tuple[torch.Tensor, ...],
    config: TrainConfig | None = None,
    *,
    loss_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor | dict] = call_model,
    after_step: Callable[[], None] | None = None,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
    eval_every: int = 1,
    device: str | torch.device | None = None,
    resume: bool = True,
    flops_per_sample: float | None = None,
) -> History:
    """Train ``model`` in place on ``data``; return the :class:`History`.

    Args:
        model: trained in place and left on ``device``. Its forward returns a scalar loss, or a
            dict with a ``"loss"`` key plus extra scalars to log (e.g. ``{"loss": l, "std": s}``).
        data: a tensor or a tuple of tensors with the same first dimension, e.g.
            ``(images_uint8, labels)``; moved to ``device`` once.
        config: see :class:`TrainConfig`.
        loss_fn: ``loss_fn(model, batch)`` with ``batch`` a tuple of slices of ``data`` (one per
            tensor, even for a single tensor); default :func:`call_model`, ``model(*batch)``.
        after_step: called after every optimizer step; default the model's own ``after_step``
            method if it has one (MoCo and BYOL move their momentum encoders there).
        eval_fn: ``eval_fn(model) -> {"metric": value}``, called in eval mode every ``eval_every``
            epochs and after the last one; the metrics go into ``history.epochs``.
        device: where to train; default :func:`sslbook.device.pick_device`.
        resume: continue from ``config.checkpoint_dir/last.pt`` if it exists. If that run
            already finished, load its model and return its history without training.
        flops_per_sample: training FLOPs of one sample, e.g. from
            :func:`sslbook.flops.method_flops_per_image`; the step records then carry
            ``tflops`` and, where :func:`sslbook.flops.peak_flops` knows the device, ``mfu``,
            computed from ``images_per_s`` (no extra host sync).

    Raises:
        NonFiniteLossError: the loss became NaN/inf; nothing from the bad state is saved.
        CheckpointError: ``last.pt`` exists but cannot be resumed from; it is left untouched.

    Randomness: the global torch RNG is seeded from ``(config.seed, epoch)`` at the start of every
    epoch, so shuffling, augmentation and dropout replay exactly after a resume. It is a fork of
    the caller's RNG: after ``fit`` the caller's RNG state is what it was before.

    Under ``torchrun`` (:mod:`sslbook.distributed`): ``batch_size`` stays the global batch; every
    rank draws the same shuffle, takes its ``batch_size // world_size`` slice of each batch and
    re-seeds from ``(config.seed, epoch, rank)`` so that the ranks' augmentations differ.
    ``loss_fn`` runs inside DistributedDataParallel. Logged values are means over the ranks,
    all-reduced at log time only, so the NaN guard stops all ranks at once; ``images_per_s``
    counts all ranks. Every rank runs ``eval_fn``; rank 0 alone writes checkpoints and shows the
    progress bar.
    """
    config = config or TrainConfig()
    _check_config(config, eval_every)
    device = torch.device(device) if device is not None else pick_device()
    model.to(device).train()
    tensors = _as_tensors(data, device)
    run = _prepare(model, loss_fn, len(tensors[0]), config, device)
    run.after_step = after_step or getattr(model, "after_step", None)
    run.eval_fn, run.eval_every, run.flops_per_sample = eval_fn, eval_every, flops_per_sample

    with _forked_rng(device):
        epoch_done = _resume(run) if resume else 0
        if epoch_done >= config.epochs:
            return run.history
        bar = tqdm(
            total=config.epochs * run.steps_per_epoch,
            initial=run.step,
            disable=not (config.progress and distributed.is_main_process()),
            mininterval=0.5,
            unit="step",
        )
        with bar:
            for epoch in range(epoch_done + 1, config.epochs + 1):
                _train_epoch(run, tensors, epoch, bar)
    return run.history


@dataclass
class _Run:
    """What one :func:`fit` call trains with, shared by its steps below."""

    model: nn.Module
    config: TrainConfig
    device: torch.device
    compute_loss: Callable  # batch -> loss_fn(model, batch), through DDP when distributed
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler  # a no-op unless autocast runs in fp16
    steps_per_epoch: int
    warmup_steps: int
    peak: float | None  # the device's peak FLOP/s in the training precision, if known
    path: Path | None  # the checkpoint file
    after_step: Callable[[], None] | None = None
    eval_fn: Callable | None = None
    eval_every: int = 1
    flops_per_sample: float | None = None
    history: History = field(default_factory=History)
    window: LogWindow = field(default_factory=LogWindow)
    step: int = 0  # optimizer steps taken, over all epochs
    last_good: tuple[Path, int] | None = None  # the last checkpoint written, with its epoch


def _prepare(model: nn.Module, loss_fn, n: int, config: TrainConfig, device) -> _Run:
    """Check that the batches split over the processes; build loss, optimizer and scaler."""
    world = distributed.world_size()
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
    if config.drop_last and config.batch_size > n:
        raise ValueError(
            f"batch_size={config.batch_size} is larger than the dataset ({n} samples) and "
            "drop_last=True would leave no batch; lower batch_size or set drop_last=False"
        )
    steps_per_epoch = n // config.batch_size if config.drop_last else -(-n // config.batch_size)

    # DDP before the optimizer: SyncBatchNorm swaps layers
    compute_loss = distributed.data_parallel_loss(model, loss_fn, device, config.sync_batchnorm)
    if config.compile:  # the model itself stays uncompiled: eval_fn and checkpoints see it as is
        compute_loss = torch.compile(compute_loss)
    precision = amp_dtype(device, config.amp)  # None: float32
    if precision is not None and device.type == "cpu" and not _device.cpu_has_bf16():
        warnings.warn(
            "amp=True on a CPU without bf16 matrix units (AVX-512 BF16 or AMX): bf16 autocast "
            "is emulated there and slower than float32; leave amp unset to train in float32",
            stacklevel=3,
        )
    return _Run(
        model=model,
        config=config,
        device=device,
        compute_loss=compute_loss,
        optimizer=make_optimizer(model, config),
        scaler=torch.amp.GradScaler(device.type, enabled=precision == torch.float16),
        steps_per_epoch=steps_per_epoch,
        warmup_steps=round(config.warmup_epochs * steps_per_epoch),
        peak=peak_flops(device, precision or torch.float32),
        path=Path(config.checkpoint_dir) / CHECKPOINT_NAME if config.checkpoint_dir else None,
    )


def _forked_rng(device: torch.device):
    """A fork of the global RNG (and the GPU's) that is restored when the block ends."""
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device.index or torch.cuda.current_device()])


def _resume(run: _Run) -> int:
    """Load ``last.pt`` into the run if there is one; return the number of epochs it finished."""
    if run.path is None or not run.path.exists():
        return 0
    state = load_checkpoint(run.path)
    epoch, run.step, run.history = restore_training_state(
        run.path, state, run.model, run.optimizer, run.scaler, run.config, run.device,
        run.steps_per_epoch,
    )  # fmt: skip
    run.last_good = (run.path, epoch)
    return epoch


def _batches(tensors: tuple[torch.Tensor, ...], config: TrainConfig, epoch: int, steps: int):
    """The epoch's batches: one shuffle, the same on every rank; each rank takes its slice.

    Seeds the global RNG from ``(seed, epoch)`` before the shuffle and, under ``torchrun``, from
    ``(seed, epoch, rank)`` after it, so that everything drawn during the epoch replays on resume.
    """
    world, rank = distributed.world_size(), distributed.rank()
    local = config.batch_size // world
    torch.manual_seed(_epoch_seed(config.seed, epoch))
    order = torch.randperm(len(tensors[0])).to(tensors[0].device)  # the same on every rank
    if world > 1:
        torch.manual_seed(_epoch_seed(config.seed, epoch) * world + rank)
    for i in range(steps):
        index = order[i * config.batch_size : (i + 1) * config.batch_size]
        index = index[rank * local : (rank + 1) * local]  # this rank's slice
        yield tuple(t[index] for t in tensors)


def _train_epoch(run: _Run, tensors: tuple[torch.Tensor, ...], epoch: int, bar) -> None:
    """One pass over the data, a log record every ``log_every`` steps, then :func:`_end_epoch`."""
    config, world = run.config, distributed.world_size()
    bar.set_description(f"epoch {epoch}/{config.epochs}", refresh=False)
    start = time.perf_counter()
    run.window.start_epoch()
    total_steps = config.epochs * run.steps_per_epoch
    for batch in _batches(tensors, config, epoch, run.steps_per_epoch):
        lr = learning_rate_at(run.step, total_steps, run.warmup_steps, config)
        loss, extras, grad_norm = _train_step(run, batch, lr)
        bar.update()
        run.window.add(loss, extras, grad_norm, len(batch[0]) * world)
        # host sync only every log_every steps and at the end of the epoch
        if run.step % config.log_every == 0 or run.step % run.steps_per_epoch == 0:
            _log(run, epoch, lr, bar)
    _end_epoch(run, epoch, start)


def _train_step(run: _Run, batch: tuple[torch.Tensor, ...], lr: float):
    """One optimizer step: forward in autocast, backward (scaled for fp16), clip, update,
    ``after_step``. Returns the loss, the extras and the gradient norm to check (or None)."""
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    with autocast(run.device, run.config.amp):
        loss, extras = _split_loss(run.compute_loss(batch))
    run.scaler.scale(loss).backward()
    grad_norm = None
    if run.config.grad_clip is not None:
        run.scaler.unscale_(run.optimizer)  # clip the true gradients, not the scaled ones
        grad_norm = nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.after_step is not None:
        run.after_step()
    run.step += 1
    # with a scaler, inf/NaN gradients are expected now and then: the scaler skips those steps
    return loss, extras, None if run.scaler.is_enabled() else grad_norm


def _log(run: _Run, epoch: int, lr: float, bar) -> None:
    """Pull the window to the host (the NaN guard) and append a step record to the history."""
    record = run.window.pull(run.step, epoch, hint=_last_good_message(run.last_good))
    if run.flops_per_sample is not None:
        record["tflops"] = run.flops_per_sample * record["images_per_s"] / 1e12
        if run.peak is not None:
            peak = run.peak * distributed.world_size()
            record["mfu"] = mfu(run.flops_per_sample, record["images_per_s"], peak)
    run.history.steps.append({"step": run.step, "epoch": epoch, **record, "lr": lr})
    bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{lr:.2e}", refresh=False)


def _end_epoch(run: _Run, epoch: int, start: float) -> None:
    """The epoch's means, its evaluation, and a checkpoint when one is due."""
    config = run.config
    summary = {"epoch": epoch, "step": run.step, **run.window.epoch_means()}
    if run.eval_fn is not None and (epoch % run.eval_every == 0 or epoch == config.epochs):
        summary.update(_evaluate(run.eval_fn, run.model, reserved=summary.keys()))
    summary["time_s"] = time.perf_counter() - start
    run.history.epochs.append(summary)
    if run.path is not None and (epoch % config.checkpoint_every == 0 or epoch == config.epochs):
        _save(run, epoch)


def _save(run: _Run, epoch: int) -> None:
    """Write ``last.pt`` atomically (rank 0; the others wait), after checking the weights."""
    _check_parameters_finite(run.model, run.step, epoch, run.last_good)
    state = {
        "epoch": epoch,
        "step": run.step,
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict(),
        "history": run.history.to_dict(),
        "config": config_to_dict(run.config),
        "rng": rng_state(run.device),
    }
    if distributed.is_main_process():
        save_checkpoint(run.path, state)
    distributed.barrier()  # no rank reads or resumes from a half-written file
    run.last_good = (run.path, epoch)


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
    with eval_mode(model):
        metrics = eval_fn(model) or {}
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
