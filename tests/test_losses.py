"""bce_logits and mse: reference vs Numba CPU vs numba.cuda (simulated without a GPU) against float64
formulas, PyTorch, and float64 finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from tests.support import IMPLS, op, to_device, to_host

DTYPES = [np.float32, np.float64]
SHAPES = [(), (1,), (7, 13), (2, 3, 5), (300, 257)]
LOSSES = ["bce_logits", "mse"]


def _inputs(rng, name, shape, dtype, scale=3.0):
    a = np.asarray(rng.standard_normal(shape) * scale, dtype=dtype)
    b = rng.random(shape) if name == "bce_logits" else rng.standard_normal(shape)
    return a, np.asarray(b, dtype=dtype)


def _exact(name: str, a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean loss and gradient in float64, by the textbook formulas."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    if name == "bce_logits":  # -t log(sigmoid(x)) - (1 - t) log(1 - sigmoid(x)) = log(1 + e^x) - t x
        return float((np.logaddexp(0.0, a) - a * b).mean()), (expit(a) - b) / a.size
    return float(((a - b) ** 2).mean()), 2 * (a - b) / a.size


def _check(name, loss, grad, a, b):
    loss_exact, grad_exact = _exact(name, a, b)
    assert loss.shape == () and loss.dtype == a.dtype
    assert grad.shape == a.shape and grad.dtype == a.dtype
    if a.dtype == np.float32:
        np.testing.assert_allclose(loss, loss_exact, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(a.size * grad, a.size * grad_exact, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(loss, loss_exact, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(a.size * grad, a.size * grad_exact, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", LOSSES)
def test_matches_float64_formula(impl, dtype, shape, name, rng):
    a, b = _inputs(rng, name, shape, dtype)
    _check(name, *op("losses", name, impl)(a, b), a, b)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
@pytest.mark.parametrize("name", LOSSES)
def test_larger_arrays(impl, name, rng):
    a, b = _inputs(rng, name, (1003, 1000), np.float32)
    _check(name, *op("losses", name, impl)(a, b), a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", LOSSES)
def test_matches_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    a, b = _inputs(rng, name, (31, 17), dtype)
    at = torch.tensor(a, requires_grad=True)
    fn = torch.nn.functional.binary_cross_entropy_with_logits if name == "bce_logits" else torch.nn.functional.mse_loss
    expected = fn(at, torch.tensor(b))
    expected.backward()
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-15}
    for impl in IMPLS:
        loss, grad = op("losses", name, impl)(a, b)
        np.testing.assert_allclose(loss, expected.item(), **tol, err_msg=impl)
        np.testing.assert_allclose(grad, at.grad.numpy(), **tol, err_msg=impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", LOSSES)
def test_gradient_matches_finite_differences(impl, name, rng):
    """Central differences of the float64 loss along random directions v: (L(x+hv) - L(x-hv)) / 2h = <dL/dx, v>."""
    a, b = _inputs(rng, name, (5, 7), np.float64)
    fn = op("losses", name, impl)
    _, grad = fn(a, b)
    h = 1e-6
    for v in rng.standard_normal((4, *a.shape)):
        numeric = (float(fn(a + h * v, b)[0]) - float(fn(a - h * v, b)[0])) / (2 * h)
        assert abs(numeric - np.sum(grad * v)) < 1e-7 * max(1.0, abs(numeric))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_bce_extreme_logits(impl, dtype, rng):
    x = np.array([-1e4, 1e4, -1e4, 1e4, -1e4, 1e4, -100.0, 100.0, 0.0], dtype)
    t = np.array([0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 0.0, 0.5], dtype)
    loss, grad = op("losses", "bce_logits", impl)(x, t)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    _check("bce_logits", loss, grad, x, t)
    big = rng.uniform(-1e4, 1e4, (9, 40)).astype(dtype)
    targets = rng.random((9, 40)).astype(dtype)
    _check("bce_logits", *op("losses", "bce_logits", impl)(big, targets), big, targets)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", LOSSES)
def test_nan_propagates(impl, name):
    a = np.zeros((3, 4), np.float32)
    a[1, 2] = np.nan
    loss, grad = op("losses", name, impl)(a, np.full_like(a, 0.5))
    assert np.isnan(loss) and np.isnan(grad[1, 2])
    assert np.isfinite(np.delete(grad.ravel(), 6)).all()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", LOSSES)
def test_in_place_and_reused_output(impl, name, rng):
    from gpudnn.kernels import losses as module

    raw = getattr(module, f"{name}_{impl}")
    a, b = _inputs(rng, name, (7, 13), np.float32)
    loss_exact, grad_exact = _exact(name, a, b)
    device = to_device if impl == "cuda" else (lambda a: a)
    ad, bd = device(a.copy()), device(b)
    loss, grad = raw(ad, bd, grad_out=ad)
    assert grad is ad and type(loss) is type(ad)  # the 0-d loss lives where the inputs live
    np.testing.assert_allclose(a.size * to_host(ad), a.size * grad_exact, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_host(loss), loss_exact, rtol=2e-6)
    out = device(np.full_like(a, np.nan))
    assert raw(device(a), bd, grad_out=out)[1] is out
    np.testing.assert_allclose(a.size * to_host(out), a.size * grad_exact, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- bad arguments

A = np.zeros((6, 5), np.float32)
T = np.full((6, 5), 0.5, np.float32)
# Each case changes valid (a, b), built on the impl's device, into bad arguments.
BAD = [
    ("bce_logits", lambda a, b: dict(b=b + 1), ValueError, r"targets must lie in \[0, 1\], got values in \[1.5, 1.5\]"),
    ("bce_logits", lambda a, b: dict(b=b - 1), ValueError, r"targets must lie in \[0, 1\]"),
    ("bce_logits", lambda a, b: dict(b=b * np.nan), ValueError, r"targets must lie in \[0, 1\]"),
    ("bce_logits", lambda a, b: dict(b=b.astype(np.float64)), TypeError, "targets must have dtype float32"),
    ("bce_logits", lambda a, b: dict(b=b[:, :4].copy()), ValueError, r"targets must have shape \(6, 5\)"),
    ("bce_logits", lambda a, b: dict(a=a.repeat(2, axis=1)[:, ::2]), ValueError, "logits must be C-contiguous"),
    ("bce_logits", lambda a, b: dict(a=a.astype(np.int64), b=b.astype(np.int64)), TypeError,
     "logits must be float32 or float64"),
    ("bce_logits", lambda a, b: dict(a=a[:0], b=b[:0]), ValueError, "logits is empty"),
    ("bce_logits", lambda a, b: dict(a=[[0.0] * 5] * 6), TypeError, "logits must be a NumPy or CuPy array"),
    ("bce_logits", lambda a, b: dict(grad_out=a[:, :4].copy()), ValueError, "grad_out must have shape"),
    ("mse", lambda a, b: dict(b=b.T.copy()), ValueError, r"target must have shape \(6, 5\)"),
    ("mse", lambda a, b: dict(b=b.repeat(2, axis=1)[:, ::2]), ValueError, "target must be C-contiguous"),
    ("mse", lambda a, b: dict(b=b.astype(np.float64)), TypeError, "target must have dtype float32"),
    ("mse", lambda a, b: dict(a=a[:0], b=b[:0]), ValueError, "pred is empty"),
    ("mse", lambda a, b: dict(grad_out=a.astype(np.float64)), TypeError, "grad_out must have dtype float32"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,change,error,message", BAD)
def test_bad_arguments_are_named(impl, name, change, error, message):
    from gpudnn.kernels import losses as module

    device = to_device if impl == "cuda" else (lambda a: a)
    a, b = device(A), device(T)
    args = {"a": a, "b": b, "grad_out": None, **change(a, b)}
    with pytest.raises(error, match=message):
        getattr(module, f"{name}_{impl}")(args["a"], args["b"], grad_out=args["grad_out"])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", LOSSES)
def test_aliased_outputs_are_refused(impl, name):
    from gpudnn.kernels import losses as module

    raw = getattr(module, f"{name}_{impl}")
    device = to_device if impl == "cuda" else (lambda a: a)
    big, targets = device(np.zeros((12, 5), np.float32)), device(T)
    with pytest.raises(ValueError, match="grad_out overlaps (logits|pred)"):
        raw(big[:6], targets, grad_out=big[3:9])
    with pytest.raises(ValueError, match="grad_out overlaps target"):
        raw(big[:6], targets, grad_out=targets)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", LOSSES)
def test_the_loss_goes_into_loss_out_and_is_the_same_to_the_last_bit(impl, name, rng):
    from gpudnn.kernels import losses as module

    a, b = _inputs(rng, name, (33, 70), np.float32)  # several blocks under the simulator
    device = to_device if impl == "cuda" else (lambda a: a)
    raw = getattr(module, f"{name}_{impl}")
    loss_out = device(np.full((), np.nan, np.float32))
    loss, grad = raw(device(a), device(b), loss_out=loss_out)
    assert loss is loss_out
    _check(name, to_host(loss), to_host(grad), a, b)
    again = {float(to_host(raw(device(a), device(b))[0])) for _ in range(2)}
    assert again == {float(to_host(loss))}
    with pytest.raises(ValueError, match=r"loss_out must have shape \(\)"):
        raw(device(a), device(b), loss_out=device(np.zeros(1, np.float32)))
    with pytest.raises(TypeError, match="loss_out must have dtype float32"):
        raw(device(a), device(b), loss_out=device(np.zeros((), np.float64)))
