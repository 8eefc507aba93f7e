"""What ``fit`` does differently when the ranks of an MPI job train one model together.

- At the start every rank checks that all ranks passed the same model, data and settings (a
  mismatch raises DistributedError on every rank, before any step), then takes rank 0's
  parameters, buffers, optimizer state and random-generator state. The generator then stays in
  step on every rank, so each epoch's permutation is the same everywhere (see ``sharding``);
  each rank mixes its rank into the seeds it hands to dropout, so masks differ per rank and step.
- After backward, one allreduce sums the whole flat gradient arena; the optimizer folds the
  1/size of the mean into its fused update (``Optimizer.step(grad_scale=...)``).
- Whether a step is finite is decided together: the summed gradients are non-finite on every
  rank when they are on one, and one small allreduce carries each rank's loss verdict, so every
  rank raises or skips the same step. The same reduction averages the buffers (BatchNorm's
  running statistics) over the ranks after every kept step, so they stay identical everywhere.
- Epoch metrics and validation are summed over the ranks (validation split into disjoint parts).
"""

from __future__ import annotations

import math
import warnings
import zlib
from typing import Any

import numpy as np

from ..nn.sequential import Sequential
from ..optim.optimizers import Optimizer
from . import context as ctx
from .sharding import shard, shard_length, split_range


def _fingerprint(backend: Any, a: Any) -> dict[str, Any]:
    host = np.ascontiguousarray(backend.to_numpy(a))
    return {"shape": list(host.shape), "dtype": str(host.dtype), "crc32": zlib.crc32(memoryview(host).cast("B"))}


class DataParallel:
    """One rank's part in data-parallel training of ``model`` with ``optimizer`` on n samples."""

    def __init__(self, context: ctx.Context, model: Sequential, optimizer: Optimizer, n: int) -> None:
        self.rank, self.size = context.rank, context.size
        self.is_main = context.is_main
        self.backend = model.backend
        self.collectives = context.collectives(model.backend)
        self.model, self.optimizer = model, optimizer
        self.grad_scale = 1.0 / self.size
        self.samples_per_rank = shard_length(n, self.size)

    # ----------------------------------------------------------------- start

    def start(self, data: dict[str, Any], settings: dict[str, Any]) -> None:
        """Check that every rank agrees on model, data (``data``: name -> array) and ``settings``, then
        take rank 0's state. Raises DistributedError on every rank when they disagree."""
        model, opt, b = self.model, self.optimizer, self.backend
        mine = {**settings, "model": model.config(), "backend": b.name, "dtype": str(opt.arena.data.dtype),
                "parameters": int(opt.arena.data.size), "optimizer": type(opt).__name__,
                "optimizer settings": opt.hyper(),
                **{name: _fingerprint(b, a) for name, a in data.items() if a is not None}}
        everyone = self.collectives.allgather_json(mine)
        for key in dict.fromkeys(k for theirs in everyone for k in theirs):  # settings first, as given
            values = [theirs.get(key) for theirs in everyone]
            if any(v != values[0] for v in values):
                shown = "; ".join(f"rank {r}: {v}" for r, v in enumerate(values))
                raise ctx.DistributedError(f"the ranks called fit with different {key} ({shown}): every rank must "
                                           "pass the same model, optimizer, data and settings")
        self.collectives.broadcast_(opt.arena.data)
        for _, buf in model.named_buffers():
            self.collectives.broadcast_(buf)
        for buf in opt.state.values():
            self.collectives.broadcast_(buf)
        opt.step_count = self.collectives.broadcast_json(opt.step_count)
        b.rng.bit_generator.state = self.collectives.broadcast_json(b.rng.bit_generator.state)
        b.seed_stream = self.rank

    # ----------------------------------------------------------------- steps

    def shard(self, order: Any) -> Any:
        """This rank's share of the epoch's order (the same ``order`` on every rank)."""
        return shard(order, self.rank, self.size, self.backend.xp)

    def reduce_gradients(self) -> None:
        """Sum the gradient arena over the ranks, in place (one allreduce for every gradient)."""
        self.optimizer.arena.write_pending_zeros()
        self.collectives.allreduce_(self.optimizer.arena.grad)

    def agree(self, loss_value: float, finite: bool, buffers: list[Any]) -> tuple[bool, list[int]]:
        """(whether the step is finite on every rank, the ranks whose loss is not), decided together from
        this rank's loss and its verdict on the summed gradients; on a finite step, every buffer becomes
        its mean over the ranks."""
        flags = np.zeros(self.size)
        flags[self.rank] = 0.0 if math.isfinite(loss_value) else 1.0
        host = [self.backend.to_numpy(buf).ravel() for buf in buffers]
        total = self.collectives.sum_host(np.concatenate([flags, *host]))
        bad = [r for r in range(self.size) if total[r]]
        if bad or not finite:
            return False, bad
        offset = self.size
        for buf in buffers:
            buf[...] = self.backend.asarray((total[offset:offset + buf.size] / self.size).reshape(buf.shape),
                                            dtype=buf.dtype)
            offset += buf.size
        return True, []

    # ----------------------------------------------------------------- metrics

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the ranks."""
        return [float(v) for v in self.collectives.sum_host(values)]

    def evaluate(self, evaluate: Any, X: Any, y: Any) -> dict[str, float]:
        """``evaluate(X_part, y_part)`` (a dict of means) on this rank's part of (X, y), averaged over
        the ranks weighted by their number of samples: the means over all of (X, y)."""
        part = split_range(X.shape[0], self.rank, self.size)
        mine = evaluate(X[part], y[part])
        n_mine = part.stop - part.start
        keys = list(mine)  # the same on every rank: evaluate returns them in a fixed order
        total = self.sum(n_mine, *(mine[k] * n_mine for k in keys))
        return {k: v / max(total[0], 1) for k, v in zip(keys, total[1:])}


def data_parallel(model: Sequential, optimizer: Optimizer, n: int) -> DataParallel | None:
    """The data-parallel helper of a fit in a job of several ranks, or None for a single process."""
    context = ctx.current()
    if context is not None and context.size > 1:
        return DataParallel(context, model, optimizer, n)
    if context is None:
        ctx.note_training_alone()
        if ctx.launched_size() > 1:
            warnings.warn(f"this process is one of {ctx.launched_size()} MPI ranks but gpudnn.distributed.init() "
                          "was not called: it trains alone (call init() before fit to train data-parallel)",
                          RuntimeWarning, stacklevel=3)
    return None
