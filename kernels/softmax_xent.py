"""Softmax cross-entropy over integer labels (value and gradient in one kernel), softmax, log-softmax.

logits / x: (n, k) float32/float64, C-contiguous. labels: (n,) int32/int64 with values in [0, k).
With t = (1 - smoothing) * onehot(labels) + smoothing / k (PyTorch's ``label_smoothing``)::

    loss    = mean_i( -sum_j t_ij * log_softmax(x)_ij )    a 0-d array, logits' dtype and device
    dlogits = (softmax(x) - t) / n

and, where ``hits_out`` is given, it receives the number of rows whose largest logit is at the label
(the first largest, as argmax picks). ``softmax``/``log_softmax`` work over the last axis.
``dlogits_out`` / ``out`` may be the input itself (in place). The kernels read each row from memory
once and write it once: a max pass, a fused exp-and-sum pass, a write pass, while the row sits in
cache (a thread block per row on GPU). The CUDA loss is summed in float64 over the grid in a fixed
order (_reductions.grid_totals): the same logits give the same loss, to the last bit.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit
from numpy import float64, int32, uint64

from . import _common as c
from ._indexing import strided
from ._reductions import block_reducer, grid_totals
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
    loss: Any  # 0-d, logits' dtype
    hits: Any  # (1,) int64 or float64, or None


class _RowsPlan(NamedTuple):
    x: Any
    log: bool  # log_softmax instead of softmax
    out: Any


def _softmax_xent(logits: Any, labels: Any, smoothing: float = 0.0, dlogits_out: Any = None, *,
                  labels_checked: bool = False, loss_out: Any = None, hits_out: Any = None) -> _XentPlan:
    """Mean softmax cross-entropy of (n, k) logits over (n,) int32/int64 labels in [0, k), with label
    smoothing, and its gradient. Returns ``(loss, dlogits)``; ``loss`` is 0-d, in logits' dtype and
    on their device (``loss_out`` when given). ``hits_out``: a (1,) int64 or float64 array that receives
    the number of rows whose largest logit (the first, on ties) is at their label. ``labels_checked=True``:
    the caller guarantees the labels' range, so device labels are not read back (a host sync) to check
    it; host labels are checked regardless."""
    c.check_array("logits", logits, ndim=2)
    if logits.shape[0] == 0:
        raise ValueError("logits has no rows: the mean loss over 0 rows is undefined")
    _check_labels(logits, labels, labels_checked)
    smoothing = c.check_finite_scalar("smoothing", smoothing, low=0.0, high=1.0, high_open=True)
    inputs = {"logits": logits, "labels": labels}
    dlogits = c.output("dlogits_out", dlogits_out, logits, logits.shape, logits.dtype, in_place_of=logits, **inputs)
    loss = c.output("loss_out", loss_out, logits, (), logits.dtype, **inputs, dlogits_out=dlogits)
    if hits_out is not None:
        c.check_array("hits_out", hits_out, shape=(1,), floating=False)
        if hits_out.dtype not in (np.int64, np.float64):
            raise TypeError(f"hits_out must be int64 or float64, got {hits_out.dtype}")
        c.check_same_kind("logits", logits, hits_out=hits_out)
        c.check_no_overlap("hits_out", hits_out, None, **inputs, dlogits_out=dlogits, loss_out=loss)
    return _XentPlan(logits, labels, smoothing, dlogits, loss, hits_out)


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
    if p.hits is not None:  # before dlogits, which may be written over the logits
        p.hits[...] = (logits.argmax(axis=1) == labels).sum()
    log_p = _log_softmax_ref(logits)
    t = xp.full(logits.shape, smoothing / k, dtype=logits.dtype)
    t[xp.arange(n), labels] += 1 - smoothing
    # The one-hot and smoothing terms apart, so a -inf logit of a zero-weight class adds 0, not 0 * inf.
    loss = -(1 - smoothing) * log_p[xp.arange(n), labels].sum(dtype=xp.float64) / n
    if smoothing:
        loss = loss - smoothing * log_p.mean(axis=1, dtype=xp.float64).sum() / n
    p.dlogits[...] = (xp.exp(log_p) - t) / n
    p.loss[...] = loss
    return p.loss, p.dlogits


def _rows_ref(p: _RowsPlan) -> Any:
    if p.x.size:
        log_p = _log_softmax_ref(p.x)
        p.out[...] = log_p if p.log else c.array_module(p.x).exp(log_p)
    return p.out


# --------------------------------------------------------------------------- CPU


class _CpuBodies(NamedTuple):
    # (x, labels, smoothing, n, g) -> (these rows' share of the mean loss over n rows (float64), their hits)
    xent: Any
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
    def first_max_at(x, i, m, y):
        """Whether the first largest logit of row i (largest: m) is at y."""
        if x[i, y] != m:
            return False
        for j in range(y):
            if x[i, j] == m:
                return False
        return True

    @njit(inline="always")
    def xent_rows(x, labels, smoothing, n, g):
        """Loss and gradient of these rows, as parts of a mean over ``n`` rows, and their hits."""
        rows, k = x.shape
        on_label = ftype((1.0 - smoothing) / n)
        everywhere = ftype(smoothing / (k * n))
        total = 0.0
        hits = 0
        for i in range(rows):
            y = labels[i]
            m = row_max(x, i)
            hits += first_max_at(x, i, m, y)  # before g, which may be x, is written
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
        return total / n, hits

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
    p.loss[...] = math.fsum(loss for loss, _ in parts)
    if p.hits is not None:
        p.hits[...] = sum(hits for _, hits in parts)
    return p.loss, p.dlogits


def _rows_cpu(p: _RowsPlan) -> Any:
    if p.x.size:
        c.run_cpu(_cpu_bodies(p.x.dtype).rows, (p.x, p.log, p.out), rows_in=(0, 2))
    return p.out


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _row_stats(dtype: np.dtype, threads: int) -> Any:
    """Device function ``row_stats(x, i, shared, y) -> (m, s, earlier)`` for blocks of ``threads``:
    m = max_j x[i, j] and s = sum_j exp(x[i, j] - m) to every thread, and whether this thread saw
    x[i, j] == m at some j < y."""
    ftype = dtype.type
    zero, lowest = ftype(0), ftype(-np.inf)
    reduce = block_reducer(threads)
    thread_shift = threads.bit_length() - 1

    @c.device_jit()
    def row_stats(x, i, shared, y):
        first, step, k = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        m = lowest
        j = first
        while j < k:
            m = max(m, x[i, j])
            j += step
        m = reduce(shared, m, zero, True)[0]
        s = zero
        earlier = False
        j = first
        while j < k:
            v = x[i, j]
            s += math.exp(v - m)
            earlier |= j < y and v == m
            j += step
        return m, reduce(shared, s, zero, False)[0], earlier

    return row_stats


@functools.cache
def _xent_kernel(dtype: np.dtype, threads: int, labels_dtype: np.dtype, hits_dtype: np.dtype) -> Any:
    """The block-per-row cross-entropy kernel for blocks of ``threads`` threads, labels of ``labels_dtype``
    and hits of ``hits_dtype``, rows grid-stride over a grid of 2**row_shift blocks (see _indexing: unsigned
    indices, no division)."""
    ftype = dtype.type
    zero = ftype(0)
    D, matrix = dtype.name, f"{dtype.name}[:, ::1]"
    reduce = block_reducer(threads)
    totals = grid_totals(threads, 2)
    row_stats = _row_stats(dtype, threads)
    thread_shift = threads.bit_length() - 1

    @c.cuda_kernel(f"void(int64, {matrix}, {labels_dtype.name}[::1], {D}, {D}, {D}, {D}, float64[:, ::1], "
                   f"uint32[::1], {D}[::1], {hits_dtype.name}[::1], {matrix})")
    def xent(row_shift, x, labels, smoothing, on_label, everywhere, inv_n, partials, ticket, loss, hits, g):
        # loss[0] = the mean loss; hits[0] = the rows whose first largest logit is at their label
        shared = cuda.shared.array((2, threads), ftype)
        shared64 = cuda.shared.array((2, threads), float64)
        last = cuda.shared.array(1, int32)
        first, step, k = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        inv_k = ftype(1) / ftype(x.shape[1])
        block_loss = float64(0)  # the losses of this block's rows, summed in thread 0
        block_hits = 0
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
            m, s, earlier = row_stats(x, i, shared, y)
            tie_before_label = cuda.syncthreads_or(int32(earlier))
            if first == 0:
                # -sum_j t_j log p_j = log(s) + (1 - e) (m - x_y) + e (m - mean_j x_j): every term >= 0
                gap = (ftype(1) - smoothing) * (m - x_y) + smoothing * (m - row_sum * inv_k)
                block_loss += gap + math.log(s)
                if x_y == m and not tie_before_label:
                    block_hits += 1
            scale = inv_n / s
            j = first
            while j < k:
                v = math.exp(x[i, j] - m) * scale - everywhere
                if j == y:
                    v -= on_label
                g[i, j] = v
                j += step
            i += row_step
        total_loss, total_hits, _ = totals(shared64, last, partials, ticket, block_loss, block_hits, 0)
        if last[0] and cuda.threadIdx.x == 0:
            loss[0] = total_loss * inv_n
            hits[0] = total_hits

    return xent


@functools.cache
def _rows_kernel(dtype: np.dtype, threads: int) -> Any:
    """The block-per-row softmax / log-softmax kernel (see _xent_kernel)."""
    ftype = dtype.type
    matrix = f"{dtype.name}[:, ::1]"
    row_stats = _row_stats(dtype, threads)
    thread_shift = threads.bit_length() - 1

    @c.cuda_kernel(f"void(int64, {matrix}, boolean, {matrix})")
    def rows(row_shift, x, log, out):
        shared = cuda.shared.array((2, threads), ftype)
        first, step, k = strided(cuda.threadIdx.x, x.shape[1], thread_shift)
        i, row_step, n = strided(cuda.blockIdx.x, x.shape[0], row_shift)
        while i < n:
            m, s, _ = row_stats(x, i, shared, uint64(0))
            shift = m + math.log(s)
            scale = ftype(1) / s
            j = first
            while j < k:
                out[i, j] = x[i, j] - shift if log else math.exp(x[i, j] - m) * scale
                j += step
            i += row_step

    return rows


def _xent_cuda(p: _XentPlan) -> tuple[Any, Any]:
    blocks, threads, row_shift = c.row_launch(*p.logits.shape)
    (n, k), F = p.logits.shape, p.logits.dtype.type
    e = float(F(p.smoothing))
    hits = c.scratch(p.logits, "hits nobody reads", (1,), np.float64) if p.hits is None else p.hits
    # the scalars in the logits' dtype: a float32 kernel computes in float32
    kernel = _xent_kernel(p.logits.dtype, threads, p.labels.dtype, hits.dtype)
    c.launch(kernel, blocks, threads, row_shift, p.logits, p.labels, F(e), F((1.0 - e) / n), F(e / (k * n)), F(1.0 / n),
             *c.grid_scratch(p.logits), p.loss.reshape(1), hits, p.dlogits)
    return p.loss, p.dlogits


def _rows_cuda(p: _RowsPlan) -> Any:
    if p.x.size:
        blocks, threads, row_shift = c.row_launch(*p.x.shape)
        c.launch(_rows_kernel(p.x.dtype, threads), blocks, threads, row_shift, p.x, p.log, p.out)
    return p.out


softmax_xent_ref, softmax_xent_cpu, softmax_xent_cuda = OPS.add(
    "softmax_xent", _softmax_xent, _xent_ref, _xent_cpu, _xent_cuda)
softmax_ref, softmax_cpu, softmax_cuda = OPS.add("softmax", _softmax, _rows_ref, _rows_cpu, _rows_cuda)
log_softmax_ref, log_softmax_cpu, log_softmax_cuda = OPS.add(
    "log_softmax", _log_softmax, _rows_ref, _rows_cpu, _rows_cuda)
