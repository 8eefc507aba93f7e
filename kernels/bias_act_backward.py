"""Activation gradient + bias gradient: ``dz = dy * f'(z)`` and ``db = dz.sum(axis=0)`` in one pass.

dy, saved: (n, m) float32/float64, same dtype, C-contiguous. ``saved`` is the output y = f(z) when
``from_output`` (allowed for the activations in activations.FROM_OUTPUT: identity, relu, sigmoid,
tanh), else the pre-activation z. Returns ``(dz, db)``: dz (n, m) and db (m,) in dy's dtype; with
``with_db=False`` (an activation without a bias) db is neither computed nor returned (None).
``dz_out`` may be ``dy`` itself (in place); no other output may overlap an input.

db is summed in float64 (CPU: per-column partial sums over blocks of rows, then added up, rows shared
across the cores for large inputs; CUDA: per-thread partial sums, a shared-memory reduction per block,
one atomic add per column and block), so it keeps float64-like accuracy for any n. The CUDA atomics
make the float32 db's last bit depend on the order blocks finish.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, float64, njit

from . import _common as c
from ._indexing import strided
from ._reductions import column_adder
from .activations import (
    FROM_OUTPUT,
    NAMES,
    activation_code,
    cpu_scalars,
    cuda_scalars,
    grad_from_output_ref,
    grad_ref,
)

OPS = c.OpTable()

_ROW_BLOCK = 256  # CPU: rows per float64 partial sum of db


class _Plan(NamedTuple):
    dy: Any
    saved: Any
    code: int
    alpha: Any  # in dy's dtype
    from_output: bool
    dz: Any
    db: Any  # None: not computed


def _bias_act_backward(dy: Any, saved: Any, activation: str | int = "relu", alpha: float = 0.0,
                       from_output: bool = True, dz_out: Any = None, db_out: Any = None, *,
                       with_db: bool = True) -> _Plan:
    """``dz = dy * f'(z)`` and ``db = dz.sum(axis=0)``, f' from ``saved`` (y when ``from_output``, else z).
    Returns ``(dz_out, db_out)``; ``(dz_out, None)`` with ``with_db=False`` (db_out must then be None)."""
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
    alpha = dy.dtype.type(c.check_finite_scalar("alpha", alpha))
    dz = c.output("dz_out", dz_out, dy, dy.shape, dy.dtype, in_place_of=dy, dy=dy, saved=saved)
    if not isinstance(with_db, (bool, np.bool_)):
        raise TypeError(f"with_db must be a bool, got {type(with_db).__name__}")
    if not with_db and db_out is not None:
        raise ValueError("db_out given with with_db=False: db is not computed")
    db = c.output("db_out", db_out, dy, dy.shape[1:], dy.dtype, dy=dy, saved=saved, dz_out=dz) if with_db else None
    return _Plan(dy, saved, code, alpha, bool(from_output), dz, db)


def _ref(p: _Plan) -> tuple[Any, Any]:
    grad = grad_from_output_ref(p.saved, p.code) if p.from_output else grad_ref(p.saved, p.code, p.alpha)
    p.dz[...] = p.dy * grad
    if p.db is not None:
        p.db[...] = p.dz.sum(axis=0, dtype=np.float64)
    return p.dz, p.db


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_body(code: int, from_output: bool, dtype: Any):
    _, grad_z, grad_y = cpu_scalars(dtype)
    fprime = grad_y[code] if from_output else grad_z[code]

    @njit(inline="always")
    def dz_only(dy, saved, alpha, dz):
        n, m = dy.shape
        for i in range(n):
            grad, s, d = dy[i], saved[i], dz[i]
            for j in range(m):
                d[j] = grad[j] * fprime(s[j], alpha)

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

    return body, dz_only


def _cpu(p: _Plan) -> tuple[Any, Any]:
    body, dz_only = _cpu_body(p.code, p.from_output, p.dy.dtype)
    if p.db is None:
        if p.dy.size:
            c.run_cpu(dz_only, (p.dy, p.saved, p.alpha, p.dz), rows_in=(0, 1, 3))
        return p.dz, None
    if p.dy.size == 0:
        p.db[...] = 0
        return p.dz, p.db
    args = (p.dy, p.saved, p.alpha, p.dz, p.db)
    kernel = c.cpu_kernel_for(body, args)

    def block(dy: Any, saved: Any, alpha: Any, dz: Any, db: Any) -> Any:
        if dy is p.dy:  # the whole op in one call: db straight into db_out
            return kernel(dy, saved, alpha, dz, db)
        partial = np.empty(db.shape, np.float64)  # exact per block, summed in float64
        kernel(dy, saved, alpha, dz, partial)
        return partial

    partials = c.over_row_blocks(block, args, rows_in=(0, 1, 3))
    if len(partials) > 1:
        p.db[...] = np.sum(partials, axis=0)
    return p.dz, p.db


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernel(code: int, from_output: bool, dtype: Any, tile: tuple[int, int], with_db: bool):
    _, grad_z, grad_y = cuda_scalars(dtype)
    fprime = grad_y[code] if from_output else grad_z[code]
    TX, TY = tile
    column_add = column_adder(TY)
    F = dtype.name

    @c.cuda_kernel(f"void(int64, int64, {F}[:, ::1], {F}[:, ::1], {F}, {F}[:, ::1], {F}[::1])")
    def kernel(column_shift, row_shift, dy, saved, alpha, dz, db):
        # Block (bx, by) walks column strips bx, bx + gridDim.x, ... and, in each, the rows
        # by*TY + ty, by*TY + ty + gridDim.y*TY, ...
        n, m = dy.shape
        partials = cuda.shared.array((TY, TX), float64)
        j0, column_step, columns = strided(cuda.blockIdx.x * TX, m, column_shift)
        while j0 < columns:
            j = j0 + cuda.threadIdx.x
            acc = 0.0
            if j < columns:
                i, row_step, rows = strided(cuda.blockIdx.y * TY + cuda.threadIdx.y, n, row_shift)
                while i < rows:
                    g = dy[i, j] * fprime(saved[i, j], alpha)
                    dz[i, j] = g
                    acc += g
                    i += row_step
            if with_db:  # a constant of the compiled kernel
                column_add(partials, acc, j < columns, db, j)
            j0 += column_step

    return kernel


def _cuda(p: _Plan) -> tuple[Any, Any]:
    with_db = p.db is not None
    if with_db:
        p.db.fill(0)  # the kernel adds into db atomically
    if p.dy.size:
        grid, tile, shifts = c.column_launch(*p.dy.shape)
        db = p.db if with_db else c.zeros_vector(p.dy, p.dy.shape[1], p.dy.dtype)  # not written without db
        c.launch(_cuda_kernel(p.code, p.from_output, p.dy.dtype, tile, with_db), grid, tile, *shifts, p.dy, p.saved,
                 p.alpha, p.dz, db)
    return p.dz, p.db


bias_act_backward_ref, bias_act_backward_cpu, bias_act_backward_cuda = OPS.add(
    "bias_act_backward", _bias_act_backward, _ref, _cpu, _cuda)
