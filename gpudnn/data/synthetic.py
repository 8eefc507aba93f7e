"""Synthetic classification sets of any size: Gaussian blobs and interleaved 2-D spirals.

Both draw from ``np.random.default_rng(seed)``, give class c about n_samples / n_classes
points (the first n_samples % n_classes classes one more), and split them with
``train_test_split`` (stratified, same seed).
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .dataset import Dataset, train_test_split

CENTER_BOX = 10.0  # blob centres are uniform in [-10, 10]^n_features, as in scikit-learn's make_blobs


def _class_labels(n_samples: int, n_classes: int) -> np.ndarray:
    return np.arange(n_samples, dtype=np.int64) % n_classes


def _split(X: np.ndarray, y: np.ndarray, n_classes: int, name: str, description: str,
           test_fraction: float, seed: int) -> Dataset:
    X_tr, X_te, y_tr, y_te = train_test_split(X.astype(np.float32), y, test_fraction, seed)
    return Dataset(X_tr, y_tr, X_te, y_te, n_classes, name,
                   f"{description}; stratified split, test_fraction={test_fraction}, seed={seed}")


def load_blobs(*, seed: int = 0, n_samples: int = 1000, n_features: int = 2, n_classes: int = 3,
               noise: float = 1.0, test_fraction: float = 0.2) -> Dataset:
    """Isotropic Gaussian clusters: class c ~ N(centre_c, noise^2 I), centres uniform in [-10, 10]^d.

    X (n_samples, n_features) float32, split train/test. noise = 0 puts every point on its centre.
    """
    n_classes = checks.integer("n_classes", n_classes, low=2)
    n_samples = checks.integer("n_samples", n_samples, low=2 * n_classes)
    n_features = checks.positive_int("n_features", n_features)
    noise = checks.real("noise", noise, low=0)
    test_fraction = checks.fraction("test_fraction", test_fraction)
    rng = np.random.default_rng(checks.seed("seed", seed))
    centres = rng.uniform(-CENTER_BOX, CENTER_BOX, (n_classes, n_features))
    y = _class_labels(n_samples, n_classes)
    X = centres[y] + noise * rng.standard_normal((n_samples, n_features))
    return _split(X, y, n_classes, "blobs",
                  f"{n_classes} Gaussian blobs in {n_features}-D (synthetic), centres uniform in "
                  f"[-{CENTER_BOX:g}, {CENTER_BOX:g}], std {noise:g}", test_fraction, seed)


def load_spirals(*, seed: int = 0, n_samples: int = 1000, n_classes: int = 3, noise: float = 0.05,
                 test_fraction: float = 0.2) -> Dataset:
    """n_classes interleaved 2-D spiral arms, one turn each, radius 0..1.

    A point of class c at s ~ U(0, 1) sits at radius s and angle 2 pi (s + c / n_classes),
    plus N(0, noise^2) on each coordinate. X (n_samples, 2) float32, split train/test.
    Neighbouring arms are 1 / n_classes apart along a ray; no straight line separates them.
    """
    n_classes = checks.integer("n_classes", n_classes, low=2)
    n_samples = checks.integer("n_samples", n_samples, low=2 * n_classes)
    noise = checks.real("noise", noise, low=0)
    test_fraction = checks.fraction("test_fraction", test_fraction)
    rng = np.random.default_rng(checks.seed("seed", seed))
    y = _class_labels(n_samples, n_classes)
    s = rng.uniform(0.0, 1.0, n_samples)
    angle = 2 * np.pi * (s + y / n_classes)
    X = s[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    X += noise * rng.standard_normal((n_samples, 2))
    return _split(X, y, n_classes, "spirals",
                  f"{n_classes} interleaved 2-D spirals (synthetic), one turn, noise std {noise:g}",
                  test_fraction, seed)
