"""Learning-rate schedules: multipliers of the base learning rate as a function of the epoch.

``fit`` sets ``optimizer.lr = base_lr * schedule(epoch)`` before every step, with ``epoch``
fractional (step / steps_per_epoch), so schedules are smooth within an epoch.
"""

from __future__ import annotations

import math

from .. import checks


class Schedule:
    def __call__(self, epoch: float) -> float:
        raise NotImplementedError


class Constant(Schedule):
    def __call__(self, epoch: float) -> float:
        return 1.0


class StepDecay(Schedule):
    """Multiply by ``gamma`` every ``every`` epochs."""

    def __init__(self, every: int, gamma: float = 0.1) -> None:
        self.every = checks.real("every", every, low=1)
        self.gamma = checks.real("gamma", gamma, low=0, high=1, low_open=True)

    def __call__(self, epoch: float) -> float:
        return self.gamma ** int(epoch // self.every)


class Cosine(Schedule):
    """Cosine annealing from 1 to ``min_factor`` over ``epochs`` (then stays at ``min_factor``)."""

    def __init__(self, epochs: float, min_factor: float = 0.0) -> None:
        self.epochs = checks.real("epochs", epochs, low=0, low_open=True)
        self.min_factor = checks.real("min_factor", min_factor, low=0, high=1)

    def __call__(self, epoch: float) -> float:
        t = min(epoch / self.epochs, 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))


class WarmUp(Schedule):
    """Linear warm-up from ~0 to 1 over ``epochs``, then ``then`` (shifted to start at 0)."""

    def __init__(self, epochs: float, then: Schedule | None = None) -> None:
        self.epochs = checks.real("epochs", epochs, low=0, low_open=True)
        if then is not None and not isinstance(then, Schedule):
            raise TypeError(f"then must be a Schedule, got {type(then).__name__}")
        self.then = then or Constant()

    def __call__(self, epoch: float) -> float:
        if epoch < self.epochs:
            return (epoch + 1e-3) / (self.epochs + 1e-3)
        return self.then(epoch - self.epochs)
