"""Helpers shared by the tests: where CUDA kernels run, and running one op three ways."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import numpy as np

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _gpu_status() -> tuple[bool, str]:
    if SIMULATOR:
        return False, "no real GPU: NUMBA_ENABLE_CUDASIM=1 (CUDA kernels are tested in the simulator instead)"
    from gpudnn.backend import cupy_status

    ok, why = cupy_status()
    return ok, f"no real GPU: {why}"


HAVE_GPU, GPU_REASON = _gpu_status()
IMPLS = ("ref", "cpu", "cuda")


def to_device(a: Any) -> Any:
    """Arrays as the CUDA wrappers take them: CuPy on a real GPU, the strict CuPy stand-in under the
    simulator (so a kernel's device branch that treats them as host arrays fails here)."""
    if a is None or not isinstance(a, np.ndarray):
        return a
    if HAVE_GPU:
        import cupy as xp
    else:
        from gpudnn.backend.standin import xp
    if a.flags.c_contiguous or a.ndim == 0:
        return xp.asarray(a)
    wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)  # a strided device view, as strided as `a`
    wide[..., ::2] = a
    return xp.asarray(wide)[..., ::2]


def to_host(a: Any) -> Any:
    if isinstance(a, (tuple, list)):
        return type(a)(to_host(v) for v in a)
    if a is not None and hasattr(a, "get") and not isinstance(a, np.ndarray):
        return a.get()
    return a


def op(module: str, name: str, impl: str) -> Callable[..., Any]:
    """``gpudnn.kernels.<module>.<name>_<impl>``; the cuda variant moves arrays to the device and back."""
    fn = getattr(importlib.import_module(f"gpudnn.kernels.{module}"), f"{name}_{impl}")
    if impl != "cuda":
        return fn

    def on_device(*args: Any, **kwargs: Any) -> Any:
        args = [to_device(a) for a in args]
        kwargs = {k: to_device(v) for k, v in kwargs.items()}
        return to_host(fn(*args, **kwargs))

    return on_device


def tolerance(dtype: Any) -> dict[str, float]:
    return {"rtol": 2e-5, "atol": 2e-6} if np.dtype(dtype) == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar function f at x (float64), one coordinate at a time."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return g
