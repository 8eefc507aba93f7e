"""What a training run records: the per-epoch History, and early stopping on a monitored metric."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import checks
from ..nn.sequential import Sequential


@dataclass
class History:
    """Per-epoch metrics: ``history["loss"]``, ``history["val_accuracy"]``, ...; ``stopped_by``: the
    OSError of an ``on_epoch_end`` callback (such as a failed checkpoint save) that stopped training."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    best_epoch: int | None = None
    skipped_steps: int = 0
    stopped_by: OSError | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]

    def keys(self) -> list[str]:
        return list(dict.fromkeys(k for e in self.epochs for k in e))


class EarlyStopping:
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs;
    optionally restore the best weights at the end."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True) -> None:
        self.monitor = monitor
        self.patience = checks.integer("patience", patience, low=0)
        self.min_delta = checks.real("min_delta", min_delta, low=0)
        mode = checks.choice("mode", mode, ("auto", "min", "max"))
        self.restore_best = checks.flag("restore_best", restore_best)
        self.sign = -1.0 if (mode == "max" or (mode == "auto" and "acc" in monitor)) else 1.0
        self.best = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.wait = 0

    def update(self, epoch: int, metrics: dict[str, float], model: Sequential) -> bool:
        """Record an epoch; True when training should stop."""
        if self.monitor not in metrics:
            raise ValueError(f"EarlyStopping monitors {self.monitor!r}, but the metrics are {sorted(metrics)} "
                             "(pass validation_data to monitor val_* metrics)")
        value = self.sign * metrics[self.monitor]
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_state = model.state_dict()
            return False
        self.wait += 1
        return self.wait > self.patience
