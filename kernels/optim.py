"""Fused in-place optimizer steps over flat arrays: SGD, Adam/AdamW, RMSprop.

All arrays are 1-D, C-contiguous, of one float dtype (float32 or float64) and one length, and no
two share memory (an optimizer keeps its parameters, gradients and state in flat "arenas", so one
call updates a whole model). ``param`` and the state arrays are updated in place; every op
returns None. Hyper-parameters are keyword-only; they are checked (finite, in range) and the
bias corrections are computed on the host before any kernel runs.

Every optimizer first forms the regularised gradient and applies decoupled weight decay:

    g = grad_scale * grad + l2 * p + l1 * sign(p)      (grad_scale: e.g. global-norm clipping)
    p = p * (1 - lr * weight_decay)                     (decoupled weight decay, AdamW-style; 0 = off)

and then its own rule, PyTorch's definition (see sgd__ref, adam__ref, rmsprop__ref).

Each op comes three ways with one signature: ``<op>_ref`` (NumPy/CuPy expressions),
``<op>_cpu`` (Numba kernel, one pass, split over the cores from 4M elements up) and ``<op>_cuda``
(one grid-stride numba.cuda launch on CuPy's current stream), each returning None. The op names end in
``_`` (in place), hence ``adam__cpu``. The maths lives in kernels.optim_math: the reference expressions, and one
per-element update compiled for both the CPU and the GPU.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from . import _common as c
from . import optim_math as m

OPS = c.OpTable()


class _Plan(NamedTuple):
    """A validated step: which kernel, its compile-time switches, its arrays and host scalars."""

    optimizer: str  # "sgd" | "adam" | "rmsprop"
    flags: tuple[bool, ...]
    arrays: tuple[Any, ...]  # param, grad, then the state arrays in use
    scalars: tuple[Any, ...]  # grad_scale, l2, l1, decay, then the optimizer's own; of the arrays' dtype


_LARGEST = {dtype: float(np.finfo(dtype).max) for dtype in c.FLOAT_DTYPES}


def _plan(optimizer: str, flags: tuple[bool, ...], arrays: tuple[Any, ...], scalars: tuple[float, ...]) -> _Plan:
    """The plan with its host scalars cast to the arrays' dtype (so float32 maths stays float32),
    where they must still be finite (lr = 1e39 is a finite float64 but no float32)."""
    dtype = arrays[0].dtype
    if any(abs(s) > _LARGEST[dtype] for s in scalars):
        raise ValueError(f"the hyper-parameters overflow {dtype} (step scalars {scalars})")
    return _Plan(optimizer, flags, arrays, tuple(dtype.type(s) for s in scalars))


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
    c.check_disjoint("each optimizer array needs its own buffer", **named)
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
    """SGD step (torch.optim.SGD, plus l1, grad_scale and decoupled weight decay), in place.

        g = grad_scale * grad + l2 * p + l1 * sign(p)
        p = p * (1 - lr * weight_decay)            (decoupled weight decay, AdamW-style; 0 = off)
        if momentum: buf = g if first_step else momentum*buf + (1-dampening)*g
                     d = g + momentum*buf if nesterov else buf
        else:        d = g
        p -= lr * d

    param, grad, momentum_buf (buf): 1-D, C-contiguous, one float dtype and length, no shared
    memory; param and momentum_buf are updated in place. momentum_buf may be None (it is then
    ignored) only when momentum == 0; ``first_step`` sets it from g without reading it.
    nesterov requires momentum > 0 and dampening == 0.
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
    return _plan("sgd", flags, _arrays(param, grad, **state), scalars)


def _adam(param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, *, lr: float, step: int, beta1: float = 0.9,
          beta2: float = 0.999, eps: float = 1e-8, l1: float = 0.0, l2: float = 0.0, weight_decay: float = 0.0,
          grad_scale: float = 1.0) -> _Plan:
    """Adam / AdamW step (torch.optim.Adam without amsgrad; AdamW = weight_decay > 0), in place.

        g = grad_scale * grad + l2 * p + l1 * sign(p)
        p = p * (1 - lr * weight_decay)            (decoupled weight decay, AdamW-style; 0 = off)
        m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
        p -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps)

    b1, b2 = beta1, beta2; m = exp_avg, v = exp_avg_sq. param, grad, exp_avg, exp_avg_sq: 1-D,
    C-contiguous, one float dtype and length, no shared memory; param, exp_avg and exp_avg_sq are
    updated in place. ``step`` is the number of this step, counting from 1.
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
    return _plan("adam", (), _arrays(param, grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq), scalars)


def _rmsprop(param: Any, grad: Any, square_avg: Any, *, lr: float, alpha: float = 0.99, eps: float = 1e-8,
             momentum: float = 0.0, centered: bool = False, momentum_buf: Any = None, grad_avg: Any = None,
             l1: float = 0.0, l2: float = 0.0, weight_decay: float = 0.0, grad_scale: float = 1.0) -> _Plan:
    """RMSprop step (torch.optim.RMSprop, plus l1, grad_scale and decoupled weight decay), in place.

        g = grad_scale * grad + l2 * p + l1 * sign(p)
        p = p * (1 - lr * weight_decay)            (decoupled weight decay, AdamW-style; 0 = off)
        sq = alpha sq + (1-alpha) g^2
        if centered: ga = alpha ga + (1-alpha) g;  avg = sqrt(sq - ga^2) + eps
        else:        avg = sqrt(sq) + eps
        if momentum > 0: buf = momentum buf + g / avg;  p -= lr buf
        else:            p -= lr g / avg

    sq = square_avg, ga = grad_avg, buf = momentum_buf. All arrays: 1-D, C-contiguous, one float
    dtype and length, no shared memory; param and the state arrays are updated in place.
    momentum_buf is required iff momentum > 0, grad_avg iff centered (otherwise ignored).
    sq - ga^2 >= 0 in exact arithmetic; its absolute value is taken so that rounding cannot make
    the square root NaN (a NaN input still propagates).
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
    return _plan("rmsprop", (centered, use_buf), _arrays(param, grad, **state), scalars)


# --------------------------------------------------------------------------- the three ways


def _run_ref(plan: _Plan) -> None:
    m.REFERENCES[plan.optimizer](plan.flags, plan.arrays, plan.scalars)


def _run_cpu(plan: _Plan) -> None:
    kernel = m.cpu_kernel(plan.optimizer, plan.flags)
    c.over_row_blocks(lambda *arrays: kernel(arrays, plan.scalars), plan.arrays)


def _run_cuda(plan: _Plan) -> None:
    n = plan.arrays[0].size
    if n:
        kernel = m.cuda_kernel(plan.optimizer, plan.flags, plan.arrays[0].dtype, len(plan.arrays), len(plan.scalars))
        blocks, threads, shift = c.grid_1d(n)
        c.launch(kernel, blocks, threads, plan.arrays, plan.scalars, shift)


sgd__ref, sgd__cpu, sgd__cuda = OPS.add("sgd_", _sgd, _run_ref, _run_cpu, _run_cuda)
adam__ref, adam__cpu, adam__cuda = OPS.add("adam_", _adam, _run_ref, _run_cpu, _run_cuda)
rmsprop__ref, rmsprop__cpu, rmsprop__cuda = OPS.add("rmsprop_", _rmsprop, _run_ref, _run_cpu, _run_cuda)
