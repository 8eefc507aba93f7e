"""optim kernels: ref vs Numba CPU vs numba.cuda (simulated without a GPU) vs a float64 loop of the
formulas, and vs torch.optim when torch is importable."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from gpudnn.kernels import LAUNCHES, optim

from gpudnn.backend.numpy_backend import NumpyBackend
from tests.support import HAVE_GPU, IMPLS, SIMULATOR, to_device, to_host

DTYPES = [np.float32, np.float64]
SIZES = [1, 7, 1003]
STEPS = 20

REG = {"l1": {"l1": 0.01}, "l2": {"l2": 0.05}, "weight_decay": {"weight_decay": 0.1}, "grad_scale": {"grad_scale": 0.3}}
ALL_REG = {"l1": 0.01, "l2": 0.05, "weight_decay": 0.1, "grad_scale": 0.3}
CASES = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.9}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "dampening": 0.25}),
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    *[("sgd", {"lr": 0.1, "momentum": 0.5, **r}) for r in REG.values()],
    ("sgd", {"lr": 0.1, "momentum": 0.9, "nesterov": True, **ALL_REG}),
    ("adam", {"lr": 0.01}),
    ("adam", {"lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3}),
    *[("adam", {"lr": 0.01, **r}) for r in REG.values()],
    ("adam", {"lr": 0.01, **ALL_REG}),
    ("rmsprop", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.8}),
    ("rmsprop", {"lr": 0.01, "eps": 1e-3, "centered": True}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.8, "centered": True}),
    *[("rmsprop", {"lr": 0.01, **r}) for r in REG.values()],
    ("rmsprop", {"lr": 0.01, "momentum": 0.8, "centered": True, **ALL_REG}),
]


def _case_id(case) -> str:
    name, hyper = case
    return "-".join([name] + [k if v is True else f"{k}={v}" for k, v in hyper.items() if k != "lr"])


def _simulated_cheaply(case, impl: str, dtype, n: int) -> bool:
    """The simulator runs kernels as Python on NumPy scalars (~25 ms a launch), so there the cuda
    kernels run float32 only (float64 repeats the same Python logic), every case at n = 1003 (the
    grid-stride loop) and only the all-options case of each optimizer at n = 1 (fewer elements
    than threads). On a real GPU everything runs."""
    if impl != "cuda" or not SIMULATOR:
        return True
    return dtype == np.float32 and (n == 1003 or (n == 1 and "l1" in case[1] and "l2" in case[1]))


THREE_WAY = [pytest.param(case, impl, dtype, n, id=f"{_case_id(case)}-{n}-{np.dtype(dtype)}-{impl}")
             for case in CASES for impl in IMPLS for dtype in DTYPES for n in SIZES
             if _simulated_cheaply(case, impl, dtype, n)]


def _exact_step(name: str, t: int, p: np.ndarray, grad: np.ndarray, state: dict, hyper: dict, nudge: float = 0.0):
    """One step of the formulas in float64, on copies; returns (p, state). ``nudge`` moves the
    regularised gradient g by that many units of its own rounding error (see _rounding_of_g)."""
    h = {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
         "alpha": 0.99, "centered": False, "l1": 0.0, "l2": 0.0, "weight_decay": 0.0, "grad_scale": 1.0, **hyper}
    lr, mom, dtype = h["lr"], h["momentum"], p.dtype
    p, grad = p.astype(np.float64), grad.astype(np.float64)
    s = {k: v.astype(np.float64) for k, v in state.items()}
    sign = np.where(p > 0, 1.0, np.where(p < 0, -1.0, 0.0))
    g = h["grad_scale"] * grad + h["l2"] * p + h["l1"] * sign
    g = g + nudge * _rounding_of_g(grad, p, h, dtype)
    p = p * (1.0 - lr * h["weight_decay"])
    if name == "sgd":
        if mom:
            s["momentum_buf"] = g if t == 1 else mom * s["momentum_buf"] + (1 - h["dampening"]) * g
            d = g + mom * s["momentum_buf"] if h["nesterov"] else s["momentum_buf"]
        else:
            d = g
        return p - lr * d, s
    if name == "adam":
        b1, b2 = h["beta1"], h["beta2"]
        s["exp_avg"] = b1 * s["exp_avg"] + (1 - b1) * g
        s["exp_avg_sq"] = b2 * s["exp_avg_sq"] + (1 - b2) * g**2
        denom = np.sqrt(s["exp_avg_sq"]) / np.sqrt(1 - b2**t) + h["eps"]
        return p - (lr / (1 - b1**t)) * s["exp_avg"] / denom, s
    a = h["alpha"]
    s["square_avg"] = a * s["square_avg"] + (1 - a) * g**2
    if h["centered"]:
        s["grad_avg"] = a * s["grad_avg"] + (1 - a) * g
        avg = np.sqrt(s["square_avg"] - s["grad_avg"] ** 2) + h["eps"]
    else:
        avg = np.sqrt(s["square_avg"]) + h["eps"]
    if mom > 0:
        s["momentum_buf"] = mom * s["momentum_buf"] + g / avg
        return p - lr * s["momentum_buf"], s
    return p - lr * g / avg, s


def _rounding_of_g(grad: np.ndarray, p: np.ndarray, h: dict, dtype) -> np.ndarray:
    """A bound on the rounding error of g = grad_scale grad + l2 p + l1 sign(p) formed in the kernel's dtype:
    a few ulps of its terms. Where the terms cancel, g's relative error is large, and RMSprop and Adam
    divide g by a root of its own square, which turns that into a visible change of the step."""
    unit = 1e-6 if dtype == np.float32 else 1e-12
    return unit * (abs(h["grad_scale"] * grad) + abs(h["l2"] * p) + h["l1"])


def _initial_state(name: str, hyper: dict, n: int, dtype) -> dict:
    """The state arrays the case uses. SGD's buffer starts as NaN: its first step must not read it."""
    if name == "sgd":
        return {"momentum_buf": np.full(n, np.nan, dtype)} if hyper.get("momentum") else {}
    if name == "adam":
        return {"exp_avg": np.zeros(n, dtype), "exp_avg_sq": np.zeros(n, dtype)}
    state = {"square_avg": np.zeros(n, dtype)}
    if hyper.get("centered"):
        state["grad_avg"] = np.zeros(n, dtype)
    if hyper.get("momentum"):
        state["momentum_buf"] = np.zeros(n, dtype)
    return state


