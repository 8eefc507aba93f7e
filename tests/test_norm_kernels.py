"""LayerNorm / BatchNorm1d kernels: reference vs Numba CPU vs numba.cuda (simulated without a GPU), each
against float64 formulas written here, float64 central differences and PyTorch (when importable); running
statistics, large offsets, NaN, empty inputs, in place, and named errors for bad arguments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from gpudnn.kernels import batch_norm, layer_norm

from tests.support import IMPLS, SIMULATOR, numeric_grad, op, to_device, to_host, tolerance

DTYPES = [np.float32, np.float64]
EPS = 1e-5
SIM_SHAPE = (64, 33)  # the simulator runs every CUDA thread in Python: the large shape shrinks to this
MODULES = {"layer_norm": layer_norm, "batch_norm": batch_norm}


def _kernel(name: str, impl: str) -> Callable[..., Any]:
    """``<name>_<impl>`` of kernels.layer_norm or kernels.batch_norm, called as it is (arrays not moved)."""
    return getattr(MODULES[name.removesuffix("_backward")], f"{name}_{impl}")


def _shape(impl: str, shape: tuple[int, int]) -> tuple[int, int]:
    return SIM_SHAPE if impl == "cuda" and SIMULATOR and shape[0] * shape[1] > SIM_SHAPE[0] * SIM_SHAPE[1] else shape


def _params(rng, m: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    return (1 + 0.5 * rng.standard_normal(m)).astype(dtype), rng.standard_normal(m).astype(dtype)


# --------------------------------------------------------------------------- float64 formulas


def _ln_exact(x, gamma, beta, eps=EPS):
    """(out, mean, rstd) of LayerNorm over each row, in float64."""
    x = x.astype(np.float64)
    mean = x.mean(axis=1)
    rstd = 1 / np.sqrt(((x - mean[:, None]) ** 2).mean(axis=1) + eps)
    return (x - mean[:, None]) * rstd[:, None] * gamma.astype(np.float64) + beta, mean, rstd


def _bn_exact(x, gamma, beta, eps=EPS):
    """(out, mean, rstd, biased var) of training-mode BatchNorm over each column, in float64."""
    x = x.astype(np.float64)
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    rstd = 1 / np.sqrt(var + eps)
    return (x - mean) * rstd * gamma.astype(np.float64) + beta, mean, rstd, var


def _ln_backward_terms(dy, x, gamma, mean, rstd):
    """(dx, the size of the terms dx cancels, per-element terms of dgamma, of dbeta) from the saved
    row statistics, in float64."""
    dy, x = dy.astype(np.float64), x.astype(np.float64)
    r = rstd.astype(np.float64)[:, None]
    xhat = (x - mean.astype(np.float64)[:, None]) * r
    g = dy * gamma.astype(np.float64)
    a, b = g.mean(axis=1, keepdims=True), (g * xhat).mean(axis=1, keepdims=True)
    return r * (g - a - xhat * b), r * (np.abs(g) + np.abs(a) + np.abs(xhat * b)), dy * xhat, dy


def _bn_backward_terms(dy, x, gamma, mean, rstd):
    """(dx, the size of the terms dx cancels, per-element terms of dgamma, of dbeta) from the saved
    column statistics, in float64."""
    dy, x, r = dy.astype(np.float64), x.astype(np.float64), rstd.astype(np.float64)
    xhat = (x - mean.astype(np.float64)) * r
    a, b = dy.mean(axis=0), (dy * xhat).mean(axis=0)
    k = gamma.astype(np.float64) * r
    return k * (dy - a - xhat * b), np.abs(k) * (np.abs(dy) + np.abs(a) + np.abs(xhat * b)), dy * xhat, dy


def _assert_dx(got: np.ndarray, want: np.ndarray, scale: np.ndarray) -> None:
    """dx within a few roundings of the terms it cancels (sum_j dx_ij = 0 for LayerNorm, sum_i for
    BatchNorm, so some dx are far smaller than their terms; float32 kernels compute them in float32)."""
    eps = np.finfo(got.dtype).eps
    assert np.all(np.abs(got - want) <= tolerance(got.dtype)["rtol"] * np.abs(want) + 16 * eps * scale)


def _assert_column_sum(got: np.ndarray, terms: np.ndarray) -> None:
    """got is the column sum of ``terms`` up to the rounding of partial sums: the CUDA kernels add
    dtype partials atomically, so the error scales with sum |terms|, not with |sum terms|."""
    exact = terms.sum(axis=0)
    eps = np.finfo(got.dtype).eps
    assert np.all(np.abs(got - exact) <= 8 * eps * (np.abs(exact) + np.abs(terms).sum(axis=0)))


# --------------------------------------------------------------------------- three ways vs formulas


NORMS = {  # float64 forward, float64 backward terms, smallest shape, length of the saved statistics
    "layer_norm": (_ln_exact, _ln_backward_terms, (1, 1), lambda n, m: n),
    "batch_norm": (_bn_exact, _bn_backward_terms, (2, 1), lambda n, m: m),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", ["smallest", (7, 13), (300, 257)])
@pytest.mark.parametrize("norm", NORMS)
def test_norm_matches_formula(norm, size, impl, dtype, rng):
    exact, backward_terms, smallest, stats_length = NORMS[norm]
    n, m = shape = _shape(impl, smallest if size == "smallest" else size)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gamma, beta = _params(rng, m, dtype)
    out, mean, rstd = op(norm, norm, impl)(x, gamma, beta, EPS)
    assert out.shape == shape and mean.shape == rstd.shape == (stats_length(n, m),)
    assert out.dtype == mean.dtype == rstd.dtype == dtype
    for got, want in zip((out, mean, rstd), exact(x, gamma, beta)):
        np.testing.assert_allclose(got, want, **tolerance(dtype))

    dy = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = op(norm, f"{norm}_backward", impl)(dy, x, gamma, mean, rstd)
    assert dx.shape == shape and dgamma.shape == dbeta.shape == (m,) and dx.dtype == dgamma.dtype == dtype
    want_dx, scale, dgamma_terms, dbeta_terms = backward_terms(dy, x, gamma, mean, rstd)
    _assert_dx(dx, want_dx, scale)
    _assert_column_sum(dgamma, dgamma_terms)
    _assert_column_sum(dbeta, dbeta_terms)


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm"])
def test_backward_matches_central_differences(impl, norm, rng):
    """The backward of each norm is the gradient of sum(out * w) in x, gamma and beta (training-mode
    BatchNorm: its batch statistics depend on x too)."""
    shape = (5, 7)
    x = rng.standard_normal(shape) * 1.5 + 0.5
    gamma, beta = _params(rng, shape[1], np.float64)
    w = rng.standard_normal(shape)
    exact = _ln_exact if norm == "layer_norm" else _bn_exact

    def objective() -> float:
        return float((exact(x, gamma, beta)[0] * w).sum())

    _, mean, rstd = op(norm, norm, impl)(x, gamma, beta, EPS)[:3]
    grads = op(norm, f"{norm}_backward", impl)(w, x, gamma, mean, rstd)
    for got, a in zip(grads, (x, gamma, beta)):
        np.testing.assert_allclose(got, numeric_grad(objective, a), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLS)
def test_layer_norm_matches_torch(impl, rng):
    torch = pytest.importorskip("torch")
    x, dy = rng.standard_normal((9, 12)) * 3 + 2, rng.standard_normal((9, 12))
    gamma, beta = _params(rng, 12, np.float64)
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    out_t = torch.nn.functional.layer_norm(xt, (12,), gt, bt, EPS)
    out_t.backward(torch.tensor(dy))
    out, mean, rstd = op("layer_norm", "layer_norm", impl)(x, gamma, beta, EPS)
    grads = op("layer_norm", "layer_norm_backward", impl)(dy, x, gamma, mean, rstd)
    expected = (out_t, xt.grad, gt.grad, bt.grad)
    for got, want in zip((out, *grads), expected):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    _, mean_t, rstd_t = torch.native_layer_norm(torch.tensor(x), (12,), None, None, EPS)
    np.testing.assert_allclose(mean, mean_t.numpy().ravel(), rtol=1e-12)
    np.testing.assert_allclose(rstd, rstd_t.numpy().ravel(), rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_batch_norm_matches_torch(impl, rng):
    torch = pytest.importorskip("torch")
    x, dy = rng.standard_normal((10, 6)) * 3 + 2, rng.standard_normal((10, 6))
    gamma, beta = _params(rng, 6, np.float64)
    running_mean, running_var = rng.standard_normal(6), rng.random(6) + 0.5
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    rm_t, rv_t = torch.tensor(running_mean), torch.tensor(running_var)
    out_t = torch.nn.functional.batch_norm(xt, rm_t, rv_t, gt, bt, training=True, momentum=0.2, eps=EPS)
    out_t.backward(torch.tensor(dy))
    out, mean, rstd = op("batch_norm", "batch_norm", impl)(x, gamma, beta, EPS, running_mean=running_mean,
                                                           running_var=running_var, momentum=0.2)
    if impl != "cuda":  # the cuda helper updates device copies of them (the _running tests read those back)
        np.testing.assert_allclose(running_mean, rm_t.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(running_var, rv_t.numpy(), rtol=1e-12)
    grads = op("batch_norm", "batch_norm_backward", impl)(dy, x, gamma, mean, rstd)
    for got, want in zip((out, *grads), (out_t, xt.grad, gt.grad, bt.grad)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- running statistics


def _running(impl: str, dtype, m: int, rng):
    """Running statistics where the kernel runs (device arrays for cuda on a GPU), and the kernel."""
    place = to_device if impl == "cuda" else (lambda a: a)
    mean0, var0 = rng.standard_normal(m).astype(dtype), (rng.random(m) + 0.5).astype(dtype)
    return mean0, var0, place(mean0.copy()), place(var0.copy()), place, _kernel("batch_norm", impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_running_statistics_follow_pytorch_rule(impl, dtype, rng):
    n, m, momentum = 11, 9, 0.3
    expect_mean, expect_var, running_mean, running_var, place, bn = _running(impl, dtype, m, rng)
    expect_mean, expect_var = expect_mean.astype(np.float64), expect_var.astype(np.float64)
    gamma, beta = _params(rng, m, dtype)
    for _ in range(3):
        x = (rng.standard_normal((n, m)) * 2 + 5).astype(dtype)
        _, _, _, var = _bn_exact(x, gamma, beta)
        expect_mean = (1 - momentum) * expect_mean + momentum * x.astype(np.float64).mean(axis=0)
        expect_var = (1 - momentum) * expect_var + momentum * var * n / (n - 1)
        bn(place(x), place(gamma), place(beta), EPS, running_mean=running_mean, running_var=running_var,
           momentum=momentum)
        np.testing.assert_allclose(to_host(running_mean), expect_mean, **tolerance(dtype))
        np.testing.assert_allclose(to_host(running_var), expect_var, **tolerance(dtype))

    # training=False normalizes with the running statistics and leaves them alone
    x = (rng.standard_normal((n, m)) * 2 + 5).astype(dtype)
    frozen_mean, frozen_var = to_host(running_mean).copy(), to_host(running_var).copy()
    out, mean, rstd = to_host(bn(place(x), place(gamma), place(beta), EPS, training=False,
                                 running_mean=running_mean, running_var=running_var, momentum=momentum))
    np.testing.assert_array_equal(to_host(running_mean), frozen_mean)
    np.testing.assert_array_equal(to_host(running_var), frozen_var)
    want_rstd = 1 / np.sqrt(frozen_var.astype(np.float64) + EPS)
    np.testing.assert_array_equal(mean, frozen_mean)
    np.testing.assert_allclose(rstd, want_rstd, **tolerance(dtype))
    np.testing.assert_allclose(out, (x - frozen_mean.astype(np.float64)) * want_rstd * gamma + beta,
                               **tolerance(dtype))


@pytest.mark.parametrize("impl", IMPLS)
def test_running_statistics_match_torch_module(impl, rng):
    torch = pytest.importorskip("torch")
    n, m, momentum = 8, 5, 0.25
    module = torch.nn.BatchNorm1d(m, eps=EPS, momentum=momentum, dtype=torch.float64)
    _, _, running_mean, running_var, place, bn = _running(impl, np.float64, m, rng)
    module.running_mean.copy_(torch.tensor(to_host(running_mean)))
    module.running_var.copy_(torch.tensor(to_host(running_var)))
    gamma, beta = _params(rng, m, np.float64)
    with torch.no_grad():
        module.weight.copy_(torch.tensor(gamma))
        module.bias.copy_(torch.tensor(beta))
        for _ in range(2):
            x = rng.standard_normal((n, m)) * 3 - 1
            want = module(torch.tensor(x)).numpy()
            out = bn(place(x), place(gamma), place(beta), EPS, running_mean=running_mean, running_var=running_var,
                     momentum=momentum)[0]
            np.testing.assert_allclose(to_host(out), want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_host(running_mean), module.running_mean.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(to_host(running_var), module.running_var.numpy(), rtol=1e-12)
        module.eval()
        x = rng.standard_normal((n, m))
        out = bn(place(x), place(gamma), place(beta), EPS, training=False, running_mean=running_mean,
                 running_var=running_var)[0]
        np.testing.assert_allclose(to_host(out), module(torch.tensor(x)).numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm"])
def test_large_offset_keeps_float32_statistics_and_outputs(impl, norm, rng):
    """x = 1e4 + N(0, 1) in float32: E[x^2] - E[x]^2 would lose every digit of the variance, and
    centring on the float32-rounded mean would shift the outputs by up to 5e-4."""
    shape = (24, 40) if norm == "layer_norm" else (40, 24)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    gamma, beta = _params(rng, shape[1], np.float32)
    out, mean, rstd = op(norm, norm, impl)(x, gamma, beta, EPS)
    want_out, want_mean, want_rstd = (_ln_exact if norm == "layer_norm" else _bn_exact)(x, gamma, beta)[:3]
    eps32 = np.finfo(np.float32).eps
    assert np.all(np.abs(mean - want_mean) <= eps32 * np.abs(want_mean))  # within one float32 rounding
    np.testing.assert_allclose(rstd, want_rstd, rtol=1e-5)
    np.testing.assert_allclose(out, want_out, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_stays_in_its_row_or_column(impl):
    x = np.arange(20, dtype=np.float32).reshape(4, 5) % 7
    gamma, beta = np.ones(5, np.float32), np.zeros(5, np.float32)
    x[1, 0] = np.nan  # LayerNorm: row 1 (its first element, the CUDA kernel's shift)
    out, mean, rstd = op("layer_norm", "layer_norm", impl)(x, gamma, beta)
    assert np.isnan(out[1]).all() and np.isnan(mean[1]) and np.isnan(rstd[1])
    assert np.isfinite(np.delete(out, 1, axis=0)).all() and np.isfinite(np.delete(rstd, 1)).all()
    x[1, 0] = 3.0
    x[0, 2] = np.nan  # BatchNorm: column 2 (its first row, the CUDA kernel's shift)
    out, mean, rstd = op("batch_norm", "batch_norm", impl)(x, gamma, beta)
    assert np.isnan(out[:, 2]).all() and np.isnan(mean[2]) and np.isnan(rstd[2])
    assert np.isfinite(np.delete(out, 2, axis=1)).all() and np.isfinite(np.delete(rstd, 2)).all()


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_inputs(impl):
    f32 = np.float32
    out, mean, rstd = op("layer_norm", "layer_norm", impl)(np.zeros((0, 5), f32), np.ones(5, f32), np.zeros(5, f32))
    assert out.shape == (0, 5) and mean.shape == rstd.shape == (0,)
    out, mean, rstd = op("layer_norm", "layer_norm", impl)(np.zeros((3, 0), f32), np.ones(0, f32), np.zeros(0, f32))
    assert out.shape == (3, 0) and not mean.any() and np.allclose(rstd, 1 / np.sqrt(EPS))  # empty rows: var 0
    for norm, stats in (("layer_norm", 0), ("batch_norm", 5)):
        dx, dgamma, dbeta = op(norm, f"{norm}_backward", impl)(
            np.zeros((0, 5), f32), np.zeros((0, 5), f32), np.ones(5, f32), np.zeros(stats, f32), np.ones(stats, f32))
        assert dx.shape == (0, 5) and dgamma.shape == dbeta.shape == (5,) and not dgamma.any() and not dbeta.any()
    dx, dgamma, dbeta = op("layer_norm", "layer_norm_backward", impl)(
        np.zeros((3, 0), f32), np.zeros((3, 0), f32), np.ones(0, f32), np.zeros(3, f32), np.ones(3, f32))
    assert dx.shape == (3, 0) and dgamma.shape == dbeta.shape == (0,)
    out, mean, rstd = op("batch_norm", "batch_norm", impl)(np.zeros((4, 0), f32), np.ones(0, f32), np.zeros(0, f32))
    assert out.shape == (4, 0) and mean.shape == (0,)
    out, mean, rstd = op("batch_norm", "batch_norm", impl)(
        np.zeros((0, 3), f32), np.ones(3, f32), np.zeros(3, f32), training=False,
        running_mean=np.array([1, 2, 3], f32), running_var=np.array([1, 4, 9], f32))
    assert out.shape == (0, 3)
    np.testing.assert_array_equal(mean, [1, 2, 3])
    np.testing.assert_allclose(rstd, 1 / np.sqrt(np.array([1, 4, 9]) + EPS), rtol=1e-6)


# --------------------------------------------------------------------------- in place and given outputs


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm", ["layer_norm", "batch_norm"])
def test_in_place_equals_out_of_place(impl, dtype, norm, rng):
    shape = (10, 12)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = _params(rng, shape[1], dtype)
    place = to_device if impl == "cuda" else (lambda a: a)
    forward, backward = _kernel(norm, impl), _kernel(f"{norm}_backward", impl)
    gamma_d, beta_d = place(gamma), place(beta)
    want_out, mean, rstd = forward(place(x), gamma_d, beta_d)
    want_grads = to_host(backward(place(dy), place(x), gamma_d, mean, rstd))

    same = place(x.copy())
    result = forward(same, gamma_d, beta_d, out=same)
    assert result[0] is same
    np.testing.assert_allclose(to_host(same), to_host(want_out), **tolerance(dtype))
    grad = place(dy.copy())
    dgamma, dbeta = place(np.full(shape[1], np.nan, dtype)), place(np.full(shape[1], np.nan, dtype))
    result = backward(grad, place(x), gamma_d, mean, rstd, dx_out=grad, dgamma_out=dgamma, dbeta_out=dbeta)
    assert result[0] is grad and result[1] is dgamma and result[2] is dbeta
    for got, want in zip(to_host(result), want_grads):
        np.testing.assert_allclose(got, want, **tolerance(dtype))


# --------------------------------------------------------------------------- bad arguments


def _arrays(place, n=6, m=4, dtype=np.float32):
    """Fresh arguments by name: x, dy (n, m); g, b, col, col2 (m,); row (n,); f64 (m,) float64; one_row (1, m)."""
    shapes = {"x": (n, m), "dy": (n, m), "g": m, "b": m, "col": m, "col2": m, "row": n, "one_row": (1, m)}
    arrays = {name: place(np.ones(shape, dtype)) for name, shape in shapes.items()}
    return {**arrays, "f64": place(np.ones(m, np.float64))}


LN = "layer_norm"
LNB = "layer_norm_backward"
BN = "batch_norm"
BNB = "batch_norm_backward"
BAD = [  # (op, call building the arguments from the arrays, error, message)
    (LN, lambda a: ((a["x"], a["g"][:-1], a["b"]), {}), ValueError, "gamma must have shape"),
    (LN, lambda a: ((a["x"], a["g"][None], a["b"]), {}), ValueError, "gamma must have shape"),
    (LN, lambda a: ((a["x"], a["g"], a["f64"]), {}), TypeError, "beta must have dtype float32"),
    (LN, lambda a: ((a["x"][:, ::2], a["g"][:2], a["b"][:2]), {}), ValueError, "x must be C-contiguous"),
    (LN, lambda a: ((a["x"].ravel(), a["g"], a["b"]), {}), ValueError, "x must be 2-D"),
    (LN, lambda a: ((a["x"].astype(np.int32), a["g"], a["b"]), {}), TypeError, "x must be float32 or float64"),
    (LN, lambda a: ((a["x"], a["g"], a["b"], 0.0), {}), ValueError, "eps must be > 0"),
    (LN, lambda a: ((a["x"], a["g"], a["b"], -1e-5), {}), ValueError, "eps must be > 0"),
    (LN, lambda a: ((a["x"], a["g"], a["b"], float("nan")), {}), ValueError, "eps must be finite"),
    (LN, lambda a: ((a["x"], a["g"], a["b"]), {"mean_out": a["col"]}), ValueError, "mean_out must have shape"),
    (LN, lambda a: ((a["x"], a["g"], a["b"]), {"mean_out": a["row"], "rstd_out": a["row"]}), ValueError,
     "rstd_out overlaps mean_out"),
    (LN, lambda a: ((a["x"], a["g"], a["b"]), {"out": a["dy"][:, ::2]}), ValueError, "out must have shape"),
    (LNB, lambda a: ((a["dy"], a["x"], a["g"], a["col"], a["row"]), {}), ValueError, "mean must have shape"),
    (LNB, lambda a: ((a["dy"], a["x"], a["g"], a["row"], a["row"].astype(np.float64)), {}), TypeError,
     "rstd must have dtype float32"),
    (LNB, lambda a: ((a["dy"], a["x"][:3], a["g"], a["row"], a["row"]), {}), ValueError, "x must have shape"),
    (LNB, lambda a: ((a["dy"], a["x"], a["g"], a["row"], a["row"]), {"dx_out": a["x"]}), ValueError,
     "dx_out overlaps x"),
    (LNB, lambda a: ((a["dy"], a["x"], a["g"], a["row"], a["row"]), {"dgamma_out": a["col"], "dbeta_out": a["col"]}),
     ValueError, "dbeta_out overlaps dgamma_out"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"running_mean": a["col"]}), ValueError, "given together"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"running_var": a["col"]}), ValueError, "given together"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"running_mean": a["col"], "running_var": a["row"]}), ValueError,
     "running_var must have shape"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"running_mean": a["col"], "running_var": a["col"]}), ValueError,
     "running_var overlaps running_mean"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"momentum": 1.5}), ValueError, "momentum must be <= 1"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"momentum": -0.1}), ValueError, "momentum must be >= 0"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"momentum": float("inf")}), ValueError, "momentum must be finite"),
    (BN, lambda a: ((a["x"], a["g"], a["b"], float("nan")), {}), ValueError, "eps must be finite"),
    (BN, lambda a: ((a["one_row"], a["g"], a["b"]), {}), ValueError, "more than 1 value per channel"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"training": False}), ValueError, "required when training=False"),
    (BN, lambda a: ((a["x"], a["g"], a["b"]), {"training": "yes"}), TypeError, "training must be a bool"),
    (BN, lambda a: ((a["x"], a["g"], a["f64"]), {}), TypeError, "beta must have dtype float32"),
    (BNB, lambda a: ((a["dy"], a["x"], a["g"], a["row"], a["col"]), {}), ValueError, "mean must have shape"),
    (BNB, lambda a: ((a["dy"], a["x"], a["g"][:-1], a["col"], a["col"]), {}), ValueError, "gamma must have shape"),
    (BNB, lambda a: ((a["dy"], a["x"], a["g"], a["col"], a["col2"]), {"dx_out": a["x"]}), ValueError,
     "dx_out overlaps x"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", range(len(BAD)), ids=[f"{b[0]}:{b[3]}" for b in BAD])
def test_bad_arguments_are_named(impl, case):
    name, build, error, message = BAD[case]
    # Built where the kernel runs (on the GPU for cuda when present), so strides and kinds survive.
    args, kwargs = build(_arrays(to_device if impl == "cuda" else (lambda a: a)))
    with pytest.raises(error, match=message):
        _kernel(name, impl)(*args, **kwargs)


@pytest.mark.parametrize("impl", IMPLS)
def test_errors_come_before_any_write(impl):
    place = to_device if impl == "cuda" else (lambda a: a)
    x, gamma, beta = place(np.ones((5, 3), np.float32)), place(np.ones(3, np.float32)), place(np.zeros(3, np.float32))
    running_mean, running_var = place(np.full(3, 7, np.float32)), place(np.full(3, 9, np.float32))
    out = place(np.full((5, 3), np.nan, np.float32))
    bn = _kernel("batch_norm", impl)
    with pytest.raises(ValueError, match="momentum"):
        bn(x, gamma, beta, running_mean=running_mean, running_var=running_var, momentum=2.0, out=out)
    with pytest.raises(ValueError, match="rstd_out must have shape"):
        bn(x, gamma, beta, running_mean=running_mean, running_var=running_var, out=out,
           rstd_out=place(np.ones(5, np.float32)))
    assert (to_host(running_mean) == 7).all() and (to_host(running_var) == 9).all() and np.isnan(to_host(out)).all()
    with pytest.raises(TypeError, match="x must be a NumPy or CuPy array"):
        _kernel("layer_norm", impl)(x.tolist(), gamma, beta)
