"""Softmax cross-entropy over integer labels (value and gradient in one kernel), softmax, log-softmax.

logits / x: (n, k) float32/float64, C-contiguous. labels: (n,) int32/int64 with values in [0, k).
With t = (1 - smoothing) * onehot(labels) + smoothing / k (PyTorch's ``label_smoothing``)::

    loss    = mean_i( -sum_j t_ij * log_softmax(x)_ij )    a 0-d array, logits' dtype and device
    dlogits = (softmax(x) - t) / n

``softmax``/``log_softmax`` work over the last axis. ``dlogits_out`` / ``out`` may be the input
itself (in place). The kernels read each row from memory once and write it once: a max pass, a
fused exp-and-sum pass, a write pass, while the row sits in cache (a thread block per row on GPU).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c
from .fast_math import exp32, maximum

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


# --------------------------------------------------------------------------- validation


def _check_labels(logits: Any, labels: Any) -> None:
    n, k = logits.shape
    c.check_array("labels", labels, shape=(n,), floating=False)
    if labels.dtype not in INDEX_DTYPES:
        raise TypeError(f"labels must be int32 or int64 class indices, got {labels.dtype}")
    c.check_same_kind("logits", logits, labels=labels)
    if isinstance(labels, np.ndarray):  # one compiled pass instead of two NumPy reductions
        i = _first_outside(labels, k)
        bad = None if i < 0 else int(labels[i])
    else:  # host syncs on a GPU: a bad label must never launch
        low, high = int(labels.min()), int(labels.max())
        bad = low if low < 0 else high if high >= k else None
    if bad is not None:
        raise ValueError(f"labels must lie in [0, {k}) for logits with {k} classes, got {bad}")


@njit(**c.NJIT_OPTIONS)
def _first_outside(labels, k):
    """Index of the first label outside [0, k), or -1."""
    for i in range(labels.size):
        if labels[i] < 0 or labels[i] >= k:
            return i
    return -1


def _validate_xent(logits: Any, labels: Any, smoothing: float, dlogits_out: Any) -> tuple[float, Any]:
    c.check_array("logits", logits, ndim=2)
    if logits.shape[0] == 0:
        raise ValueError("logits has no rows: the mean loss over 0 rows is undefined")
    _check_labels(logits, labels)
    smoothing = c.check_finite_scalar("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    dlogits = c.output("dlogits_out", dlogits_out, logits, logits.shape, logits.dtype,
                       in_place_of=logits, logits=logits, labels=labels)
    return smoothing, dlogits


def _validate_rows(x: Any, out: Any) -> Any:
    c.check_array("x", x, ndim=2)
    return c.output("out", out, x, x.shape, x.dtype, in_place_of=x, x=x)


# --------------------------------------------------------------------------- references


def _log_softmax(x: Any) -> Any:
    xp = c.array_module(x)
    z = x - x.max(axis=1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))


def softmax_xent_ref(logits: Any, labels: Any, smoothing: float = 0.0, dlogits_out: Any = None) -> tuple[Any, Any]:
    """Reference in plain array code (NumPy or CuPy). Returns ``(loss, dlogits)``."""
    smoothing, dlogits = _validate_xent(logits, labels, smoothing, dlogits_out)
    xp = c.array_module(logits)
    n, k = logits.shape
    log_p = _log_softmax(logits)
    t = xp.full(logits.shape, smoothing / k, dtype=logits.dtype)
    t[xp.arange(n), labels] += 1 - smoothing
    # The one-hot and smoothing terms apart, so a -inf logit of a zero-weight class adds 0, not 0 * inf.
    loss = -(1 - smoothing) * log_p[xp.arange(n), labels].sum(dtype=xp.float64) / n
    if smoothing:
        loss = loss - smoothing * log_p.mean(axis=1, dtype=xp.float64).sum() / n
    dlogits[...] = (xp.exp(log_p) - t) / n
    return xp.asarray(loss, dtype=logits.dtype), dlogits


def softmax_ref(x: Any, out: Any = None) -> Any:
    """exp(x) / sum(exp(x)) over each row. Returns ``out``."""
    out = _validate_rows(x, out)
    if x.size:
        out[...] = c.array_module(x).exp(_log_softmax(x))
    return out


def log_softmax_ref(x: Any, out: Any = None) -> Any:
    """x - log(sum(exp(x))) over each row. Returns ``out``."""
    out = _validate_rows(x, out)
    if x.size:
        out[...] = _log_softmax(x)
    return out


# --------------------------------------------------------------------------- CPU


class _CpuKernels(NamedTuple):
    xent: Any  # (x, labels, smoothing, n, g) -> these rows' share of the mean loss over n rows (float64)
    xent_inplace: Any  # (x, labels, smoothing, n) -> the same, gradient written over x
    rows: Any  # (x, log, out): softmax or log-softmax
    rows_inplace: Any  # (x, log)


@functools.cache
def _cpu_kernels(dtype: np.dtype) -> _CpuKernels:
    """Kernels over a block of rows for one float dtype; float32 uses the vectorising exp32."""
    ftype = dtype.type
    zero = ftype(0)
    exp = exp32 if dtype == np.float32 else math.exp

    @njit(inline="always")
    def row_max(x, i):
        m = x[i, 0]
        for j in range(1, x.shape[1]):
            m = maximum(m, x[i, j])
        return m

    @njit(inline="always")
    def row_sum(x, i):
        s = zero
        for j in range(x.shape[1]):
            s += x[i, j]
        return s

    @njit(inline="always")
    def exp_sum(x, i, m, out, store):
        """sum_j exp(x[i, j] - m), keeping each term in out[i, j] when ``store``."""
        s = zero
        for j in range(x.shape[1]):
            e = exp(x[i, j] - m)
            if store:
                out[i, j] = e
            s += e
        return s

    @njit(inline="always")
    def xent_rows(x, labels, smoothing, n, g):
        """Loss and gradient of these rows, as parts of a mean over ``n`` rows."""
        rows, k = x.shape
        on_label = ftype((1.0 - smoothing) / n)
        everywhere = ftype(smoothing / (k * n))
        total = 0.0
        for i in range(rows):
            y = labels[i]
            m = row_max(x, i)
            # -sum_j t_j log p_j = log(s) + (1 - e) (m - x_y) + e (m - mean_j x_j): every term >= 0
            gap = np.float64(m) - x[i, y]
            if smoothing > 0.0:
                gap = (1.0 - smoothing) * gap + smoothing * (np.float64(m) - row_sum(x, i) / k)
            s = exp_sum(x, i, m, g, True)
            total += gap + math.log(s)
            scale = ftype(1.0 / (s * n))
            for j in range(k):
                g[i, j] = g[i, j] * scale - everywhere
            g[i, y] -= on_label
        return total / n

    @njit(inline="always")
    def softmax_rows(x, log, out):
        for i in range(x.shape[0]):
            m = row_max(x, i)
            s = exp_sum(x, i, m, out, not log)
            if log:
                shift = ftype(m + math.log(s))
                for j in range(x.shape[1]):
                    out[i, j] = x[i, j] - shift
            else:
                scale = ftype(1.0 / s)
                for j in range(x.shape[1]):
                    out[i, j] *= scale

    # The in-place entries pass one array twice *inside* compiled code, so LLVM sees a single
    # pointer and vectorises; two distinct arguments would fail its overlap check at run time.
    @njit(**c.NJIT_OPTIONS)
    def xent(x, labels, smoothing, n, g):
        return xent_rows(x, labels, smoothing, n, g)

    @njit(**c.NJIT_OPTIONS)
    def xent_inplace(x, labels, smoothing, n):
        return xent_rows(x, labels, smoothing, n, x)

    @njit(**c.NJIT_OPTIONS)
    def rows(x, log, out):
        softmax_rows(x, log, out)

    @njit(**c.NJIT_OPTIONS)
    def rows_inplace(x, log):
        softmax_rows(x, log, x)

    return _CpuKernels(xent, xent_inplace, rows, rows_inplace)


def softmax_xent_cpu(logits: Any, labels: Any, smoothing: float = 0.0, dlogits_out: Any = None) -> tuple[Any, Any]:
    """Numba CPU kernel (rows shared across threads for large inputs). Returns ``(loss, dlogits)``."""
    smoothing, dlogits = _validate_xent(logits, labels, smoothing, dlogits_out)
    kernels, n = _cpu_kernels(logits.dtype), logits.shape[0]
    if c.same_buffer(dlogits, logits):
        parts = c.over_row_blocks(kernels.xent_inplace, (logits, labels, smoothing, n), rows_in=(0, 1))
    else:
        parts = c.over_row_blocks(kernels.xent, (logits, labels, smoothing, n, dlogits), rows_in=(0, 1, 4))
    return np.asarray(math.fsum(parts), dtype=logits.dtype), dlogits


def _rows_cpu(x: Any, out: Any, log: bool) -> Any:
    out = _validate_rows(x, out)
    if x.size:
        kernels = _cpu_kernels(x.dtype)
        if c.same_buffer(out, x):
            c.over_row_blocks(kernels.rows_inplace, (x, log), rows_in=(0,))
        else:
            c.over_row_blocks(kernels.rows, (x, log, out), rows_in=(0, 2))
    return out


def softmax_cpu(x: Any, out: Any = None) -> Any:
    """Numba CPU kernel (rows shared across threads for large inputs). Returns ``out``."""
    return _rows_cpu(x, out, False)


def log_softmax_cpu(x: Any, out: Any = None) -> Any:
    """Numba CPU kernel (rows shared across threads for large inputs). Returns ``out``."""
    return _rows_cpu(x, out, True)


# --------------------------------------------------------------------------- CUDA


class _CudaKernels(NamedTuple):
    xent: Any  # [grid](x, labels, smoothing, loss, g): each block adds its rows' loss / n into loss[0]
    xent_inplace: Any  # [grid](x, labels, smoothing, loss)
    rows: Any  # [grid](x, log, out)
    rows_inplace: Any  # [grid](x, log)


@functools.cache
def _cuda_kernels(dtype: np.dtype, threads: int) -> _CudaKernels:
    ftype = dtype.type
    zero = ftype(0)
    lowest = ftype(-np.inf)
    device = c.device_jit()

    @device
    def block_reduce(shared, value, take_max):
        """Max or sum of ``value`` over the block, returned to every thread (shared-memory tree)."""
        tid = cuda.threadIdx.x
        shared[tid] = value
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                other = shared[tid + step]
                shared[tid] = max(shared[tid], other) if take_max else shared[tid] + other
            cuda.syncthreads()
            step //= 2
        result = shared[0]
        cuda.syncthreads()  # all have read shared[0] before the next reduction overwrites it
        return result

    @device
    def row_stats(x, i, shared):
        """(max_j x[i, j], sum_j exp(x[i, j] - max)) for row i, to every thread of the block."""
        tid = cuda.threadIdx.x
        m = lowest
        for j in range(tid, x.shape[1], threads):
            m = max(m, x[i, j])
        m = block_reduce(shared, m, True)
        s = zero
        for j in range(tid, x.shape[1], threads):
            s += math.exp(x[i, j] - m)
        return m, block_reduce(shared, s, False)

    @device
    def xent_rows(x, labels, smoothing, loss, g):
        shared = cuda.shared.array(threads, ftype)
        n, k = x.shape
        tid = cuda.threadIdx.x
        on_label = ftype((1.0 - smoothing) / n)
        everywhere = ftype(smoothing / (k * n))
        block_loss = zero  # the losses of this block's rows, summed in thread 0
        for i in range(cuda.blockIdx.x, n, cuda.gridDim.x):
            y = labels[i]
            x_y = x[i, y]  # read before the reductions' barriers: in place, row i gets overwritten below
            row_sum = zero
            if smoothing > 0:
                for j in range(tid, k, threads):
                    row_sum += x[i, j]
                row_sum = block_reduce(shared, row_sum, False)
            m, s = row_stats(x, i, shared)
            if tid == 0:
                # -sum_j t_j log p_j = log(s) + (1 - e) (m - x_y) + e (m - mean_j x_j): every term >= 0
                gap = (1 - smoothing) * (m - x_y) + smoothing * (m - row_sum / k)
                block_loss += ftype(gap + math.log(s))
            scale = ftype(1.0 / (s * n))
            for j in range(tid, k, threads):
                v = math.exp(x[i, j] - m) * scale - everywhere
                if j == y:
                    v -= on_label
                g[i, j] = v
        if tid == 0:
            cuda.atomic.add(loss, 0, ftype(block_loss / n))  # one atomic per block: loss[0] becomes the mean

    @device
    def softmax_rows(x, log, out):
        shared = cuda.shared.array(threads, ftype)
        for i in range(cuda.blockIdx.x, x.shape[0], cuda.gridDim.x):
            m, s = row_stats(x, i, shared)
            shift = ftype(m + math.log(s))
            scale = ftype(1.0 / s)
            for j in range(cuda.threadIdx.x, x.shape[1], threads):
                out[i, j] = x[i, j] - shift if log else math.exp(x[i, j] - m) * scale

    # Separate in-place kernels: the simulator copies every array argument in and back, so one
    # array passed twice would lose one of the two write-backs.
    @cuda.jit
    def xent(x, labels, smoothing, loss, g):
        xent_rows(x, labels, smoothing, loss, g)

    @cuda.jit
    def xent_inplace(x, labels, smoothing, loss):
        xent_rows(x, labels, smoothing, loss, x)

    @cuda.jit
    def rows(x, log, out):
        softmax_rows(x, log, out)

    @cuda.jit
    def rows_inplace(x, log):
        softmax_rows(x, log, x)

    return _CudaKernels(xent, xent_inplace, rows, rows_inplace)


def softmax_xent_cuda(logits: Any, labels: Any, smoothing: float = 0.0, dlogits_out: Any = None) -> tuple[Any, Any]:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator).

    Returns ``(loss, dlogits)``; ``loss`` is a 0-d view of a 1-element accumulator.
    """
    smoothing, dlogits = _validate_xent(logits, labels, smoothing, dlogits_out)
    xp = c.array_module(logits)
    n, k = logits.shape
    blocks, threads = c.row_launch(n, k)
    kernels = _cuda_kernels(logits.dtype, threads)
    loss = xp.zeros(1, dtype=logits.dtype)
    launch = (blocks, threads, c.current_stream())
    smoothing = logits.dtype.type(smoothing)
    if c.same_buffer(dlogits, logits):
        xd, yd, ld = c.cuda_args(logits, labels, loss)
        kernels.xent_inplace[launch](xd, yd, smoothing, ld)
    else:
        xd, yd, ld, gd = c.cuda_args(logits, labels, loss, dlogits)
        kernels.xent[launch](xd, yd, smoothing, ld, gd)
    return loss.reshape(()), dlogits


def _rows_cuda(x: Any, out: Any, log: bool) -> Any:
    out = _validate_rows(x, out)
    if x.size == 0:
        return out
    blocks, threads = c.row_launch(*x.shape)
    kernels = _cuda_kernels(x.dtype, threads)
    launch = (blocks, threads, c.current_stream())
    if c.same_buffer(out, x):
        kernels.rows_inplace[launch](*c.cuda_args(x), log)
    else:
        xd, od = c.cuda_args(x, out)
        kernels.rows[launch](xd, log, od)
    return out


def softmax_cuda(x: Any, out: Any = None) -> Any:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``out``."""
    return _rows_cuda(x, out, False)


def log_softmax_cuda(x: Any, out: Any = None) -> Any:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``out``."""
    return _rows_cuda(x, out, True)
