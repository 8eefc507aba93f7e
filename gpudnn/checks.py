"""User-facing argument checks, one rule per kind of value, shared by every room of gpudnn.

Each check returns the value in its canonical type or raises ``TypeError`` (wrong kind of value) or
``ValueError`` (right kind, bad value) with a message that names the argument and what was expected.
Integers accept Python and NumPy integers, never bools; reals accept Python and NumPy reals, never
bools or strings. The kernels' own scalar check (``real``) is the same function, so a value means the
same at every level.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .kernels import check_finite_scalar as real

__all__ = ["choice", "feature_shape", "features", "flag", "fraction", "integer", "is_integer", "labels",
           "positive_int", "real", "seed"]


def is_integer(value: Any) -> bool:
    """Whether ``value`` is an int (Python or NumPy) and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An int (Python or NumPy, not bool) within [low, high] where those are given."""
    if not is_integer(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def positive_int(name: str, value: Any) -> int:
    """An int >= 1."""
    return integer(name, value, low=1)


def seed(name: str, value: Any) -> int:
    """A random seed: an int >= 0 (NumPy's generators take any size)."""
    return integer(name, value, low=0)


def flag(name: str, value: Any) -> bool:
    """True or False (Python or NumPy bool); 0, 1 and strings are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def fraction(name: str, value: Any) -> float:
    """A real strictly between 0 and 1."""
    return real(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """One of ``options`` (strings, compared exactly)."""
    options = tuple(options)
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def _sample(i: int) -> str:
    return f"sample {i}"


def _cell(i: int, j: int) -> str:
    return f"sample {i}, feature {j}"


def feature_shape(name: str, X: Any, *, width: int | None = None, columns: str = "features") -> None:
    """What ``features`` checks without reading the data, for any array (host or device): real numbers,
    2-D (samples, columns), at least one sample, ``width`` columns where given."""
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, {columns}), got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no samples")
    if width is not None and X.shape[1] != width:
        raise ValueError(f"{name} has {X.shape[1]} {columns}, expected {width}")


def features(name: str, X: Any, *, width: int | None = None, dtype: Any = None, flatten: bool = False,
             locate: Callable[[int, int], str] | None = None, columns: str = "features") -> np.ndarray:
    """Host data as a C-contiguous (n_samples >= 1, n_columns) array of finite numbers.

    ``width``: the number of columns required. ``dtype``: the dtype to convert to (values beyond
    its range count as non-finite); None keeps float32/float64 and makes other numbers float64.
    ``flatten``: trailing axes become columns ((n, 8, 8) -> (n, 64), (n,) -> (n, 1)); otherwise X
    must be 2-D.
    ``locate(i, j)`` names sample i, column j in messages (default "sample i, feature j");
    ``columns`` is what messages call the columns.
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if flatten and X.ndim >= 1:
        X = X.reshape(X.shape[0], math.prod(X.shape[1:]))
    feature_shape(name, X, width=width, columns=columns)
    if dtype is None:
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    with np.errstate(over="ignore"):  # values beyond the dtype become Inf, reported just below
        X = np.ascontiguousarray(X, dtype=dtype)
    finite = np.isfinite(X)
    if not finite.all():
        i, j = (int(v) for v in np.argwhere(~finite)[0])
        raise ValueError(f"{name} must be finite, found a NaN or Inf (or a value beyond {np.dtype(dtype)}) at "
                         f"{(locate or _cell)(i, j)}")
    return X


def labels(name: str, y: Any, *, n_classes: int | None = None, locate: Callable[[int], str] | None = None
           ) -> np.ndarray:
    """Class labels as a 1-D int64 array in [0, n_classes) (n_classes None: any label >= 0).

    A (n, 1) column counts as 1-D; float labels must be integral. ``locate(i)`` names sample i in
    messages (default "sample i").
    """
    locate = locate or _sample
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer class labels, got shape {y.shape}")
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) >= 2**53)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be integers (class labels), found {y[i].item()!r} at {locate(i)}")
    elif y.dtype.kind not in "iub":
        raise TypeError(f"{name} must be integers (class labels), got dtype {y.dtype}")
    out = y.astype(np.int64)
    if out.size:
        low, high = int(np.argmin(out)), int(np.argmax(out))
        if out[low] < 0:
            raise ValueError(f"{name} must be >= 0 (class labels), found {out[low]} at {locate(low)}")
        if n_classes is not None and out[high] >= n_classes:
            raise ValueError(f"{name} must be below {n_classes} (the number of classes), found "
                             f"{out[high]} at {locate(high)}")
    return out
