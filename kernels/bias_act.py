"""Bias + activation forward: ``y = f(x + b)`` in one pass over memory.

x: (n, m) float32/float64, C-contiguous; b: (m,) same dtype, or None for no bias.
``out`` (n, m) may be ``x`` itself (in place), and so may ``z_out`` (n, m), which, when given, also receives the
pre-activation ``z = x + b`` for activations whose gradient needs it (see activations.FROM_OUTPUT).
"""

from __future__ import annotations

import functools
from typing import Any

from numba import cuda, njit

from . import _common as c
from .activations import activation_code, cpu_scalars, cuda_scalars, forward_ref


def _validate(x: Any, b: Any, activation: str | int, alpha: float, out: Any, z_out: Any):
    c.check_array("x", x, ndim=2)
    if b is not None:
        c.check_array("b", b, shape=(x.shape[1],), dtype=x.dtype)
        c.check_same_kind("x", x, b=b)
    code = activation_code(activation)
    alpha = c.check_finite_scalar("alpha", alpha)
    out = c.output("out", out, x, x.shape, x.dtype, in_place_of=x, x=x, b=b)
    if z_out is not None:
        if z_out is out:
            raise ValueError("z_out overlaps out; pass two different arrays (either may be x)")
        z_out = c.output("z_out", z_out, x, x.shape, x.dtype, in_place_of=x, x=x, b=b, out=out)
    return code, alpha, out, z_out


def _bias_or_zeros(x: Any, b: Any) -> Any:
    return c.array_module(x).zeros(x.shape[1], dtype=x.dtype) if b is None else b


def bias_act_ref(x: Any, b: Any, activation: str | int = "relu", alpha: float = 0.0,
                 out: Any = None, z_out: Any = None) -> Any:
    """Reference in plain array code (NumPy or CuPy). Returns ``out``."""
    code, alpha, out, z_out = _validate(x, b, activation, alpha, out, z_out)
    z = x + b if b is not None else x.copy()
    if z_out is not None:
        z_out[...] = z
    out[...] = forward_ref(z, code, alpha)
    return out


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_body(code: int, dtype: Any):
    f = cpu_scalars(dtype)[0][code]

    @njit(inline="always")
    def body(x, b, alpha, y, z, keep_z):
        n, m = x.shape
        for i in range(n):
            xi, yi, zi = x[i], y[i], z[i]
            for j in range(m):
                v = xi[j] + b[j]
                if keep_z:  # a constant once inlined
                    zi[j] = v
                yi[j] = f(v, alpha)

    return body


# How each kernel binds the body's outputs, by (out is x, z kept, z_out is x). Every distinct array
# is one pointer: passed x == y as two arguments, LLVM's runtime overlap check fails and the loop runs
# scalar (measured 7x slower for sigmoid), so in place gets its own kernel with x bound twice.
_BINDINGS = {
    (False, False, False): lambda body: lambda x, b, alpha, y, z: body(x, b, alpha, y, y, False),
    (True, False, False): lambda body: lambda x, b, alpha, y, z: body(x, b, alpha, x, x, False),
    (False, True, False): lambda body: lambda x, b, alpha, y, z: body(x, b, alpha, y, z, True),
    (False, True, True): lambda body: lambda x, b, alpha, y, z: body(x, b, alpha, y, x, True),
    (True, True, False): lambda body: lambda x, b, alpha, y, z: body(x, b, alpha, x, z, True),
}


@functools.cache
def _cpu_kernel(code: int, dtype: Any, binding: tuple[bool, bool, bool]):
    return njit(**c.NJIT_OPTIONS)(_BINDINGS[binding](_cpu_body(code, dtype)))


def bias_act_cpu(x: Any, b: Any, activation: str | int = "relu", alpha: float = 0.0,
                 out: Any = None, z_out: Any = None) -> Any:
    """Numba CPU kernel (rows shared across threads for large inputs). Returns ``out``."""
    code, alpha, out, z_out = _validate(x, b, activation, alpha, out, z_out)
    if x.size == 0:
        return out
    b = _bias_or_zeros(x, b)
    binding = (out is x, z_out is not None, z_out is x)
    kernel, alpha, z = _cpu_kernel(code, x.dtype, binding), x.dtype.type(alpha), out if z_out is None else z_out
    c.over_row_blocks(kernel, (x, b, alpha, out, z), rows_in=(0, 3, 4))
    return out


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernel(code: int, dtype: Any):
    f = cuda_scalars(dtype)[0][code]

    @cuda.jit
    def kernel(x, b, alpha, y):
        n, m = x.shape
        for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
            i = k // m
            j = k - i * m
            y[i, j] = f(x[i, j] + b[j], alpha)

    @cuda.jit
    def kernel_keep_z(x, b, alpha, y, z):
        n, m = x.shape
        for k in range(cuda.grid(1), n * m, cuda.gridsize(1)):
            i = k // m
            j = k - i * m
            v = x[i, j] + b[j]
            z[i, j] = v
            y[i, j] = f(v, alpha)

    return kernel, kernel_keep_z


def bias_act_cuda(x: Any, b: Any, activation: str | int = "relu", alpha: float = 0.0,
                  out: Any = None, z_out: Any = None) -> Any:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``out``."""
    code, alpha, out, z_out = _validate(x, b, activation, alpha, out, z_out)
    if x.size == 0:
        return out
    b = _bias_or_zeros(x, b)
    kernel, kernel_keep_z = _cuda_kernel(code, x.dtype)
    launch = c.grid_1d(x.size) + (c.current_stream(),)
    alpha = x.dtype.type(alpha)
    if z_out is None:
        xd, bd, yd = c.cuda_args(x, b, out)
        kernel[launch](xd, bd, alpha, yd)
    else:
        xd, bd, yd, zd = c.cuda_args(x, b, out, z_out)
        kernel_keep_z[launch](xd, bd, alpha, yd, zd)
    return out
