"""LayerNorm and BatchNorm1d, forward and backward, each in one fused kernel (a few launches on CUDA).

x, dy: (n, m) float32/float64, C-contiguous. gamma, beta, running_mean, running_var: (m,), x's dtype and
kind (host/device). The saved statistics mean and rstd are in x's dtype: (n,) per row for LayerNorm, (m,)
per column for BatchNorm. Every output is optional (allocated when None); ``out`` may be x and ``dx_out``
may be dy (in place); no other output may overlap an input.

    layer_norm:  mean_i = mean_j x_ij,  var_i = mean_j (x_ij - mean_i)^2,  rstd_i = 1/sqrt(var_i + eps)
                 out_ij = (x_ij - mean_i) rstd_i gamma_j + beta_j
    layer_norm_backward:  xhat = (x - mean_i) rstd_i,  g = dy gamma
                 dx_ij = rstd_i (g_ij - mean_j g_ij - xhat_ij mean_j(g_ij xhat_ij))
                 dgamma_j = sum_i dy_ij xhat_ij,  dbeta_j = sum_i dy_ij
    batch_norm:  the same over columns (batch statistics when training, n >= 2, with PyTorch's running-stat
                 update  r_mean = (1 - momentum) r_mean + momentum mean,
                         r_var  = (1 - momentum) r_var  + momentum var n/(n-1));
                 with training=False mean = running_mean, rstd = 1/sqrt(running_var + eps), nothing updated.
    batch_norm_backward (training mode):  xhat = (x - mean_j) rstd_j,  dbeta_j = sum_i dy_ij,
                 dgamma_j = sum_i dy_ij xhat_ij,  dx_ij = gamma_j rstd_j / n (n dy_ij - dbeta_j - xhat_ij dgamma_j)

Numerics. Statistics are two-pass (mean, then the mean of centred squares), never E[x^2] - E[x]^2, so rows
or columns with a mean far above their spread keep an accurate variance. CPU kernels accumulate every sum
in float64; the forwards' elementwise passes and BatchNorm's dx pass run in the dtype (see _cpu_kernels).
CUDA kernels compute in the dtype (float32 stays float32: per-thread partial sums over a few dozen
elements, then shared-memory trees or atomics; no fastmath, so (x - s) - c is evaluated as written);
their first pass sums x - s, with s the first element of the row (LayerNorm) or column (BatchNorm), and
the outputs use (x - s) - mean(x - s), so under a large common offset the variance and the outputs keep
the dtype's accuracy relative to the spread. Only the saved mean is rounded at the offset's magnitude,
and the backward passes read that saved mean (as PyTorch's do): their xhat is off by up to |mean| eps rstd.
NaN in x turns its row (LayerNorm) or column (BatchNorm) of outputs into NaN.
An empty row (m == 0) has mean 0 and variance 0 by convention (rstd = 1/sqrt(eps)).

CUDA launches per call: layer_norm 1; layer_norm_backward 3 (zeroing of a (2, m) accumulator, column sums
of dgamma/dbeta with one atomic per column and block, a block-per-row dx kernel that also copies dgamma/dbeta
out); batch_norm training 4 (zeroing, column sums, centred column sums, normalize, whose row-0 threads write
mean/rstd and update the running statistics), eval 1; batch_norm_backward 3 (zeroing, column sums, dx).
The atomics make the last bits of the CUDA sums depend on the order blocks finish.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c

# --------------------------------------------------------------------------- validation


def _check_vectors(ref_name: str, ref: Any, length: int, **arrays: Any) -> None:
    """Each array is (length,), in ``ref``'s dtype and on its side (host/device)."""
    for name, a in arrays.items():
        c.check_array(name, a, shape=(length,), dtype=ref.dtype)
    c.check_same_kind(ref_name, ref, **arrays)


def _check_eps(eps: float) -> float:
    return c.check_finite_scalar("eps", eps, low=0.0, low_open=True)


def _validate_layer_norm(x: Any, gamma: Any, beta: Any, eps: float, out: Any, mean_out: Any, rstd_out: Any):
    c.check_array("x", x, ndim=2)
    n, m = x.shape
    _check_vectors("x", x, m, gamma=gamma, beta=beta)
    eps = _check_eps(eps)
    inputs = {"x": x, "gamma": gamma, "beta": beta}
    out = c.output("out", out, x, x.shape, x.dtype, allow_same=(x,), **inputs)
    mean = c.output("mean_out", mean_out, x, (n,), x.dtype, **inputs, out=out)
    rstd = c.output("rstd_out", rstd_out, x, (n,), x.dtype, **inputs, out=out, mean_out=mean)
    return eps, out, mean, rstd


