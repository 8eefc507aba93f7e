"""Elementwise losses with their gradient in one pass: binary cross-entropy on logits, mean squared error.

logits/pred and targets: same shape (any), same float32/float64 dtype, C-contiguous; N = size >= 1.

    bce_logits: loss = mean(max(x, 0) - x t + log1p(exp(-|x|))),  grad = (sigmoid(x) - t) / N
                (targets t in [0, 1]; stable for |x| up to 1e4 and beyond)
    mse:        loss = mean((p - t)**2),                            grad = 2 (p - t) / N

The loss is a 0-d array of the input's dtype on the input's device (``loss_out`` when given).
``grad_out`` may be the logits / pred array itself (in place). The kernels sum the loss in float64; the
CUDA kernels over the grid in a fixed order (_reductions.grid_totals): the same inputs give the same loss,
to the last bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit
from numpy import float64, int32

from . import _common as c
from ._indexing import grid_stride
from ._reductions import grid_totals
from .fast_math import exp32, log1p32

OPS = c.OpTable()

BCE, MSE = range(2)


class _Plan(NamedTuple):
    kind: int  # BCE or MSE
    a: Any  # logits / pred
    b: Any  # targets / target
    grad: Any
    loss: Any  # 0-d


def _plan(kind: int, a_name: str, a: Any, b_name: str, b: Any, grad_out: Any, loss_out: Any,
          targets_checked: bool = False) -> _Plan:
    c.check_array(a_name, a)
    if a.size == 0:
        raise ValueError(f"{a_name} is empty: the mean loss over 0 elements is undefined")
    c.check_array(b_name, b, shape=a.shape, dtype=a.dtype)
    c.check_same_kind(a_name, a, **{b_name: b})
    if kind == BCE and not (targets_checked and not isinstance(b, np.ndarray)):  # device: a host sync
        low, high = float(b.min()), float(b.max())
        if not (0.0 <= low and high <= 1.0):  # NaN fails too
            raise ValueError(f"{b_name} must lie in [0, 1], got values in [{low}, {high}]")
    inputs = {a_name: a, b_name: b}
    grad = c.output("grad_out", grad_out, a, a.shape, a.dtype, in_place_of=a, **inputs)
    loss = c.output("loss_out", loss_out, a, (), a.dtype, **inputs, grad_out=grad)
    return _Plan(kind, a, b, grad, loss)


def _bce_logits(logits: Any, targets: Any, grad_out: Any = None, *, targets_checked: bool = False,
                loss_out: Any = None) -> _Plan:
    """Mean binary cross-entropy of logits against targets in [0, 1], and its gradient.
    Returns ``(loss, grad)``, the loss in ``loss_out`` (0-d) when given. ``targets_checked=True``: the
    caller guarantees the targets' range, so device targets are not read back (a host sync) to check
    it; host targets are checked regardless."""
    return _plan(BCE, "logits", logits, "targets", targets, grad_out, loss_out, targets_checked)


def _mse(pred: Any, target: Any, grad_out: Any = None, *, loss_out: Any = None) -> _Plan:
    """Mean squared error of pred against target, and its gradient. Returns ``(loss, grad)``, the loss
    in ``loss_out`` (0-d) when given."""
    return _plan(MSE, "pred", pred, "target", target, grad_out, loss_out)


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


def _ref(p: _Plan) -> tuple[Any, Any]:
    xp = c.array_module(p.a)
    if p.kind == BCE:
        x, t = p.a, p.b
        e = xp.exp(-xp.abs(x))
        loss = (xp.maximum(x, 0) - x * t + xp.log1p(e)).mean(dtype=xp.float64)
        p.grad[...] = (xp.where(x >= 0, 1, e) / (1 + e) - t) / x.size
    else:
        d = p.a - p.b
        loss = (d * d).mean(dtype=xp.float64)
        p.grad[...] = 2 * d / p.a.size
    p.loss[...] = loss
    return p.loss, p.grad


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_body(kind: int, dtype: np.dtype) -> Any:
    """Single-threaded ``(x, t, scale, g)`` over flat arrays: g = d * scale, returning sum(term) in float64."""
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

    return body


def _cpu(p: _Plan) -> tuple[Any, Any]:
    scale = p.a.dtype.type(1.0 / p.a.size)
    flat_a, flat_grad = p.a.reshape(-1), p.grad.reshape(-1)
    if p.grad is p.a:  # the same object in both roles, for cpu_kernel_for to bind once
        flat_grad = flat_a
    (total,) = c.run_cpu(_cpu_body(p.kind, p.a.dtype), (flat_a, p.b.reshape(-1), scale, flat_grad))
    p.loss[...] = total / p.a.size
    return p.loss, p.grad


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernel(kind: int, dtype: np.dtype, threads: int) -> Any:
    """Grid-stride kernel ``(x, t, scale, shift, partials, ticket, loss, g)`` on a grid of 2**shift threads
    over flat arrays; loss[0] = the mean (see grid_totals)."""
    f = _scalars(c.device_jit(), math.exp, math.log1p, dtype)[kind]
    zero = dtype.type(0)
    totals = grid_totals(threads, 1)
    F = dtype.name

    @c.cuda_kernel(f"void({F}[::1], {F}[::1], {F}, int64, float64[:, ::1], uint32[::1], {F}[::1], {F}[::1])")
    def kernel(x, t, scale, shift, partials, ticket, loss, g):
        shared = cuda.shared.array((2, threads), float64)
        last = cuda.shared.array(1, int32)
        partial = zero
        i, step, n = grid_stride(x.size, shift)  # see _indexing
        while i < n:
            term, d = f(x[i], t[i])
            g[i] = d * scale
            partial += term
            i += step
        total, _, _ = totals(shared, last, partials, ticket, partial, 0, 0)
        if last[0] and cuda.threadIdx.x == 0:
            loss[0] = total * scale

    return kernel


def _cuda(p: _Plan) -> tuple[Any, Any]:
    blocks, threads, shift = c.grid_1d(p.a.size)
    flat_a, flat_grad = p.a.reshape(-1), p.grad.reshape(-1)
    c.launch(_cuda_kernel(p.kind, p.a.dtype, threads), blocks, threads, flat_a, p.b.reshape(-1),
             p.a.dtype.type(1.0 / p.a.size), shift, *c.grid_scratch(p.a), p.loss.reshape(1), flat_grad)
    return p.loss, p.grad


bce_logits_ref, bce_logits_cpu, bce_logits_cuda = OPS.add("bce_logits", _bce_logits, _ref, _cpu, _cuda)
mse_ref, mse_cpu, mse_cuda = OPS.add("mse", _mse, _ref, _cpu, _cuda)
