"""Activation maths: every activation forward three ways vs float64 textbook formulas, extreme and
NaN inputs, and the float32 polynomial exp/tanh/erfc over dense sweeps."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest
from gpudnn.kernels import activations as A
from gpudnn.kernels import bias_act as B
from gpudnn.kernels._common import NJIT_OPTIONS
from numba import njit

from tests.support import IMPLS, op, to_device, to_host, tolerance

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu_tanh", "gelu", "silu", "softplus"]
DTYPES = [np.float32, np.float64]
ALPHA = 0.1
# Spans the saturated tails, the float32 exp overflow/underflow edges and beyond the +-1e4 contract.
EXTREMES = [0.0, 1e-30, 1e-8, 0.3, 0.625, 1.0, 3.0, 5.0, 9.0, 15.0, 20.0, 40.0, 87.0, 88.8, 89.0, 104.0, 200.0,
            710.0, 1e3, 1e4, 1e30]


def exact_forward(z: np.ndarray, activation: str, alpha: float = ALPHA) -> np.ndarray:
    """The activation by its textbook formula, elementwise in float64 Python maths."""
    def sigmoid(v: float) -> float:
        return 1 / (1 + math.exp(-v)) if v >= 0 else math.exp(v) / (1 + math.exp(v))

    def f(v: float) -> float:
        return {
            "identity": lambda: v,
            "relu": lambda: max(v, 0.0),
            "leaky_relu": lambda: v if v > 0 else alpha * v,
            "sigmoid": lambda: sigmoid(v),
            "tanh": lambda: math.tanh(v),
            "gelu_tanh": lambda: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))),
            "gelu": lambda: 0.5 * v * math.erfc(-v / math.sqrt(2)),  # = v/2 (1 + erf(v/sqrt 2)), no cancellation
            "silu": lambda: v * sigmoid(v),
            "softplus": lambda: math.log1p(math.exp(v)) if v < 30 else v + math.log1p(math.exp(-v)),
        }[activation]()
    return np.vectorize(f, otypes=[np.float64])(np.asarray(z, np.float64))


def _forward(impl: str, z: np.ndarray, activation: str) -> np.ndarray:
    """f(z) through the bias_act op with a zero bias (z + 0 is exact)."""
    z2 = z.reshape(1, -1)
    return op("bias_act", "bias_act", impl)(z2, np.zeros(z2.shape[1], z.dtype), activation, alpha=ALPHA).ravel()


@pytest.mark.filterwarnings("error")  # no overflow/invalid warnings, however large the input
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_matches_float64_formula(impl, dtype, activation, rng):
    extremes = np.array(EXTREMES)
    z = np.concatenate([rng.standard_normal(61) * 4, extremes, -extremes]).astype(dtype)
    y = _forward(impl, z, activation)
    assert y.dtype == dtype
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, exact_forward(z, activation), **tolerance(dtype))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_nan_propagates_and_infinities_saturate(impl, activation):
    z = np.array([np.nan, np.inf, -np.inf, 1.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reference may warn on inf - inf
        y = _forward(impl, z, activation)
    assert np.isnan(y[0])
    expected_inf = {"sigmoid": 1.0, "tanh": 1.0}.get(activation, np.inf)
    assert y[1] == expected_inf
    # -inf: today's behaviour, pinned. gelu, gelu_tanh and silu are x * (a gate that is 0 at -inf),
    # and -inf * 0 is NaN by the formula; the others saturate (or pass -inf through).
    expected_minus_inf = {"identity": -np.inf, "leaky_relu": -np.inf, "relu": 0.0, "sigmoid": 0.0, "softplus": 0.0,
                          "tanh": -1.0, "gelu": np.nan, "gelu_tanh": np.nan, "silu": np.nan}[activation]
    if np.isnan(expected_minus_inf):
        assert np.isnan(y[2]), y[2]
    else:
        assert y[2] == expected_minus_inf, y[2]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("out_is_x,z_out", [(False, None), (True, None), (False, "new"), (False, "x"), (True, "new")])
def test_bias_act_in_place_bindings(impl, dtype, out_is_x, z_out, rng):
    """Every way outputs may share x's memory (each has its own CPU kernel) gives the same results."""
    x, b = rng.standard_normal((9, 21)).astype(dtype), rng.standard_normal(21).astype(dtype)
    expected_z = x + b
    expected_y = exact_forward(expected_z, "gelu")
    dev = to_device if impl == "cuda" else (lambda a: a)
    xd, bd = dev(x.copy()), dev(b)
    y = xd if out_is_x else dev(np.empty_like(x))
    z = {None: None, "new": dev(np.empty_like(x)), "x": xd}[z_out]
    assert getattr(B, f"bias_act_{impl}")(xd, bd, "gelu", out=y, z_out=z) is y
    np.testing.assert_allclose(to_host(y), expected_y, **tolerance(dtype))
    if z is not None:
        np.testing.assert_allclose(to_host(z), expected_z, **tolerance(dtype))


