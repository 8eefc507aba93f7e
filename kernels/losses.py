"""Elementwise losses with their gradient in one pass: binary cross-entropy on logits, mean squared error.

logits/pred and targets: same shape (any), same float32/float64 dtype, C-contiguous; N = size >= 1.

    bce_logits: loss = mean(max(x, 0) - x t + log1p(exp(-|x|))),  grad = (sigmoid(x) - t) / N
                (targets t in [0, 1]; stable for |x| up to 1e4 and beyond)
    mse:        loss = mean((p - t)**2),                            grad = 2 (p - t) / N

The loss is a 0-d array of the input's dtype on the input's device. ``grad_out`` may be the
logits / pred array itself (in place). The CPU kernels accumulate the loss in float64.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c
from .fast_math import exp32, log1p32

BCE, MSE = range(2)


def _validate(a_name: str, a: Any, b_name: str, b: Any, grad_out: Any, *, unit_targets: bool) -> Any:
    c.check_array(a_name, a)
    if a.size == 0:
        raise ValueError(f"{a_name} is empty: the mean loss over 0 elements is undefined")
    c.check_array(b_name, b, shape=a.shape, dtype=a.dtype)
    c.check_same_kind(a_name, a, **{b_name: b})
    if unit_targets:
        low, high = float(b.min()), float(b.max())
        if not (0.0 <= low and high <= 1.0):  # NaN fails too
            raise ValueError(f"{b_name} must lie in [0, 1], got values in [{low}, {high}]")
    return c.output("grad_out", grad_out, a, a.shape, a.dtype, in_place_of=a, **{a_name: a, b_name: b})


def _scalars(jit: Callable, exp: Callable, log1p: Callable, dtype: np.dtype) -> dict[int, Any]:
    """Per-element (loss term, d term / d x) of each loss, compiled with ``jit``."""
    zero, one, two = (dtype.type(v) for v in (0, 1, 2))

    @jit
    def bce(x, t):
        e = exp(-abs(x))  # never overflows
        sigmoid = (one if x >= zero else e) / (one + e)
        return max(x, zero) - x * t + log1p(e), sigmoid - t

    @jit
    def mse(p, t):
        d = p - t
        return d * d, two * d

    return {BCE: bce, MSE: mse}


# --------------------------------------------------------------------------- references


def bce_logits_ref(logits: Any, targets: Any, grad_out: Any = None) -> tuple[Any, Any]:
    """Reference in plain array code (NumPy or CuPy). Returns ``(loss, grad)``."""
    grad = _validate("logits", logits, "targets", targets, grad_out, unit_targets=True)
    xp = c.array_module(logits)
    x, t = logits, targets
    e = xp.exp(-xp.abs(x))
    loss = (xp.maximum(x, 0) - x * t + xp.log1p(e)).mean(dtype=xp.float64)
    grad[...] = (xp.where(x >= 0, 1, e) / (1 + e) - t) / x.size
    return xp.asarray(loss, dtype=x.dtype), grad


def mse_ref(pred: Any, target: Any, grad_out: Any = None) -> tuple[Any, Any]:
    """Reference in plain array code (NumPy or CuPy). Returns ``(loss, grad)``."""
    grad = _validate("pred", pred, "target", target, grad_out, unit_targets=False)
    xp = c.array_module(pred)
    d = pred - target
    loss = (d * d).mean(dtype=xp.float64)
    grad[...] = 2 * d / pred.size
    return xp.asarray(loss, dtype=pred.dtype), grad


# --------------------------------------------------------------------------- CPU


class _Kernels(NamedTuple):
    apart: Any  # (x, t, scale, [loss,] g) with the gradient in g
    inplace: Any  # (x, t, scale[, loss]) with the gradient written over x


@functools.cache
def _cpu_kernels(kind: int, dtype: np.dtype) -> _Kernels:
    """Single-threaded kernels over flat arrays: g = d * scale, returning sum(term) in float64."""
    fast = dtype == np.float32
    f = _scalars(njit(inline="always"), exp32 if fast else math.exp, log1p32 if fast else math.log1p, dtype)[kind]

    @njit(inline="always")
    def body(x, t, scale, g):
        total = 0.0
        for i in range(x.size):
            term, d = f(x[i], t[i])
            g[i] = d * scale
            total += term
        return total

    # In place, the one array goes in twice inside compiled code, so LLVM sees one pointer and
    # vectorises (two arguments would fail its run-time overlap check).
    @njit(**c.NJIT_OPTIONS)
    def apart(x, t, scale, g):
        return body(x, t, scale, g)

    @njit(**c.NJIT_OPTIONS)
    def inplace(x, t, scale):
        return body(x, t, scale, x)

    return _Kernels(apart, inplace)


def _run_cpu(kind: int, a: Any, b: Any, grad: Any) -> tuple[Any, Any]:
    kernels = _cpu_kernels(kind, a.dtype)
    scale = a.dtype.type(1.0 / a.size)
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    if c.same_buffer(grad, a):
        total = kernels.inplace(flat_a, flat_b, scale)
    else:
        total = kernels.apart(flat_a, flat_b, scale, grad.reshape(-1))
    return np.asarray(total / a.size, dtype=a.dtype), grad


def bce_logits_cpu(logits: Any, targets: Any, grad_out: Any = None) -> tuple[Any, Any]:
    """Numba CPU kernel (single-threaded). Returns ``(loss, grad)``."""
    grad = _validate("logits", logits, "targets", targets, grad_out, unit_targets=True)
    return _run_cpu(BCE, logits, targets, grad)


def mse_cpu(pred: Any, target: Any, grad_out: Any = None) -> tuple[Any, Any]:
    """Numba CPU kernel (single-threaded). Returns ``(loss, grad)``."""
    grad = _validate("pred", pred, "target", target, grad_out, unit_targets=False)
    return _run_cpu(MSE, pred, target, grad)


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernels(kind: int, dtype: np.dtype, threads: int) -> _Kernels:
    """Grid-stride kernels over flat arrays; each block adds its share of the mean into loss[0]."""
    device = c.device_jit()
    f = _scalars(device, math.exp, math.log1p, dtype)[kind]
    ftype = dtype.type

    # Kept in this module rather than shared with softmax_xent: the simulator swaps in its fake
    # ``cuda`` only in the globals of the running kernel's own module.
    @device
    def block_sum(shared, value):
        """Sum of ``value`` over the block (shared-memory tree); valid in thread 0."""
        tid = cuda.threadIdx.x
        shared[tid] = value
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if tid < step:
                shared[tid] += shared[tid + step]
            cuda.syncthreads()
            step //= 2
        return shared[0]

    @device
    def body(x, t, scale, loss, g):
        shared = cuda.shared.array(threads, ftype)
        partial = ftype(0)
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            term, d = f(x[i], t[i])
            g[i] = d * scale
            partial += term
        total = block_sum(shared, partial)
        if cuda.threadIdx.x == 0:
            cuda.atomic.add(loss, 0, total * scale)

    # Separate in-place kernel: the simulator copies each array argument in and back, so one
    # array passed twice would lose a write-back.
    @cuda.jit
    def apart(x, t, scale, loss, g):
        body(x, t, scale, loss, g)

    @cuda.jit
    def inplace(x, t, scale, loss):
        body(x, t, scale, loss, x)

    return _Kernels(apart, inplace)


def _run_cuda(kind: int, a: Any, b: Any, grad: Any) -> tuple[Any, Any]:
    blocks, threads = c.grid_1d(a.size)
    kernels = _cuda_kernels(kind, a.dtype, threads)
    loss = c.array_module(a).zeros(1, dtype=a.dtype)
    launch = (blocks, threads, c.current_stream())
    scale = a.dtype.type(1.0 / a.size)
    if c.same_buffer(grad, a):
        ad, bd, ld = c.cuda_args(a.reshape(-1), b.reshape(-1), loss)
        kernels.inplace[launch](ad, bd, scale, ld)
    else:
        ad, bd, ld, gd = c.cuda_args(a.reshape(-1), b.reshape(-1), loss, grad.reshape(-1))
        kernels.apart[launch](ad, bd, scale, ld, gd)
    return loss.reshape(()), grad


def bce_logits_cuda(logits: Any, targets: Any, grad_out: Any = None) -> tuple[Any, Any]:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``(loss, grad)``."""
    grad = _validate("logits", logits, "targets", targets, grad_out, unit_targets=True)
    return _run_cuda(BCE, logits, targets, grad)


def mse_cuda(pred: Any, target: Any, grad_out: Any = None) -> tuple[Any, Any]:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``(loss, grad)``."""
    grad = _validate("pred", pred, "target", target, grad_out, unit_targets=False)
    return _run_cuda(MSE, pred, target, grad)
