"""What LayerNorm and BatchNorm share: argument checks, and the frame of their backward passes.

Both backwards take ``(dy, x, gamma, mean, rstd)`` with the saved statistics per row (LayerNorm) or per
column (BatchNorm) and return ``(dx, dgamma, dbeta)`` with dgamma_j = sum_i dy_ij xhat_ij and
dbeta_j = sum_i dy_ij. Here: their plans, and on CUDA everything but the dx kernel: the (2, m)
accumulator and the column-strip kernel that sums dgamma and dbeta into it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba import cuda

from . import _common as c
from ._indexing import strided
from ._reductions import column_adder

# --------------------------------------------------------------------------- validation


def check_vectors(ref_name: str, ref: Any, length: int, **arrays: Any) -> None:
    """Each array is (length,), in ``ref``'s dtype and on its side (host/device)."""
    for name, a in arrays.items():
        c.check_array(name, a, shape=(length,), dtype=ref.dtype)
    c.check_same_kind(ref_name, ref, **arrays)


def check_eps(eps: float) -> float:
    """``eps`` as a finite float > 0."""
    return c.check_finite_scalar("eps", eps, low=0.0, low_open=True)


class ForwardPlan(NamedTuple):
    x: Any
    gamma: Any
    beta: Any
    eps: float
    out: Any
    mean: Any
    rstd: Any


def forward_plan(x: Any, gamma: Any, beta: Any, eps: float, out: Any, mean_out: Any, rstd_out: Any,
                 stats_per_row: bool, **more_inputs: Any) -> ForwardPlan:
    """Check a forward's arguments: x (n, m), gamma and beta (m,), eps > 0; the outputs out (n, m) and
    mean, rstd ((n,) when ``stats_per_row``, else (m,)) are allocated where None. out may be x; no
    output may overlap x, gamma, beta or ``more_inputs``."""
    c.check_array("x", x, ndim=2)
    n, m = x.shape
    check_vectors("x", x, m, gamma=gamma, beta=beta)
    eps = check_eps(eps)
    inputs = {"x": x, "gamma": gamma, "beta": beta, **more_inputs}
    stats = (n if stats_per_row else m,)
    out = c.output("out", out, x, x.shape, x.dtype, in_place_of=x, **inputs)
    mean = c.output("mean_out", mean_out, x, stats, x.dtype, **inputs, out=out)
    rstd = c.output("rstd_out", rstd_out, x, stats, x.dtype, **inputs, out=out, mean_out=mean)
    return ForwardPlan(x, gamma, beta, eps, out, mean, rstd)


class BackwardPlan(NamedTuple):
    dy: Any
    x: Any
    gamma: Any
    mean: Any
    rstd: Any
    dx: Any
    dgamma: Any
    dbeta: Any


def backward_plan(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any, dgamma_out: Any,
                  dbeta_out: Any, stats_per_row: bool) -> BackwardPlan:
    """Check the backward's arguments (mean, rstd: (n,) when ``stats_per_row``, else (m,)); the outputs
    are allocated where None. dx may be dy, nothing else may overlap."""
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
    return BackwardPlan(dy, x, gamma, mean, rstd, dx, dgamma, dbeta)


def results(p: ForwardPlan | BackwardPlan) -> tuple[Any, Any, Any]:
    """What the op returns: ``(out, mean, rstd)`` or ``(dx, dgamma, dbeta)``."""
    return (p.out, p.mean, p.rstd) if isinstance(p, ForwardPlan) else (p.dx, p.dgamma, p.dbeta)


def zero_parameter_grads(p: BackwardPlan) -> tuple[Any, Any, Any]:
    """The results of a backward over no rows: dgamma = dbeta = 0."""
    p.dgamma.fill(0)
    p.dbeta.fill(0)
    return results(p)


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _dgamma_dbeta_kernel(dtype: np.dtype, tile: tuple[int, int], stats_per_row: bool) -> Any:
    """Column-strip kernel ``(column_shift, row_shift, dy, x, mean, rstd, acc)``: acc[0] += dgamma,
    acc[1] += dbeta. A (TX, TY) block walks strips of TX columns (a warp reads 32 adjacent columns of one
    row: coalesced), its thread rows TY rows apart. xhat_ij = (x_ij - mean_i) rstd_i per element with row
    statistics; with column statistics each thread sums dy_ij (x_ij - mean_j) and multiplies by rstd_j once."""
    F = dtype.type
    ZERO = F(0)
    TX, TY = tile
    column_add = column_adder(TY)
    D = dtype.name

    @c.cuda_kernel(f"void(int64, int64, {D}[:, ::1], {D}[:, ::1], {D}[::1], {D}[::1], {D}[:, ::1])")
    def dgamma_dbeta(column_shift, row_shift, dy, x, mean, rstd, acc):
        partial = cuda.shared.array((TY, TX), F)
        n, m = x.shape
        j0, column_step, columns = strided(cuda.blockIdx.x * TX, m, column_shift)
        while j0 < columns:
            j = j0 + cuda.threadIdx.x
            dg = ZERO
            db = ZERO
            if j < columns:
                mu = ZERO if stats_per_row else mean[j]
                i, row_step, rows = strided(cuda.blockIdx.y * TY + cuda.threadIdx.y, n, row_shift)
                while i < rows:
                    d = dy[i, j]
                    db += d
                    if stats_per_row:
                        dg += d * ((x[i, j] - mean[i]) * rstd[i])
                    else:
                        dg += d * (x[i, j] - mu)
                    i += row_step
                if not stats_per_row:
                    dg *= rstd[j]
            column_add(partial, dg, j < columns, acc, (0, j))
            column_add(partial, db, j < columns, acc, (1, j))
            j0 += column_step

    return dgamma_dbeta


def cuda_backward(launch_dx: Callable[[BackwardPlan, Any], None], stats_per_row: bool,
                  p: BackwardPlan) -> tuple[Any, Any, Any]:
    """A norm's backward on CUDA, 3 launches: zeroing of a (2, m) accumulator (scratch memory: nothing
    allocated), the column sums of dgamma and dbeta into it (one atomic per column and block), then
    ``launch_dx(p, acc)``, whose kernel computes dx and copies dgamma = acc[0] and dbeta = acc[1] out."""
    if p.dy.size == 0:
        return zero_parameter_grads(p)
    acc = c.scratch(p.dy, "norm backward sums", (2, p.dy.shape[1]), p.dy.dtype)
    acc.fill(0)
    grid, tile, shifts = c.column_launch(*p.dy.shape)
    # Column sums first: with dx_out=dy the dx kernel writes over dy.
    c.launch(_dgamma_dbeta_kernel(p.dy.dtype, tile, stats_per_row), grid, tile, *shifts, p.dy, p.x, p.mean,
             p.rstd, acc)
    launch_dx(p, acc)
    return results(p)
