"""fast_math: exp32 / log1p32 against float64 NumPy over dense sweeps, NaN-propagating maximum,
all compiled the way the kernels use them (inside @njit loops with the kernels' fast-math flags)."""

from __future__ import annotations

import numpy as np
import pytest
from gpudnn.kernels import _common as c
from gpudnn.kernels.fast_math import exp32, log1p32, maximum
from numba import njit

TINY = np.finfo(np.float32).tiny  # smallest normal float32, 1.18e-38


@njit(**c.NJIT_OPTIONS)
def _exp_loop(x, y):
    for i in range(x.size):
        y[i] = exp32(x[i])


@njit(**c.NJIT_OPTIONS)
def _log1p_loop(x, y):
    for i in range(x.size):
        y[i] = log1p32(x[i])


@njit(**c.NJIT_OPTIONS)
def _max_loop(x):
    m = x[0]
    for i in range(x.size):
        m = maximum(m, x[i])
    return m


def _apply(loop, x: np.ndarray) -> np.ndarray:
    y = np.empty_like(x)
    loop(x, y)
    return y


def _vectorised(dispatcher) -> bool:
    """True when the optimised LLVM IR of the (single) compiled signature uses SIMD float vectors."""
    ir = dispatcher.inspect_llvm(dispatcher.signatures[0])
    return any(" x float>" in line or " x double>" in line for line in ir.splitlines())


def test_exp32_dense_sweep_matches_float64(rng):
    # every 2**-14 step over the normal range, plus random points: ~3.1M inputs
    x = np.concatenate([np.arange(-87.33, 88.72, 2.0**-14, dtype=np.float64),
                        rng.uniform(-87.33, 88.72, 200_003)]).astype(np.float32)
    y = _apply(_exp_loop, x)
    exact = np.exp(x.astype(np.float64))
    rel = np.abs(y - exact) / exact
    assert rel.max() < 1e-6, f"worst relative error {rel.max():.3g} at x = {x[rel.argmax()]}"
    assert y.dtype == np.float32


def test_exp32_underflow_overflow_and_specials(rng):
    low = np.concatenate([np.linspace(-104.5, -87.33, 100_001), rng.uniform(-1e4, -87.33, 1003)]).astype(np.float32)
    y = _apply(_exp_loop, low)
    exact = np.exp(low.astype(np.float64))
    assert np.all(np.isfinite(y)) and np.all(y >= 0)
    assert np.abs(y - exact).max() < TINY  # decays through the subnormals, never garbage
    assert np.all(y[low < -104.0] == 0) and np.any((y > 0) & (y < TINY))
    high = np.linspace(88.7229, 1e4, 1001).astype(np.float32)
    assert np.all(np.isposinf(_apply(_exp_loop, high)))
    special = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, 1e-30, -1e-30, 1.0], np.float32)
    y = _apply(_exp_loop, special)
    assert np.isnan(y[0]) and y[1] == 0 and np.isposinf(y[2])
    np.testing.assert_array_equal(y[3:7], 1.0)
    assert abs(y[7] / np.e - 1) < 1e-6


def test_log1p32_dense_sweep_matches_float64():
    u = np.concatenate([np.linspace(0, 1, 2_000_001), np.geomspace(1e-38, 1, 100_001)]).astype(np.float32)
    y = _apply(_log1p_loop, u)
    exact = np.log1p(u.astype(np.float64))
    positive = exact > 0
    assert (np.abs(y - exact)[positive] / exact[positive]).max() < 1e-6
    assert np.all(y[~positive] == 0)
    assert np.isnan(_apply(_log1p_loop, np.array([np.nan], np.float32))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_maximum_reduces_and_propagates_nan(dtype, rng):
    x = rng.standard_normal(1003).astype(dtype)
    assert _max_loop(x) == x.max()
    assert _max_loop(-np.abs(x)) == (-np.abs(x)).max()
    x[500] = np.nan
    assert np.isnan(_max_loop(x))


def test_loops_vectorise():
    """The point of these helpers: LLVM turns loops calling them into SIMD code."""
    x = np.ones(64, np.float32)
    _apply(_exp_loop, x)
    _apply(_log1p_loop, x)
    _max_loop(x)
    assert _vectorised(_exp_loop)
    assert _vectorised(_log1p_loop)
    assert _vectorised(_max_loop)
