"""The Dataset record and the host-side helpers around it: splitting, scaling, one-hot labels.

Everything here is plain NumPy on the host; the training loop moves arrays to the backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import checks

FEATURE_DTYPE = np.dtype(np.float32)
LABEL_DTYPE = np.dtype(np.int64)


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification dataset, already split.

    X_train (n_train, n_features) float32, y_train (n_train,) int64 in [0, n_classes),
    X_test (n_test, n_features) float32, y_test (n_test,) int64; name and a one-line
    description that states the source.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str
    description: str

    def __post_init__(self) -> None:
        for part in ("train", "test"):
            X, y = getattr(self, f"X_{part}"), getattr(self, f"y_{part}")
            if X.dtype != FEATURE_DTYPE or X.ndim != 2:
                raise ValueError(f"Dataset X_{part} must be 2-D float32, got {X.ndim}-D {X.dtype}")
            if y.dtype != LABEL_DTYPE or y.shape != X.shape[:1]:
                raise ValueError(
                    f"Dataset y_{part} must be int64 of shape ({X.shape[0]},), got {y.dtype} {y.shape}"
                )
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(f"Dataset y_{part} holds labels outside [0, {self.n_classes})")
        if self.X_train.shape[1] != self.X_test.shape[1]:
            raise ValueError(
                f"Dataset X_train has {self.X_train.shape[1]} features, X_test {self.X_test.shape[1]}"
            )

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.X_train.shape}, test={self.X_test.shape}, "
            f"n_classes={self.n_classes})"
        )


def describe(dataset: Dataset) -> str:
    """A few lines for people: name, source, sizes, class balance and feature range."""
    d = dataset
    lines = [f"{d.name}: {d.description}"]
    for part, X, y in (("train", d.X_train, d.y_train), ("test", d.X_test, d.y_test)):
        counts = np.bincount(y, minlength=d.n_classes)
        lines.append(
            f"  {part:5s} {X.shape[0]:6d} samples x {X.shape[1]} features; "
            f"per class min {counts.min()} / max {counts.max()}"
        )
    both = [X for X in (d.X_train, d.X_test) if X.size]
    if both:
        lo = min(float(X.min()) for X in both)
        hi = max(float(X.max()) for X in both)
        lines.append(f"  {d.n_classes} classes; features in [{lo:.4g}, {hi:.4g}]")
    else:
        lines.append(f"  {d.n_classes} classes; no feature values")
    return "\n".join(lines)


def _stratified_test_counts(counts: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """Per-class test sizes summing to n_test, proportional to class sizes (largest remainder).

    Exact integer arithmetic; ties among equal remainders are broken at random, so no class
    is favoured by its index. No class gets more than its share rounded up.
    """
    n = int(counts.sum())
    take, remainder = np.divmod(counts * n_test, n)
    short = n_test - int(take.sum())
    order = np.lexsort((rng.random(counts.size), -remainder))
    take[order[:short]] += 1
    return take


def train_test_split(
    X: np.ndarray,
    y: np.ndarray,
    test_fraction: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split: returns (X_train, X_test, y_train, y_test), rows shuffled.

    X: (n, ...) any dtype, y: (n,). The test set has ceil(test_fraction * n) rows (as in
    scikit-learn, but blind to round-off: 0.3 of 10 is 3). With stratify=True (y must then
    hold non-negative integers) each class gives its share, rounded by largest remainder,
    so class proportions match in both parts to within one sample per class. Returns new
    arrays (copies); the inputs are untouched.
    """
    X, y = np.asarray(X), np.asarray(y)
    test_fraction = checks.fraction("test_fraction", test_fraction)
    rng = np.random.default_rng(checks.seed("seed", seed))
    if X.ndim == 0 or y.ndim != 1 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y must have the same number of rows, got X {X.shape} and y {y.shape}")
    n = y.shape[0]
    n_test = math.ceil(test_fraction * n - 1e-9)  # 1e-9: 0.3 * 10 is 3.0000000000000004
    if n_test >= n:
        raise ValueError(f"test_fraction={test_fraction} of {n} samples leaves no training sample")
    if stratify:
        labels = checks.labels("train_test_split y", y)
        _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        take = _stratified_test_counts(counts, n_test, rng)
        by_class = np.argsort(inverse, kind="stable")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        test_parts, train_parts = [], []
        for start, count, k in zip(starts, counts, take):
            members = rng.permutation(by_class[start:start + count])
            test_parts.append(members[:k])
            train_parts.append(members[k:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    else:
        order = rng.permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test:]
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def standardize(
    X_train: np.ndarray, X_test: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Per-feature z-scores with the training statistics: (X - mean) / std.

    X_train (n, f) float32/float64; X_test (m, f) or None. mean and std (f,) are computed
    in float64 over X_train (population std, ddof=0); a feature with std 0 gets std 1, so
    it maps to 0 instead of NaN. Returns (X_train_s, X_test_s or None, mean, std), all new
    arrays in X_train's dtype; the inputs are untouched.
    """
    X_train = np.asarray(X_train)
    if X_train.dtype not in (np.float32, np.float64) or X_train.ndim != 2 or X_train.shape[0] == 0:
        raise ValueError(
            f"X_train must be a non-empty 2-D float32/float64 array, got {X_train.dtype} {X_train.shape}"
        )
    if X_test is not None:
        X_test = np.asarray(X_test)
        if X_test.dtype != X_train.dtype or X_test.ndim != 2 or X_test.shape[1] != X_train.shape[1]:
            raise ValueError(
                f"X_test must be {X_train.dtype} of shape (m, {X_train.shape[1]}), "
                f"got {X_test.dtype} {X_test.shape}"
            )
    mean = X_train.mean(axis=0, dtype=np.float64)
    std = X_train.std(axis=0, dtype=np.float64)
    std[std == 0] = 1.0

    def scale(X: np.ndarray) -> np.ndarray:
        return ((X - mean) / std).astype(X_train.dtype)

    return (
        scale(X_train),
        None if X_test is None else scale(X_test),
        mean.astype(X_train.dtype),
        std.astype(X_train.dtype),
    )


def one_hot(y: np.ndarray, n_classes: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    """(n,) integer labels in [0, n_classes) -> (n, n_classes) array with a single 1 per row."""
    n_classes = checks.positive_int("n_classes", n_classes)
    labels = checks.labels("one_hot y", y, n_classes=n_classes)
    out = np.zeros((labels.shape[0], int(n_classes)), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out
