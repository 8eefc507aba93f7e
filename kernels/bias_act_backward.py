"""Activation gradient + bias gradient: ``dz = dy * f'(z)`` and ``db = dz.sum(axis=0)`` in one pass.

dy, saved: (n, m) float32/float64, same dtype, C-contiguous. ``saved`` is the output y = f(z) when
``from_output`` (allowed for the activations in activations.FROM_OUTPUT: identity, relu, sigmoid,
tanh), else the pre-activation z. Returns ``(dz, db)``: dz (n, m) and db (m,) in dy's dtype.
``dz_out`` may be ``dy`` itself (in place); no other output may overlap an input.

db is summed in float64 (CPU: per-column partial sums over blocks of rows, then added up; CUDA:
per-thread partial sums, a shared-memory reduction per block, one atomic add per column and block),
so it keeps float64-like accuracy for any n. The CUDA atomics make the float32 db's last bit depend
on the order blocks finish.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba import cuda, float64, njit

from . import _common as c
from ._column_sum import column_adder
from .activations import FROM_OUTPUT, NAMES, activation_code, cpu_scalars, cuda_scalars, grad_from_output_ref, grad_ref

_ROW_BLOCK = 256  # CPU: rows per float64 partial sum of db


def _validate(dy: Any, saved: Any, activation: str | int, alpha: float, from_output: bool,
              dz_out: Any, db_out: Any):
    c.check_array("dy", dy, ndim=2)
    c.check_array("saved", saved, shape=dy.shape, dtype=dy.dtype)
    c.check_same_kind("dy", dy, saved=saved)
    code = activation_code(activation)
    if not isinstance(from_output, (bool, np.bool_)):
        raise TypeError(f"from_output must be a bool, got {type(from_output).__name__}")
    if from_output and code not in FROM_OUTPUT:
        raise ValueError(
            f"activation {NAMES[code]!r} cannot be differentiated from its output: keep the pre-activation z "
            f"(bias_act's z_out) and pass it as saved with from_output=False")
    alpha = c.check_finite_scalar("alpha", alpha)
    dz_out = c.output("dz_out", dz_out, dy, dy.shape, dy.dtype, in_place_of=dy, dy=dy, saved=saved)
    db_out = c.output("db_out", db_out, dy, dy.shape[1:], dy.dtype, dy=dy, saved=saved, dz_out=dz_out)
    return code, alpha, bool(from_output), dz_out, db_out


def bias_act_backward_ref(dy: Any, saved: Any, activation: str | int = "relu", alpha: float = 0.0,
                          from_output: bool = True, dz_out: Any = None, db_out: Any = None) -> tuple[Any, Any]:
    """Reference in plain array code (NumPy or CuPy). Returns ``(dz_out, db_out)``."""
    code, alpha, from_output, dz_out, db_out = _validate(dy, saved, activation, alpha, from_output, dz_out, db_out)
    grad = grad_from_output_ref(saved, code) if from_output else grad_ref(saved, code, alpha)
    dz_out[...] = dy * grad
    db_out[...] = dz_out.sum(axis=0, dtype=np.float64)
    return dz_out, db_out


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_kernel(code: int, from_output: bool, dtype: Any, in_place: bool):
    _, grad_z, grad_y = cpu_scalars(dtype)
    fprime = grad_y[code] if from_output else grad_z[code]

    @njit(inline="always")
    def body(dy, saved, alpha, dz, db):
        n, m = dy.shape
        total = np.zeros(m, np.float64)
        partial = np.empty(m, np.float64)
        for i0 in range(0, n, _ROW_BLOCK):
            partial[:] = 0.0
            for i in range(i0, min(i0 + _ROW_BLOCK, n)):
                grad, s, d = dy[i], saved[i], dz[i]
                for j in range(m):
                    g = grad[j] * fprime(s[j], alpha)
                    d[j] = g
                    partial[j] += g
            for j in range(m):
                total[j] += partial[j]
        for j in range(m):
            db[j] = total[j]

    # In place, dy is bound to both roles: as two arguments LLVM's runtime overlap check would
    # fail and the loop would run scalar.
    if in_place:
        return njit(**c.NJIT_OPTIONS)(lambda dy, saved, alpha, dz, db: body(dy, saved, alpha, dy, db))
    return njit(**c.NJIT_OPTIONS)(lambda dy, saved, alpha, dz, db: body(dy, saved, alpha, dz, db))


def bias_act_backward_cpu(dy: Any, saved: Any, activation: str | int = "relu", alpha: float = 0.0,
                          from_output: bool = True, dz_out: Any = None, db_out: Any = None) -> tuple[Any, Any]:
    """Numba CPU kernel (rows shared across threads for large inputs). Returns ``(dz_out, db_out)``."""
    code, alpha, from_output, dz_out, db_out = _validate(dy, saved, activation, alpha, from_output, dz_out, db_out)
    if dy.size == 0:
        db_out[...] = 0
        return dz_out, db_out
    kernel = _cpu_kernel(code, from_output, dy.dtype, dz_out is dy)

    def block(dy_rows: Any, saved_rows: Any, alpha: Any, dz_rows: Any) -> Any:
        if dy_rows is dy:  # the whole op in one call: db straight into db_out
            return kernel(dy, saved, alpha, dz_out, db_out)
        partial = np.empty(dy.shape[1], np.float64)  # exact per block, summed in float64
        kernel(dy_rows, saved_rows, alpha, dz_rows, partial)
        return partial

    partials = c.over_row_blocks(block, (dy, saved, dy.dtype.type(alpha), dz_out), rows_in=(0, 1, 3))
    if len(partials) > 1:
        db_out[...] = np.sum(partials, axis=0)
    return dz_out, db_out


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernel(code: int, from_output: bool, dtype: Any, tile: tuple[int, int]):
    _, grad_z, grad_y = cuda_scalars(dtype)
    fprime = grad_y[code] if from_output else grad_z[code]
    TX, TY = tile
    column_add = column_adder(TY)

    @cuda.jit
    def kernel(dy, saved, alpha, dz, db):
        # Block (bx, by) walks column strips bx, bx + gridDim.x, ... and, in each, the rows
        # by*TY + ty, by*TY + ty + gridDim.y*TY, ...
        n, m = dy.shape
        partials = cuda.shared.array((TY, TX), float64)
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            acc = 0.0
            if j < m:
                for i in range(cuda.blockIdx.y * TY + cuda.threadIdx.y, n, cuda.gridDim.y * TY):
                    g = dy[i, j] * fprime(saved[i, j], alpha)
                    dz[i, j] = g
                    acc += g
            column_add(partials, acc, j < m, db, j)

    return kernel


def bias_act_backward_cuda(dy: Any, saved: Any, activation: str | int = "relu", alpha: float = 0.0,
                           from_output: bool = True, dz_out: Any = None,
                           db_out: Any = None) -> tuple[Any, Any]:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``(dz_out, db_out)``."""
    code, alpha, from_output, dz_out, db_out = _validate(dy, saved, activation, alpha, from_output, dz_out, db_out)
    db_out.fill(0)  # the kernel adds into db atomically
    if dy.size == 0:
        return dz_out, db_out
    grid, tile = c.column_launch(*dy.shape)
    kernel = _cuda_kernel(code, from_output, dy.dtype, tile)
    # dz comes after dy: when they are one array, the simulator's copy-back of dz lands last.
    args = c.cuda_args(dy, saved, dz_out, db_out)
    kernel[grid, tile, c.current_stream()](
        args[0], args[1], dy.dtype.type(alpha), args[2], args[3])
    return dz_out, db_out