def _validate_batch_norm(x: Any, gamma: Any, beta: Any, eps: float, training: bool, running_mean: Any,
                         running_var: Any, momentum: float, out: Any, mean_out: Any, rstd_out: Any):
    c.check_array("x", x, ndim=2)
    n, m = x.shape
    _check_vectors("x", x, m, gamma=gamma, beta=beta)
    eps = _check_eps(eps)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    momentum = c.check_finite_scalar("momentum", momentum, low=0.0, high=1.0)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or neither)")
    if running_mean is not None:
        _check_vectors("x", x, m, running_mean=running_mean, running_var=running_var)
        c.check_no_overlap("running_mean", running_mean, (), x=x, gamma=gamma, beta=beta)
        c.check_no_overlap("running_var", running_var, (), x=x, gamma=gamma, beta=beta, running_mean=running_mean)
    if training and n < 2:
        raise ValueError(f"x must have more than 1 value per channel when training, got shape {tuple(x.shape)}")
    if not training and running_mean is None:
        raise ValueError("running_mean and running_var are required when training=False")
    inputs = {"x": x, "gamma": gamma, "beta": beta, "running_mean": running_mean, "running_var": running_var}
    out = c.output("out", out, x, x.shape, x.dtype, allow_same=(x,), **inputs)
    mean = c.output("mean_out", mean_out, x, (m,), x.dtype, **inputs, out=out)
    rstd = c.output("rstd_out", rstd_out, x, (m,), x.dtype, **inputs, out=out, mean_out=mean)
    return eps, bool(training), momentum, out, mean, rstd


def _validate_backward(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any, dgamma_out: Any,
                       dbeta_out: Any, stats_per_row: bool):
    c.check_array("dy", dy, ndim=2)
    c.check_array("x", x, shape=dy.shape, dtype=dy.dtype)
    c.check_same_kind("dy", dy, x=x)
    n, m = dy.shape
    _check_vectors("dy", dy, m, gamma=gamma)
    _check_vectors("dy", dy, n if stats_per_row else m, mean=mean, rstd=rstd)
    inputs = {"dy": dy, "x": x, "gamma": gamma, "mean": mean, "rstd": rstd}
    dx = c.output("dx_out", dx_out, dy, dy.shape, dy.dtype, allow_same=(dy,), **inputs)
    dgamma = c.output("dgamma_out", dgamma_out, dy, (m,), dy.dtype, **inputs, dx_out=dx)
    dbeta = c.output("dbeta_out", dbeta_out, dy, (m,), dy.dtype, **inputs, dx_out=dx, dgamma_out=dgamma)
    return dx, dgamma, dbeta


def _fill_empty_rows(mean: Any, rstd: Any, eps: float) -> None:
    """Statistics of rows with no elements: mean 0, variance 0."""
    mean.fill(0)
    rstd.fill(1.0 / math.sqrt(eps))


# --------------------------------------------------------------------------- references


def layer_norm_ref(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, out: Any = None, mean_out: Any = None,
                   rstd_out: Any = None) -> tuple[Any, Any, Any]:
    """Reference in float64 array code (NumPy or CuPy). Returns ``(out, mean, rstd)``."""
    eps, out, mean, rstd = _validate_layer_norm(x, gamma, beta, eps, out, mean_out, rstd_out)
    if x.shape[1] == 0:
        _fill_empty_rows(mean, rstd, eps)
        return out, mean, rstd
    xp = c.array_module(x)
    xf = x.astype(xp.float64)
    mu = xf.mean(axis=1, keepdims=True)
    d = xf - mu
    r = 1.0 / xp.sqrt((d * d).mean(axis=1, keepdims=True) + eps)
    out[...] = d * r * gamma + beta
    mean[...], rstd[...] = mu[:, 0], r[:, 0]
    return out, mean, rstd


