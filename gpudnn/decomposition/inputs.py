"""PCA's checks of the data it is given: arrays on the model's backend, and non-finite values."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend.base import Backend


def as_data(b: Backend, X: Any, name: str) -> tuple[Any, bool, bool]:
    """``(array on b, given_as_host_data, freshly_allocated)`` for a 2-D real input.

    float32/float64 keep their dtype; integers, bools and float16 become float64. Host data go to
    the backend; a device array given to a host backend is refused (TypeError).
    """
    if b.is_array(X):
        a, host = X, False
    elif hasattr(X, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a device array ({type(X).__module__}.{type(X).__name__}) but this PCA runs "
                        f"on the {b.name!r} backend; transfer it explicitly (e.g. {name}.get())")
    elif hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(f"{name} is a sparse matrix ({type(X).__name__}); PCA needs dense data: pass {name}.toarray()")
    else:
        try:
            a = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a 2-D array-like of numbers ({exc})") from exc
        host = True
    fresh = False
    if a.dtype not in (np.float32, np.float64):
        if a.dtype.kind == "c":
            raise ValueError(f"Complex data not supported: {name} has dtype {a.dtype}; PCA needs real numbers")
        if a.dtype.kind == "O":  # numbers held as objects convert; anything else raises TypeError
            a = a.astype(np.float64)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
        a, fresh = a.astype(np.float64), True
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {tuple(a.shape)}. Reshape your "
                         f"data with {name}.reshape(-1, 1) for a single feature or {name}.reshape(1, -1) for a "
                         "single sample")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={tuple(a.shape)}) while a minimum of 1 is required "
                         "by PCA")
    if host and b.xp is not np:
        a, fresh = b.asarray(a), True
    return a, host, fresh


def raise_not_finite(xp: Any, X: Any, name: str) -> None:
    """Called once a reduction over ``X`` came out non-finite: say whether X itself is to blame."""
    if not bool(xp.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinity")
    raise ValueError(f"{name} overflows {X.dtype} in PCA's sums; rescale it or pass float64 data")
