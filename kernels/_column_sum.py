"""The last step of a CUDA column-strip reduction: a block's per-thread partial sums of one column
added up in shared memory and into the result with one atomic per column and block.

Column-strip kernels run (TX, TY) blocks (see _common.column_launch): thread (tx, ty) sums the rows
ty, ty + TY * gridDim.y, ... of column j = strip + tx, then every thread of the block calls
``column_add`` with its partial sum. Used by the LayerNorm, BatchNorm and bias_act_backward kernels.
"""

from __future__ import annotations

import functools
from typing import Any

from numba import cuda


@functools.cache
def column_adder(rows: int) -> Any:
    """CUDA device function ``column_add(partial, value, active, acc, index)`` for blocks of ``rows``
    thread rows: ``acc[index] += value summed over the thread rows of the caller's column`` (one atomic,
    by thread row 0; none where ``active`` is False, for columns past the array's end). ``partial``: a
    (rows, TX) shared array, the same for every thread of the block; all threads must call it (barriers).

    Plain ``cuda.jit(device=True)``, also under the simulator (not _common.device_jit): only the
    simulator's device-function wrapper swaps its fake ``cuda`` into this module's globals, this being
    outside the calling kernel's module. It runs a few times per strip, so its lock costs little there.
    """

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