def layer_norm_backward_ref(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                            dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
    """Reference in float64 array code. Returns ``(dx, dgamma, dbeta)``."""
    dx, dgamma, dbeta = _validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, True)
    if dy.size == 0:
        dgamma.fill(0)
        dbeta.fill(0)
        return dx, dgamma, dbeta
    xp = c.array_module(dy)
    dyf, r = dy.astype(xp.float64), rstd.astype(xp.float64)[:, None]
    xhat = (x.astype(xp.float64) - mean[:, None]) * r
    g = dyf * gamma
    dx[...] = r * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    dgamma[...] = (dyf * xhat).sum(axis=0)
    dbeta[...] = dyf.sum(axis=0)
    return dx, dgamma, dbeta


def batch_norm_ref(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, *, training: bool = True,
                   running_mean: Any = None, running_var: Any = None, momentum: float = 0.1, out: Any = None,
                   mean_out: Any = None, rstd_out: Any = None) -> tuple[Any, Any, Any]:
    """Reference in float64 array code. Returns ``(out, mean, rstd)``; updates running stats when training."""
    eps, training, momentum, out, mean, rstd = _validate_batch_norm(
        x, gamma, beta, eps, training, running_mean, running_var, momentum, out, mean_out, rstd_out)
    xp = c.array_module(x)
    xf = x.astype(xp.float64)
    if training:
        n = x.shape[0]
        mu = xf.mean(axis=0)
        var = ((xf - mu) ** 2).mean(axis=0)
        if running_mean is not None:
            running_mean[...] = (1 - momentum) * running_mean.astype(xp.float64) + momentum * mu
            running_var[...] = (1 - momentum) * running_var.astype(xp.float64) + momentum * var * (n / (n - 1))
    else:
        mu, var = running_mean.astype(xp.float64), running_var.astype(xp.float64)
    r = 1.0 / xp.sqrt(var + eps)
    out[...] = (xf - mu) * (r * gamma) + beta
    mean[...], rstd[...] = mu, r
    return out, mean, rstd


def batch_norm_backward_ref(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                            dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
    """Reference in float64 array code. Returns ``(dx, dgamma, dbeta)``."""
    dx, dgamma, dbeta = _validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, False)
    xp = c.array_module(dy)
    n = dy.shape[0]
    dyf, r = dy.astype(xp.float64), rstd.astype(xp.float64)
    xhat = (x.astype(xp.float64) - mean) * r
    db, dg = dyf.sum(axis=0), (dyf * xhat).sum(axis=0)
    if n:
        dx[...] = gamma * r / n * (n * dyf - db - xhat * dg)
    dgamma[...], dbeta[...] = dg, db
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- CPU


class _CpuKernels(NamedTuple):
    """Each entry is a pair: [0] with separate output arrays, [1] with the output bound to its input in
    compiled code (passed as two arguments, one array fails LLVM's run-time overlap check and the
    loops run scalar)."""
    layer_norm: tuple[Any, Any]  # (x, gamma, beta, eps, out, mean, rstd)
    layer_norm_backward: tuple[Any, Any]  # (dy, x, gamma, mean, rstd, dx, dgamma, dbeta)
    batch_norm: tuple[Any, Any]  # (x, gamma, beta, eps, training, momentum, running_mean, running_var, out, mean, rstd)
    batch_norm_backward: tuple[Any, Any]  # (dy, x, gamma, mean, rstd, dx, dgamma, dbeta)


