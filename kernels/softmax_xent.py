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
from numpy import uint64

from . import _common as c
from ._indexing import strided
from ._reductions import block_reducer
from .fast_math import exp32, maximum

OPS = c.OpTable()

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


# --------------------------------------------------------------------------- validation


def _check_labels(logits: Any, labels: Any, labels_checked: bool) -> None:
    n, k = logits.shape
    c.check_array("labels", labels, shape=(n,), floating=False)
    if labels.dtype not in INDEX_DTYPES:
        raise TypeError(f"labels must be int32 or int64 class indices, got {labels.dtype}")
    c.check_same_kind("logits", logits, labels=labels)
    if labels_checked and not isinstance(labels, np.ndarray):
        return  # the caller checked their range once (fit does, on the host): no host sync per call
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


class _XentPlan(NamedTuple):
    logits: Any
    labels: Any
    smoothing: float
    dlogits: Any


class _RowsPlan(NamedTuple):
    x: Any
    log: bool  # log_softmax instead of softmax
    out: Any


def _softmax_xent(logits: Any, labels: Any, smoothing: float = 0.0, dlogits_out: Any = None, *,
                  labels_checked: bool = False) -> _XentPlan:
    """Mean softmax cross-entropy of (n, k) logits over (n,) int32/int64 labels in [0, k), with label
    smoothing, and its gradient. Returns ``(loss, dlogits)``; ``loss`` is 0-d, in logits' dtype and
    on their device. ``labels_checked=True``: the caller guarantees the labels' range, so device
    labels are not read back (a host sync) to check it; host labels are checked regardless."""
    c.check_array("logits", logits, ndim=2)
    if logits.shape[0] == 0:
        raise ValueError("logits has no rows: the mean loss over 0 rows is undefined")
    _check_labels(logits, labels, labels_checked)
    smoothing = c.check_finite_scalar("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    dlogits = c.output("dlogits_out", dlogits_out, logits, logits.shape, logits.dtype,
                       in_place_of=logits, logits=logits, labels=labels)
    return _XentPlan(logits, labels, smoothing, dlogits)


def _rows_plan(x: Any, out: Any, log: bool) -> _RowsPlan:
    c.check_array("x", x, ndim=2)
    return _RowsPlan(x, log, c.output("out", out, x, x.shape, x.dtype, in_place_of=x, x=x))


def _softmax(x: Any, out: Any = None) -> _RowsPlan:
    """exp(x) / sum(exp(x)) over each row of x (n, k). Returns ``out``."""
    return _rows_plan(x, out, False)


def _log_softmax(x: Any, out: Any = None) -> _RowsPlan:
    """x - log(sum(exp(x))) over each row of x (n, k). Returns ``out``."""
    return _rows_plan(x, out, True)


# --------------------------------------------------------------------------- references


def _log_softmax_ref(x: Any) -> Any:
    xp = c.array_module(x)
    z = x - x.max(axis=1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))


def _xent_ref(p: _XentPlan) -> tuple[Any, Any]:
    logits, labels, smoothing = p.logits, p.labels, p.smoothing
    xp = c.array_module(logits)
    n, k = logits.shape
    log_p = _log_softmax_ref(logits)
    t = xp.full(logits.shape, smoothing / k, dtype=logits.dtype)
    t[xp.arange(n), labels] += 1 - smoothing
    # The one-hot and smoothing terms apart, so a -inf logit of a zero-weight class adds 0, not 0 * inf.
    loss = -(1 - smoothing) * log_p[xp.arange(n), labels].sum(dtype=xp.float64) / n
    if smoothing:
        loss = loss - smoothing * log_p.mean(axis=1, dtype=xp.float64).sum() / n
    p.dlogits[...] = (xp.exp(log_p) - t) / n
    return xp.asarray(loss, dtype=logits.dtype), p.dlogits


def _rows_ref(p: _RowsPlan) -> Any:
    if p.x.size:
        log_p = _log_softmax_ref(p.x)
        p.out[...] = log_p if p.log else c.array_module(p.x).exp(log_p)
    return p.out


# --------------------------------------------------------------------------- CPU


class _CpuBodies(NamedTuple):
    xent: Any  # (x, labels, smoothing, n, g) -> these rows' share of the mean loss over n rows (float64)
    rows: Any  # (x, log, out): softmax or log-softmax


@functools.cache
def _cpu_bodies(dtype: np.dtype) -> _CpuBodies:
    """Kernel bodies over a block of rows for one float dtype; float32 uses the vectorising exp32."""
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

    return _CpuBodies(xent_rows, softmax_rows)


def _xent_cpu(p: _XentPlan) -> tuple[Any, Any]:
    args = (p.logits, p.labels, p.smoothing, p.logits.shape[0], p.dlogits)
    parts = c.run_cpu(_cpu_bodies(p.logits.dtype).xent, args, rows_in=(0, 1, 4))
    return np.asarray(math.fsum(parts), dtype=p.logits.dtype), p.dlogits


