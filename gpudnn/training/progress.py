"""A per-epoch progress bar that degrades to one plain line per epoch when not on a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class ProgressBar:
    def __init__(self, epoch: int, epochs: int, total: int, *, stream: TextIO | None = None,
                 enabled: bool = True, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.prefix = f"epoch {epoch:>{len(str(epochs))}}/{epochs}"
        self.total, self.width = max(total, 1), width
        self.start = self._last_draw = time.perf_counter()

    def update(self, done: int, metrics: dict[str, float] | Callable[[], dict[str, float]]) -> None:
        """Redraw in place (terminals only, at most ~10 times a second). ``metrics`` may be a function
        that computes them: it runs only when the bar draws (reading them may wait for a device)."""
        now = time.perf_counter()
        if not self.tty or (now - self._last_draw < 0.1 and done < self.total):
            return
        self._last_draw = now
        metrics = metrics() if callable(metrics) else metrics
        filled = int(self.width * done / self.total)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r{self.prefix} [{bar}] {self._describe(done, metrics)}")
        self.stream.flush()

    def close(self, done: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        line = f"{self.prefix} {self._describe(done, metrics)}"
        self.stream.write(("\r" + line + " " * 8 + "\n") if self.tty else line + "\n")
        self.stream.flush()

    def _describe(self, done: int, metrics: dict[str, float]) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        parts = [f"{k} {v:.4f}" for k, v in metrics.items()]
        parts.append(f"{done / elapsed:,.0f} samples/s")
        return " - ".join(parts)
