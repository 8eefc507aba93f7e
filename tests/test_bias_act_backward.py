"""bias_act_backward: reference vs Numba CPU vs numba.cuda (simulated without a GPU), every activation's
derivative vs float64 central differences of the forward, db vs a float64 column sum, bad arguments."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from gpudnn.kernels import activations as A
from gpudnn.kernels import bias_act_backward as K
from gpudnn.kernels.bias_act import bias_act_ref

from tests.support import HAVE_GPU, IMPLS, op, to_device, to_host, tolerance
from tests.test_activations import ACTIVATIONS, ALPHA, EXTREMES, exact_forward

DTYPES = [np.float32, np.float64]
FROM_OUTPUT = [A.NAMES[code] for code in sorted(A.FROM_OUTPUT)]


def _backward(impl: str, dy, saved, activation, from_output=False, **kw):
    fn = op("bias_act_backward", "bias_act_backward", impl)
    return fn(dy, saved, activation, ALPHA, from_output=from_output, **kw)


def _exact_grad(z: np.ndarray, activation: str) -> np.ndarray:
    """f'(z) by float64 central differences of the textbook forward (step scaled to |z|)."""
    z = z.astype(np.float64)
    h = 1e-6 * np.maximum(1.0, np.abs(z))
    return (exact_forward(z + h, activation) - exact_forward(z - h, activation)) / (2 * h)


def _assert_db(db: np.ndarray, dz: np.ndarray) -> None:
    """db is dz's column sum up to the rounding of a few partial sums (the CUDA kernel adds float32
    block partials atomically, so its error scales with sum |dz|, not with |sum dz|)."""
    exact = dz.astype(np.float64).sum(axis=0)
    eps = np.finfo(dz.dtype).eps
    assert np.all(np.abs(db - exact) <= 4 * eps * (np.abs(exact) + np.abs(dz).astype(np.float64).sum(axis=0)))


def _pre_activations(rng, shape, dtype):
    """Fresh N(0, 9) inputs kept 1e-3 away from relu's kink at 0 (the central difference straddles it)."""
    z = rng.standard_normal(shape) * 3
    return np.where(np.abs(z) < 1e-3, 1e-3, z).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_derivatives_match_central_differences(dtype, activation, rng):
    extremes = np.array([v for v in EXTREMES if v > 0.1])  # the central difference must not straddle 0
    z = np.concatenate([_pre_activations(rng, 200, np.float64), extremes, -extremes]).astype(dtype)
    dy = np.ones((1, z.size), dtype)
    dz, _ = _backward("cpu", dy, z.reshape(1, -1), activation)
    tol = {"rtol": 2e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-7, "atol": 1e-9}
    np.testing.assert_allclose(dz.ravel(), _exact_grad(z, activation), **tol)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_three_ways_agree_and_db_is_the_column_sum(impl, dtype, activation, rng):
    shape = (7, 13)
    dy = rng.standard_normal(shape).astype(dtype)
    z = _pre_activations(rng, shape, dtype)
    dz, db = _backward(impl, dy, z, activation)
    assert dz.shape == shape and db.shape == (13,) and dz.dtype == dtype and db.dtype == dtype
    expected_dz = dy.astype(np.float64) * _exact_grad(z, activation)
    np.testing.assert_allclose(dz, expected_dz, rtol=2e-5 if dtype == np.float32 else 1e-7, atol=1e-6)
    ref_dz, ref_db = _backward("ref", dy, z, activation)
    np.testing.assert_allclose(dz, ref_dz, **tolerance(dtype))
    _assert_db(db, dz)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (300, 257)])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_odd_shapes(impl, dtype, shape, activation, rng):
    dy = rng.standard_normal(shape).astype(dtype)
    z = _pre_activations(rng, shape, dtype)
    dz, db = _backward(impl, dy, z, activation)
    ref_dz, _ = _backward("ref", dy, z, activation)
    np.testing.assert_allclose(dz, ref_dz, **tolerance(dtype))
    # Not only against the ref (which for impl == "ref" is itself): dy times the exact derivative.
    z64 = z.astype(np.float64)
    if activation == "relu":
        derivative = (z64 > 0).astype(np.float64)
    else:  # gelu(z) = z Phi(z): gelu'(z) = Phi(z) + z phi(z)
        derivative = 0.5 * np.vectorize(math.erfc)(-z64 / math.sqrt(2)) + z64 * np.exp(-z64**2 / 2) / math.sqrt(
            2 * math.pi)
    expected_dz = dy.astype(np.float64) * derivative
    np.testing.assert_allclose(dz, expected_dz, rtol=2e-5 if dtype == np.float32 else 1e-7, atol=1e-6)
    _assert_db(db, dz)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("activation", FROM_OUTPUT)
