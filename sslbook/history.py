"""What happened during training, as plain numbers: the record :func:`sslbook.train.fit` returns,
and the window of device-side values it is built from between two host syncs."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch

from . import distributed

__all__ = ["History", "LogWindow", "NonFiniteLossError"]


@dataclass
class History:
    """What happened during training, as plain numbers (fits in JSON and a weights-only checkpoint).

    Attributes:
        steps: one record every ``log_every`` steps and at the end of each epoch, with ``step``,
            ``epoch`` (counted from 1), ``loss`` (mean since the previous record), ``lr``,
            ``images_per_s`` and the mean of every extra value ``loss_fn`` returned.
        epochs: one record per epoch with ``epoch``, ``step``, ``loss`` (epoch mean), the extras'
            epoch means, ``time_s`` (wall time, evaluation included) and ``eval_fn``'s metrics.
    """

    steps: list[dict] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)

    def series(self, key: str, level: str = "steps") -> tuple[list, list]:
        """``(x, y)`` for plotting ``key``: x is the step (``level="steps"``) or the epoch."""
        if level not in ("steps", "epochs"):
            raise ValueError(f"level must be 'steps' or 'epochs', got {level!r}")
        x_key = "step" if level == "steps" else "epoch"
        records = [r for r in getattr(self, level) if key in r]
        return [r[x_key] for r in records], [r[key] for r in records]

    def last(self, key: str):
        """The latest value of ``key``: from the epoch records if any has it, else the steps'."""
        for records in (self.epochs, self.steps):
            for record in reversed(records):
                if key in record:
                    return record[key]
        raise KeyError(f"no record in this history has {key!r}")

    def mean(self, key: str, level: str = "steps") -> float:
        """The mean of ``key`` over the records that have it, e.g. ``mean("images_per_s")``."""
        _, values = self.series(key, level)
        if not values:
            raise KeyError(f"no {level} record in this history has {key!r}")
        return sum(values) / len(values)

    def to_dict(self) -> dict:
        return {"steps": [dict(r) for r in self.steps], "epochs": [dict(r) for r in self.epochs]}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls(steps=[dict(r) for r in d["steps"]], epochs=[dict(r) for r in d["epochs"]])


class NonFiniteLossError(FloatingPointError):
    """The loss (or the gradient norm, or a parameter) became NaN or inf during training."""


class LogWindow:
    """The per-step values between two host syncs, kept on the device until :meth:`pull`.

    :func:`sslbook.train.fit` adds every step's loss, extras and gradient norm as device tensors
    (no host sync), and pulls the window to the host every ``log_every`` steps in one transfer.
    """

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

    def pull(self, step: int, epoch: int, hint: str = "") -> dict:
        """Copy the window to the host in one transfer, check it is finite, return its means.

        Under ``torchrun`` the values are first averaged over the ranks, so every rank returns
        the same record and raises at the same step.

        Raises:
            NonFiniteLossError: naming the first step of the window whose loss or gradient norm
                is NaN/inf, followed by ``hint`` (what to do about it).
        """
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

        first_step = step - len(host["loss"]) + 1
        for what in ("loss", "grad_norm"):
            for j, value in enumerate(host.get(what, [])):
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"non-finite {what} ({value}) at step {first_step + j} (epoch {epoch}). "
                        + hint
                    )
        host.pop("grad_norm", None)
        for key, vs in host.items():
            total = self.epoch_sums.setdefault(key, [0.0, 0])
            total[0], total[1] = total[0] + math.fsum(vs), total[1] + len(vs)
        record = {key: math.fsum(vs) / len(vs) for key, vs in host.items()}
        record["images_per_s"] = self.samples / max(time.perf_counter() - self.start, 1e-9)
        self._clear()
        return record
