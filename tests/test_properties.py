"""Property-based tests over every kernel wrapper: arbitrary shapes (0 and 1 included), dtypes,
strides, aliasing, NaN/Inf and bad labels. Each call either agrees with the reference or raises
a TypeError/ValueError naming an argument, and a refused call has written nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NaN/Inf inputs are the point here

DTYPES = [np.float32, np.float64, np.float32, np.float64, np.float16, np.int32, np.bool_, object]
VALID = (np.float32, np.float64)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TRIED = {"calls": 0, "refused": 0}


@pytest.fixture(autouse=True, scope="module")
def _report():
    yield
    print(f"\nproperty calls: {TRIED['calls']}, refused with a clear error: {TRIED['refused']}")


LAYOUTS = ("c", "c", "c", "transposed", "sliced")
SPECIALS = (np.nan, np.inf, -np.inf, 1e4, -1e4)
# Plain values for the norms' parameters and statistics: their algebra turns an infinite gamma into Inf or NaN
# by the path taken, and a gamma of 1e4 makes float32 cancel at the 1e-3 level; x gets the specials.
PLAIN: tuple[float, ...] = ()


@st.composite
def arrays(draw, shape: tuple[int, ...] | None = None, dtype: Any = None, layouts: tuple[str, ...] = LAYOUTS,
           specials: tuple[float, ...] = SPECIALS) -> np.ndarray:
    """An array that may be non-contiguous, of an odd dtype, with NaN/Inf or huge values.

    layouts: those to draw from; "transposed" is 2-D only (a 1-D array stays contiguous), "sliced"
    takes every other element of a twice-repeated array (2-D: along the rows; 1-D: the array).
    specials: the values one element may be set to."""
    if shape is None:
        shape = (draw(st.integers(0, 6)), draw(st.integers(0, 6)))
    dtype = dtype if dtype is not None else draw(st.sampled_from(DTYPES))
    base = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape) * 3
    special = draw(st.sampled_from((None, *specials)))
    if special is not None and base.size:
        base.flat[draw(st.integers(0, base.size - 1))] = special
    a = base.astype(dtype) if dtype is not object else base.astype(object)
    layout = draw(st.sampled_from(layouts))
    if layout == "transposed" and a.ndim == 2:
        a = np.ascontiguousarray(a.T).T
    elif layout == "sliced" and a.ndim == 2:
        a = np.repeat(a, 2, axis=1)[:, ::2]
    elif layout == "sliced" and a.ndim == 1:
        a = np.repeat(a, 2)[::2]
    return a


def clone(a: Any) -> Any:
    """A copy with the same strides (a plain .copy() would make it contiguous)."""
    if not isinstance(a, np.ndarray) or a.size == 0 or a.dtype == object or a.flags.c_contiguous:
        return a.copy() if isinstance(a, np.ndarray) else a
    span = 1 + sum((n - 1) * st // a.itemsize for n, st in zip(a.shape, a.strides))
    c = np.lib.stride_tricks.as_strided(np.empty(span, a.dtype), a.shape, a.strides)
    c[...] = a
    return c


def kernel(module: str, name: str, impl: str) -> Callable[..., Any]:
    return getattr(importlib.import_module(f"gpudnn.kernels.{module}"), f"{name}_{impl}")


def valid(*arrays_: Any) -> bool:
    return all(a is None or (isinstance(a, np.ndarray) and a.dtype in VALID and a.flags.c_contiguous)
               for a in arrays_) and len({a.dtype for a in arrays_ if a is not None}) <= 1


def check(module: str, name: str, args: tuple, kwargs: dict, names: list[str], expect_ok: bool | None) -> None:
    """CPU kernel vs reference: same answer, or the same clear refusal with every argument untouched.

    expect_ok: True, the call is valid and must compute; False, it must be refused; None, either."""
    TRIED["calls"] += 1
    array_keys = [k for k, v in kwargs.items() if isinstance(v, np.ndarray)]  # e.g. rmsprop's grad_avg
    every = [*args, *(kwargs[k] for k in array_keys)]  # every argument, positional then keyword
    labels = [*range(len(args)), *array_keys]
    inputs = [a for a in every if isinstance(a, np.ndarray)]
    results = {}
    updated = {}  # each impl's copies of the arguments, as its call left them
    for impl in ("ref", "cpu"):
        copies = [clone(a) for a in args]
        if len(args) > 1 and args[0] is args[1]:  # keep deliberate aliasing
            copies[1] = copies[0]
        kw = {**kwargs, **{k: clone(kwargs[k]) for k in array_keys}}
        written = [*copies, *(kw[k] for k in array_keys)]
        updated[impl] = written
        before = [c.copy() if isinstance(c, np.ndarray) and c.dtype != object else None for c in written]
        try:
            results[impl] = kernel(module, name, impl)(*copies, **kw)
        except (TypeError, ValueError) as exc:
            message = str(exc)
            assert any(n in message for n in names), f"{impl}: error does not name an argument: {message}"
            for position, after, expected in zip(labels, written, before):
                if expected is not None:  # a refused call has written nothing
                    np.testing.assert_array_equal(after, expected, err_msg=f"{name}_{impl} refused the call but "
                                                  f"wrote into argument {position}")
            results[impl] = exc
    ref, cpu = results["ref"], results["cpu"]
    assert type(ref) is type(cpu) or not (isinstance(ref, Exception) or isinstance(cpu, Exception)), (ref, cpu)
    if isinstance(ref, Exception):
        TRIED["refused"] += 1
        assert expect_ok is not True, f"refused a valid call: {ref}"
        return
    assert expect_ok is not False, f"{name} accepted an invalid call with {[getattr(a, 'dtype', a) for a in args]}"
    # What the calls wrote into their arguments (the in-place ops, e.g. the optimizers, return None).
    for position, a, r, c in zip(labels, every, updated["ref"], updated["cpu"]):
        if isinstance(a, np.ndarray) and a.dtype != object:
            np.testing.assert_allclose(np.asarray(c, dtype=np.float64), np.asarray(r, dtype=np.float64), rtol=2e-4,
                                       atol=2e-5, equal_nan=True, err_msg=f"{name}: argument {position} after the call")
    for r, c in zip(ref if isinstance(ref, tuple) else (ref,), cpu if isinstance(cpu, tuple) else (cpu,)):
        if r is None:
            continue
        r, c = np.asarray(r, dtype=np.float64), np.asarray(c, dtype=np.float64)
        np.testing.assert_allclose(c, r, rtol=2e-4, atol=2e-5, equal_nan=True)
        # No silent NaN: NaN appears in an output only where an input had NaN or +-Inf.
        if np.isnan(c).any():
            nonfinite_inputs = any(not np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in inputs)
            assert nonfinite_inputs, "NaN from finite input"


@SETTINGS
@given(st.data(), st.sampled_from(["relu", "sigmoid", "gelu", "softplus", "leaky_relu"]))
def test_bias_act(data, activation):
    x = data.draw(arrays())
    b = data.draw(st.one_of(st.none(), arrays(shape=(x.shape[1],) if x.ndim == 2 else (1,))))
    check("bias_act", "bias_act", (x, b, activation), {}, ["x", "b"], valid(x, b))


@SETTINGS
@given(st.data(), st.sampled_from(["relu", "tanh", "gelu_tanh", "silu"]), st.booleans())
def test_bias_act_backward(data, activation, from_output):
    dy = data.draw(arrays())
    saved = data.draw(arrays(shape=dy.shape))
    from_output = from_output and activation in ("relu", "tanh")
    check("bias_act_backward", "bias_act_backward", (dy, saved, activation), {"from_output": from_output},
          ["dy", "saved"], valid(dy, saved))


@SETTINGS
@given(st.data(), st.sampled_from([np.int64, np.int32, np.float32, np.uint8]), st.integers(-2, 8))
def test_softmax_xent(data, label_dtype, high):
    logits = data.draw(arrays())
    n = logits.shape[0] if logits.ndim == 2 else 0
    labels = np.random.default_rng(data.draw(st.integers(0, 99))).integers(min(high, 0), max(high, 1), n)
    labels = labels.astype(label_dtype)
    k = logits.shape[1] if logits.ndim == 2 else 0
    ok = valid(logits) and n > 0 and k > 0 and label_dtype in (np.int64, np.int32) and \
        bool(np.all((labels >= 0) & (labels < k)))
    check("softmax_xent", "softmax_xent", (logits, labels), {}, ["logits", "labels"], ok)


@SETTINGS
@given(st.data(), st.sampled_from(["softmax", "log_softmax"]))
def test_softmax(data, name):
    x = data.draw(arrays())
    check("softmax_xent", name, (x,), {}, ["x"], valid(x))


@SETTINGS
@given(st.data(), st.sampled_from(["bce_logits", "mse"]))
def test_pointwise_losses(data, name):
    a = data.draw(arrays())
    t = data.draw(arrays(shape=a.shape))
    if name == "bce_logits" and t.dtype in VALID:
        t = np.clip(np.abs(t) / 10, 0, 1).astype(t.dtype) if data.draw(st.booleans()) else t
    ok = valid(a, t) and a.size > 0 and (name == "mse" or bool(np.all((t >= 0) & (t <= 1))))
    check("losses", name, (a, t), {}, ["logits", "targets", "pred", "target"], ok)


@SETTINGS
@given(st.data(), st.floats(-0.5, 1.5), st.integers(-3, 2**63 + 5))
def test_dropout(data, p, seed):
    x = data.draw(arrays())
    ok = valid(x) and 0 <= p < 1 and 0 <= seed < 2**63
    for name in ("dropout", "dropout_backward"):
        check("dropout", name, (x, p, seed), {}, ["x", "dy", "p", "seed"], ok)


@SETTINGS
@given(st.data(), st.sampled_from(["sgd_", "adam_", "rmsprop_"]), st.floats(-1, 1), st.booleans())
def test_optimizer_updates(data, name, lr, alias):
    n = data.draw(st.integers(0, 9))
    dtype = data.draw(st.sampled_from(DTYPES))
    param = data.draw(arrays(shape=(n,), dtype=dtype))
    grad = param if alias else data.draw(arrays(shape=(n,), dtype=dtype))
    states = [np.zeros(n, dtype=param.dtype) for _ in range(2)]
    hyper: dict[str, Any] = {"lr": lr}
    if name == "sgd_":
        args, hyper = (param, grad, states[0]), {**hyper, "momentum": 0.9, "first_step": True}
    elif name == "adam_":
        args, hyper = (param, grad, *states), {**hyper, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "step": 1}
    else:
        args, hyper = (param, grad, states[0]), {**hyper, "alpha": 0.99, "eps": 1e-8}
    ok = valid(*args) and lr >= 0 and not alias
    if alias and n == 0:
        ok = None  # aliasing empty arrays is harmless: accepting or refusing are both fine
    check("optim", name, args, hyper, ["param", "grad", "lr", "momentum_buf", "exp_avg", "square_avg"], ok)


# --------------------------------------------------------------------------- valid calls only
# The tests above mostly draw calls that must be refused; these draw only calls that must compute
# (one float dtype for every array, C-contiguous, valid targets/labels, no aliasing) and check
# them through check() with expect_ok=True. The arrays may still hold NaN, Inf and huge values.


def contiguous(shape: tuple[int, ...], dtype: Any, specials: tuple[float, ...] = SPECIALS):
    return arrays(shape=shape, dtype=dtype, layouts=("c",), specials=specials)


@SETTINGS
@given(st.data(), st.sampled_from(VALID), st.integers(1, 6), st.integers(1, 6))
def test_bce_logits_valid(data, dtype, n, m):
    logits = data.draw(contiguous((n, m), dtype))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    targets = rng.random((n, m))
    targets[rng.random((n, m)) < 0.3] = rng.integers(0, 2)  # the ends of [0, 1] too
    check("losses", "bce_logits", (logits, targets.astype(dtype)), {}, ["logits", "targets"], True)


@SETTINGS
@given(st.data(), st.sampled_from(VALID), st.integers(1, 6), st.integers(1, 6))
def test_mse_valid(data, dtype, n, m):
    pred, target = data.draw(contiguous((n, m), dtype)), data.draw(contiguous((n, m), dtype))
    check("losses", "mse", (pred, target), {}, ["pred", "target"], True)


@SETTINGS
@given(st.data(), st.sampled_from(VALID), st.sampled_from([np.int32, np.int64]), st.integers(1, 6),
       st.integers(1, 6), st.sampled_from([0.0, 0.1, 0.5]))
def test_softmax_xent_valid(data, dtype, label_dtype, n, k, smoothing):
    logits = data.draw(contiguous((n, k), dtype))
    labels = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(0, k, n).astype(label_dtype)
    check("softmax_xent", "softmax_xent", (logits, labels), {"smoothing": smoothing}, ["logits", "labels"], True)


@SETTINGS
@given(st.data(), st.sampled_from(["sgd_", "adam_", "rmsprop_"]), st.sampled_from(VALID), st.integers(0, 9))
def test_optimizer_updates_valid(data, name, dtype, n):
    def array(non_negative: bool = False) -> np.ndarray:  # a fresh buffer each: nothing aliases
        a = data.draw(contiguous((n,), dtype))
        return np.abs(a) if non_negative else a

    param, grad = array(), array()
    hyper: dict[str, Any] = {
        "lr": data.draw(st.floats(0, 1)),
        "l1": data.draw(st.sampled_from([0.0, 0.01])),
        "l2": data.draw(st.sampled_from([0.0, 0.05])),
        "weight_decay": data.draw(st.sampled_from([0.0, 0.1])),
        "grad_scale": data.draw(st.sampled_from([1.0, 0.3])),
    }
    if name == "sgd_":
        momentum = data.draw(st.sampled_from([0.0, 0.9]))
        nesterov = momentum > 0 and data.draw(st.booleans())
        hyper |= {"momentum": momentum, "nesterov": nesterov, "first_step": data.draw(st.booleans()),
                  "dampening": 0.0 if nesterov else data.draw(st.sampled_from([0.0, 0.25]))}
        args: tuple = (param, grad, array())
        names = ["param", "grad", "momentum_buf"]
    elif name == "adam_":
        hyper |= {"beta1": data.draw(st.sampled_from([0.0, 0.5, 0.9])),
                  "beta2": data.draw(st.sampled_from([0.9, 0.999])),
                  "eps": data.draw(st.sampled_from([1e-8, 1e-3])), "step": data.draw(st.integers(1, 50))}
        args = (param, grad, array(), array(non_negative=True))
        names = ["param", "grad", "exp_avg", "exp_avg_sq"]
    else:
        momentum, centered = data.draw(st.sampled_from([0.0, 0.8])), data.draw(st.booleans())
        hyper |= {"alpha": data.draw(st.sampled_from([0.9, 0.99])), "eps": data.draw(st.sampled_from([1e-8, 1e-3])),
                  "momentum": momentum, "centered": centered}
        args = (param, grad, array(non_negative=True))
        names = ["param", "grad", "square_avg"]
        for key, wanted in (("grad_avg", centered), ("momentum_buf", momentum > 0)):
            if wanted:
                hyper[key] = array()
    check("optim", name, args, hyper, names, True)


@SETTINGS
@given(st.data(), st.sampled_from(["layer_norm", "batch_norm"]), st.sampled_from([1e-5, 0.0, -1.0, float("nan")]),
       st.booleans())
def test_norms(data, norm, eps, training):
    x = data.draw(arrays())
    m = x.shape[1] if x.ndim == 2 else 1
    gamma, beta = data.draw(arrays(shape=(m,), specials=PLAIN)), data.draw(arrays(shape=(m,), specials=PLAIN))
    kwargs: dict[str, Any] = {}
    ok = valid(x, gamma, beta) and eps > 0
    if norm == "batch_norm":
        stats = [np.zeros(m, x.dtype if x.dtype in VALID else np.float32), np.ones(m, np.float32)]
        if stats[0].dtype == np.float64:
            stats[1] = stats[1].astype(np.float64)
        kwargs = {"training": training, "running_mean": stats[0], "running_var": stats[1]}
        ok = ok and valid(x, *stats) and (not training or x.shape[0] >= 2)
    check(norm, norm, (x, gamma, beta, eps), kwargs, ["x", "gamma", "beta", "eps", "running_mean", "running_var"], ok)


@SETTINGS
@given(st.data(), st.sampled_from(["layer_norm", "batch_norm"]))
def test_norm_backwards(data, norm):
    dy = data.draw(arrays())
    x = data.draw(arrays(shape=dy.shape))
    n, m = dy.shape if dy.ndim == 2 else (1, 1)
    length = n if norm == "layer_norm" else m
    gamma = data.draw(arrays(shape=(m,), specials=PLAIN))
    mean = data.draw(arrays(shape=(length,), specials=PLAIN))
    rstd = np.abs(data.draw(arrays(shape=(length,), dtype=mean.dtype if mean.dtype != object else np.float32,
                                   specials=PLAIN)))
    ok = valid(dy, x, gamma, mean, rstd)
    check(norm, f"{norm}_backward", (dy, x, gamma, mean, rstd), {}, ["dy", "x", "gamma", "mean", "rstd"], ok)


@SETTINGS
@given(st.data(), st.sampled_from(["layer_norm", "batch_norm"]), st.sampled_from(VALID), st.integers(2, 6),
       st.integers(1, 6), st.booleans())
def test_norms_valid(data, norm, dtype, n, m, training):
    x = data.draw(contiguous((n, m), dtype))
    gamma, beta = (data.draw(contiguous((m,), dtype, PLAIN)) for _ in range(2))
    kwargs: dict[str, Any] = {}
    if norm == "batch_norm":
        kwargs = {"training": training, "running_mean": data.draw(contiguous((m,), dtype, PLAIN)),
                  "running_var": np.abs(data.draw(contiguous((m,), dtype, PLAIN)))}
    check(norm, norm, (x, gamma, beta, 1e-5), kwargs, ["x", "gamma", "beta", "running_mean", "running_var"], True)


@SETTINGS
@given(st.data(), st.sampled_from(["layer_norm", "batch_norm"]), st.sampled_from(VALID), st.integers(1, 6),
       st.integers(1, 6))
def test_norm_backwards_valid(data, norm, dtype, n, m):
    dy, x = (data.draw(contiguous((n, m), dtype)) for _ in range(2))
    length = n if norm == "layer_norm" else m
    gamma = data.draw(contiguous((m,), dtype, PLAIN))
    mean = data.draw(contiguous((length,), dtype, PLAIN))
    rstd = np.abs(data.draw(contiguous((length,), dtype, PLAIN)))
    check(norm, f"{norm}_backward", (dy, x, gamma, mean, rstd), {}, ["dy", "x", "gamma", "mean", "rstd"], True)
