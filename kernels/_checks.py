"""Argument checks shared by every kernel plan: kind, dtype, shape and contiguity of arrays, outputs
that must not overlap their inputs (an exact in-place output excepted), and finite scalars.

A plan runs them before any kernel: a bad argument raises ``TypeError``/``ValueError`` naming it, and
never reaches a kernel that could write out of bounds. Nothing here imports numba or CuPy.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def is_device_array(a: Any) -> bool:
    return not isinstance(a, np.ndarray) and hasattr(a, "__cuda_array_interface__")


def array_module(a: Any):
    """numpy for host arrays, cupy for CuPy arrays (imported only then), and for other device arrays
    the module their ``__array_namespace__`` names (the CI stand-in for CuPy)."""
    if isinstance(a, np.ndarray):
        return np
    namespace = getattr(a, "__array_namespace__", None)
    if namespace is not None and type(a).__module__.split(".")[0] != "cupy":
        return namespace()
    import cupy

    return cupy


def _address_span(a: Any) -> tuple[int, int]:
    # Device arrays (CuPy and its stand-in) know their address: no interface dict to build.
    start = a.__array_interface__["data"][0] if isinstance(a, np.ndarray) else a.data.ptr
    return start, start + a.nbytes


def check_array(
    name: str,
    a: Any,
    *,
    ndim: int | None = None,
    dtype: Any = None,
    shape: tuple[int, ...] | None = None,
    floating: bool = True,
) -> None:
    """Raise a clear error unless ``a`` is a C-contiguous array with the stated properties."""
    if not (isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__")):
        raise TypeError(f"{name} must be a NumPy or CuPy array, got {type(a).__name__}")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {tuple(a.shape)}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(a.shape)}")
    if floating and a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != np.dtype(dtype):
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got {a.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use ascontiguousarray), got strides {a.strides}")


def check_same_kind(reference_name: str, reference: Any, **arrays: Any) -> None:
    """All arrays live where ``reference`` lives (host or device)."""
    on_host = isinstance(reference, np.ndarray)
    for name, a in arrays.items():
        if a is not None and isinstance(a, np.ndarray) != on_host:
            where = "host (NumPy)" if on_host else "device (CuPy)"
            raise TypeError(f"{name} must be a {where} array like {reference_name}, got "
                            f"{type(a).__module__}.{type(a).__name__}")


def _overlap(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.may_share_memory(a, b)  # the same bounds test, ten times cheaper
    a_lo, a_hi = _address_span(a)
    b_lo, b_hi = _address_span(b)
    return a_lo < b_hi and b_lo < a_hi


def check_disjoint(why: str, **arrays: Any) -> None:
    """No two of ``arrays`` share memory (``why``: what the error adds). Device arrays by their address spans."""
    names = list(arrays)
    for k, first in enumerate(names):
        for second in names[k + 1:]:
            if _overlap(arrays[first], arrays[second]):
                raise ValueError(f"{first} and {second} share memory; {why}")


def check_no_overlap(out_name: str, target: Any, in_place_of: Any = None, /, **inputs: Any) -> None:
    """``target`` may be the input ``in_place_of`` itself (an elementwise op run in place: same memory,
    same shape) but must not overlap any input otherwise."""
    for name, a in inputs.items():
        if a is None or (a is target and a is in_place_of):
            continue
        if a.nbytes and target.nbytes and _overlap(target, a):
            if a is in_place_of and _address_span(a) == _address_span(target) and a.shape == target.shape:
                continue
            raise ValueError(f"{out_name} overlaps {name} in memory; pass a separate output array")


def output(
    name: str, given: Any, like: Any, shape: tuple[int, ...], dtype: Any, /,
    *, in_place_of: Any = None, **inputs: Any,
) -> Any:
    """Validate a caller-supplied output (shape, dtype, contiguity, no aliasing) or allocate one.

    ``given`` may be the input ``in_place_of`` (an elementwise op run in place); it must not
    overlap any other of ``inputs``. Another view of exactly ``in_place_of``'s memory counts as
    ``in_place_of`` itself and is returned as it, so "in place" is always ``out is x``.
    """
    if given is None:
        return array_module(like).empty(shape, dtype=dtype)
    check_array(name, given, shape=shape, dtype=dtype)
    check_same_kind("the inputs", like, **{name: given})
    check_no_overlap(name, given, in_place_of, **inputs)
    if given is in_place_of or in_place_of is None or not _overlap(given, in_place_of):
        return given
    return in_place_of  # the one overlap check_no_overlap lets through: exactly its memory


def check_finite_scalar(name: str, value: float, *, low: float | None = None, high: float | None = None,
                        low_open: bool = False, high_open: bool = False) -> float:
    """A finite real (Python or NumPy; not a bool or a string) within [low, high] (ends open where
    stated), as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if low is not None and (v < low or (low_open and v == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {v}")
    if high is not None and (v > high or (high_open and v == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {v}")
    return v