def _step(impl: str, name: str, t: int, p: np.ndarray, grad: np.ndarray, state: dict, hyper: dict) -> None:
    """One in-place step through ``<name>__<impl>``; the cuda variant runs on device copies on a GPU."""
    fn = getattr(optim, f"{name}__{impl}")
    on = to_device if impl == "cuda" else (lambda a: a)
    arrays = {"param": on(p), "grad": on(grad), **{k: on(v) for k, v in state.items()}}
    if name == "sgd":
        result = fn(arrays["param"], arrays["grad"], arrays.get("momentum_buf"), first_step=t == 1, **hyper)
    elif name == "adam":
        result = fn(arrays["param"], arrays["grad"], arrays["exp_avg"], arrays["exp_avg_sq"], step=t, **hyper)
    else:
        extra = {k: arrays[k] for k in ("grad_avg", "momentum_buf") if k in arrays}
        result = fn(arrays["param"], arrays["grad"], arrays["square_avg"], **extra, **hyper)
    assert result is None
    for host, k in [(p, "param"), *[(v, k) for k, v in state.items()]]:
        host[...] = to_host(arrays[k])


def _close(actual: np.ndarray, expected: np.ndarray, what: str, low: np.ndarray | None = None,
           high: np.ndarray | None = None) -> None:
    """Rounding-level agreement. The absolute part scales with the array's largest entry: a result
    that cancels (RMSprop's momentum buffer) carries the rounding of its largest terms. With ``low``
    and ``high`` (the formula at g moved down and up by its rounding error), ``actual`` may lie
    anywhere between them too."""
    unit = 1e-6 if actual.dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    if low is not None:  # the point of that band nearest to actual
        expected = np.clip(actual.astype(np.float64), np.minimum(low, high), np.maximum(low, high))
    np.testing.assert_allclose(actual, expected, rtol=10 * unit, atol=2 * unit * scale, err_msg=what)


