"""Streaming count, mean and covariance of rows, exact in float64: what PCA's partial_fit and
fit_batched accumulate.

Batches merge by Chan et al.'s pairwise update: with n = n_a + n_b and delta = mean_b - mean_a,
``mean = mean_a + delta n_b / n`` and ``M2 = M2_a + M2_b + (n_a n_b / n) delta delta^T``, M2 being
the centred scatter matrix. Unlike the incremental SVD of scikit-learn's ``IncrementalPCA`` this is
exact: after any sequence of batches the covariance equals that of all rows seen, up to rounding,
so data larger than device memory can be streamed. Memory is O(n_features^2) besides one batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend.base import Backend
from .inputs import raise_not_finite


class StreamingMoments:
    """Count, float64 mean (d,) and float64 centred scatter (d, d) of the rows added, on one backend.

    Batches are held to one feature count d and one dtype (float32 or float64): the dtype of the
    batch GEMMs and of the model fitted from the moments. Only the upper triangle of the scatter is
    meaningful (``Backend.gram`` promises no more).
    """

    def __init__(self, backend: Backend, n_features: int, dtype: Any) -> None:
        self.backend = backend
        self.n_features = n_features
        self.dtype = np.dtype(dtype)
        self.count = 0
        self.mean: Any = None  # (d,) float64 once a row was added
        self._scatter: Any = None  # (d, d) float64, upper triangle

    def conform(self, X: Any, fresh: bool, name: str) -> tuple[Any, bool]:
        """``(X, fresh)`` for a batch (n, d) on this backend: its feature count checked, cast to the
        moments' dtype (``fresh``: whether X is a private copy, which a cast makes it)."""
        if X.shape[1] != self.n_features:
            raise ValueError(f"{name} has {X.shape[1]} features, but PCA is expecting {self.n_features} features as "
                             "input")
        if X.dtype != self.dtype:
            return X.astype(self.dtype), True
        return X, fresh

    def add(self, X: Any, inplace: bool, name: str) -> Any:
        """Merge the rows of X (n, d) (conformed) into the moments; return X centred by its own mean
        (in place when ``inplace``).

        The batch's scatter is one ``Backend.gram`` in X's dtype; the merge happens in float64.
        Non-finite data raise ValueError before X is centred in place, an overflowing scatter
        after; either leaves the moments as they were.
        """
        xp = self.backend.xp
        n_b = X.shape[0]
        if n_b == 0:
            return X
        mean_b = xp.mean(X, axis=0)
        if not bool(xp.isfinite(mean_b).all()):
            raise_not_finite(xp, X, name)
        Xc = xp.subtract(X, mean_b, out=X if inplace else None)
        with np.errstate(over="ignore", invalid="ignore"):  # checked right below
            m2_b = self.backend.gram(Xc).astype(xp.float64, copy=False)
        if not bool(xp.isfinite(m2_b).all()):
            raise ValueError(f"{name} overflows {X.dtype} in PCA's X^T X; rescale it or pass float64 data")
        mean_b = mean_b.astype(xp.float64)
        n_a = self.count
        if n_a == 0:
            self.mean, self._scatter = mean_b, m2_b
        else:
            n = n_a + n_b
            delta = mean_b - self.mean
            self.mean = self.mean + delta * (n_b / n)
            self._scatter += m2_b
            self._scatter += xp.outer(delta, delta * (n_a * n_b / n))
        self.count = n_a + n_b
        return Xc

    def covariance(self) -> Any:
        """The sample covariance (d, d) float64, both triangles filled, of the rows added (count >= 2);
        a new array."""
        xp = self.backend.xp
        c = xp.triu(self._scatter) + xp.triu(self._scatter, 1).T
        c /= self.count - 1
        return c
