"""Index arithmetic of the CUDA kernels, without integer division.

A ``for i in range(start, n, step)`` loop whose step is known only at run time (a grid-stride loop
over ``cuda.gridsize(1)`` or ``cuda.gridDim.x``) makes NVVM divide by the step to count the trips:
a 64-bit integer division, which the GPU emulates in software (dozens of instructions and several
registers). Signed indices add Numba's negative-index wraparound to every access. So the kernels
loop ``while i < end: ...; i += step`` over unsigned 64-bit indices, with grids whose extent along
the loop is a power of two, passed as its base-2 logarithm ``shift``: the step is ``1 << shift``,
and whatever NVVM derives from it needs shifts, never a division (see _common.grid_1d and
column_grid). Plain ``cuda.jit(device=True)`` functions, also under the simulator (see the docstring
of _reductions).
"""

from __future__ import annotations

from numba import cuda
from numpy import uint64


@cuda.jit(device=True)
def grid_stride(n, shift):
    """(first, step, end) of this thread's loop over ``n`` items on a 1-D grid of ``2**shift`` threads."""
    return uint64(cuda.grid(1)), uint64(1) << uint64(shift), uint64(n)


@cuda.jit(device=True)
def strided(first, n, shift):
    """(first, step, end) of a loop from ``first`` over ``n`` items in steps of ``2**shift``."""
    return uint64(first), uint64(1) << uint64(shift), uint64(n)
