"""Learning-rate schedules: multipliers of the base learning rate as a function of the epoch.

``fit`` sets ``optimizer.lr = base_lr * schedule(epoch)`` before every step, with ``epoch``
fractional (step / steps_per_epoch), so schedules are smooth within an epoch.
"""

from __future__ import annotations

import math


class Schedule:
    def __call__(self, epoch: float) -> float:
        raise NotImplementedError


class Constant(Schedule):
    def __call__(self, epoch: float) -> float:
        return 1.0


class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``every`` epochs."""

    def __init__(self, every: int, gamma: float = 0.1) -> None:
        if not (math.isfinite(every) and every >= 1 and 0 < gamma <= 1):
            raise ValueError(f"StepDecay needs every >= 1 and 0 < gamma <= 1, got every={every}, gamma={gamma}")
        self.every, self.gamma = every, gamma

    def __call__(self, epoch: float) -> float:
        return self.gamma ** int(epoch // self.every)


class Cosine(Schedule):
    """Cosine annealing from 1 to ``min_factor`` over ``epochs`` (then stays at ``min_factor``)."""

    def __init__(self, epochs: float, min_factor: float = 0.0) -> None:
        if not (math.isfinite(epochs) and epochs > 0 and 0 <= min_factor <= 1):
            raise ValueError(f"Cosine needs epochs > 0 and 0 <= min_factor <= 1, got {epochs}, {min_factor}")
        self.epochs, self.min_factor = epochs, min_factor

    def __call__(self, epoch: float) -> float:
        t = min(epoch / self.epochs, 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))


class WarmUp(Schedule):
    """Linear warm-up from ~0 to 1 over ``epochs``, then ``then`` (shifted to start at 0)."""

    def __init__(self, epochs: float, then: Schedule | None = None) -> None:
        if not (math.isfinite(epochs) and epochs > 0):
            raise ValueError(f"WarmUp needs finite epochs > 0, got {epochs}")
        self.epochs, self.then = epochs, then or Constant()

    def __call__(self, epoch: float) -> float:
        if epoch < self.epochs:
            return (epoch + 1e-3) / (self.epochs + 1e-3)
        return self.then(epoch - self.epochs)