@pytest.mark.parametrize("case,impl,dtype,n", THREE_WAY)
def test_steps_match_float64_formula(case, impl, dtype, n, rng):
    """20 steps; each one checked against the formula run in float64 from the same state."""
    name, hyper = case
    p = rng.standard_normal(n).astype(dtype)
    state = _initial_state(name, hyper, n, dtype)
    for t in range(1, STEPS + 1):
        grad = rng.standard_normal(n).astype(dtype)
        expected_p, expected_state = _exact_step(name, t, p, grad, state, hyper)
        low_p, low_state = _exact_step(name, t, p, grad, state, hyper, nudge=-1.0)
        high_p, high_state = _exact_step(name, t, p, grad, state, hyper, nudge=1.0)
        _step(impl, name, t, p, grad, state, hyper)
        _close(p, expected_p, f"param at step {t}", low_p, high_p)
        for k, v in state.items():
            _close(v, expected_state[k], f"{k} at step {t}", low_state[k], high_state[k])
    assert np.isfinite(p).all()


# --------------------------------------------------------------------------- torch.optim


def _torch_equivalent(name: str, hyper: dict) -> tuple[str, dict] | None:
    """(torch.optim class name, its arguments) for a case, or None where torch has no equivalent
    (l1; decoupled weight decay on SGD/RMSprop, or together with l2 on Adam). grad_scale is applied
    to the gradient handed to torch."""
    h = {k: v for k, v in hyper.items() if k != "grad_scale"}
    l1, l2, wd = h.pop("l1", 0.0), h.pop("l2", 0.0), h.pop("weight_decay", 0.0)
    if l1 or (wd and (l2 or name != "adam")):
        return None
    if name == "adam":
        h["betas"] = (h.pop("beta1", 0.9), h.pop("beta2", 0.999))
        return ("AdamW", {**h, "weight_decay": wd}) if wd else ("Adam", {**h, "weight_decay": l2})
    return {"sgd": "SGD", "rmsprop": "RMSprop"}[name], {**h, "weight_decay": l2}


TORCH_CASES = [case for case in CASES if _torch_equivalent(*case) is not None]


@pytest.mark.parametrize("impl", IMPLS if HAVE_GPU else ["ref", "cpu"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_CASES, ids=_case_id)
def test_trajectory_matches_torch(impl, dtype, case, rng):
    """20 steps of ours and of torch.optim from the same start, same dtype, same gradients."""
    torch = pytest.importorskip("torch")
    name, hyper = case
    cls, kwargs = _torch_equivalent(name, hyper)
    n = 1003
    p = rng.standard_normal(n).astype(dtype)
    tensor = torch.tensor(p.copy(), requires_grad=True)
    opt = getattr(torch.optim, cls)([tensor], **kwargs)
    state = _initial_state(name, hyper, n, dtype)
    for t in range(1, STEPS + 1):
        grad = rng.standard_normal(n).astype(dtype)
        tensor.grad = torch.from_numpy((hyper.get("grad_scale", 1.0) * grad).astype(dtype))
        opt.step()
        _step(impl, name, t, p, grad, state, hyper)
    _close(p, tensor.detach().numpy(), f"param after {STEPS} steps")


# --------------------------------------------------------------------------- edges and bad arguments


def _arrays(n: int = 8, dtype=np.float32, count: int = 4) -> list[np.ndarray]:
    return [np.linspace(-1, 1, n).astype(dtype) + k for k in range(count)]


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_arrays_are_a_no_op(impl):
    """Empty arrays are a valid step that changes nothing. The cuda variant launches no kernel (a grid
    over 0 elements); the cpu one may call its compiled loop, which then runs 0 iterations, so it may
    count up to one call per step; ref runs no kernel at all. The arguments are still validated."""
    p, g, m, v = _arrays(0)
    before = Counter(LAUNCHES)
    _step(impl, "adam", 1, p, g, {"exp_avg": m, "exp_avg_sq": v}, {"lr": 0.1})
    _step(impl, "sgd", 1, p, g, {"momentum_buf": m}, {"lr": 0.1, "momentum": 0.9})
    _step(impl, "rmsprop", 1, p, g, {"square_avg": v, "grad_avg": m}, {"lr": 0.1, "centered": True})
    assert LAUNCHES["cuda"] == before["cuda"], "a CUDA kernel was launched over empty arrays"
    cpu_calls = LAUNCHES["cpu"] - before["cpu"]
    assert (0 <= cpu_calls <= 3) if impl == "cpu" else cpu_calls == 0, cpu_calls
    for a in (p, g, m, v):
        assert a.shape == (0,) and a.dtype == np.float32
    fn = getattr(optim, f"adam__{impl}")
    on = to_device if impl == "cuda" else (lambda a: a)
    with pytest.raises(ValueError, match=r"exp_avg must have shape \(0,\), got \(1,\)"):
        fn(on(p), on(g), on(np.zeros(1, np.float32)), on(v), lr=0.1, step=1)
    with pytest.raises(TypeError, match="exp_avg_sq must have dtype float32"):
        fn(on(p), on(g), on(m), on(v.astype(np.float64)), lr=0.1, step=1)
    assert LAUNCHES["cuda"] == before["cuda"] and LAUNCHES["cpu"] - before["cpu"] == cpu_calls


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", [("sgd", {"lr": 0.1, "momentum": 0.9}), ("adam", {"lr": 0.1}),
                                  ("rmsprop", {"lr": 0.1, "centered": True, "momentum": 0.5})], ids=_case_id)
