"""bias_act: reference vs Numba CPU vs numba.cuda (simulated without a GPU) vs float64 maths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gpudnn.kernels import activations as A
from gpudnn.kernels import bias_act as bias_act_module

from tests.support import IMPLS, op, to_device, to_host, tolerance

SHAPES = [(1, 1), (7, 13), (300, 257)]
DTYPES = [np.float32, np.float64]


def _exact(z: np.ndarray, code: int, alpha: float) -> np.ndarray:
    """The activation by its textbook formula, elementwise in float64 Python maths."""
    def f(v: float) -> float:
        return {
            A.IDENTITY: lambda: v,
            A.RELU: lambda: max(v, 0.0),
            A.LEAKY_RELU: lambda: v if v > 0 else alpha * v,
            A.SIGMOID: lambda: 1 / (1 + math.exp(-v)) if v > -700 else 0.0,
            A.TANH: lambda: math.tanh(v),
            A.GELU_TANH: lambda: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3))),
            A.GELU: lambda: 0.5 * v * (1 + math.erf(v / math.sqrt(2))),
            A.SILU: lambda: v / (1 + math.exp(-v)) if v > -700 else 0.0,
            A.SOFTPLUS: lambda: math.log1p(math.exp(v)) if v < 30 else v + math.log1p(math.exp(-v)),
        }[code]()
    return np.vectorize(f, otypes=[np.float64])(z.astype(np.float64))


def _inputs(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    return x, b


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("activation", ["identity", "relu", "leaky_relu", "sigmoid", "tanh"])
def test_matches_float64_formula(impl, dtype, shape, activation, rng):
    x, b = _inputs(rng, shape, dtype)
    y = op("bias_act", "bias_act", impl)(x, b, activation, alpha=0.1)
    assert y.dtype == dtype and y.shape == shape
    expected = _exact(x.astype(np.float64) + b.astype(np.float64), A.activation_code(activation), 0.1)
    np.testing.assert_allclose(y, expected, **tolerance(dtype))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_keeps_preactivation_and_runs_in_place(impl, dtype, rng):
    """z_out and out=x through the kernel itself, on arrays where it runs (tests.support.to_device: CuPy on
    a GPU; under the simulator the NumPy arrays themselves, which the cuda kernels then write), brought
    back with to_host: the same checks for all three, against the ref and against float64 maths."""
    x, b = _inputs(rng, (7, 13), dtype)
    fn = getattr(bias_act_module, f"bias_act_{impl}")
    place = to_device if impl == "cuda" else (lambda a: a)
    xd, bd, zd = place(x.copy()), place(b), place(np.full_like(x, np.nan))
    expected_y = op("bias_act", "bias_act", "ref")(x, b, "tanh")
    expected_z = x + b
    exact_z = x.astype(np.float64) + b.astype(np.float64)
    exact_y = _exact(exact_z, A.TANH, 0.0)
    y = fn(xd, bd, "tanh", z_out=zd)
    z = to_host(zd)
    np.testing.assert_allclose(z, expected_z, **tolerance(dtype))
    np.testing.assert_allclose(z, exact_z, **tolerance(dtype))
    np.testing.assert_allclose(to_host(y), expected_y, **tolerance(dtype))
    np.testing.assert_allclose(to_host(y), exact_y, **tolerance(dtype))
    np.testing.assert_array_equal(to_host(xd), x)  # x is an input only here
    same = place(x.copy())
    result = fn(same, bd, "tanh", out=same)
    assert result is same
    np.testing.assert_allclose(to_host(same), expected_y, **tolerance(dtype))
    np.testing.assert_allclose(to_host(same), exact_y, **tolerance(dtype))


@pytest.mark.parametrize("impl", IMPLS)
def test_no_bias_and_empty(impl, rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_allclose(op("bias_act", "bias_act", impl)(x, None, "relu"), np.maximum(x, 0))
    empty = np.zeros((0, 5), np.float32)
    assert op("bias_act", "bias_act", impl)(empty, np.zeros(5, np.float32), "relu").shape == (0, 5)


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_propagates(impl):
    x = np.array([[np.nan, -1.0, 2.0]], np.float32)
    y = op("bias_act", "bias_act", impl)(x, np.zeros(3, np.float32), "relu")
    assert np.isnan(y[0, 0]) and y[0, 1] == 0 and y[0, 2] == 2


BAD = [
    (lambda x, b: (x[:, ::2], b[::2]), ValueError, "C-contiguous"),
    (lambda x, b: (x.astype(np.int32), b), TypeError, "float32 or float64"),
    (lambda x, b: (x, b.astype(np.float64)), TypeError, "b must have dtype float32"),
    (lambda x, b: (x, b[:-1]), ValueError, "b must have shape"),
    (lambda x, b: (x.ravel(), b), ValueError, "x must be 2-D"),
    (lambda x, b: (x.tolist(), b), TypeError, "x must be a NumPy or CuPy array"),
    (lambda x, b: (x, b.tolist()), TypeError, "b must be a NumPy or CuPy array"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mutate,error,message", BAD)
def test_bad_arguments_are_named(impl, mutate, error, message):
    # Built where the kernel runs (on the GPU for cuda when present), so strides survive.
    place = to_device if impl == "cuda" else (lambda a: a)
    bx, bb = mutate(place(np.ones((6, 8), np.float32)), place(np.ones(8, np.float32)))
    with pytest.raises(error, match=message):
        getattr(bias_act_module, f"bias_act_{impl}")(bx, bb, "relu")


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_bad_outputs_and_activation(impl):
    x, b = np.ones((6, 8), np.float32), np.ones(8, np.float32)
    fn = op("bias_act", "bias_act", impl)
    with pytest.raises(ValueError, match="activation must be one of"):
        fn(x, b, "swishy")
    with pytest.raises(ValueError, match="out must have shape"):
        fn(x, b, "relu", out=np.empty((6, 7), np.float32))
    with pytest.raises(ValueError, match="overlaps"):
        fn(x, b, "relu", out=x, z_out=x)
    big = np.ones((12, 8), np.float32)
    with pytest.raises(ValueError, match="overlaps x"):
        fn(big[:6], b, "relu", out=big[3:9])
    shared = np.ones(48, np.float32)
    with pytest.raises(ValueError, match="out overlaps b"):
        fn(x, shared[:8], "relu", out=shared.reshape(6, 8))
    z = np.arange(48, dtype=np.float32).reshape(6, 8) - 20
    expected = np.maximum(z + b, 0)
    fn(z, b, "relu", out=z.view())  # another view of exactly x's memory: in place
    np.testing.assert_array_equal(z, expected)
    with pytest.raises(ValueError, match="alpha must be finite"):
        fn(x, b, "leaky_relu", alpha=float("nan"))