@functools.cache
def _cpu_kernels(dtype: np.dtype) -> _CpuKernels:
    """Single-threaded kernels for one dtype; rows outside, contiguous columns inside (vectorised).

    Sums and statistics are float64. The elementwise output passes run in the dtype (in float32 they
    measured 1.1-1.4x faster for the forwards, 1.6x for BatchNorm's backward): the forwards subtract
    the mean split as hi + lo (hi = mean rounded to the dtype, so x - hi is exact for x near hi; lo
    corrects after a multiplication, or inside BatchNorm's shift), so a large common offset costs
    nothing; BatchNorm's dx pass works on the saved dtype statistics, with an error of eps times the
    terms it cancels, as in PyTorch's float32 kernel. LayerNorm's dx stays float64: with few columns
    its terms cancel to nothing (one column: dx = 0 exactly) and float32 gained nothing measurable.
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

    jit = njit(**c.NJIT_OPTIONS)
    return _CpuKernels(
        layer_norm=(
            jit(lambda x, g, b, eps, out, mean, rstd: layer_norm_rows(x, g, b, eps, out, mean, rstd)),
            jit(lambda x, g, b, eps, out, mean, rstd: layer_norm_rows(x, g, b, eps, x, mean, rstd))),
        layer_norm_backward=(
            jit(lambda dy, x, g, mu, r, dx, dg, db: layer_norm_backward_rows(dy, x, g, mu, r, dx, dg, db)),
            jit(lambda dy, x, g, mu, r, dx, dg, db: layer_norm_backward_rows(dy, x, g, mu, r, dy, dg, db))),
        batch_norm=(
            jit(lambda x, g, b, eps, t, mom, rm, rv, out, mu, r: batch_norm_columns(x, g, b, eps, t, mom, rm, rv,
                                                                                     out, mu, r)),
            jit(lambda x, g, b, eps, t, mom, rm, rv, out, mu, r: batch_norm_columns(x, g, b, eps, t, mom, rm, rv,
                                                                                     x, mu, r))),
        batch_norm_backward=(
            jit(lambda dy, x, g, mu, r, dx, dg, db: batch_norm_backward_columns(dy, x, g, mu, r, dx, dg, db)),
            jit(lambda dy, x, g, mu, r, dx, dg, db: batch_norm_backward_columns(dy, x, g, mu, r, dy, dg, db))),
    )


def layer_norm_cpu(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, out: Any = None, mean_out: Any = None,
                   rstd_out: Any = None) -> tuple[Any, Any, Any]:
    """Numba CPU kernel (single-threaded). Returns ``(out, mean, rstd)``."""
    eps, out, mean, rstd = _validate_layer_norm(x, gamma, beta, eps, out, mean_out, rstd_out)
    if x.shape[1] == 0:
        _fill_empty_rows(mean, rstd, eps)
    elif x.size:
        _cpu_kernels(x.dtype).layer_norm[c.same_buffer(out, x)](x, gamma, beta, eps, out, mean, rstd)
    return out, mean, rstd


def layer_norm_backward_cpu(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                            dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
    """Numba CPU kernel (single-threaded). Returns ``(dx, dgamma, dbeta)``."""
    dx, dgamma, dbeta = _validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, True)
    _cpu_kernels(x.dtype).layer_norm_backward[c.same_buffer(dx, dy)](dy, x, gamma, mean, rstd, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


def batch_norm_cpu(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, *, training: bool = True,
                   running_mean: Any = None, running_var: Any = None, momentum: float = 0.1, out: Any = None,
                   mean_out: Any = None, rstd_out: Any = None) -> tuple[Any, Any, Any]:
    """Numba CPU kernel (single-threaded). Returns ``(out, mean, rstd)``; updates running stats when training."""
    eps, training, momentum, out, mean, rstd = _validate_batch_norm(
        x, gamma, beta, eps, training, running_mean, running_var, momentum, out, mean_out, rstd_out)
    if running_mean is None:  # one compiled signature: empty arrays mean "no running statistics"
        running_mean = running_var = np.empty(0, x.dtype)
    kernel = _cpu_kernels(x.dtype).batch_norm[c.same_buffer(out, x)]
    kernel(x, gamma, beta, eps, training, momentum, running_mean, running_var, out, mean, rstd)
    return out, mean, rstd


def batch_norm_backward_cpu(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                            dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
    """Numba CPU kernel (single-threaded). Returns ``(dx, dgamma, dbeta)``."""
    dx, dgamma, dbeta = _validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, False)
    _cpu_kernels(x.dtype).batch_norm_backward[c.same_buffer(dx, dy)](dy, x, gamma, mean, rstd, dx, dgamma, dbeta)
    return dx, dgamma, dbeta


# --------------------------------------------------------------------------- CUDA


class _RowKernels(NamedTuple):
    """Block-per-row kernels, rows grid-stride."""
    layer_norm: Any  # (x, gamma, beta, eps, inv_m, out, mean, rstd)
    layer_norm_backward: Any  # (dy, x, gamma, mean, rstd, inv_m, acc, dx, dgamma, dbeta)


class _TileKernels(NamedTuple):
    """Column-strip kernels: a block (TX, TY) walks strips of TX columns, its thread rows TY rows apart."""
    layer_norm_columns: Any  # (dy, x, mean, rstd, acc): acc[0] += dgamma, acc[1] += dbeta
    batch_norm_stats: Any  # (x, inv_n, acc, second)
    # (x, gamma, beta, acc, inv_n, eps, training, update, momentum, unbias, r_mean, r_var, mean, rstd, out)
    batch_norm: Any
    batch_norm_columns: Any  # (dy, x, mean, rstd, acc): acc[0] += dbeta, acc[1] += dgamma
    batch_norm_backward: Any  # (dy, x, gamma, mean, rstd, acc, inv_n, dx, dgamma, dbeta)


# Where an output may be its input (out=x, dx=dy), it comes after it in the argument list, so the
# simulator's copy-back of the output lands last; on a GPU every such element is read before it is
# written, by the thread that writes it.


@functools.cache
def _row_kernels(dtype: np.dtype, threads: int) -> _RowKernels:
    """``threads``: block size, a power of 2; float32 kernels compute in float32 (typed constants)."""
    F = dtype.type
    ZERO, ONE = F(0), F(1)

    @c.device_jit()
    def block_sums(shared, a, b):
        """(sum of a, sum of b) over the block, returned to every thread (shared-memory tree)."""
        tid = cuda.threadIdx.x
        shared[0, tid] = a
        shared[1, tid] = b
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                shared[0, tid] += shared[0, tid + step]
                shared[1, tid] += shared[1, tid + step]
            cuda.syncthreads()
            step //= 2
        a, b = shared[0, 0], shared[1, 0]
        cuda.syncthreads()  # all have read the sums before the next call overwrites them
        return a, b

    @cuda.jit
    def layer_norm(x, gamma, beta, eps, inv_m, out, mean, rstd):
        shared = cuda.shared.array((2, threads), F)
        n, m = x.shape
        tid = cuda.threadIdx.x
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            s = x[i, 0]  # shift: sums of x - s keep float32 accuracy under a large common offset
            total = ZERO
            for j in range(tid, m, threads):
                total += x[i, j] - s
            cen = block_sums(shared, total, ZERO)[0] * inv_m
            total = ZERO
            for j in range(tid, m, threads):
                d = x[i, j] - s - cen
                total += d * d
            r = ONE / math.sqrt(block_sums(shared, total, ZERO)[0] * inv_m + eps)
            if tid == 0:
                mean[i] = s + cen
                rstd[i] = r
            for j in range(tid, m, threads):
                out[i, j] = (x[i, j] - s - cen) * r * gamma[j] + beta[j]

    @cuda.jit
    def layer_norm_backward(dy, x, gamma, mean, rstd, inv_m, acc, dx, dgamma, dbeta):
        shared = cuda.shared.array((2, threads), F)
        n, m = x.shape
        tid = cuda.threadIdx.x
        for j in range(cuda.grid(1), m, cuda.gridsize(1)):  # the column kernel ran before this one
            dgamma[j] = acc[0, j]
            dbeta[j] = acc[1, j]
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            mu, r = mean[i], rstd[i]
            a = ZERO
            b = ZERO
            for j in range(tid, m, threads):
                g = dy[i, j] * gamma[j]
                a += g
                b += g * ((x[i, j] - mu) * r)
            a, b = block_sums(shared, a, b)
            a *= inv_m
            b *= inv_m
            for j in range(tid, m, threads):
                dx[i, j] = r * (dy[i, j] * gamma[j] - a - (x[i, j] - mu) * r * b)

    return _RowKernels(layer_norm, layer_norm_backward)


@functools.cache
def _tile_kernels(dtype: np.dtype, tile: tuple[int, int]) -> _TileKernels:
    """``tile``: (TX, TY) threads; a warp reads 32 adjacent columns of one row (coalesced)."""
    F = dtype.type
    ZERO, ONE = F(0), F(1)
    TX, TY = tile

    @c.device_jit()
    def column_add(partial, acc, row, j, value):
        """Add ``value`` summed over the block's thread rows to acc[row, j]: one atomic per column and block."""
        tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
        partial[ty, tx] = value
        cuda.syncthreads()
        if ty == 0 and j < acc.shape[1]:
            for k in range(1, TY):
                value += partial[k, tx]
            cuda.atomic.add(acc, (row, j), value)
        cuda.syncthreads()  # the partials are read before the next strip writes them

    @cuda.jit
    def layer_norm_columns(dy, x, mean, rstd, acc):
        partial = cuda.shared.array((TY, TX), F)
        n, m = x.shape
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            dg = ZERO
            db = ZERO
            if j < m:
                for i in range(cuda.blockIdx.y * TY + cuda.threadIdx.y, n, cuda.gridDim.y * TY):
                    d = dy[i, j]
                    dg += d * ((x[i, j] - mean[i]) * rstd[i])
                    db += d
            column_add(partial, acc, 0, j, dg)
            column_add(partial, acc, 1, j, db)

    @cuda.jit
    def batch_norm_stats(x, inv_n, acc, second):
        # First call: acc[0, j] = sum_i (x_ij - s_j) with s_j = x_0j. Second: acc[1, j] = sum_i (x_ij - s_j - c_j)^2
        # with c_j = acc[0, j] / n, and acc[2, j] = s_j (the normalize kernel may write over x's row 0).
        partial = cuda.shared.array((TY, TX), F)
        n, m = x.shape
        i0 = cuda.blockIdx.y * TY + cuda.threadIdx.y
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            total = ZERO
            if j < m:
                s = x[0, j]
                cen = acc[0, j] * inv_n if second else ZERO
                for i in range(i0, n, cuda.gridDim.y * TY):
                    d = x[i, j] - s - cen
                    total += d * d if second else d
                if second and i0 == 0:
                    acc[2, j] = s
            column_add(partial, acc, 1 if second else 0, j, total)

    @cuda.jit
    def batch_norm(x, gamma, beta, acc, inv_n, eps, training, update, momentum, unbias, r_mean, r_var,
                   mean, rstd, out):
        n, m = x.shape
        i0 = cuda.blockIdx.y * TY + cuda.threadIdx.y
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            if j < m:
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
                for i in range(i0, n, cuda.gridDim.y * TY):
                    out[i, j] = (x[i, j] - s - cen) * scale + shift

    @cuda.jit
    def batch_norm_columns(dy, x, mean, rstd, acc):
        partial = cuda.shared.array((TY, TX), F)
        n, m = x.shape
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            db = ZERO
            dg = ZERO
            if j < m:
                mu = mean[j]
                for i in range(cuda.blockIdx.y * TY + cuda.threadIdx.y, n, cuda.gridDim.y * TY):
                    d = dy[i, j]
                    db += d
                    dg += d * (x[i, j] - mu)
                dg *= rstd[j]
            column_add(partial, acc, 0, j, db)
            column_add(partial, acc, 1, j, dg)

    @cuda.jit
    def batch_norm_backward(dy, x, gamma, mean, rstd, acc, inv_n, dx, dgamma, dbeta):
        n, m = x.shape
        i0 = cuda.blockIdx.y * TY + cuda.threadIdx.y
        for j0 in range(cuda.blockIdx.x * TX, m, cuda.gridDim.x * TX):
            j = j0 + cuda.threadIdx.x
            if j < m:
                mu, r = mean[j], rstd[j]
                # dx = k (dy - a - (x - mean) b), k = gamma rstd, a = dbeta / n, b = dgamma rstd / n
                k, a, b = gamma[j] * r, acc[0, j] * inv_n, acc[1, j] * r * inv_n
                if i0 == 0:
                    dbeta[j] = acc[0, j]
                    dgamma[j] = acc[1, j]
                for i in range(i0, n, cuda.gridDim.y * TY):
                    dx[i, j] = k * (dy[i, j] - a - (x[i, j] - mu) * b)

    return _TileKernels(layer_norm_columns, batch_norm_stats, batch_norm, batch_norm_columns, batch_norm_backward)


