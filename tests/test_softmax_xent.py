"""softmax_xent, softmax, log_softmax: reference vs Numba CPU vs numba.cuda (simulated without a GPU)
against float64 SciPy maths, PyTorch, and float64 finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax as exact_log_softmax

from tests.support import IMPLS, op, to_device, to_host

DTYPES = [np.float32, np.float64]
SHAPES = [(1, 1), (7, 13), (19, 70)]  # 19 x 70: several rows per block and elements per thread


def _inputs(rng, shape, dtype, label_dtype=np.int64, scale=3.0):
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    y = rng.integers(0, shape[1], shape[0]).astype(label_dtype)
    return x, y


def _exact(x: np.ndarray, y: np.ndarray, smoothing: float) -> tuple[float, np.ndarray]:
    """Mean loss and (softmax - t) / n in float64, from SciPy's log_softmax."""
    n, k = x.shape
    log_p = exact_log_softmax(x.astype(np.float64), axis=1)
    t = np.full((n, k), smoothing / k)
    t[np.arange(n), y] += 1 - smoothing
    return float(-(t * log_p).sum() / n), (np.exp(log_p) - t) / n


def _check(loss, dlogits, x, y, smoothing):
    n = x.shape[0]
    loss_exact, grad_exact = _exact(x, y, smoothing)
    assert loss.shape == () and loss.dtype == x.dtype
    assert dlogits.shape == x.shape and dlogits.dtype == x.dtype
    if x.dtype == np.float32:
        np.testing.assert_allclose(loss, loss_exact, rtol=2e-6, atol=1e-6)
        # n * dlogits = p - t: entries of p accurate to ~1e-6 relative
        np.testing.assert_allclose(n * dlogits, n * grad_exact, rtol=1e-5, atol=3e-7)
    else:
        np.testing.assert_allclose(loss, loss_exact, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(n * dlogits, n * grad_exact, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_matches_float64_maths(impl, dtype, shape, smoothing, rng):
    x, y = _inputs(rng, shape, dtype, label_dtype=np.int32 if smoothing else np.int64)
    loss, dlogits = op("softmax_xent", "softmax_xent", impl)(x, y, smoothing)
    _check(loss, dlogits, x, y, smoothing)


@pytest.mark.parametrize("impl,shape", [("cuda", (300, 257)), ("ref", (1003, 1000)), ("cpu", (1003, 1000))])
def test_larger_shapes(impl, shape, rng):
    x, y = _inputs(rng, shape, np.float32)
    smoothing = 0.0 if impl == "cuda" else 0.05  # the simulator spends ~20 ms per block barrier round
    _check(*op("softmax_xent", "softmax_xent", impl)(x, y, smoothing), x, y, smoothing)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(dtype, smoothing, rng):
    torch = pytest.importorskip("torch")
    x, y = _inputs(rng, (16, 33), dtype)
    xt = torch.tensor(x, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(xt, torch.tensor(y), label_smoothing=smoothing)
    expected.backward()
    tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-15}
    for impl in IMPLS:
        loss, dlogits = op("softmax_xent", "softmax_xent", impl)(x, y, smoothing)
        np.testing.assert_allclose(loss, expected.item(), **tol, err_msg=impl)
        np.testing.assert_allclose(dlogits, xt.grad.numpy(), **tol, err_msg=impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_gradient_matches_finite_differences(impl, rng):
    """Central differences of the float64 loss along random directions v: (L(x+hv) - L(x-hv)) / 2h = <dL/dx, v>."""
    x, y = _inputs(rng, (6, 9), np.float64)
    fn = op("softmax_xent", "softmax_xent", impl)
    _, dlogits = fn(x, y, 0.2)
    h = 1e-6
    for v in rng.standard_normal((4, *x.shape)):
        numeric = (float(fn(x + h * v, y, 0.2)[0]) - float(fn(x - h * v, y, 0.2)[0])) / (2 * h)
        assert abs(numeric - np.sum(dlogits * v)) < 1e-7 * max(1.0, abs(numeric))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits(impl, dtype, rng):
    x = np.array([[-1e4, 1e4, 0.0],  # label on the tiny one: loss 2e4, gradient still finite
                  [1e4, 1e4, 1e4],
                  [-1e4, -1e4, -1e4],
                  [1e4, -1e4, -1e4]], dtype)
    y = np.array([0, 1, 2, 0])
    fn = op("softmax_xent", "softmax_xent", impl)
    for smoothing in (0.0, 0.1):
        loss, dlogits = fn(x, y, smoothing)
        assert np.isfinite(loss) and np.all(np.isfinite(dlogits))
        _check(loss, dlogits, x, y, smoothing)
    big = (rng.uniform(-1e4, 1e4, (9, 40))).astype(dtype)
    labels = rng.integers(0, 40, 9)
    _check(*fn(big, labels, 0.1), big, labels, 0.1)


@pytest.mark.parametrize("impl", IMPLS)
def test_nan_propagates(impl):
    x = np.zeros((3, 4), np.float32)
    x[1, 2] = np.nan
    loss, dlogits = op("softmax_xent", "softmax_xent", impl)(x, np.array([0, 0, 0]))
    assert np.isnan(loss)
    assert np.all(np.isnan(dlogits[1])) and np.all(np.isfinite(dlogits[[0, 2]]))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_and_reused_output(impl, dtype, rng):
    from gpudnn.kernels import softmax_xent as module

    raw = getattr(module, f"softmax_xent_{impl}")
    x, y = _inputs(rng, (7, 13), dtype)
    loss_exact, grad_exact = _exact(x, y, 0.1)
    device = to_device if impl == "cuda" else (lambda a: a)
    xd, yd = device(x.copy()), device(y)
    loss, dlogits = raw(xd, yd, 0.1, dlogits_out=xd)
    assert dlogits is xd and type(loss) is type(xd)  # the 0-d loss lives where the logits live
    np.testing.assert_allclose(to_host(xd), grad_exact, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(to_host(loss), loss_exact, rtol=1e-6)
    out = device(np.full_like(x, np.nan))
    assert raw(device(x), yd, 0.1, dlogits_out=out)[1] is out
    np.testing.assert_allclose(to_host(out), grad_exact, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- softmax, log_softmax


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_rows_match_float64_maths(impl, dtype, shape, name, rng):
    x, _ = _inputs(rng, shape, dtype)
    x[0, 0] = 1e4 if shape[1] > 1 else x[0, 0]  # one extreme row: the rest of it underflows
    out = op("softmax_xent", name, impl)(x)
    exact = exact_log_softmax(x.astype(np.float64), axis=1)
    exact = np.exp(exact) if name == "softmax" else exact
    assert out.dtype == dtype and out.shape == shape and np.all(np.isfinite(out))
    if name == "softmax":
        tol = {"rtol": 1e-5, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-15}
        np.testing.assert_allclose(out, exact, **tol)
    else:  # x - logsumexp(x) is rounded in the input dtype: a few ulps of |x| and |logsumexp|
        slack = 4 * np.finfo(dtype).eps * (np.abs(x) + np.abs(x - exact))
        # float32 also carries the ~1e-6 relative error of the fast exp/log polynomials; float64 (libm)
        # stays within 2 of those ulps (measured over 2000 draws of every impl and shape), so no more.
        relative = 1e-6 if dtype == np.float32 else 0.0
        assert np.all(np.abs(out - exact) <= slack + relative * np.abs(exact))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_rows_in_place_and_empty(impl, name, rng):
    from gpudnn.kernels import softmax_xent as module

    raw = getattr(module, f"{name}_{impl}")
    x, _ = _inputs(rng, (7, 13), np.float64)
    expected = getattr(module, f"{name}_ref")(x)
    device = to_device if impl == "cuda" else (lambda a: a)
    xd = device(x.copy())
    assert raw(xd, out=xd) is xd
    np.testing.assert_allclose(to_host(xd), expected, rtol=1e-12, atol=1e-15)
    for shape in [(0, 5), (3, 0)]:
        assert raw(device(np.zeros(shape))).shape == shape


# --------------------------------------------------------------------------- bad arguments

X = np.zeros((6, 5), np.float32)
Y = np.array([0, 1, 2, 3, 4, 0])
# Each case changes valid (logits, labels), built on the impl's device, into bad arguments.
BAD = [
    (lambda x, y: dict(labels=y + 1), ValueError, r"labels must lie in \[0, 5\).*got 5"),
    (lambda x, y: dict(labels=y - 1), ValueError, "labels must lie in .*got -1"),
    (lambda x, y: dict(labels=y.astype(np.float32)), TypeError, "labels must be int32 or int64"),
    (lambda x, y: dict(labels=y.astype(np.int16)), TypeError, "labels must be int32 or int64"),
    (lambda x, y: dict(labels=y[:5]), ValueError, r"labels must have shape \(6,\)"),
    (lambda x, y: dict(labels=y.repeat(2)[::2]), ValueError, "labels must be C-contiguous"),
    (lambda x, y: dict(labels=[0, 1, 2, 3, 4, 0]), TypeError, "labels must be a NumPy or CuPy array"),
    (lambda x, y: dict(logits=x.repeat(2, axis=1)[:, ::2]), ValueError, "logits must be C-contiguous"),
    (lambda x, y: dict(logits=x.ravel()), ValueError, "logits must be 2-D"),
    (lambda x, y: dict(logits=x.astype(np.int32)), TypeError, "logits must be float32 or float64"),
    (lambda x, y: dict(logits=x[:0], labels=y[:0]), ValueError, "logits has no rows"),
    (lambda x, y: dict(logits=x[:, :0].copy()), ValueError, r"labels must lie in \[0, 0\)"),
    (lambda x, y: dict(smoothing=1.0), ValueError, "smoothing must be < 1"),
    (lambda x, y: dict(smoothing=-0.1), ValueError, "smoothing must be >= 0"),
    (lambda x, y: dict(smoothing=float("nan")), ValueError, "smoothing must be finite"),
    (lambda x, y: dict(dlogits_out=x[:, :4].copy()), ValueError, "dlogits_out must have shape"),
    (lambda x, y: dict(dlogits_out=x.astype(np.float64)), TypeError, "dlogits_out must have dtype float32"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("change,error,message", BAD)
def test_bad_arguments_are_named(impl, change, error, message):
    from gpudnn.kernels import softmax_xent as module

    device = to_device if impl == "cuda" else (lambda a: a)
    x, y = device(X), device(Y)
    args = {"logits": x, "labels": y, "smoothing": 0.0, "dlogits_out": None, **change(x, y)}
    with pytest.raises(error, match=message):
        getattr(module, f"softmax_xent_{impl}")(args["logits"], args["labels"], args["smoothing"],
                                                dlogits_out=args["dlogits_out"])


@pytest.mark.parametrize("impl", IMPLS)
def test_aliased_outputs_are_refused(impl):
    from gpudnn.kernels import softmax_xent as module

    device = to_device if impl == "cuda" else (lambda a: a)
    big = device(np.zeros((12, 5), np.float32))
    ints = device(np.zeros(40, np.int32))
    labels, over_labels = ints[:6], ints[2:32].view(np.float32).reshape(6, 5)
    with pytest.raises(ValueError, match="dlogits_out overlaps logits"):
        getattr(module, f"softmax_xent_{impl}")(big[:6], labels, dlogits_out=big[3:9])
    with pytest.raises(ValueError, match="dlogits_out overlaps labels"):
        getattr(module, f"softmax_xent_{impl}")(big[:6], labels, dlogits_out=over_labels)
    with pytest.raises(ValueError, match="out overlaps x"):
        getattr(module, f"log_softmax_{impl}")(big[:6], out=big[3:9])


# --------------------------------------------------------------------------- hits and the loss's output


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("hits_dtype", [np.int64, np.float64])
@pytest.mark.parametrize("in_place", [False, True])
def test_hits_are_the_rows_argmax_gets_right(impl, hits_dtype, in_place, rng):
    from gpudnn.kernels import softmax_xent as module

    x = rng.integers(-2, 3, (23, 6)).astype(np.float32)  # small integers: ties within most rows
    x[0], x[1] = 1.0, 1.0  # rows all tied: argmax picks column 0
    x[2] = x[3] = [0, 2, 1, 2, 0, 0]
    y = rng.integers(0, 6, 23)
    y[:4] = 0, 3, 3, 1  # right; wrong although its logit is the largest (twice); right, the first of a tie
    y[4:12] = x[4:12].argmax(axis=1)
    expected = int((x.argmax(axis=1) == y).sum())
    assert 10 <= expected <= 20
    device = to_device if impl == "cuda" else (lambda a: a)
    xd, hits, loss_out = device(x.copy()), device(np.full(1, 99, hits_dtype)), device(np.zeros((), np.float32))
    loss, dlogits = getattr(module, f"softmax_xent_{impl}")(xd, device(y), 0.05, dlogits_out=xd if in_place else None,
                                                            hits_out=hits, loss_out=loss_out)
    assert loss is loss_out and to_host(hits).dtype == hits_dtype
    assert to_host(hits).tolist() == [expected]
    _check(to_host(loss), to_host(dlogits), x, y, 0.05)


@pytest.mark.parametrize("impl", IMPLS)
def test_the_loss_is_the_same_to_the_last_bit(impl, rng):
    """The CUDA loss sums over the grid in a fixed order: no dependence on the order blocks finish."""
    x, y = _inputs(rng, (37, 11), np.float32)
    fn = op("softmax_xent", "softmax_xent", impl)
    losses = {float(fn(x, y, 0.1)[0]) for _ in range(3)}
    assert len(losses) == 1


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("change,error,message", [
    (dict(loss_out=np.zeros(1, np.float32)), ValueError, r"loss_out must have shape \(\)"),
    (dict(loss_out=np.zeros((), np.float64)), TypeError, "loss_out must have dtype float32"),
    (dict(hits_out=np.zeros(1, np.int32)), TypeError, "hits_out must be int64 or float64"),
    (dict(hits_out=np.zeros(2, np.int64)), ValueError, r"hits_out must have shape \(1,\)"),
    (dict(hits_out=[0]), TypeError, "hits_out must be a NumPy or CuPy array"),
])
def test_bad_outputs_are_named(impl, change, error, message):
    from gpudnn.kernels import softmax_xent as module

    device = to_device if impl == "cuda" else (lambda a: a)
    with pytest.raises(error, match=message):
        getattr(module, f"softmax_xent_{impl}")(device(X), device(Y), **{k: device(v) for k, v in change.items()})