def _rows_cpu(p: _RowsPlan) -> Any:
    if p.x.size:
        c.run_cpu(_cpu_bodies(p.x.dtype).rows, (p.x, p.log, p.out), rows_in=(0, 2))
    return p.out


# --------------------------------------------------------------------------- CUDA


class _CudaKernels(NamedTuple):
    # (row_shift, x, labels, smoothing, on_label, everywhere, inv_n, loss, g): each block adds its rows'
    # loss / n into loss[0]
    xent: Any
    rows: Any  # (row_shift, x, log, out)


@functools.cache
def _cuda_kernels(dtype: np.dtype, threads: int) -> _CudaKernels:
    """Block-per-row kernels for blocks of ``threads`` threads, rows grid-stride over a grid of
    2**row_shift blocks (see _indexing: unsigned indices, no division)."""
    ftype = dtype.type
    zero = ftype(0)
    lowest = ftype(-np.inf)
    device = c.device_jit()
    reduce = block_reducer(threads)
    thread_shift = threads.bit_length() - 1

    @device
    def row_stats(x, i, shared):
        """(max_j x[i, j], sum_j exp(x[i, j] - max)) for row i, to every thread of the block."""
        first, step, k = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        m = lowest
        j = first
        while j < k:
            m = max(m, x[i, j])
            j += step
        m = reduce(shared, m, zero, True)[0]
        s = zero
        j = first
        while j < k:
            s += math.exp(x[i, j] - m)
            j += step
        return m, reduce(shared, s, zero, False)[0]

    @cuda.jit
    def xent(row_shift, x, labels, smoothing, on_label, everywhere, inv_n, loss, g):
        shared = cuda.shared.array((2, threads), ftype)
        first, step, k = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        inv_k = ftype(1) / ftype(x.shape[1])
        block_loss = zero  # the losses of this block's rows, summed in thread 0
        i, row_step, n = strided(cuda.blockIdx.x, x.shape[0], row_shift)
        while i < n:
            y = uint64(labels[i])  # in [0, k): checked before the launch
            x_y = x[i, y]  # read before the reductions' barriers: in place, row i gets overwritten below
            row_sum = zero
            if smoothing > zero:
                j = first
                while j < k:
                    row_sum += x[i, j]
                    j += step
                row_sum = reduce(shared, row_sum, zero, False)[0]
            m, s = row_stats(x, i, shared)
            if first == 0:
                # -sum_j t_j log p_j = log(s) + (1 - e) (m - x_y) + e (m - mean_j x_j): every term >= 0
                gap = (ftype(1) - smoothing) * (m - x_y) + smoothing * (m - row_sum * inv_k)
                block_loss += gap + math.log(s)
            scale = inv_n / s
            j = first
            while j < k:
                v = math.exp(x[i, j] - m) * scale - everywhere
                if j == y:
                    v -= on_label
                g[i, j] = v
                j += step
            i += row_step
        if first == 0:
            cuda.atomic.add(loss, 0, block_loss * inv_n)  # one atomic per block: loss[0] becomes the mean

    @cuda.jit
    def rows(row_shift, x, log, out):
        shared = cuda.shared.array((2, threads), ftype)
        first, step, k = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        i, row_step, n = strided(cuda.blockIdx.x, x.shape[0], row_shift)
        while i < n:
            m, s = row_stats(x, i, shared)
            shift = m + math.log(s)
            scale = ftype(1) / s
            j = first
            while j < k:
                out[i, j] = x[i, j] - shift if log else math.exp(x[i, j] - m) * scale
                j += step
            i += row_step

    return _CudaKernels(xent, rows)


def _xent_cuda(p: _XentPlan) -> tuple[Any, Any]:
    blocks, threads, row_shift = c.row_launch(*p.logits.shape)
    loss = c.array_module(p.logits).zeros(1, dtype=p.logits.dtype)
    (n, k), F = p.logits.shape, p.logits.dtype.type
    e = float(F(p.smoothing))
    # the scalars in the logits' dtype: a float32 kernel computes in float32
    c.launch(_cuda_kernels(p.logits.dtype, threads).xent, blocks, threads, row_shift, p.logits, p.labels, F(e),
             F((1.0 - e) / n), F(e / (k * n)), F(1.0 / n), loss, p.dlogits)
    return loss.reshape(()), p.dlogits


def _rows_cuda(p: _RowsPlan) -> Any:
    if p.x.size:
        blocks, threads, row_shift = c.row_launch(*p.x.shape)
        c.launch(_cuda_kernels(p.x.dtype, threads).rows, blocks, threads, row_shift, p.x, p.log, p.out)
    return p.out


softmax_xent_ref, softmax_xent_cpu, softmax_xent_cuda = OPS.add(
    "softmax_xent", _softmax_xent, _xent_ref, _xent_cpu, _xent_cuda)
softmax_ref, softmax_cpu, softmax_cuda = OPS.add("softmax", _softmax, _rows_ref, _rows_cpu, _rows_cuda)
log_softmax_ref, log_softmax_cpu, log_softmax_cuda = OPS.add(
    "log_softmax", _log_softmax, _rows_ref, _rows_cpu, _rows_cuda)
