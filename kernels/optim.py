"""Fused in-place optimizer steps over flat arrays: SGD, Adam/AdamW, RMSprop.

All arrays are 1-D, C-contiguous, of one float dtype (float32 or float64) and one length, and no
two share memory (an optimizer keeps its parameters, gradients and state in flat "arenas", so one
call updates a whole model). ``param`` and the state arrays are updated in place; every op
returns None. Hyper-parameters are keyword-only; they are checked (finite, in range) and the
bias corrections are computed on the host before any kernel runs.

Every optimizer first forms the regularised gradient and applies decoupled weight decay:

    g = grad_scale * grad + l2 * p + l1 * sign(p)      (grad_scale: e.g. global-norm clipping)
    p = p * (1 - lr * weight_decay)                     (decoupled weight decay, AdamW-style; 0 = off)

Each op comes three ways with one signature: ``<op>_ref`` (NumPy/CuPy expressions),
``<op>_cpu`` (single-threaded Numba kernel, one pass) and ``<op>_cuda`` (one grid-stride
numba.cuda launch on CuPy's current stream). The op names end in ``_`` (in place), hence
``adam__cpu``. The per-element maths is written once and compiled for both CPU and CUDA.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, NamedTuple

from numba import cuda, njit

from . import _common as c


class _Plan(NamedTuple):
    """A validated step: which kernel, its compile-time switches, its arrays and host scalars."""

    optimizer: str  # "sgd" | "adam" | "rmsprop"
    flags: tuple[bool, ...]
    arrays: tuple[Any, ...]  # param, grad, then the state arrays in use
    scalars: tuple[float, ...]  # grad_scale, l2, l1, decay, then the optimizer's own


# --------------------------------------------------------------------------- validation


def _arrays(param: Any, grad: Any, **state: Any) -> tuple[Any, ...]:
    """(param, grad, *state) after checking kind, shape, dtype, contiguity, writability, no aliasing."""
    c.check_array("param", param, ndim=1)
    named = {"param": param, "grad": grad, **state}
    for name, a in named.items():
        c.check_array(name, a, ndim=1, shape=param.shape, dtype=param.dtype)
        if name != "grad" and not getattr(a.flags, "writeable", True):
            raise ValueError(f"{name} is read-only; it is updated in place")
    c.check_same_kind("param", param, **named)
    xp = c.array_module(param)
    names = list(named)
    for k, first in enumerate(names):
        for second in names[k + 1:]:
            if xp.may_share_memory(named[first], named[second]):
                raise ValueError(f"{first} and {second} share memory; each optimizer array needs its own buffer")
    return tuple(named.values())


def _regularization(lr: float, l1: float, l2: float, weight_decay: float, grad_scale: float) -> tuple[float, ...]:
    """(grad_scale, l2, l1, decay) with decay = 1 - lr * weight_decay."""
    l1 = c.check_finite_scalar("l1", l1, low=0)
    l2 = c.check_finite_scalar("l2", l2, low=0)
    weight_decay = c.check_finite_scalar("weight_decay", weight_decay, low=0)
    grad_scale = c.check_finite_scalar("grad_scale", grad_scale, low=0, low_open=True)
    return grad_scale, l2, l1, 1.0 - lr * weight_decay


def _sgd(param: Any, grad: Any, momentum_buf: Any, *, lr: float, momentum: float = 0.0, dampening: float = 0.0,
         nesterov: bool = False, first_step: bool = False, l1: float = 0.0, l2: float = 0.0,
         weight_decay: float = 0.0, grad_scale: float = 1.0) -> _Plan:
    """SGD with momentum, in place (PyTorch's torch.optim.SGD, plus l1, grad_scale, decoupled decay).

    g as above; p = p * (1 - lr * weight_decay); then
    if momentum: buf = g if first_step else momentum*buf + (1-dampening)*g; d = g + momentum*buf if nesterov else buf
    else: d = g
    p -= lr * d
    ``momentum_buf`` is updated in place; it may be None (and is ignored) only when momentum == 0.
    ``first_step`` starts the buffer from g without reading it. nesterov needs momentum > 0, dampening == 0.
    """
    lr = c.check_finite_scalar("lr", lr, low=0)
    momentum = c.check_finite_scalar("momentum", momentum, low=0)
    dampening = c.check_finite_scalar("dampening", dampening, low=0, high=1)
    if nesterov and (momentum == 0 or dampening != 0):
        raise ValueError("nesterov momentum requires momentum > 0 and dampening == 0")
    if momentum > 0 and momentum_buf is None:
        raise ValueError("momentum_buf is required when momentum > 0")
    use_buf = momentum > 0
    state = {"momentum_buf": momentum_buf} if use_buf else {}
    flags = (use_buf, use_buf and bool(nesterov), use_buf and bool(first_step))
    scalars = _regularization(lr, l1, l2, weight_decay, grad_scale) + (lr, momentum, 1.0 - dampening)
    return _Plan("sgd", flags, _arrays(param, grad, **state), scalars)


def _adam(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, *, lr: float, step: int, beta1: float = 0.9,
          beta2: float = 0.999, eps: float = 1e-8, l1: float = 0.0, l2: float = 0.0, weight_decay: float = 0.0,
          grad_scale: float = 1.0) -> _Plan:
    """Adam / AdamW, in place (PyTorch's non-amsgrad torch.optim.Adam; AdamW = weight_decay > 0 here).

    g as above; p = p * (1 - lr * weight_decay); then
    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2   (m: exp_avg, v: exp_avg_sq, updated in place)
    p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)
    ``step`` counts from 1 (the step being taken).
    """
    lr = c.check_finite_scalar("lr", lr, low=0)
    beta1 = c.check_finite_scalar("beta1", beta1, low=0, high=1, high_open=True)
    beta2 = c.check_finite_scalar("beta2", beta2, low=0, high=1, high_open=True)
    eps = c.check_finite_scalar("eps", eps, low=0, low_open=True)
    step = c.check_finite_scalar("step", step, low=1)
    if step != int(step):
        raise ValueError(f"step must be a whole number, got {step}")
    step_size = lr / (1.0 - beta1**step)
    inv_bias2_sqrt = 1.0 / math.sqrt(1.0 - beta2**step)
    scalars = _regularization(lr, l1, l2, weight_decay, grad_scale) + (
        step_size, beta1, 1.0 - beta1, beta2, 1.0 - beta2, inv_bias2_sqrt, eps)
    return _Plan("adam", (), _arrays(param, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq), scalars)


def _rmsprop(param: Any, grad: Any, square_avg: Any, *, lr: float, alpha: float = 0.99, eps: float = 1e-8,
             momentum: float = 0.0, centered: bool = False, momentum_buf: Any = None, grad_avg: Any = None,
             l1: float = 0.0, l2: float = 0.0, weight_decay: float = 0.0, grad_scale: float = 1.0) -> _Plan:
    """RMSprop, in place (PyTorch's torch.optim.RMSprop, plus l1, grad_scale, decoupled decay).

    g as above; p = p * (1 - lr * weight_decay); then
    sq = alpha sq + (1-alpha) g^2
    if centered: ga = alpha ga + (1-alpha) g; avg = sqrt(sq - ga^2) + eps, else avg = sqrt(sq) + eps
    if momentum > 0: buf = momentum buf + g / avg; p -= lr buf, else p -= lr g / avg
    (sq: square_avg, ga: grad_avg, buf: momentum_buf, all updated in place; momentum_buf is required
    iff momentum > 0, grad_avg iff centered, and ignored otherwise. sq - ga^2 >= 0 in exact
    arithmetic; the kernels take its absolute value so that rounding cannot turn it into a NaN.)
    """
    lr = c.check_finite_scalar("lr", lr, low=0)
    alpha = c.check_finite_scalar("alpha", alpha, low=0, high=1, high_open=True)
    eps = c.check_finite_scalar("eps", eps, low=0, low_open=True)
    momentum = c.check_finite_scalar("momentum", momentum, low=0)
    centered, use_buf = bool(centered), momentum > 0
    if centered and grad_avg is None:
        raise ValueError("grad_avg is required when centered=True")
    if use_buf and momentum_buf is None:
        raise ValueError("momentum_buf is required when momentum > 0")
    state = {"square_avg": square_avg}
    if centered:
        state["grad_avg"] = grad_avg
    if use_buf:
        state["momentum_buf"] = momentum_buf
    scalars = _regularization(lr, l1, l2, weight_decay, grad_scale) + (lr, alpha, 1.0 - alpha, eps, momentum)
    return _Plan("rmsprop", (centered, use_buf), _arrays(param, grad, **state), scalars)


# --------------------------------------------------------------------------- references


def _regularized_ref(p: Any, grad: Any, grad_scale: float, l2: float, l1: float) -> Any:
    return grad_scale * grad + l2 * p + l1 * c.array_module(p).sign(p)


def _sgd_ref(flags: tuple[bool, ...], arrays: tuple[Any, ...], h: tuple[float, ...]) -> None:
    use_buf, nesterov, first = flags
    grad_scale, l2, l1, decay, lr, momentum, undamped = h
    p, grad = arrays[:2]
    g = _regularized_ref(p, grad, grad_scale, l2, l1)
    d = g
    if use_buf:
        buf = arrays[2]
        buf[...] = g if first else momentum * buf + undamped * g
        d = g + momentum * buf if nesterov else buf
    p *= decay
    p -= lr * d


def _adam_ref(flags: tuple[bool, ...], arrays: tuple[Any, ...], h: tuple[float, ...]) -> None:
    grad_scale, l2, l1, decay, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bias2_sqrt, eps = h
    p, grad, m, v = arrays
    g = _regularized_ref(p, grad, grad_scale, l2, l1)
    m[...] = beta1 * m + one_minus_beta1 * g
    v[...] = beta2 * v + one_minus_beta2 * g * g
    p *= decay
    p -= step_size * m / (c.array_module(p).sqrt(v) * inv_bias2_sqrt + eps)


def _rmsprop_ref(flags: tuple[bool, ...], arrays: tuple[Any, ...], h: tuple[float, ...]) -> None:
    centered, use_buf = flags
    grad_scale, l2, l1, decay, lr, alpha, one_minus_alpha, eps, momentum = h
    xp = c.array_module(arrays[0])
    p, grad, sq = arrays[:3]
    g = _regularized_ref(p, grad, grad_scale, l2, l1)
    sq[...] = alpha * sq + one_minus_alpha * g * g
    if centered:
        ga = arrays[3]
        ga[...] = alpha * ga + one_minus_alpha * g
        avg = xp.sqrt(xp.abs(sq - ga * ga)) + eps
    else:
        avg = xp.sqrt(sq) + eps
    d = g / avg
    if use_buf:
        buf = arrays[-1]
        buf[...] = momentum * buf + d
        d = buf
    p *= decay
    p -= lr * d


# --------------------------------------------------------------------------- per-element kernels
# One scalar update per optimizer, compiled by ``jit`` for the CPU (njit) or the GPU (device
# function). The flags are closure constants, so Numba prunes the branches they switch off.
# Every scalar in ``h`` arrives typed to the array dtype: float32 maths stays float32.


def _regularized(jit: Callable) -> Callable:
    @jit
    def regularized(p, grad, grad_scale, l2, l1):
        g = grad_scale * grad + l2 * p
        if p > 0:
            g += l1
        elif p < 0:
            g -= l1
        return g

    return regularized


def _sgd_element(jit: Callable, use_buf: bool, nesterov: bool, first: bool) -> Callable:
    regularized = _regularized(jit)

    @jit
    def element(i, arrays, h):
        grad_scale, l2, l1, decay, lr, momentum, undamped = h
        p = arrays[0][i]
        g = regularized(p, arrays[1][i], grad_scale, l2, l1)
        d = g
        if use_buf:
            buf = g if first else momentum * arrays[2][i] + undamped * g
            arrays[2][i] = buf
            d = g + momentum * buf if nesterov else buf
        arrays[0][i] = p * decay - lr * d

    return element


def _adam_element(jit: Callable) -> Callable:
    regularized = _regularized(jit)

    @jit
    def element(i, arrays, h):
        grad_scale, l2, l1, decay, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, inv_bias2_sqrt, eps = h
        p = arrays[0][i]
        g = regularized(p, arrays[1][i], grad_scale, l2, l1)
        m = beta1 * arrays[2][i] + one_minus_beta1 * g
        v = beta2 * arrays[3][i] + one_minus_beta2 * g * g
        arrays[2][i] = m
        arrays[3][i] = v
        arrays[0][i] = p * decay - step_size * m / (math.sqrt(v) * inv_bias2_sqrt + eps)

    return element


def _rmsprop_element(jit: Callable, centered: bool, use_buf: bool) -> Callable:
    regularized = _regularized(jit)
    buf_index = 4 if centered else 3

    @jit
    def element(i, arrays, h):
        grad_scale, l2, l1, decay, lr, alpha, one_minus_alpha, eps, momentum = h
        p = arrays[0][i]
        g = regularized(p, arrays[1][i], grad_scale, l2, l1)
        sq = alpha * arrays[2][i] + one_minus_alpha * g * g
        arrays[2][i] = sq
        if centered:
            ga = alpha * arrays[3][i] + one_minus_alpha * g
            arrays[3][i] = ga
            avg = math.sqrt(abs(sq - ga * ga)) + eps
        else:
            avg = math.sqrt(sq) + eps
        d = g / avg
        if use_buf:
            d = momentum * arrays[buf_index][i] + d
            arrays[buf_index][i] = d
        arrays[0][i] = p * decay - lr * d

    return element


_ELEMENTS = {"sgd": _sgd_element, "adam": _adam_element, "rmsprop": _rmsprop_element}
_REFS = {"sgd": _sgd_ref, "adam": _adam_ref, "rmsprop": _rmsprop_ref}


@functools.cache
def _cpu_kernel(optimizer: str, flags: tuple[bool, ...]):
    element = _ELEMENTS[optimizer](njit(inline="always", **c.NJIT_OPTIONS), *flags)

    @njit(**c.NJIT_OPTIONS)
    def kernel(arrays, h):
        for i in range(arrays[0].size):
            element(i, arrays, h)

    return kernel


@functools.cache
def _cuda_kernel(optimizer: str, flags: tuple[bool, ...]):
    # Under the simulator device functions stay plain Python: its device-function wrapper takes a
    # global lock per call, which serialises the simulated threads.
    device = (lambda f: f) if c.simulator_enabled() else cuda.jit(device=True)
    element = _ELEMENTS[optimizer](device, *flags)

    @cuda.jit
    def kernel(arrays, h):
        for i in range(cuda.grid(1), arrays[0].size, cuda.gridsize(1)):
            element(i, arrays, h)

    return kernel


# --------------------------------------------------------------------------- the three ways


def _run_ref(plan: _Plan) -> None:
    _REFS[plan.optimizer](plan.flags, plan.arrays, plan.scalars)


def _typed(plan: _Plan) -> tuple[Any, ...]:
    dtype = plan.arrays[0].dtype.type
    return tuple(dtype(s) for s in plan.scalars)


def _run_cpu(plan: _Plan) -> None:
    if c.is_device_array(plan.arrays[0]):
        raise TypeError("the cpu kernels take NumPy arrays; param is a device array (use the cuda kernels)")
    if plan.arrays[0].size:
        _cpu_kernel(plan.optimizer, plan.flags)(plan.arrays, _typed(plan))


def _run_cuda(plan: _Plan) -> None:
    n = plan.arrays[0].size
    if n:
        kernel = _cuda_kernel(plan.optimizer, plan.flags)
        kernel[c.grid_1d(n) + (c.current_stream(),)](tuple(c.cuda_args(*plan.arrays)), _typed(plan))


def _three_ways(plan: Callable[..., _Plan], name: str) -> tuple[Callable[..., None], ...]:
    """``<name>_ref``, ``<name>_cpu``, ``<name>_cuda``: one signature and docstring, that of ``plan``."""
    notes = {"ref": "NumPy/CuPy expressions (the oracle).",
             "cpu": "Numba CPU kernel: one single-threaded pass over NumPy arrays.",
             "cuda": "numba.cuda kernel: one grid-stride launch on CuPy's current stream."}

    def make(impl: str, run: Callable[[_Plan], None]) -> Callable[..., None]:
        def step(*args: Any, **hyper: Any) -> None:
            run(plan(*args, **hyper))

        step.__name__ = step.__qualname__ = f"{name}_{impl}"
        step.__doc__ = f"{plan.__doc__}\n    Implementation: {notes[impl]} Returns None.\n"
        step.__signature__ = inspect.signature(plan).replace(return_annotation="None")  # type: ignore[attr-defined]
        return step

    return make("ref", _run_ref), make("cpu", _run_cpu), make("cuda", _run_cuda)


sgd__ref, sgd__cpu, sgd__cuda = _three_ways(_sgd, "sgd_")
adam__ref, adam__cpu, adam__cuda = _three_ways(_adam, "adam_")
rmsprop__ref, rmsprop__cpu, rmsprop__cuda = _three_ways(_rmsprop, "rmsprop_")
