"""Sums over a parameter arena: what a training step reads back from the device, in one pass.

``arena_sums(param, grad, loss=None, out=None, *, with_param=True)`` fills ``out`` (4,) float64 with

    out[0] = loss (0 when None)        out[1] = sum grad^2        out[2] = sum |param|        out[3] = sum param^2

param and grad: 1-D, C-contiguous, of one float dtype and length, sharing no memory (an optimizer's flat
arenas); loss: a 0-d array of that dtype. Every sum accumulates in float64, so sum grad^2 of a float32
gradient neither overflows nor loses the small terms: it is at once the squared global gradient norm
(for clipping) and a finiteness probe (NaN or Inf when any gradient is). out[2] and out[3] give the L1/L2
penalty; ``with_param=False`` skips reading param when no penalty is wanted (they are then 0). The CUDA
kernel sums over the grid in a fixed order (_reductions.grid_totals): no accumulator to zero first, and the
same arena gives the same sums, to the last bit.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit
from numpy import float64, int32

from . import _common as c
from ._indexing import grid_stride
from ._reductions import grid_totals

OPS = c.OpTable()


class _Plan(NamedTuple):
    param: Any
    grad: Any
    loss: Any  # 0-d, or None
    with_param: bool
    out: Any  # (4,) float64


def _arena_sums(param: Any, grad: Any, loss: Any = None, out: Any = None, *, with_param: bool = True) -> _Plan:
    """[loss, sum grad^2, sum |param|, sum param^2] in float64, into ``out`` (4,) float64 (allocated
    when None). Returns ``out``."""
    c.check_array("param", param, ndim=1)
    c.check_array("grad", grad, shape=param.shape, dtype=param.dtype)
    c.check_same_kind("param", param, grad=grad, loss=loss)
    c.check_no_overlap("grad", grad, None, param=param)
    if loss is not None:
        c.check_array("loss", loss, shape=(), dtype=param.dtype)
    if not isinstance(with_param, (bool, np.bool_)):
        raise TypeError(f"with_param must be a bool, got {type(with_param).__name__}")
    out = c.output("out", out, param, (4,), np.float64, param=param, grad=grad, loss=loss)
    return _Plan(param, grad, loss, bool(with_param), out)


def _ref(p: _Plan) -> Any:
    xp = c.array_module(p.param)
    g = p.grad.astype(xp.float64)
    w = p.param.astype(xp.float64) if p.with_param else xp.zeros(0)
    loss = p.loss.astype(xp.float64) if p.loss is not None else xp.zeros((), xp.float64)
    p.out[...] = xp.stack([loss, (g * g).sum(), xp.abs(w).sum(), (w * w).sum()])
    return p.out


# --------------------------------------------------------------------------- CPU


@functools.cache
def _cpu_body(with_param: bool) -> Any:
    @njit(inline="always")
    def body(param, grad):
        g2 = a1 = w2 = 0.0
        for i in range(grad.size):
            g = np.float64(grad[i])
            g2 += g * g
            if with_param:  # a constant of the compiled body
                w = np.float64(param[i])
                a1 += abs(w)
                w2 += w * w
        return g2, a1, w2

    return body


def _cpu(p: _Plan) -> Any:
    parts = c.run_cpu(_cpu_body(p.with_param), (p.param, p.grad), rows_in=(0, 1))
    loss = float(p.loss) if p.loss is not None else 0.0
    p.out[...] = (loss, *(sum(part[k] for part in parts) for k in range(3)))
    return p.out


# --------------------------------------------------------------------------- CUDA


@functools.cache
def _cuda_kernel(dtype: np.dtype, threads: int, with_param: bool) -> Any:
    totals = grid_totals(threads, 3 if with_param else 1)
    F = dtype.name

    @c.cuda_kernel(f"void({F}[::1], {F}[::1], {F}[::1], int64, float64[:, ::1], uint32[::1], float64[::1])")
    def kernel(param, grad, loss, shift, partials, ticket, out):
        shared = cuda.shared.array((2, threads), float64)
        last = cuda.shared.array(1, int32)
        g2 = a1 = w2 = float64(0)
        i, step, n = grid_stride(grad.size, shift)  # see _indexing
        while i < n:
            g = float64(grad[i])
            g2 += g * g
            if with_param:  # a constant of the compiled kernel
                w = float64(param[i])
                a1 += abs(w)
                w2 += w * w
            i += step
        g2, a1, w2 = totals(shared, last, partials, ticket, g2, a1, w2)
        if last[0] and cuda.threadIdx.x == 0:
            out[0] = loss[0]
            out[1] = g2
            out[2] = a1
            out[3] = w2

    return kernel


def _cuda(p: _Plan) -> Any:
    blocks, threads, shift = c.grid_1d(p.grad.size)
    loss = c.zeros_vector(p.param, 1, p.param.dtype) if p.loss is None else p.loss.reshape(1)
    c.launch(_cuda_kernel(p.param.dtype, threads, p.with_param), blocks, threads, p.param, p.grad, loss, shift,
             *c.grid_scratch(p.param), p.out)
    return p.out


arena_sums_ref, arena_sums_cpu, arena_sums_cuda = OPS.add("arena_sums", _arena_sums, _ref, _cpu, _cuda)
