"""Inverted dropout with a counter-based mask: nothing is stored between forward and backward.

Element k (flat C-order index) is kept iff ``u_k >= p``, where ``u_k = (h_k >> 40) / 2**24`` and
``h_k`` is output k of the SplitMix64 generator seeded with ``seed``:
``h_k = mix64(seed + (k + 1) * 0x9E3779B97F4A7C15 mod 2**64)`` (Steele, Lea and Flood, 2014).
Kept values are scaled by ``1 / (1 - p)``, dropped ones become 0:

    y = x * keep_k / (1 - p)        (forward)        dx = dy * keep_k / (1 - p)   (backward)

The comparison is done on integers (``h_k >> 40 >= ceil(p * 2**24)``), so the NumPy reference, the
CPU kernel and the CUDA kernel produce the same mask bit for bit, in float32 and float64 alike.
x / dy: any shape, float32/float64, C-contiguous. p: a float in [0, 1). seed: an int in
[0, 2**63). ``out`` may be the input itself (in place).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from numba import cuda, njit

from . import _common as c
from ._indexing import grid_stride

OPS = c.OpTable()

_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_MASK64 = 2**64 - 1
_UNIFORM_BITS = 24  # u_k has 24 bits: exact in float32 and float64


def _check_p_seed(p: float, seed: int) -> tuple[float, int, int]:
    """(p, seed, integer keep threshold ceil(p * 2**24)) after checking their types and ranges."""
    p = c.check_finite_scalar("p", p, low=0.0, high=1.0, high_open=True)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return p, int(seed), int(np.ceil(p * 2**_UNIFORM_BITS))  # p * 2**24 is exact in float64


class _Plan(NamedTuple):
    x: Any  # x, or dy for the backward
    seed: int
    threshold: int
    scale: Any  # 1 / (1 - p) in x's dtype
    out: Any


def _plan(name: str, x: Any, p: float, seed: int, out: Any) -> _Plan:
    c.check_array(name, x)
    p, seed, threshold = _check_p_seed(p, seed)
    out = c.output("out", out, x, x.shape, x.dtype, in_place_of=x, **{name: x})
    return _Plan(x, seed, threshold, x.dtype.type(1.0 / (1.0 - p)), out)


def _dropout(x: Any, p: float, seed: int, out: Any = None) -> _Plan:
    """``y = x * keep / (1 - p)`` with the mask of (seed, flat index). Returns ``out``."""
    return _plan("x", x, p, seed, out)


def _dropout_backward(dy: Any, p: float, seed: int, out: Any = None) -> _Plan:
    """``dx = dy * keep / (1 - p)`` with the forward's mask. Returns ``out``."""
    return _plan("dy", dy, p, seed, out)


# --------------------------------------------------------------------------- reference


def keep_mask_ref(shape: tuple[int, ...], p: float, seed: int, xp: Any = np) -> Any:
    """The boolean keep mask for an array of ``shape``, computed with vectorised uint64 maths."""
    _, seed, threshold = _check_p_seed(p, seed)
    return _keep_mask(shape, seed, threshold, xp)


def _keep_mask(shape: tuple[int, ...], seed: int, threshold: int, xp: Any) -> Any:
    u64 = xp.uint64
    k = xp.arange(1, int(np.prod(shape)) + 1, dtype=u64)  # uint64 products wrap mod 2**64, as intended
    h = u64(seed) + k * u64(_GOLDEN)
    h = (h ^ (h >> u64(30))) * u64(_MIX1)
    h = (h ^ (h >> u64(27))) * u64(_MIX2)
    h = h ^ (h >> u64(31))
    return ((h >> u64(64 - _UNIFORM_BITS)) >= u64(threshold)).reshape(shape)


def _ref(p: _Plan) -> Any:
    xp = c.array_module(p.x)
    keep = _keep_mask(p.x.shape, p.seed, p.threshold, xp)
    p.out[...] = p.x * xp.where(keep, p.scale, p.x.dtype.type(0))  # NaN * 0 stays NaN
    return p.out


# --------------------------------------------------------------------------- kernels


def _build_keep(jit: Callable, u64: Callable) -> Callable:
    """``keep(seed, k, threshold)``: True iff element k is kept, the SplitMix64 hash written once.

    ``u64`` turns a value into the kernel's unsigned 64-bit type (numpy.uint64 when compiled, so
    products wrap; Python int under the simulator, where the masks do the wrapping).
    """
    GOLDEN, MIX1, MIX2, MASK = u64(_GOLDEN), u64(_MIX1), u64(_MIX2), u64(_MASK64)
    S30, S27, S31, S_U = u64(30), u64(27), u64(31), u64(64 - _UNIFORM_BITS)

    @jit
    def keep(seed, k, threshold):
        h = (seed + (u64(k) + u64(1)) * GOLDEN) & MASK
        h = ((h ^ (h >> S30)) * MIX1) & MASK
        h = ((h ^ (h >> S27)) * MIX2) & MASK
        return ((h ^ (h >> S31)) >> S_U) >= threshold

    return keep


@functools.cache
def _cpu_body():
    keep = _build_keep(njit(inline="always"), np.uint64)

    @njit(inline="always")
    def body(x, seed, threshold, scale, y):
        zero = scale - scale
        for k in range(x.size):
            y[k] = x[k] * (scale if keep(seed, k, threshold) else zero)  # NaN * 0 stays NaN

    return body


def _cpu(p: _Plan) -> Any:
    if p.x.size:
        flat_x = p.x.reshape(-1)
        flat_out = flat_x if p.out is p.x else p.out.reshape(-1)  # one object in both roles: bound once
        c.run_cpu(_cpu_body(), (flat_x, np.uint64(p.seed), np.uint64(p.threshold), p.scale, flat_out))
    return p.out


@functools.cache
def _cuda_kernel(dtype: np.dtype):
    if c.simulator_enabled():
        keep = _build_keep(lambda f: f, int)
    else:
        keep = _build_keep(cuda.jit(device=True), np.uint64)
    F = dtype.name

    @c.cuda_kernel(f"void({F}[::1], uint64, uint64, {F}, int64, {F}[::1])")
    def kernel(x, seed, threshold, scale, shift, y):
        zero = scale - scale
        k, step, n = grid_stride(x.size, shift)  # see _indexing
        while k < n:
            y[k] = x[k] * (scale if keep(seed, k, threshold) else zero)
            k += step

    return kernel


def _cuda(p: _Plan) -> Any:
    if p.x.size:
        # Python ints under the simulator (exact, masked to 64 bits); uint64 scalars on a GPU.
        u64 = int if c.simulator_enabled() else np.uint64
        blocks, threads, shift = c.grid_1d(p.x.size)
        c.launch(_cuda_kernel(p.x.dtype), blocks, threads, p.x.reshape(-1), u64(p.seed), u64(p.threshold), p.scale,
                 shift, p.out.reshape(-1))
    return p.out


dropout_ref, dropout_cpu, dropout_cuda = OPS.add("dropout", _dropout, _ref, _cpu, _cuda)
dropout_backward_ref, dropout_backward_cpu, dropout_backward_cuda = OPS.add(
    "dropout_backward", _dropout_backward, _ref, _cpu, _cuda)
