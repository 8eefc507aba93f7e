"""The update maths of kernels.optim, written twice: NumPy/CuPy expressions and one per-element kernel.

Each optimizer takes ``(flags, arrays, h)`` from kernels.optim's validated plan: ``flags`` are its
compile-time switches, ``arrays`` = (param, grad, *state in use), ``h`` = (grad_scale, l2, l1,
decay, *its own host scalars), all of the arrays' dtype. The formulas are stated in kernels.optim.
The per-element kernel is compiled by ``jit`` for the CPU (``njit``) or the GPU (a device
function) and driven by one loop per target: a plain loop on the CPU, a grid-stride loop on the GPU.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from numba import njit

from . import _common as c
from ._indexing import grid_stride

# --------------------------------------------------------------------------- references


def _regularized_ref(p: Any, grad: Any, grad_scale: float, l2: float, l1: float) -> Any:
    return grad_scale * grad + l2 * p + l1 * c.array_module(p).sign(p)


def _sgd_ref(flags: tuple[bool, ...], arrays: tuple[Any, ...], h: tuple[float, ...]) -> None:
    use_buf, nesterov, first = flags
    grad_scale, l2, l1, decay, lr, momentum, undamped = h
    p, grad = arrays[:2]
    g = _regularized_ref(p, grad, grad_scale, l2, l1)
    d = g
    if use_buf:
        buf = arrays[2]
        buf[...] = g if first else momentum * buf + undamped * g
        d = g + momentum * buf if nesterov else buf
    p *= decay
    p -= lr * d


def _adam_ref(flags: tuple[bool, ...], arrays: tuple[Any, ...], h: tuple[float, ...]) -> None:
    grad_scale, l2, l1, decay, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bias2_sqrt, eps = h
    p, grad, m, v = arrays
    g = _regularized_ref(p, grad, grad_scale, l2, l1)
    m[...] = beta1 * m + one_minus_beta1 * g
    v[...] = beta2 * v + one_minus_beta2 * g * g
    p *= decay
    p -= step_size * m / (c.array_module(p).sqrt(v) * inv_bias2_sqrt + eps)


def _rmsprop_ref(flags: tuple[bool, ...], arrays: tuple[Any, ...], h: tuple[float, ...]) -> None:
    centered, use_buf = flags
    grad_scale, l2, l1, decay, lr, alpha, one_minus_alpha, eps, momentum = h
    xp = c.array_module(arrays[0])
    p, grad, sq = arrays[:3]
    g = _regularized_ref(p, grad, grad_scale, l2, l1)
    sq[...] = alpha * sq + one_minus_alpha * g * g
    if centered:
        ga = arrays[3]
        ga[...] = alpha * ga + one_minus_alpha * g
        avg = xp.sqrt(xp.abs(sq - ga * ga)) + eps
    else:
        avg = xp.sqrt(sq) + eps
    d = g / avg
    if use_buf:
        buf = arrays[-1]
        buf[...] = momentum * buf + d
        d = buf
    p *= decay
    p -= lr * d


# --------------------------------------------------------------------------- per-element kernels
# One scalar update per optimizer, compiled by ``jit`` for the CPU (njit) or the GPU (device
# function). The flags are closure constants, so Numba prunes the branches they switch off.
# Every scalar in ``h`` arrives typed to the array dtype: float32 maths stays float32.


def _regularized(jit: Callable) -> Callable:
    @jit
    def regularized(p, grad, grad_scale, l2, l1):
        g = grad_scale * grad + l2 * p
        if p > 0:
            g += l1
        elif p < 0:
            g -= l1
        return g

    return regularized


def _sgd_element(jit: Callable, use_buf: bool, nesterov: bool, first: bool) -> Callable:
    regularized = _regularized(jit)

    @jit
    def element(i, arrays, h):
        grad_scale, l2, l1, decay, lr, momentum, undamped = h
        p = arrays[0][i]
        g = regularized(p, arrays[1][i], grad_scale, l2, l1)
        d = g
        if use_buf:
            buf = g if first else momentum * arrays[2][i] + undamped * g
            arrays[2][i] = buf
            d = g + momentum * buf if nesterov else buf
        arrays[0][i] = p * decay - lr * d

    return element


def _adam_element(jit: Callable) -> Callable:
    regularized = _regularized(jit)

    @jit
    def element(i, arrays, h):
        grad_scale, l2, l1, decay, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bias2_sqrt, eps = h
        p = arrays[0][i]
        g = regularized(p, arrays[1][i], grad_scale, l2, l1)
        m = beta1 * arrays[2][i] + one_minus_beta1 * g
        v = beta2 * arrays[3][i] + one_minus_beta2 * g * g
        arrays[2][i] = m
        arrays[3][i] = v
        arrays[0][i] = p * decay - step_size * m / (math.sqrt(v) * inv_bias2_sqrt + eps)

    return element


def _rmsprop_element(jit: Callable, centered: bool, use_buf: bool) -> Callable:
    regularized = _regularized(jit)
    buf_index = 4 if centered else 3

    @jit
    def element(i, arrays, h):
        grad_scale, l2, l1, decay, lr, alpha, one_minus_alpha, eps, momentum = h
        p = arrays[0][i]
        g = regularized(p, arrays[1][i], grad_scale, l2, l1)
        sq = alpha * arrays[2][i] + one_minus_alpha * g * g
        arrays[2][i] = sq
        if centered:
            ga = alpha * arrays[3][i] + one_minus_alpha * g
            arrays[3][i] = ga
            avg = math.sqrt(abs(sq - ga * ga)) + eps
        else:
            avg = math.sqrt(sq) + eps
        d = g / avg
        if use_buf:
            d = momentum * arrays[buf_index][i] + d
            arrays[buf_index][i] = d
        # param is read again rather than kept from above: no state array overlaps it (kernels.optim
        # checks), and holding p across the sqrt and the division takes the float64 kernel with
        # momentum past 32 registers
        arrays[0][i] = arrays[0][i] * decay - lr * d

    return element


REFERENCES = {"sgd": _sgd_ref, "adam": _adam_ref, "rmsprop": _rmsprop_ref}
_ELEMENTS = {"sgd": _sgd_element, "adam": _adam_element, "rmsprop": _rmsprop_element}


@functools.cache
def cpu_kernel(optimizer: str, flags: tuple[bool, ...]):
    """The njit loop ``kernel(arrays, h)`` over every element (compiled on first call, per dtype)."""
    element = _ELEMENTS[optimizer](njit(inline="always", **c.NJIT_OPTIONS), *flags)

    @njit(**c.NJIT_OPTIONS)
    def kernel(arrays, h):
        for i in range(arrays[0].size):
            element(i, arrays, h)

    return kernel


@functools.cache
def cuda_kernel(optimizer: str, flags: tuple[bool, ...], dtype: Any, n_arrays: int, n_scalars: int):
    """The numba.cuda grid-stride kernel ``(arrays, h, shift)`` over a grid of 2**shift threads: ``arrays``
    the n_arrays flat arrays and ``h`` the n_scalars scalars of the plan, all of ``dtype``."""
    device = c.device_jit()
    element = _ELEMENTS[optimizer](device, *flags)
    F = dtype.name

    @c.cuda_kernel(f"void(UniTuple({F}[::1], {n_arrays}), UniTuple({F}, {n_scalars}), int64)")
    def kernel(arrays, h, shift):
        i, step, n = grid_stride(arrays[0].size, shift)  # see _indexing
        while i < n:
            element(i, arrays, h)
            i += step

    return kernel