def test_nan_gradient_reaches_param(impl, case):
    name, hyper = case
    p, g = _arrays(count=2)
    g[3] = np.nan
    state = {k: np.abs(a) for k, a in zip(_initial_state(name, hyper, p.size, p.dtype), _arrays(count=3))}
    _step(impl, name, 2, p, g, state, hyper)
    assert np.isnan(p[3]) and np.isfinite(np.delete(p, 3)).all()


ADAM_BAD = [
    ({"grad": lambda a: a[:-1]}, {}, ValueError, r"grad must have shape \(8,\)"),
    ({"exp_avg": lambda a: a.astype(np.float64)}, {}, TypeError, "exp_avg must have dtype float32"),
    ({"param": lambda a: a.astype(np.int32)}, {}, TypeError, "param must be float32 or float64"),
    ({"exp_avg_sq": lambda a: np.repeat(a, 2)[::2]}, {}, ValueError, "exp_avg_sq must be C-contiguous"),
    ({"param": lambda a: a.reshape(2, 4)}, {}, ValueError, "param must be 1-D"),
    ({"grad": lambda a: a.tolist()}, {}, TypeError, "grad must be a NumPy or CuPy array"),
    ({"grad": "param"}, {}, ValueError, "param and grad share memory"),
    ({"exp_avg_sq": "exp_avg"}, {}, ValueError, "exp_avg and exp_avg_sq share memory"),
    ({}, {"lr": -0.1}, ValueError, "lr must be >= 0"),
    ({}, {"lr": float("nan")}, ValueError, "lr must be finite"),
    ({}, {"lr": 1e39}, ValueError, "the hyper-parameters overflow float32"),
    ({}, {"beta1": 1.0}, ValueError, "beta1 must be < 1"),
    ({}, {"beta2": -0.1}, ValueError, "beta2 must be >= 0"),
    ({}, {"eps": 0.0}, ValueError, "eps must be > 0"),
    ({}, {"step": 0}, ValueError, "step must be >= 1"),
    ({}, {"step": 2.5}, ValueError, "step must be a whole number"),
    ({}, {"l1": -1.0}, ValueError, "l1 must be >= 0"),
    ({}, {"l2": float("inf")}, ValueError, "l2 must be finite"),
    ({}, {"weight_decay": -0.01}, ValueError, "weight_decay must be >= 0"),
    ({}, {"grad_scale": 0.0}, ValueError, "grad_scale must be > 0"),
    ({}, {"lr": "fast"}, TypeError, "lr must be a real number"),
    ({}, {"momentum": 0.9}, TypeError, "unexpected keyword argument 'momentum'"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("mutate,hyper,error,message", ADAM_BAD)
def test_adam_bad_arguments_are_named_before_any_write(impl, mutate, hyper, error, message):
    original = dict(zip(["param", "grad", "exp_avg", "exp_avg_sq"], _arrays()))
    before = {k: a.copy() for k, a in original.items()}
    arrays = dict(original)
    for k, change in mutate.items():
        arrays[k] = original[change] if isinstance(change, str) else change(original[k])
    with pytest.raises(error, match=message):
        getattr(optim, f"adam__{impl}")(*arrays.values(), **{"lr": 0.1, "step": 1, **hyper})
    for k, a in original.items():
        np.testing.assert_array_equal(a, before[k], err_msg=f"{k} was written before the error")


def test_partial_overlap_and_read_only_are_refused():
    big = np.zeros(12, np.float32)
    p, g, m, v = _arrays()
    with pytest.raises(ValueError, match="param and exp_avg share memory"):
        optim.adam__cpu(big[:8], g, big[4:], v, lr=0.1, step=1)
    p.flags.writeable = False
    with pytest.raises(ValueError, match="param is read-only"):
        optim.adam__cpu(p, g, m, v, lr=0.1, step=1)
    g.flags.writeable = False  # a read-only gradient is fine
    optim.adam__cpu(m, g, p.copy(), v, lr=0.1, step=1)


SGD_RMSPROP_BAD = [
    ("sgd", {"momentum": 0.9}, ValueError, "momentum_buf is required when momentum > 0"),
    ("sgd", {"nesterov": True}, ValueError, "nesterov momentum requires momentum > 0 and dampening == 0"),
    ("sgd", {"momentum": 0.9, "dampening": 0.1, "nesterov": True, "buf": True}, ValueError, "nesterov"),
    ("sgd", {"momentum": -0.9, "buf": True}, ValueError, "momentum must be >= 0"),
    ("sgd", {"momentum": 0.9, "dampening": 1.5, "buf": True}, ValueError, "dampening must be <= 1"),
    ("rmsprop", {"momentum": 0.9}, ValueError, "momentum_buf is required when momentum > 0"),
    ("rmsprop", {"centered": True}, ValueError, "grad_avg is required when centered=True"),
    ("rmsprop", {"alpha": 1.0}, ValueError, "alpha must be < 1"),
    ("rmsprop", {"eps": -1e-8}, ValueError, "eps must be > 0"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name,hyper,error,message", SGD_RMSPROP_BAD)
def test_sgd_rmsprop_bad_arguments(impl, name, hyper, error, message):
    p, g, s = _arrays(count=3)
    before = p.copy()
    hyper = dict(hyper)
    buf = s if hyper.pop("buf", False) else None
    with pytest.raises(error, match=message):
        if name == "sgd":
            getattr(optim, f"sgd__{impl}")(p, g, buf, lr=0.1, **hyper)
        else:
            getattr(optim, f"rmsprop__{impl}")(p, g, s, lr=0.1, **hyper)
    np.testing.assert_array_equal(p, before)


@pytest.mark.gpu
def test_host_and_device_arrays_do_not_mix():
    import cupy

    p, g, m, v = _arrays()
    with pytest.raises(TypeError, match="grad must be a device"):
        optim.adam__cuda(cupy.asarray(p), g, cupy.asarray(m), cupy.asarray(v), lr=0.1, step=1)
    with pytest.raises(TypeError, match="adam__cpu takes NumPy arrays"):
        optim.adam__cpu(*(cupy.asarray(a) for a in (p, g, m, v)), lr=0.1, step=1)


def test_hyper_parameters_are_keyword_only():
    p, g, m, v = _arrays()
    with pytest.raises(TypeError, match=r"takes 4 positional arguments but 6 were given"):
        optim.adam__cpu(p, g, m, v, 0.1, 1)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'step'"):
        optim.adam__cpu(p, g, m, v, lr=0.1)


def test_numpy_backend_dispatches_to_the_cpu_kernels(rng):
    """The Backend methods are these functions (kernels.optim.OPS), each update one kernel launch."""
    backend = NumpyBackend(seed=0)
    p, g, m, v = (rng.standard_normal(33).astype(np.float32) for _ in range(4))
    v = np.abs(v)
    expected = [a.copy() for a in (p, g, m, v)]
    optim.adam__ref(*expected, lr=0.01, step=3, weight_decay=0.1)
    before = backend.launches
    backend.adam_(p, g, m, v, lr=0.01, step=3, weight_decay=0.1)
    np.testing.assert_allclose(p, expected[0], rtol=1e-6, atol=1e-7)
    backend.sgd_(p, g, None, lr=0.1)
    backend.rmsprop_(p, g, v, lr=0.01, centered=True, grad_avg=m)
    assert backend.launches - before == 3
