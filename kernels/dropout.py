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
from typing import Any, Callable

import numpy as np
from numba import cuda, njit

from . import _common as c

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


def _validate(name: str, x: Any, p: float, seed: int, out: Any) -> tuple[int, int, Any, Any]:
    """(seed, keep threshold, scale 1/(1-p) in x's dtype, output array)."""
    c.check_array(name, x)
    p, seed, threshold = _check_p_seed(p, seed)
    out = c.output("out", out, x, x.shape, x.dtype, in_place_of=x, **{name: x})
    return seed, threshold, x.dtype.type(1.0 / (1.0 - p)), out


# --------------------------------------------------------------------------- reference


def keep_mask_ref(shape: tuple[int, ...], p: float, seed: int, xp: Any = np) -> Any:
    """The boolean keep mask for an array of ``shape``, computed with vectorised uint64 maths."""
    _, seed, threshold = _check_p_seed(p, seed)
    u64 = xp.uint64
    k = xp.arange(1, int(np.prod(shape)) + 1, dtype=u64)  # uint64 products wrap mod 2**64, as intended
    h = u64(seed) + k * u64(_GOLDEN)
    h = (h ^ (h >> u64(30))) * u64(_MIX1)
    h = (h ^ (h >> u64(27))) * u64(_MIX2)
    h = h ^ (h >> u64(31))
    return ((h >> u64(64 - _UNIFORM_BITS)) >= u64(threshold)).reshape(shape)


def _ref(name: str, x: Any, p: float, seed: int, out: Any) -> Any:
    _, _, scale, out = _validate(name, x, p, seed, out)
    xp = c.array_module(x)
    out[...] = x * xp.where(keep_mask_ref(x.shape, p, seed, xp), scale, x.dtype.type(0))  # NaN * 0 stays NaN
    return out


def dropout_ref(x: Any, p: float, seed: int, out: Any = None) -> Any:
    """Reference in plain array code (NumPy or CuPy). Returns ``out``."""
    return _ref("x", x, p, seed, out)


def dropout_backward_ref(dy: Any, p: float, seed: int, out: Any = None) -> Any:
    """Reference gradient: ``dx = dy * keep / (1 - p)``. Returns ``out``."""
    return _ref("dy", dy, p, seed, out)


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
def _cpu_kernel(in_place: bool):
    keep = _build_keep(njit(inline="always"), np.uint64)

    @njit(inline="always")
    def body(x, seed, threshold, scale, y):
        zero = scale - scale
        for k in range(x.size):
            y[k] = x[k] * (scale if keep(seed, k, threshold) else zero)  # NaN * 0 stays NaN

    # In place, x is bound to both roles: as two arguments LLVM's runtime overlap check would fail
    # and the loop would run scalar.
    if in_place:
        return njit(**c.NJIT_OPTIONS)(lambda x, seed, threshold, scale, y: body(x, seed, threshold, scale, x))
    return njit(**c.NJIT_OPTIONS)(lambda x, seed, threshold, scale, y: body(x, seed, threshold, scale, y))


def _apply_cpu(name: str, x: Any, p: float, seed: int, out: Any) -> Any:
    seed, threshold, scale, out = _validate(name, x, p, seed, out)
    if x.size:
        _cpu_kernel(out is x)(x.reshape(-1), np.uint64(seed), np.uint64(threshold), scale, out.reshape(-1))
    return out


def dropout_cpu(x: Any, p: float, seed: int, out: Any = None) -> Any:
    """Numba CPU kernel (single-threaded). Returns ``out``."""
    return _apply_cpu("x", x, p, seed, out)


def dropout_backward_cpu(dy: Any, p: float, seed: int, out: Any = None) -> Any:
    """Numba CPU kernel for ``dx = dy * keep / (1 - p)``. Returns ``out``."""
    return _apply_cpu("dy", dy, p, seed, out)


@functools.cache
def _cuda_kernel():
    if c.simulator_enabled():
        keep = _build_keep(lambda f: f, int)
    else:
        keep = _build_keep(cuda.jit(device=True), np.uint64)

    @cuda.jit
    def kernel(x, seed, threshold, scale, y):
        zero = scale - scale
        for k in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            y[k] = x[k] * (scale if keep(seed, k, threshold) else zero)

    return kernel


def _apply_cuda(name: str, x: Any, p: float, seed: int, out: Any) -> Any:
    seed, threshold, scale, out = _validate(name, x, p, seed, out)
    if x.size == 0:
        return out
    # Python ints under the simulator (exact, masked to 64 bits); uint64 scalars on a GPU.
    u64 = int if c.simulator_enabled() else np.uint64
    # y comes after x: when they are one array, the simulator's copy-back of y lands last.
    xd, yd = c.cuda_args(x.reshape(-1), out.reshape(-1))
    _cuda_kernel()[c.grid_1d(x.size) + (c.current_stream(),)](xd, u64(seed), u64(threshold), scale, yd)
    return out


def dropout_cuda(x: Any, p: float, seed: int, out: Any = None) -> Any:
    """numba.cuda kernel on CuPy's current stream (NumPy arrays under the simulator). Returns ``out``."""
    return _apply_cuda("x", x, p, seed, out)


def dropout_backward_cuda(dy: Any, p: float, seed: int, out: Any = None) -> Any:
    """numba.cuda kernel for ``dx = dy * keep / (1 - p)``. Returns ``out``."""
    return _apply_cuda("dy", dy, p, seed, out)
