"""CUDA reductions shared by the kernels: a block's threads to one value, and column sums.

Both are plain ``cuda.jit(device=True)`` functions, also under numba-cuda's simulator (not
_common.device_jit): the simulator swaps its fake ``cuda`` module only into the globals of the
running kernel's module and of device functions it wraps, and this module is neither kernel's.
Each runs a few times per row or strip, so the simulator's per-call lock costs little. All threads
of a block must call them (they contain barriers).
"""

from __future__ import annotations

import functools
from typing import Any

from numba import cuda


@functools.cache
def block_reducer(threads: int) -> Any:
    """Device function ``reduce(shared, a, b, take_max) -> (A, B)`` for blocks of ``threads`` threads
    (a power of 2) along x: A and B are the sums (or, with ``take_max``, the maxima) of ``a`` and ``b``
    over the block, returned to every thread, by a shared-memory tree. ``shared``: a (2, threads)
    shared array of the values' type; pass 0 as ``b`` when one value is needed."""

    @cuda.jit(device=True)
    def reduce(shared, a, b, take_max):
        tid = cuda.threadIdx.x
        shared[0, tid] = a
        shared[1, tid] = b
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                for row in range(2):
                    mine, other = shared[row, tid], shared[row, tid + step]
                    shared[row, tid] = max(mine, other) if take_max else mine + other
            cuda.syncthreads()
            step //= 2
        a, b = shared[0, 0], shared[1, 0]
        cuda.syncthreads()  # all have read the results before the next call overwrites them
        return a, b

    return reduce


@functools.cache
def column_adder(rows: int) -> Any:
    """Device function ``column_add(partial, value, active, acc, index)`` of column-strip kernels,
    whose (TX, TY) blocks (see _common.column_launch) have thread (tx, ty) sum rows ty, ty + TY *
    gridDim.y, ... of column j = strip + tx: ``acc[index] += value summed over the thread rows of
    the caller's column``, by one atomic from thread row 0 (none where ``active`` is False, for
    columns past the array's end). ``rows`` = TY; ``partial``: a (TY, TX) shared array."""

    @cuda.jit(device=True)
    def column_add(partial, value, active, acc, index):
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        partial[ty, tx] = value
        cuda.syncthreads()
        if ty == 0 and active:
            for k in range(1, rows):
                value += partial[k, tx]
            cuda.atomic.add(acc, index, value)
        cuda.syncthreads()  # the partials are read before the next strip writes them

    return column_add