@pytest.mark.parametrize("impl", IMPLS)
def test_bias_act_out_and_z_out_cannot_both_be_x(impl):
    x, b = np.ones((3, 4)), np.ones(4)
    with pytest.raises(ValueError, match="z_out overlaps out"):
        getattr(B, f"bias_act_{impl}")(x, b, "gelu", out=x, z_out=x)


def test_codes_and_names():
    assert A.activation_code(None) == A.IDENTITY
    assert A.activation_code("ReLU") == A.RELU and A.activation_code("swish") == A.SILU
    assert A.activation_code(np.int64(A.GELU)) == A.GELU
    assert set(A.NAMES.values()) == set(ACTIVATIONS)
    for bad in ("swishy", 99, True, 1.0):
        with pytest.raises(ValueError, match="activation"):
            A.activation_code(bad)


# --------------------------------------------------------------------------- float32 polynomials


@functools.cache
def _swept(index: int):
    """fast_f32()[index] applied over an array, compiled with the kernels' fast-math flags."""
    fn = A.fast_f32()[index]

    @njit(**NJIT_OPTIONS)
    def apply(x, y):
        for i in range(x.size):
            y[i] = fn(x[i])

    def run(x: np.ndarray) -> np.ndarray:
        y = np.empty_like(x)
        apply(x, y)
        return y

    return run


def _max_relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(got.astype(np.float64) - expected) / np.abs(expected)))


def test_fast_exp_relative_error_below_1e6(rng):
    tiny = float(np.finfo(np.float32).tiny)
    lo, hi = math.log(tiny), math.log(float(np.finfo(np.float32).max))
    x = np.concatenate([np.linspace(lo, hi, 2_000_003), rng.uniform(lo, hi, 1_000_000),
                        rng.uniform(-1, 1, 100_000)]).astype(np.float32)
    x = x[(x > lo) & (x < hi)]  # the results stay normal float32
    assert _max_relative_error(_swept(0)(x), np.exp(x.astype(np.float64))) < 1e-6
    special = np.array([np.nan, np.inf, -np.inf, 89.0, -104.0, -1e30, 0.0], np.float32)
    y = _swept(0)(special)
    assert np.isnan(y[0]) and y[1] == np.inf and y[2] == 0 and y[3] == np.inf and y[4] == 0 and y[5] == 0
    assert y[6] == 1


def test_fast_tanh_relative_error(rng):
    x = np.concatenate([np.linspace(-12, 12, 1_000_001), rng.standard_normal(100_000) * 3,
                        np.geomspace(1e-30, 1, 10_000)]).astype(np.float32)
    x = x[x != 0]
    assert _max_relative_error(_swept(1)(x), np.tanh(x.astype(np.float64))) < 3e-7
    y = _swept(1)(np.array([np.nan, np.inf, -np.inf, 0.0, 1e30], np.float32))
    assert np.isnan(y[0]) and list(y[1:]) == [1, -1, 0, 1]


def test_fast_erfc_relative_error():
    erfc = np.vectorize(math.erfc, otypes=[np.float64])
    near = np.linspace(-4, 4, 400_001).astype(np.float32)
    assert _max_relative_error(_swept(2)(near), erfc(near.astype(np.float64))) < 2e-6
    tail = np.linspace(4, 9.1, 100_001).astype(np.float32)  # erfc(9.1) ~ 1e-37: the normal float32 range ends
    assert _max_relative_error(_swept(2)(tail), erfc(tail.astype(np.float64))) < 1e-5
    y = _swept(2)(np.array([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e30], np.float32))
    assert np.isnan(y[0]) and list(y[1:]) == [0, 2, 1, 0, 2]
