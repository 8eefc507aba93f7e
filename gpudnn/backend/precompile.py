"""Explicit warm-up: compile the fused kernels before timing-sensitive work.

Numba compiles each kernel on its first call (about a second each); ``precompile`` makes those
first calls on tiny inputs, so a benchmark or a latency-sensitive service pays them up front.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..kernels.activations import FROM_OUTPUT, NAMES
from .select import get_backend


def precompile(dtypes: Iterable[Any] = ("float32",), backend: Any = None, verbose: bool = False) -> int:
    """Run every fused op once per dtype on ``backend`` (default: current); returns the number of calls."""
    b = backend or get_backend()
    before, started = b.launches, time.perf_counter()
    for dtype in map(np.dtype, dtypes):
        x = b.asarray(np.linspace(-1, 1, 6).reshape(2, 3), dtype=dtype)
        bias = b.zeros((3,), dtype)
        for code in NAMES:
            y = b.bias_act(x, bias, code, 0.01, z_out=b.empty(x.shape, dtype))
            saved, from_output = (y, True) if code in FROM_OUTPUT else (x, False)
            for with_db in (True, False):
                b.bias_act_backward(x, saved, code, 0.01, from_output=from_output, with_db=with_db)
        b.softmax_xent(x, b.asarray(np.array([0, 2])))
        b.softmax(x)
        b.log_softmax(x)
        b.bce_logits(x, b.zeros(x.shape, dtype))
        b.mse(x, b.zeros(x.shape, dtype))
        b.dropout_backward(b.dropout(x, 0.5, 1), 0.5, 1)
        gamma, beta = b.zeros((3,), dtype), b.zeros((3,), dtype)
        _, mean, rstd = b.layer_norm(x, gamma, beta)
        b.layer_norm_backward(x, x, gamma, mean, rstd)
        stats = {"running_mean": b.zeros((3,), dtype), "running_var": b.zeros((3,), dtype)}
        _, mean, rstd = b.batch_norm(x, gamma, beta, **stats)
        b.batch_norm(x, gamma, beta, training=False, **stats)
        b.batch_norm_backward(x, x, gamma, mean, rstd)
        p, g, m, v = (b.zeros((4,), dtype) for _ in range(4))
        for first_step in (True, False):
            b.sgd_(p, g, m, lr=0.1, momentum=0.9, first_step=first_step)
        b.sgd_(p, g, None, lr=0.1)
        b.adam_(p, g, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=1)
        b.rmsprop_(p, g, v, lr=1e-3, alpha=0.99, eps=1e-8)
        for with_param in (True, False):
            b.arena_sums(p, g, b.zeros((), dtype), with_param=with_param)
    b.synchronize()
    if verbose:
        print(f"precompiled {b.launches - before} kernel calls on {b.name} in {time.perf_counter() - started:.1f} s")
    return b.launches - before
