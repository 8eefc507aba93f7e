"""Each rank's share of an epoch, with the semantics of PyTorch's DistributedSampler (drop_last=False).

Every rank draws the same permutation of the n samples (one seed, kept in step on every rank).
It is padded to ``size * ceil(n / size)`` by repeating its first samples (so fewer than ``size``
samples are seen twice per epoch, and only when n is not a multiple of ``size``), and rank r
takes every size-th entry from position r. The shards are then disjoint apart from that padding,
their union is the epoch, and all ranks hold ``ceil(n / size)`` samples, hence take the same
number of steps with batches of the same size: with ``batch_size`` B per rank, step s of the
job covers exactly positions [s * size * B, (s + 1) * size * B) of the (padded) permutation.
"""

from __future__ import annotations

from typing import Any


def shard_length(n: int, size: int) -> int:
    """Samples per rank and epoch: ceil(n / size)."""
    return -(-n // size)


def shard(order: Any, rank: int, size: int, xp: Any) -> Any:
    """Rank ``rank``'s share of the epoch order ``order`` (a 1-D index array of ``xp``), contiguous."""
    n = order.shape[0]
    if not 0 <= rank < size:
        raise ValueError(f"rank must be in [0, {size}), got {rank}")
    if n == 0:
        raise ValueError("cannot shard an empty epoch")
    total = shard_length(n, size) * size
    padded = order if total == n else order[xp.arange(total) % n]
    return xp.ascontiguousarray(padded[rank::size])


def split_range(n: int, rank: int, size: int) -> slice:
    """Rank ``rank``'s contiguous part of range(n) when n rows are split as evenly as possible (for
    evaluation, where every sample counts once)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))
