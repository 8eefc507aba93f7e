"""LayerNorm, forward and backward, each in one fused kernel (a few launches on CUDA).

x, dy: (n, m) float32/float64, C-contiguous. gamma, beta: (m,), x's dtype and kind (host/device). The
saved statistics mean and rstd are (n,), one per row, in x's dtype. Every output is optional (allocated
when None); ``out`` may be x and ``dx_out`` may be dy (in place); no other output may overlap an input.

    layer_norm:  mean_i = mean_j x_ij,  var_i = mean_j (x_ij - mean_i)^2,  rstd_i = 1/sqrt(var_i + eps)
                 out_ij = (x_ij - mean_i) rstd_i gamma_j + beta_j
    layer_norm_backward:  xhat = (x - mean_i) rstd_i,  g = dy gamma
                 dx_ij = rstd_i (g_ij - mean_j g_ij - xhat_ij mean_j(g_ij xhat_ij))
                 dgamma_j = sum_i dy_ij xhat_ij,  dbeta_j = sum_i dy_ij

Numerics. Statistics are two-pass (mean, then the mean of centred squares), never E[x^2] - E[x]^2, so
rows with a mean far above their spread keep an accurate variance. CPU kernels accumulate every sum in
float64; the forward's elementwise pass runs in the dtype (see _cpu_kernels). CUDA kernels compute in
the dtype (float32 stays float32: per-thread partial sums over a few dozen elements, then shared-memory
trees or atomics; no fastmath, so (x - s) - c is evaluated as written); the forward's first pass sums
x - s, with s the row's first element, and the outputs use (x - s) - mean(x - s), so under a large
common offset the variance and the outputs keep the dtype's accuracy relative to the spread. Only the
saved mean is rounded at the offset's magnitude, and the backward reads that saved mean (as PyTorch's
does): its xhat is off by up to |mean| eps rstd. NaN in x turns its row of outputs into NaN.
An empty row (m == 0) has mean 0 and variance 0 by convention (rstd = 1/sqrt(eps)).

CUDA launches per call: layer_norm 1 (a block per row); layer_norm_backward 3 (zeroing of a (2, m)
accumulator, column sums of dgamma/dbeta with one atomic per column and block, both shared with
BatchNorm in _norm_common, then a block-per-row dx kernel that also copies dgamma/dbeta out). The
atomics make the last bits of dgamma and dbeta depend on the order blocks finish.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c
from ._indexing import grid_stride, strided
from ._norm_common import (
    BackwardPlan,
    ForwardPlan,
    backward_plan,
    cuda_backward,
    forward_plan,
    results,
    zero_parameter_grads,
)
from ._reductions import block_reducer

OPS = c.OpTable()

# --------------------------------------------------------------------------- plans


def _layer_norm(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, out: Any = None, mean_out: Any = None,
                rstd_out: Any = None) -> ForwardPlan:
    """Normalize each row of x (n, m), then scale by gamma and shift by beta (m,). Returns ``(out, mean,
    rstd)``, the statistics (n,) one per row."""
    return forward_plan(x, gamma, beta, eps, out, mean_out, rstd_out, stats_per_row=True)


def _layer_norm_backward(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                         dgamma_out: Any = None, dbeta_out: Any = None) -> BackwardPlan:
    """Gradients of layer_norm from its saved row statistics mean, rstd (n,). Returns ``(dx, dgamma,
    dbeta)``."""
    return backward_plan(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, stats_per_row=True)


def _without_columns(p: ForwardPlan) -> bool:
    """Rows with no elements (m == 0) have mean 0 and variance 0; their statistics are set here."""
    if p.x.shape[1]:
        return False
    p.mean.fill(0)
    p.rstd.fill(1.0 / math.sqrt(p.eps))
    return True


# --------------------------------------------------------------------------- references


def _ref(p: ForwardPlan) -> tuple[Any, Any, Any]:
    """In float64 array code (NumPy or CuPy)."""
    if _without_columns(p):
        return results(p)
    xp = c.array_module(p.x)
    xf = p.x.astype(xp.float64)
    mu = xf.mean(axis=1, keepdims=True)
    d = xf - mu
    r = 1.0 / xp.sqrt((d * d).mean(axis=1, keepdims=True) + p.eps)
    p.out[...] = d * r * p.gamma + p.beta
    p.mean[...], p.rstd[...] = mu[:, 0], r[:, 0]
    return results(p)


def _backward_ref(p: BackwardPlan) -> tuple[Any, Any, Any]:
    """In float64 array code."""
    if p.dy.size == 0:
        return zero_parameter_grads(p)
    xp = c.array_module(p.dy)
    dyf, r = p.dy.astype(xp.float64), p.rstd.astype(xp.float64)[:, None]
    xhat = (p.x.astype(xp.float64) - p.mean[:, None]) * r
    g = dyf * p.gamma
    p.dx[...] = r * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    p.dgamma[...] = (dyf * xhat).sum(axis=0)
    p.dbeta[...] = dyf.sum(axis=0)
    return results(p)


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_bodies(dtype: np.dtype) -> tuple[Any, Any]:
    """Single-threaded kernel bodies for one dtype, forward ``(x, gamma, beta, eps, out, mean, rstd)``
    and backward ``(dy, x, gamma, mean, rstd, dx, dgamma, dbeta)``; rows outside, contiguous columns
    inside (vectorised).

    Sums and statistics are float64. The forward's output pass runs in the dtype (in float32 the
    LayerNorm and BatchNorm forwards measured 1.1-1.4x faster): it subtracts the mean split as hi + lo
    (hi = mean rounded to the dtype, so x - hi is exact for x near hi; lo corrects after the
    multiplication by rstd), so a large common offset costs nothing. dx stays float64: with few
    columns its terms cancel to nothing (one column: dx = 0 exactly) and float32 gained nothing
    measurable.
    """
    F = dtype.type

    @njit(inline="always")
    def layer_norm_rows(x, gamma, beta, eps, out, mean, rstd):
        n, m = x.shape
        for i in range(n):
            xi, yi = x[i], out[i]
            s = 0.0
            for j in range(m):
                s += xi[j]
            mu = s / m
            v = 0.0
            for j in range(m):
                d = xi[j] - mu
                v += d * d
            r = 1.0 / math.sqrt(v / m + eps)
            mean[i], rstd[i] = mu, r
            # (x - mean) r = (x - hi) r - lo r; the product keeps LLVM's reassociation from merging hi and lo
            hi, r_ = F(mu), F(r)
            lo_r = F((mu - hi) * r)
            for j in range(m):
                yi[j] = ((xi[j] - hi) * r_ - lo_r) * gamma[j] + beta[j]

    @njit(inline="always")
    def layer_norm_backward_rows(dy, x, gamma, mean, rstd, dx, dgamma, dbeta):
        n, m = x.shape
        gam = gamma.astype(np.float64)
        dg, db = np.zeros(m), np.zeros(m)
        for i in range(n):
            dyi, xi, dxi = dy[i], x[i], dx[i]
            mu, r = np.float64(mean[i]), np.float64(rstd[i])
            a = 0.0  # sum_j g_ij
            b = 0.0  # sum_j g_ij xhat_ij
            for j in range(m):
                d, xh = np.float64(dyi[j]), (xi[j] - mu) * r
                a += d * gam[j]
                b += d * gam[j] * xh
                dg[j] += d * xh
                db[j] += d
            a, b = a / m, b / m
            for j in range(m):
                dxi[j] = r * (dyi[j] * gam[j] - a - (xi[j] - mu) * r * b)
        for j in range(m):
            dgamma[j], dbeta[j] = dg[j], db[j]

    return layer_norm_rows, layer_norm_backward_rows


def _cpu(p: ForwardPlan) -> tuple[Any, Any, Any]:
    if not _without_columns(p) and p.x.size:
        c.run_cpu(_cpu_bodies(p.x.dtype)[0], (p.x, p.gamma, p.beta, p.eps, p.out, p.mean, p.rstd))
    return results(p)


def _backward_cpu(p: BackwardPlan) -> tuple[Any, Any, Any]:
    c.run_cpu(_cpu_bodies(p.x.dtype)[1], tuple(p))
    return results(p)


# --------------------------------------------------------------------------- CUDA


class _RowKernels(NamedTuple):
    """Block-per-row kernels, rows grid-stride over 2**row_shift blocks (see _indexing)."""
    layer_norm: Any  # (row_shift, x, gamma, beta, eps, inv_m, out, mean, rstd)
    layer_norm_backward: Any  # (row_shift, dy, x, gamma, mean, rstd, inv_m, acc, dx, dgamma, dbeta)


@functools.cache
def _row_kernels(dtype: np.dtype, threads: int) -> _RowKernels:
    """``threads``: block size, a power of 2; float32 kernels compute in float32 (typed constants)."""
    F = dtype.type
    ZERO, ONE = F(0), F(1)
    block_sums = block_reducer(threads)
    thread_shift = threads.bit_length() - 1
    D = dtype.name
    row = f"{D}[::1]"  # a vector of one value per row or per column
    matrix = f"{D}[:, ::1]"

    @c.cuda_kernel(f"void(int64, {matrix}, {row}, {row}, {D}, {D}, {matrix}, {row}, {row})")
    def layer_norm(row_shift, x, gamma, beta, eps, inv_m, out, mean, rstd):
        shared = cuda.shared.array((2, threads), F)
        first, step, m = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        i, row_step, n = strided(cuda.blockIdx.x, x.shape[0], row_shift)
        while i < n:
            s = x[i, 0]  # shift: sums of x - s keep float32 accuracy under a large common offset
            total = ZERO
            j = first
            while j < m:
                total += x[i, j] - s
                j += step
            cen = block_sums(shared, total, ZERO, False)[0] * inv_m
            total = ZERO
            j = first
            while j < m:
                d = x[i, j] - s - cen
                total += d * d
                j += step
            r = ONE / math.sqrt(block_sums(shared, total, ZERO, False)[0] * inv_m + eps)
            if first == 0:
                mean[i] = s + cen
                rstd[i] = r
            j = first
            while j < m:
                out[i, j] = (x[i, j] - s - cen) * r * gamma[j] + beta[j]
                j += step
            i += row_step

    @c.cuda_kernel(f"void(int64, {matrix}, {matrix}, {row}, {row}, {row}, {D}, {matrix}, {matrix}, {row}, {row})")
    def layer_norm_backward(row_shift, dy, x, gamma, mean, rstd, inv_m, acc, dx, dgamma, dbeta):
        shared = cuda.shared.array((2, threads), F)
        first, step, m = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        j, grid_step, _ = grid_stride(m, row_shift + thread_shift)
        while j < m:  # the column kernel ran before this one
            dgamma[j] = acc[0, j]
            dbeta[j] = acc[1, j]
            j += grid_step
        i, row_step, n = strided(cuda.blockIdx.x, x.shape[0], row_shift)
        while i < n:
            mu, r = mean[i], rstd[i]
            a = ZERO
            b = ZERO
            j = first
            while j < m:
                g = dy[i, j] * gamma[j]
                a += g
                b += g * ((x[i, j] - mu) * r)
                j += step
            a, b = block_sums(shared, a, b, False)
            a *= inv_m
            b *= inv_m
            j = first
            while j < m:
                dx[i, j] = r * (dy[i, j] * gamma[j] - a - (x[i, j] - mu) * r * b)
                j += step
            i += row_step

    return _RowKernels(layer_norm, layer_norm_backward)


def _cuda(p: ForwardPlan) -> tuple[Any, Any, Any]:
    if not _without_columns(p) and p.x.size:
        n, m = p.x.shape
        blocks, threads, row_shift = c.row_launch(n, m)
        F = p.x.dtype.type
        c.launch(_row_kernels(p.x.dtype, threads).layer_norm, blocks, threads, row_shift, p.x, p.gamma, p.beta,
                 F(p.eps), F(1 / m), p.out, p.mean, p.rstd)
    return results(p)


def _launch_dx(p: BackwardPlan, acc: Any) -> None:
    """layer_norm_backward's last kernel (see _norm_common.cuda_backward), a block per row."""
    blocks, threads, row_shift = c.row_launch(*p.dy.shape)
    c.launch(_row_kernels(p.dy.dtype, threads).layer_norm_backward, blocks, threads, row_shift, p.dy, p.x, p.gamma,
             p.mean, p.rstd, p.dy.dtype.type(1 / p.dy.shape[1]), acc, p.dx, p.dgamma, p.dbeta)


def _backward_cuda(p: BackwardPlan) -> tuple[Any, Any, Any]:
    return cuda_backward(_launch_dx, True, p)


layer_norm_ref, layer_norm_cpu, layer_norm_cuda = OPS.add("layer_norm", _layer_norm, _ref, _cpu, _cuda)
layer_norm_backward_ref, layer_norm_backward_cpu, layer_norm_backward_cuda = OPS.add(
    "layer_norm_backward", _layer_norm_backward, _backward_ref, _backward_cpu, _backward_cuda)