def _tiles(n: int, m: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(grid, block) of the column-strip kernels; at least one block row, so row-0 threads exist when n == 0."""
    tile = c.column_tile()
    return c.column_grid(max(n, 1), m, tile), tile


def layer_norm_cuda(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, out: Any = None, mean_out: Any = None,
                    rstd_out: Any = None) -> tuple[Any, Any, Any]:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``(out, mean, rstd)``."""
    eps, out, mean, rstd = _validate_layer_norm(x, gamma, beta, eps, out, mean_out, rstd_out)
    n, m = x.shape
    if m == 0:
        _fill_empty_rows(mean, rstd, eps)
    if x.size == 0:
        return out, mean, rstd
    blocks, threads = c.row_launch(n, m)
    F = x.dtype.type
    xd, gd, bd, od, md, rd = c.cuda_args(x, gamma, beta, out, mean, rstd)
    _row_kernels(x.dtype, threads).layer_norm[blocks, threads, c.current_stream()](
        xd, gd, bd, F(eps), F(1 / m), od, md, rd)
    return out, mean, rstd


def layer_norm_backward_cuda(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                             dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
    """numba.cuda kernels on CuPy's current stream (NumPy arrays under the simulator); ``(dx, dgamma, dbeta)``."""
    dx, dgamma, dbeta = _validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, True)
    n, m = dy.shape
    if dy.size == 0:
        dgamma.fill(0)
        dbeta.fill(0)
        return dx, dgamma, dbeta
    blocks, threads = c.row_launch(n, m)
    stream = c.current_stream()
    acc = c.array_module(dy).zeros((2, m), dy.dtype)
    dyd, xd, gd, md, rd, ad, dxd, dgd, dbd = c.cuda_args(dy, x, gamma, mean, rstd, acc, dx, dgamma, dbeta)
    grid, tile = _tiles(n, m)
    # Column sums first: with dx_out=dy the row kernel writes over dy.
    _tile_kernels(dy.dtype, tile).layer_norm_columns[grid, tile, stream](dyd, xd, md, rd, ad)
    _row_kernels(dy.dtype, threads).layer_norm_backward[blocks, threads, stream](
        dyd, xd, gd, md, rd, dy.dtype.type(1 / m), ad, dxd, dgd, dbd)
    return dx, dgamma, dbeta


def batch_norm_cuda(x: Any, gamma: Any, beta: Any, eps: float = 1e-5, *, training: bool = True,
                    running_mean: Any = None, running_var: Any = None, momentum: float = 0.1, out: Any = None,
                    mean_out: Any = None, rstd_out: Any = None) -> tuple[Any, Any, Any]:
    """numba.cuda kernels on CuPy's current stream (NumPy arrays under the simulator). Returns ``(out, mean, rstd)``."""
    eps, training, momentum, out, mean, rstd = _validate_batch_norm(
        x, gamma, beta, eps, training, running_mean, running_var, momentum, out, mean_out, rstd_out)
    n, m = x.shape
    if m == 0:
        return out, mean, rstd
    F, xp, stream = x.dtype.type, c.array_module(x), c.current_stream()
    grid, tile = _tiles(n, m)
    kernels = _tile_kernels(x.dtype, tile)
    acc = xp.zeros((3, m), x.dtype) if training else xp.empty((3, m), x.dtype)
    update = running_mean is not None
    if not update:  # stand-ins the kernel never touches, for one compiled signature
        running_mean, running_var = acc[0], acc[1]
    xd, gd, bd, ad, rmd, rvd, md, rd, od = c.cuda_args(x, gamma, beta, acc, running_mean, running_var, mean, rstd, out)
    inv_n = F(1 / max(n, 1))
    if training:
        for second in (False, True):
            kernels.batch_norm_stats[grid, tile, stream](xd, inv_n, ad, second)
    kernels.batch_norm[grid, tile, stream](xd, gd, bd, ad, inv_n, F(eps), training, update and training,
                                           F(momentum), F(n / max(n - 1, 1)), rmd, rvd, md, rd, od)
    return out, mean, rstd


def batch_norm_backward_cuda(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                             dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
    """numba.cuda kernels on CuPy's current stream (NumPy arrays under the simulator); ``(dx, dgamma, dbeta)``."""
    dx, dgamma, dbeta = _validate_backward(dy, x, gamma, mean, rstd, dx_out, dgamma_out, dbeta_out, False)
    n, m = dy.shape
    if dy.size == 0:
        dgamma.fill(0)
        dbeta.fill(0)
        return dx, dgamma, dbeta
    grid, tile = _tiles(n, m)
    kernels, stream = _tile_kernels(dy.dtype, tile), c.current_stream()
    acc = c.array_module(dy).zeros((2, m), dy.dtype)
    dyd, xd, gd, md, rd, ad, dxd, dgd, dbd = c.cuda_args(dy, x, gamma, mean, rstd, acc, dx, dgamma, dbeta)
    kernels.batch_norm_columns[grid, tile, stream](dyd, xd, md, rd, ad)
    kernels.batch_norm_backward[grid, tile, stream](dyd, xd, gd, md, rd, ad, dy.dtype.type(1 / n), dxd, dgd, dbd)
    return dx, dgamma, dbeta
