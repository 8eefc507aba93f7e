"""BatchNorm1d, forward and backward, each in one fused kernel (a few launches on CUDA).

x, dy: (n, m) float32/float64, C-contiguous. gamma, beta, running_mean, running_var: (m,), x's dtype and
kind (host/device). The saved statistics mean and rstd are (m,), one per column, in x's dtype. Every
output is optional (allocated when None); ``out`` may be x and ``dx_out`` may be dy (in place); no other
output may overlap an input.

    batch_norm:  mean_j = mean_i x_ij,  var_j = mean_i (x_ij - mean_j)^2,  rstd_j = 1/sqrt(var_j + eps)
                 out_ij = (x_ij - mean_j) rstd_j gamma_j + beta_j
                 (batch statistics when training, n >= 2, with PyTorch's running-stat update
                         r_mean = (1 - momentum) r_mean + momentum mean,
                         r_var  = (1 - momentum) r_var  + momentum var n/(n-1));
                 with training=False mean = running_mean, rstd = 1/sqrt(running_var + eps), nothing updated.
    batch_norm_backward (training mode):  xhat = (x - mean_j) rstd_j,  dbeta_j = sum_i dy_ij,
                 dgamma_j = sum_i dy_ij xhat_ij,  dx_ij = gamma_j rstd_j / n (n dy_ij - dbeta_j - xhat_ij dgamma_j)

Numerics. Statistics are two-pass (mean, then the mean of centred squares), never E[x^2] - E[x]^2, so
columns with a mean far above their spread keep an accurate variance. CPU kernels accumulate every sum
in float64; the forward's elementwise pass and the dx pass run in the dtype (see _cpu_kernels). CUDA
kernels compute in the dtype (float32 stays float32: per-thread partial sums over a few dozen elements,
then atomics; no fastmath, so (x - s) - c is evaluated as written); their first pass sums x - s, with s
the column's first element, and the outputs use (x - s) - mean(x - s), so under a large common offset
the variance and the outputs keep the dtype's accuracy relative to the spread. Only the saved mean is
rounded at the offset's magnitude, and the backward reads that saved mean (as PyTorch's does): its xhat
is off by up to |mean| eps rstd. NaN in x turns its column of outputs into NaN.

CUDA launches per call: batch_norm training 4 (zeroing, column sums, centred column sums, normalize,
whose row-0 threads write mean/rstd and update the running statistics), eval 1; batch_norm_backward 3
(zeroing, column sums of dgamma/dbeta, both shared with LayerNorm in _norm_common, then dx). The atomics
make the last bits of the CUDA sums depend on the order blocks finish.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c
from ._indexing import strided
from ._norm_common import (
    BackwardPlan,
    ForwardPlan,
    backward_plan,
    check_vectors,
    cuda_backward,
    forward_plan,
    results,
)
from ._reductions import column_adder

OPS = c.OpTable()

# --------------------------------------------------------------------------- plans


class _Plan(NamedTuple):
    norm: ForwardPlan
    training: bool
    momentum: float
    running_mean: Any  # None: no running statistics kept
    running_var: Any


def _batch_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, *, training: bool = True,
                running_mean: Any = None, running_var: Any = None, momentum: float = 0.1, out: Any = None,
                mean_out: Any = None, rstd_out: Any = None) -> _Plan:
    """Normalize each column of x (n, m) by the batch statistics (training; running statistics
    updated when given) or the running ones, then scale by gamma and shift by beta (m,). Returns
    ``(out, mean, rstd)``, the statistics (m,) one per column."""
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    momentum = c.check_finite_scalar("momentum", momentum, low=0.0, high=1.0)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or neither)")
    c.check_array("x", x, ndim=2)
    if running_mean is not None:
        check_vectors("x", x, x.shape[1], running_mean=running_mean, running_var=running_var)
        c.check_no_overlap("running_mean", running_mean, None, x=x, gamma=gamma, beta=beta)
        c.check_no_overlap("running_var", running_var, None, x=x, gamma=gamma, beta=beta, running_mean=running_mean)
    norm = forward_plan(x, gamma, beta, eps, out, mean_out, rstd_out, stats_per_row=False,
                        running_mean=running_mean, running_var=running_var)
    if training and x.shape[0] < 2:
        raise ValueError(f"x must have more than 1 value per channel when training, got shape {tuple(x.shape)}")
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False")
    return _Plan(norm, bool(training), momentum, running_mean, running_var)


def _batch_norm_backward(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                         dgamma_out: Any = None, dbeta_out: Any = None) -> BackwardPlan:
    """Gradients of training-mode batch_norm from its saved column statistics mean, rstd (m,). Returns
    ``(dx, dgamma, dbeta)``."""
    return backward_plan(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, stats_per_row=False)


# --------------------------------------------------------------------------- references


def _ref(p: _Plan) -> tuple[Any, Any, Any]:
    """In float64 array code; updates the running statistics when training."""
    q = p.norm
    xp = c.array_module(q.x)
    xf = q.x.astype(xp.float64)
    if p.training:
        n, momentum = q.x.shape[0], p.momentum
        mu = xf.mean(axis=0)
        var = ((xf - mu) ** 2).mean(axis=0)
        if p.running_mean is not None:
            p.running_mean[...] = (1 - momentum) * p.running_mean.astype(xp.float64) + momentum * mu
            p.running_var[...] = (1 - momentum) * p.running_var.astype(xp.float64) + momentum * var * (n / (n - 1))
    else:
        mu, var = p.running_mean.astype(xp.float64), p.running_var.astype(xp.float64)
    r = 1.0 / xp.sqrt(var + q.eps)
    q.out[...] = (xf - mu) * (r * q.gamma) + q.beta
    q.mean[...], q.rstd[...] = mu, r
    return results(q)


def _backward_ref(p: BackwardPlan) -> tuple[Any, Any, Any]:
    """In float64 array code."""
    xp = c.array_module(p.dy)
    n = p.dy.shape[0]
    dyf, r = p.dy.astype(xp.float64), p.rstd.astype(xp.float64)
    xhat = (p.x.astype(xp.float64) - p.mean) * r
    db, dg = dyf.sum(axis=0), (dyf * xhat).sum(axis=0)
    if n:
        p.dx[...] = p.gamma * r / n * (n * dyf - db - xhat * dg)
    p.dgamma[...], p.dbeta[...] = dg, db
    return results(p)


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_bodies(dtype: np.dtype) -> tuple[Any, Any]:
    """Single-threaded kernel bodies for one dtype, forward ``(x, gamma, beta, eps, training, momentum,
    running_mean, running_var, out, mean, rstd)`` and backward ``(dy, x, gamma, mean, rstd, dx, dgamma,
    dbeta)``; rows outside, contiguous columns inside (vectorised).

    Sums and statistics are float64. The elementwise output passes run in the dtype (in float32 the
    LayerNorm and BatchNorm forwards measured 1.1-1.4x faster, BatchNorm's backward 1.6x): the forward
    subtracts the mean split as hi + lo (hi = mean rounded to the dtype, so x - hi is exact for x near
    hi; lo corrects inside the shift), so a large common offset costs nothing; the dx pass works on the
    saved dtype statistics, with an error of eps times the terms it cancels, as in PyTorch's float32
    kernel.
    """

    @njit(inline="always")
    def batch_norm_columns(x, gamma, beta, eps, training, momentum, running_mean, running_var, out, mean, rstd):
        n, m = x.shape
        mu, var = np.zeros(m), np.zeros(m)
        if training:
            for i in range(n):  # row by row into (m,) float64 sums: contiguous and vectorised
                xi = x[i]
                for j in range(m):
                    mu[j] += xi[j]
            mu /= n
            for i in range(n):
                xi = x[i]
                for j in range(m):
                    d = xi[j] - mu[j]
                    var[j] += d * d
            var /= n
            if running_mean.size:
                for j in range(m):
                    running_mean[j] = (1.0 - momentum) * running_mean[j] + momentum * mu[j]
                    running_var[j] = (1.0 - momentum) * running_var[j] + momentum * var[j] * (n / (n - 1))
        else:
            for j in range(m):
                mu[j], var[j] = running_mean[j], running_var[j]
        # out = (x - hi) scale + shift with hi = mean in the dtype, shift = beta - (mean - hi) scale
        hi, scale, shift = np.empty(m, dtype), np.empty(m, dtype), np.empty(m, dtype)
        for j in range(m):
            r = 1.0 / math.sqrt(var[j] + eps)
            mean[j], rstd[j], hi[j], scale[j] = mu[j], r, mu[j], r * gamma[j]
            shift[j] = beta[j] - (mu[j] - hi[j]) * np.float64(scale[j])
        for i in range(n):
            xi, yi = x[i], out[i]
            for j in range(m):
                yi[j] = (xi[j] - hi[j]) * scale[j] + shift[j]

    @njit(inline="always")
    def batch_norm_backward_columns(dy, x, gamma, mean, rstd, dx, dgamma, dbeta):
        n, m = x.shape
        mu = mean.astype(np.float64)
        db, dxm = np.zeros(m), np.zeros(m)  # sum_i dy_ij, sum_i dy_ij (x_ij - mean_j)
        for i in range(n):
            dyi, xi = dy[i], x[i]
            for j in range(m):
                d = np.float64(dyi[j])
                db[j] += d
                dxm[j] += d * (xi[j] - mu[j])
        # dx = k (dy - a - (x - mean) b) with k = gamma rstd, a = dbeta / n, b = dgamma rstd / n
        k, a, b = np.empty(m, dtype), np.empty(m, dtype), np.empty(m, dtype)
        for j in range(m):
            r = np.float64(rstd[j])
            dgamma[j], dbeta[j] = dxm[j] * r, db[j]
            k[j], a[j], b[j] = gamma[j] * r, db[j] / max(n, 1), dxm[j] * r * r / max(n, 1)
        for i in range(n):
            dyi, xi, dxi = dy[i], x[i], dx[i]
            for j in range(m):
                dxi[j] = k[j] * (dyi[j] - a[j] - (xi[j] - mean[j]) * b[j])

    return batch_norm_columns, batch_norm_backward_columns


def _cpu(p: _Plan) -> tuple[Any, Any, Any]:
    q, running_mean, running_var = p.norm, p.running_mean, p.running_var
    if running_mean is None:  # one compiled signature: empty arrays mean "no running statistics"
        running_mean = running_var = np.empty(0, q.x.dtype)
    c.run_cpu(_cpu_bodies(q.x.dtype)[0], (q.x, q.gamma, q.beta, q.eps, p.training, p.momentum, running_mean,
                                          running_var, q.out, q.mean, q.rstd))
    return results(q)


def _backward_cpu(p: BackwardPlan) -> tuple[Any, Any, Any]:
    c.run_cpu(_cpu_bodies(p.x.dtype)[1], tuple(p))
    return results(p)


# --------------------------------------------------------------------------- CUDA


class _TileKernels(NamedTuple):
    """Column-strip kernels: a block (TX, TY) walks strips of TX columns, its thread rows TY rows apart.
    Each takes (column_shift, row_shift) of _common.column_launch first, then the arguments below."""
    batch_norm_stats: Any  # (x, inv_n, acc, second)
    # (x, gamma, beta, acc, inv_n, eps, training, update, momentum, unbias, r_mean, r_var, mean, rstd, out)
    batch_norm: Any
    batch_norm_backward: Any  # (dy, x, gamma, mean, rstd, acc, inv_n, dx, dgamma, dbeta): acc[0] dgamma, acc[1] dbeta


@functools.cache
def _tile_kernels(dtype: np.dtype, tile: tuple[int, int]) -> _TileKernels:
    """``tile``: (TX, TY) threads; a warp reads 32 adjacent columns of one row (coalesced)."""
    F = dtype.type
    ZERO, ONE = F(0), F(1)
    TX, TY = tile
    column_add = column_adder(TY)
    D = dtype.name
    column = f"{D}[::1]"  # a vector of one value per column
    matrix = f"{D}[:, ::1]"

    @c.cuda_kernel(f"void(int64, int64, {matrix}, {D}, {matrix}, boolean)")
    def batch_norm_stats(column_shift, row_shift, x, inv_n, acc, second):
        # First call: acc[0, j] = sum_i (x_ij - s_j) with s_j = x_0j. Second: acc[1, j] = sum_i (x_ij - s_j - c_j)^2
        # with c_j = acc[0, j] / n, and acc[2, j] = s_j (the normalize kernel may write over x's row 0).
        partial = cuda.shared.array((TY, TX), F)
        n, m = x.shape
        i0 = cuda.blockIdx.y * TY + cuda.threadIdx.y
        j0, column_step, columns = strided(cuda.blockIdx.x * TX, m, column_shift)
        while j0 < columns:
            j = j0 + cuda.threadIdx.x
            total = ZERO
            if j < columns:
                s = x[0, j]
                cen = acc[0, j] * inv_n if second else ZERO
                i, row_step, rows = strided(i0, n, row_shift)
                while i < rows:
                    d = x[i, j] - s - cen
                    total += d * d if second else d
                    i += row_step
                if second and i0 == 0:
                    acc[2, j] = s
            column_add(partial, total, j < columns, acc, (1 if second else 0, j))
            j0 += column_step

    @c.cuda_kernel(f"void(int64, int64, {matrix}, {column}, {column}, {matrix}, {D}, {D}, boolean, boolean, {D}, {D}, "
                   f"{column}, {column}, {column}, {column}, {matrix})")
    def batch_norm(column_shift, row_shift, x, gamma, beta, acc, inv_n, eps, training, update, momentum, unbias,
                   r_mean, r_var, mean, rstd, out):
        n, m = x.shape
        i0 = cuda.blockIdx.y * TY + cuda.threadIdx.y
        j0, column_step, columns = strided(cuda.blockIdx.x * TX, m, column_shift)
        while j0 < columns:
            j = j0 + cuda.threadIdx.x
            if j < columns:
                if training:
                    s, cen, var = acc[2, j], acc[0, j] * inv_n, acc[1, j] * inv_n
                else:
                    s, cen, var = r_mean[j], ZERO, r_var[j]
                r = ONE / math.sqrt(var + eps)
                scale, shift = r * gamma[j], beta[j]
                if i0 == 0:  # one thread per column
                    mean[j] = s + cen
                    rstd[j] = r
                    if update:
                        r_mean[j] = (ONE - momentum) * r_mean[j] + momentum * (s + cen)
                        r_var[j] = (ONE - momentum) * r_var[j] + momentum * var * unbias
                i, row_step, rows = strided(i0, n, row_shift)
                while i < rows:
                    out[i, j] = (x[i, j] - s - cen) * scale + shift
                    i += row_step

            j0 += column_step
    @c.cuda_kernel(f"void(int64, int64, {matrix}, {matrix}, {column}, {column}, {column}, {matrix}, {D}, {matrix}, "
                   f"{column}, {column})")
    def batch_norm_backward(column_shift, row_shift, dy, x, gamma, mean, rstd, acc, inv_n, dx, dgamma, dbeta):
        n, m = x.shape
        i0 = cuda.blockIdx.y * TY + cuda.threadIdx.y
        j0, column_step, columns = strided(cuda.blockIdx.x * TX, m, column_shift)
        while j0 < columns:
            j = j0 + cuda.threadIdx.x
            if j < columns:
                mu, r = mean[j], rstd[j]
                # dx = k (dy - a - (x - mean) b), k = gamma rstd, a = dbeta / n, b = dgamma rstd / n
                k, a, b = gamma[j] * r, acc[1, j] * inv_n, acc[0, j] * r * inv_n
                if i0 == 0:
                    dbeta[j] = acc[1, j]
                    dgamma[j] = acc[0, j]
                i, row_step, rows = strided(i0, n, row_shift)
                while i < rows:
                    dx[i, j] = k * (dy[i, j] - a - (x[i, j] - mu) * b)
                    i += row_step

            j0 += column_step
    return _TileKernels(batch_norm_stats, batch_norm, batch_norm_backward)


def _cuda(p: _Plan) -> tuple[Any, Any, Any]:
    q = p.norm
    n, m = q.x.shape
    if m == 0:
        return results(q)
    F = q.x.dtype.type
    grid, tile, shifts = c.column_launch(n, m)
    kernels = _tile_kernels(q.x.dtype, tile)
    acc = c.scratch(q.x, "batch norm sums", (3, m), q.x.dtype)
    if p.training:
        acc.fill(0)  # the statistics kernels add into it
    update = p.running_mean is not None
    # stand-ins the kernel never touches without running statistics, for one compiled signature
    running_mean, running_var = (p.running_mean, p.running_var) if update else (acc[0], acc[1])
    inv_n = F(1 / max(n, 1))
    if p.training:
        for second in (False, True):
            c.launch(kernels.batch_norm_stats, grid, tile, *shifts, q.x, inv_n, acc, second)
    c.launch(kernels.batch_norm, grid, tile, *shifts, q.x, q.gamma, q.beta, acc, inv_n, F(q.eps), p.training,
             update and p.training, F(p.momentum), F(n / max(n - 1, 1)), running_mean, running_var, q.mean, q.rstd,
             q.out)
    return results(q)


def _launch_dx(p: BackwardPlan, acc: Any) -> None:
    """batch_norm_backward's last kernel (see _norm_common.cuda_backward), column strips."""
    grid, tile, shifts = c.column_launch(*p.dy.shape)
    c.launch(_tile_kernels(p.dy.dtype, tile).batch_norm_backward, grid, tile, *shifts, p.dy, p.x, p.gamma, p.mean,
             p.rstd, acc, p.dy.dtype.type(1 / p.dy.shape[0]), p.dx, p.dgamma, p.dbeta)


def _backward_cuda(p: BackwardPlan) -> tuple[Any, Any, Any]:
    return cuda_backward(_launch_dx, False, p)


batch_norm_ref, batch_norm_cpu, batch_norm_cuda = OPS.add("batch_norm", _batch_norm, _ref, _cpu, _cuda)
batch_norm_backward_ref, batch_norm_backward_cpu, batch_norm_backward_cuda = OPS.add(
    "batch_norm_backward", _batch_norm_backward, _backward_ref, _backward_cpu, _backward_cuda)
