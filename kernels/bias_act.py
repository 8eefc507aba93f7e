"""Bias + activation forward: ``y = f(x + b)`` in one pass over memory.

x: (n, m) float32/float64, C-contiguous; b: (m,) same dtype, or None for no bias. ``out`` (n, m) may
be ``x`` itself (in place), and so may ``z_out`` (n, m), which, when given, also receives the
pre-activation ``z = x + b`` for activations whose gradient needs it (see activations.FROM_OUTPUT).
The CPU kernel shares rows across the cores for large inputs.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from numba import cuda, njit

from . import _common as c
from ._indexing import strided
from .activations import activation_code, cpu_scalars, cuda_scalars, forward_ref

OPS = c.OpTable()


class _Plan(NamedTuple):
    x: Any
    b: Any  # None: no bias
    code: int
    alpha: Any  # in x's dtype
    out: Any
    z_out: Any  # None: z not kept


def _bias_act(x: Any, b: Any, activation: str | int = "relu", alpha: float = 0.0, out: Any = None,
              z_out: Any = None) -> _Plan:
    """``y = f(x + b)`` for x (n, m) and b (m,) or None; z_out, when given, receives ``z = x + b``.
    Returns ``out``."""
    c.check_array("x", x, ndim=2)
    if b is not None:
        c.check_array("b", b, shape=(x.shape[1],), dtype=x.dtype)
        c.check_same_kind("x", x, b=b)
    code = activation_code(activation)
    alpha = x.dtype.type(c.check_finite_scalar("alpha", alpha))
    out = c.output("out", out, x, x.shape, x.dtype, in_place_of=x, x=x, b=b)
    if z_out is not None:
        if z_out is out:
            raise ValueError("z_out overlaps out; pass two different arrays (either may be x)")
        z_out = c.output("z_out", z_out, x, x.shape, x.dtype, in_place_of=x, x=x, b=b, out=out)
    return _Plan(x, b, code, alpha, out, z_out)


def _ref(p: _Plan) -> Any:
    z = p.x + p.b if p.b is not None else p.x.copy()
    if p.z_out is not None:
        p.z_out[...] = z
    p.out[...] = forward_ref(z, p.code, p.alpha)
    return p.out


def _arguments(p: _Plan, *shifts: int) -> tuple[Any, ...]:
    """The kernels' arguments ``(x, b, alpha, *shifts, z, y)``: shared zeros for no bias; without z_out, y
    in z's place too (z is then not written). y comes last, after every array it may be (in place)."""
    b = c.zeros_vector(p.x, p.x.shape[1], p.x.dtype) if p.b is None else p.b
    return p.x, b, p.alpha, *shifts, p.out if p.z_out is None else p.z_out, p.out


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_body(code: int, dtype: Any, keep_z: bool):
    f = cpu_scalars(dtype)[0][code]

    @njit(inline="always")
    def body(x, b, alpha, z, y):
        n, m = x.shape
        for i in range(n):
            xi, yi, zi = x[i], y[i], z[i]
            for j in range(m):
                v = xi[j] + b[j]
                if keep_z:  # a constant of the compiled body
                    zi[j] = v
                yi[j] = f(v, alpha)

    return body


def _cpu(p: _Plan) -> Any:
    if p.x.size:
        keep_z = p.z_out is not None
        c.run_cpu(_cpu_body(p.code, p.x.dtype, keep_z), _arguments(p), rows_in=(0, 3, 4))
    return p.out


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernel(code: int, dtype: Any, keep_z: bool):
    f = cuda_scalars(dtype)[0][code]
    F = dtype.name

    @c.cuda_kernel(f"void({F}[:, ::1], {F}[::1], {F}, int64, int64, {F}[:, ::1], {F}[:, ::1])")
    def kernel(x, b, alpha, column_shift, row_shift, z, y):
        # a 2-D grid of 2**column_shift x 2**row_shift threads strides over columns and rows (see _indexing)
        n, m = x.shape
        column, row = cuda.grid(2)
        j0, column_step, columns = strided(column, m, column_shift)
        i, row_step, rows = strided(row, n, row_shift)
        while i < rows:
            j = j0
            while j < columns:
                v = x[i, j] + b[j]
                if keep_z:
                    z[i, j] = v
                y[i, j] = f(v, alpha)
                j += column_step
            i += row_step

    return kernel


def _cuda(p: _Plan) -> Any:
    if p.x.size:
        keep_z = p.z_out is not None
        kernel = _cuda_kernel(p.code, p.x.dtype, keep_z)
        grid, block, shifts = c.grid_2d(*p.x.shape)
        c.launch(kernel, grid, block, *_arguments(p, *shifts))
    return p.out


bias_act_ref, bias_act_cpu, bias_act_cuda = OPS.add("bias_act", _bias_act, _ref, _cpu, _cuda)
