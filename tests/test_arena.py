"""arena_sums: what a training step reads back, three ways, against float64 sums."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import IMPLS, op, to_device, to_host

DTYPES = [np.float32, np.float64]


def _exact(param: np.ndarray, grad: np.ndarray, loss: float) -> list[float]:
    w, g = param.astype(np.float64), grad.astype(np.float64)
    return [loss, float(np.sum(g * g)), float(np.sum(np.abs(w))), float(np.sum(w * w))]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 7, 1003])
def test_matches_float64_sums(impl, dtype, size, rng):
    param, grad = (rng.standard_normal(size).astype(dtype) for _ in range(2))
    loss = np.asarray(1.25, dtype)
    out = op("arena", "arena_sums", impl)(param, grad, loss)
    assert out.shape == (4,) and out.dtype == np.float64
    np.testing.assert_allclose(out, _exact(param, grad, 1.25), rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_without_param_or_loss(impl, rng):
    param, grad = (rng.standard_normal(70).astype(np.float32) for _ in range(2))
    out = op("arena", "arena_sums", impl)(param, grad, with_param=False)
    np.testing.assert_allclose(out, [0.0, _exact(param, grad, 0.0)[1], 0.0, 0.0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_the_squares_sum_in_float64(impl, rng):
    """Float32 gradients of 1e30 square to 1e60: finite in float64, so no finite step looks non-finite,
    and a NaN or Inf anywhere makes the sum non-finite."""
    grad = np.full(33, 1e30, np.float32)
    param = np.zeros(33, np.float32)
    fn = op("arena", "arena_sums", impl)
    np.testing.assert_allclose(fn(param, grad)[1], 33 * np.float64(np.float32(1e30)) ** 2, rtol=1e-12)
    for bad in (np.nan, np.inf):
        grad[17] = bad
        assert not np.isfinite(fn(param, grad)[1])


@pytest.mark.parametrize("impl", IMPLS)
def test_into_a_given_output_the_same_to_the_last_bit(impl, rng):
    from gpudnn.kernels import arena

    device = to_device if impl == "cuda" else (lambda a: a)
    param, grad = (device(rng.standard_normal(1000).astype(np.float32)) for _ in range(2))
    out = device(np.full(6, np.nan))
    fn = getattr(arena, f"arena_sums_{impl}")
    assert fn(param, grad, out=out[1:5]) is not None
    first = to_host(out).copy()
    assert np.isnan(first[[0, 5]]).all() and np.isfinite(first[1:5]).all()
    fn(param, grad, out=out[1:5])
    np.testing.assert_array_equal(to_host(out), first)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("change,error,message", [
    (lambda p, g: dict(grad=g[:-1]), ValueError, r"grad must have shape \(8,\)"),
    (lambda p, g: dict(grad=g.astype(np.float64)), TypeError, "grad must have dtype float32"),
    (lambda p, g: dict(param=p.reshape(2, 4), grad=g.reshape(2, 4)), ValueError, "param must be 1-D"),
    (lambda p, g: dict(grad=p), ValueError, "grad overlaps param"),
    (lambda p, g: dict(loss=np.zeros(1, np.float32)), ValueError, r"loss must have shape \(\)"),
    (lambda p, g: dict(out=np.zeros(4, np.float32)), TypeError, "out must have dtype float64"),
    (lambda p, g: dict(out=np.zeros(3)), ValueError, r"out must have shape \(4,\)"),
    (lambda p, g: dict(with_param=1), TypeError, "with_param must be a bool"),
])
def test_bad_arguments_are_named(impl, change, error, message):
    from gpudnn.kernels import arena

    device = to_device if impl == "cuda" else (lambda a: a)
    p, g = device(np.zeros(8, np.float32)), device(np.ones(8, np.float32))
    args = {"param": p, "grad": g, "loss": None, "out": None, "with_param": True,
            **{k: device(v) for k, v in change(p, g).items()}}
    with pytest.raises(error, match=message):
        getattr(arena, f"arena_sums_{impl}")(args["param"], args["grad"], args["loss"], args["out"],
                                             with_param=args["with_param"])
