"""What LayerNorm and BatchNorm share: argument checks, and the frame of their backward passes.

Both backwards take ``(dy, x, gamma, mean, rstd)`` with the saved statistics per row (LayerNorm) or per
column (BatchNorm) and return ``(dx, dgamma, dbeta)`` with dgamma_j = sum_i dy_ij xhat_ij and
dbeta_j = sum_i dy_ij. Here: their validation, the CPU wrapper, and on CUDA everything but the dx kernel:
the (2, m) accumulator and the column-strip kernel that sums dgamma and dbeta into it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c
from ._column_sum import column_adder

# --------------------------------------------------------------------------- validation


def check_vectors(ref_name: str, ref: Any, length: int, **arrays: Any) -> None:
    """Each array is (length,), in ``ref``'s dtype and on its side (host/device)."""
    for name, a in arrays.items():
        c.check_array(name, a, shape=(length,), dtype=ref.dtype)
    c.check_same_kind(ref_name, ref, **arrays)


def check_eps(eps: float) -> float:
    """``eps`` as a finite float > 0."""
    return c.check_finite_scalar("eps", eps, low=0.0, low_open=True)


def validate_backward(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any, dgamma_out: Any,
                      dbeta_out: Any, stats_per_row: bool) -> tuple[Any, Any, Any]:
    """Check the backward's arguments (mean, rstd: (n,) when ``stats_per_row``, else (m,)); returns
    the outputs ``(dx, dgamma, dbeta)``, allocated where None. dx may be dy, nothing else may overlap."""
    c.check_array("dy", dy, ndim=2)
    c.check_array("x", x, shape=dy.shape, dtype=dy.dtype)
    c.check_same_kind("dy", dy, x=x)
    n, m = dy.shape
    check_vectors("dy", dy, m, gamma=gamma)
    check_vectors("dy", dy, n if stats_per_row else m, mean=mean, rstd=rstd)
    inputs = {"dy": dy, "x": x, "gamma": gamma, "mean": mean, "rstd": rstd}
    dx = c.output("dx_out", dx_out, dy, dy.shape, dy.dtype, in_place_of=dy, **inputs)
    dgamma = c.output("dgamma_out", dgamma_out, dy, (m,), dy.dtype, **inputs, dx_out=dx)
    dbeta = c.output("dbeta_out", dbeta_out, dy, (m,), dy.dtype, **inputs, dx_out=dx, dgamma_out=dgamma)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- CPU


class CpuKernels(NamedTuple):
    """A norm's compiled CPU kernels for one dtype. Each entry is a pair: [0] with separate output
    arrays, [1] with the output bound to its input in compiled code (out=x, dx=dy: passed as two
    arguments, one array fails LLVM's run-time overlap check and the loops run scalar)."""
    forward: tuple[Any, Any]
    backward: tuple[Any, Any]  # (dy, x, gamma, mean, rstd, dx, dgamma, dbeta)


def backward_pair(body: Any) -> tuple[Any, Any]:
    """CpuKernels.backward: ``body(dy, x, gamma, mean, rstd, dx, dgamma, dbeta)``, an inlined @njit
    function, compiled as is and with dx bound to dy."""
    jit = njit(**c.NJIT_OPTIONS)
    return (jit(lambda dy, x, g, mu, r, dx, dg, db: body(dy, x, g, mu, r, dx, dg, db)),
            jit(lambda dy, x, g, mu, r, dx, dg, db: body(dy, x, g, mu, r, dy, dg, db)))


def cpu_backward(kernels: Callable[[np.dtype], CpuKernels], stats_per_row: bool, dy: Any, x: Any, gamma: Any,
                 mean: Any, rstd: Any, dx_out: Any, dgamma_out: Any, dbeta_out: Any) -> tuple[Any, Any, Any]:
    """A norm's ``*_backward_cpu``: validation, then its compiled backward from ``kernels(dtype)``."""
    dx, dgamma, dbeta = validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, stats_per_row)
    kernels(x.dtype).backward[c.same_buffer(dx, dy)](dy, x, gamma, mean, rstd, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _dgamma_dbeta_kernel(dtype: np.dtype, tile: tuple[int, int], stats_per_row: bool) -> Any:
    """Column-strip kernel ``(dy, x, mean, rstd, acc)``: acc[0] += dgamma, acc[1] += dbeta. A (TX, TY)
    block walks strips of TX columns (a warp reads 32 adjacent columns of one row: coalesced), its
    thread rows TY rows apart. xhat_ij = (x_ij - mean_i) rstd_i per element with row statistics; with
    column statistics each thread sums dy_ij (x_ij - mean_j) and multiplies by rstd_j once."""
    F = dtype.type
    ZERO = F(0)
    TX, TY = tile
    column_add = column_adder(TY)

    @cuda.jit
    def dgamma_dbeta(dy, x, mean, rstd, acc):
        partial = cuda.shared.array((TY, TX), F)
        n, m = x.shape
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            dg = ZERO
            db = ZERO
            if j < m:
                mu = ZERO if stats_per_row else mean[j]
                for i in range(cuda.blockIdx.y * TY + cuda.threadIdx.y, n, cuda.gridDim.y * TY):
                    d = dy[i, j]
                    db += d
                    if stats_per_row:
                        dg += d * ((x[i, j] - mean[i]) * rstd[i])
                    else:
                        dg += d * (x[i, j] - mu)
                if not stats_per_row:
                    dg *= rstd[j]
            column_add(partial, dg, j < m, acc, (0, j))
            column_add(partial, db, j < m, acc, (1, j))

    return dgamma_dbeta


def cuda_backward(launch_dx: Callable[..., None], stats_per_row: bool, dy: Any, x: Any, gamma: Any, mean: Any,
                  rstd: Any, dx_out: Any, dgamma_out: Any, dbeta_out: Any) -> tuple[Any, Any, Any]:
    """A norm's ``*_backward_cuda``, 3 launches on CuPy's current stream: zeroing of a (2, m)
    accumulator, the column sums of dgamma and dbeta into it (one atomic per column and block), then
    ``launch_dx(stream, dy, x, gamma, mean, rstd, acc, dx, dgamma, dbeta)`` (kernel arguments), whose
    kernel computes dx and copies dgamma = acc[0] and dbeta = acc[1] out."""
    dx, dgamma, dbeta = validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, stats_per_row)
    n, m = dy.shape
    if dy.size == 0:
        dgamma.fill(0)
        dbeta.fill(0)
        return dx, dgamma, dbeta
    stream = c.current_stream()
    acc = c.array_module(dy).zeros((2, m), dy.dtype)
    dyd, xd, gd, md, rd, ad, dxd, dgd, dbd = c.cuda_args(dy, x, gamma, mean, rstd, acc, dx, dgamma, dbeta)
    grid, tile = c.column_launch(n, m)
    # Column sums first: with dx_out=dy the dx kernel writes over dy.
    _dgamma_dbeta_kernel(dy.dtype, tile, stats_per_row)[grid, tile, stream](dyd, xd, md, rd, ad)
    launch_dx(stream, dyd, xd, gd, md, rd, ad, dxd, dgd, dbd)
    return dx, dgamma, dbeta
