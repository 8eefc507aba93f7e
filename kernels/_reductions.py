"""CUDA reductions shared by the kernels: a block's threads to one value, a whole grid to one value, and
column sums.

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
from numpy import float64, uint32


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
def grid_totals(threads: int, count: int) -> Any:
    """Device function ``totals(shared, last, partials, ticket, a, b, c) -> (A, B, C)`` for 1-D grids of
    blocks of ``threads`` threads: A, B and C are the float64 sums of a, b and c over every thread of the
    grid, returned to the threads of the block that finishes last, which find ``last[0]`` true (the other
    blocks find it false, and zeros). Only the first ``count`` values (1 to 3) are summed; the others
    come back 0. No accumulator to zero before the launch and no atomic adds: each block writes its sums
    to ``partials[:, block]``, takes a ticket, and the block with the last ticket adds the partials up in
    a fixed order, so the totals do not depend on the order blocks finish.

    ``shared``: a (2, threads) float64 shared array; ``last``: a (1,) int32 shared array; ``partials`` and
    ``ticket``: _common.grid_scratch (the ticket, zero between launches, is reset by the last block).
    All threads of every block must call it, once per launch."""
    reduce = block_reducer(threads)

    @cuda.jit(device=True)
    def block_sums(shared, a, b, c):
        zero = float64(0)
        a, b = reduce(shared, a, b if count > 1 else zero, False)  # count: a constant of the compiled code
        c = reduce(shared, c, zero, False)[0] if count > 2 else zero
        return a, b, c

    @cuda.jit(device=True)
    def totals(shared, last, partials, ticket, a, b, c):
        a, b, c = block_sums(shared, float64(a), float64(b), float64(c))
        tid, block, blocks = cuda.threadIdx.x, cuda.blockIdx.x, cuda.gridDim.x
        if tid == 0:
            partials[0, block] = a
            partials[1, block] = b
            partials[2, block] = c
            cuda.threadfence()  # this block's partials are visible everywhere before its ticket is taken
            last[0] = cuda.atomic.inc(ticket, 0, uint32(blocks - 1)) == blocks - 1  # wraps to 0 for the last
        cuda.syncthreads()
        a = b = c = float64(0)
        if last[0]:  # the same in every thread of a block
            cuda.threadfence()
            j = tid
            while j < blocks:
                a += partials[0, j]
                if count > 1:
                    b += partials[1, j]
                if count > 2:
                    c += partials[2, j]
                j += cuda.blockDim.x  # = threads; a step known at compile time gets this loop unrolled: 40+ registers
            a, b, c = block_sums(shared, a, b, c)
        return a, b, c

    return totals


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