def test_from_output_equals_from_preactivation(impl, activation, rng):
    dy = rng.standard_normal((9, 11))
    z = _pre_activations(rng, (9, 11), np.float64)
    y = exact_forward(z, activation)
    from_y = _backward(impl, dy, y, activation, from_output=True)
    from_z = _backward(impl, dy, z, activation, from_output=False)
    for a, b in zip(from_y, from_z):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
def test_db_is_accurate_over_many_rows(dtype, rng):
    """4099 rows of large, alternating-sign values. float32: db is the exactly rounded column sum
    (naive float32 accumulation is off by ~1e-5 relative here); float64: within eps * sum|dz|."""
    n, m = 4099, 33
    dy = (rng.standard_normal((n, m)) * 1e3 + 1e4).astype(dtype)
    dy[1::2] *= -1
    z = np.abs(_pre_activations(rng, (n, m), dtype))
    dz, db = _backward("cpu", dy, z, "relu")
    exact = np.array([math.fsum(col) for col in dz.astype(np.float64).T])
    eps = np.finfo(dtype).eps
    slack = 0.0 if dtype == np.float32 else eps * np.abs(dz).sum(axis=0)
    assert np.all(np.abs(db - exact) <= eps * np.abs(exact) + slack)


@pytest.mark.parametrize("impl", ["ref", "cpu", "cuda"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_given_outputs(impl, dtype, rng):
    dy = rng.standard_normal((30, 17)).astype(dtype)
    z = _pre_activations(rng, (30, 17), dtype)
    expected_dz, expected_db = _backward("ref", dy, z, "silu")
    fn = getattr(K, f"bias_act_backward_{impl}")
    dev = to_device if impl == "cuda" else (lambda a: a)
    grad, saved, db = dev(dy.copy()), dev(z), dev(np.full(17, np.nan, dtype))
    dz_result, db_result = fn(grad, saved, "silu", from_output=False, dz_out=grad, db_out=db)
    assert dz_result is grad and db_result is db
    np.testing.assert_allclose(to_host(grad), expected_dz, **tolerance(dtype))
    np.testing.assert_allclose(to_host(db), expected_db, **tolerance(dtype))


@pytest.mark.parametrize("impl", IMPLS)
def test_extreme_and_nan_inputs(impl):
    extremes = np.array([1e4, -1e4, 1e30, -1e30, 89.0, -89.0, 0.5], np.float32)
    z = np.stack([extremes, extremes[::-1]])
    dy = np.ones_like(z)
    for activation in ACTIVATIONS:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            dz, db = _backward(impl, dy, z, activation)
        assert np.isfinite(dz).all() and np.isfinite(db).all(), activation
    z[0, 2] = np.nan
    for activation in ACTIVATIONS:
        dz, db = _backward(impl, dy, z, activation)
        if activation != "identity":  # identity's derivative never looks at z
            assert np.isnan(dz[0, 2]) and np.isnan(db[2]) and np.isfinite(np.delete(db, 2)).all(), activation


@pytest.mark.parametrize("impl", IMPLS)
def test_empty(impl):
    dz, db = _backward(impl, np.zeros((0, 5), np.float32), np.zeros((0, 5), np.float32), "relu")
    assert dz.shape == (0, 5) and db.shape == (5,) and not db.any()
    dz, db = _backward(impl, np.zeros((4, 0)), np.zeros((4, 0)), "tanh")
    assert dz.shape == (4, 0) and db.shape == (0,)


BAD = [
    (lambda dy, s: (dy, s[:-1]), {}, ValueError, "saved must have shape"),
    (lambda dy, s: (dy, s.astype(np.float64)), {}, TypeError, "saved must have dtype float32"),
    (lambda dy, s: (dy[:, ::2], s[:, ::2]), {}, ValueError, "dy must be C-contiguous"),
    (lambda dy, s: (dy, np.asfortranarray(s)), {}, ValueError, "saved must be C-contiguous"),
    (lambda dy, s: (dy.astype(np.int32), s.astype(np.int32)), {}, TypeError, "dy must be float32 or float64"),
    (lambda dy, s: (dy.ravel(), s.ravel()), {}, ValueError, "dy must be 2-D"),
    (lambda dy, s: (dy, s), {"activation": "gelu", "from_output": True}, ValueError, "'gelu' cannot be differentiated"),
    (lambda dy, s: (dy, s), {"activation": "leaky_relu"}, ValueError, "'leaky_relu' cannot be differentiated"),
    (lambda dy, s: (dy, s), {"from_output": "yes"}, TypeError, "from_output must be a bool"),
    (lambda dy, s: (dy, s), {"alpha": float("inf")}, ValueError, "alpha must be finite"),
    (lambda dy, s: (dy, s), {"activation": "swishy"}, ValueError, "activation must be one of"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mutate,kwargs,error,message", BAD)
def test_bad_arguments_are_named(impl, mutate, kwargs, error, message):
    dy, saved = mutate(np.ones((6, 8), np.float32), np.ones((6, 8), np.float32))
    kwargs = {"activation": "relu", "from_output": True, **kwargs}
    activation = kwargs.pop("activation")
    with pytest.raises(error, match=message):
        op("bias_act_backward", "bias_act_backward", impl)(dy, saved, activation, **kwargs)


@pytest.mark.parametrize("impl", ["ref", "cpu"] + (["cuda"] if not HAVE_GPU else []))
def test_outputs_must_not_alias_inputs(impl):
    fn = getattr(K, f"bias_act_backward_{impl}")
    dy, saved = np.ones((6, 8), np.float32), np.ones((6, 8), np.float32)
    with pytest.raises(ValueError, match="dz_out overlaps saved"):
        fn(dy, saved, "relu", dz_out=saved)
    with pytest.raises(ValueError, match="db_out overlaps dy"):
        fn(dy, saved, "relu", db_out=dy[0])
    dz = np.empty_like(dy)
    with pytest.raises(ValueError, match="db_out overlaps dz_out"):
        fn(dy, saved, "relu", dz_out=dz, db_out=dz[2])
    with pytest.raises(ValueError, match="db_out must have shape"):
        fn(dy, saved, "relu", db_out=np.empty(7, np.float32))
    with pytest.raises(TypeError, match="dz_out must have dtype float32"):
        fn(dy, saved, "relu", dz_out=np.empty((6, 8)))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("activation,from_output", [("tanh", True), ("gelu", False), ("leaky_relu", False)])
def test_without_db_the_same_dz_and_no_db(impl, activation, from_output, rng):
    """An activation without a bias (Activation, Dense(bias=False)) takes dz alone."""
    dy = rng.standard_normal((37, 45)).astype(np.float32)
    z = _pre_activations(rng, (37, 45), np.float32)
    saved = bias_act_ref(z, None, activation, 0.1) if from_output else z
    fn = op("bias_act_backward", "bias_act_backward", impl)
    expected_dz, _ = fn(dy, saved, activation, 0.1, from_output)
    dz, db = fn(dy, saved, activation, 0.1, from_output, with_db=False)
    assert db is None
    np.testing.assert_array_equal(dz, expected_dz)
    with pytest.raises(ValueError, match="db_out given with with_db=False"):
        fn(dy, saved, activation, 0.1, from_output, db_out=np.zeros(45, np.float32), with_db=False)
    with pytest.raises(TypeError, match="with_db must be a bool"):
        fn(dy, saved, activation, 0.1, from_output, with_db=1)
