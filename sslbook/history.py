"""What happened during training, as plain numbers: the record :func:`sslbook.train.fit` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


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
