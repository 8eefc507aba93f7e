"""The 8x8 handwritten digits, shipped inside the package (no download).

Source: the UCI "Optical Recognition of Handwritten Digits" data set (Alpaydin & Kaynak,
1998; CC BY 4.0), test part, exactly as packaged by scikit-learn (BSD-3-Clause) as
sklearn/datasets/data/digits.csv.gz and returned by ``sklearn.datasets.load_digits()``:
1797 images of 8x8 pixels, counts 0..16, labels 0..9. digits.npz holds them as
``pixels`` (1797, 64) uint8 and ``labels`` (1797,) uint8, in scikit-learn's row order,
written once with ``np.savez_compressed`` from ``load_digits().data`` / ``.target``
(scikit-learn 1.x). The tests compare it against scikit-learn when that is installed.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .. import checks
from .dataset import Dataset, train_test_split

N_CLASSES, MAX_PIXEL = 10, 16


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 samples, unsplit: pixels (1797, 64) uint8 in 0..16, labels (1797,) uint8."""
    with resources.files(__package__).joinpath("digits.npz").open("rb") as f, np.load(f) as z:
        return z["pixels"], z["labels"]


def load_digits(*, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Stratified, seeded split (default 80/20); features pixel / 16 in [0, 1] as float32."""
    test_fraction = checks.fraction("test_fraction", test_fraction)
    pixels, labels = digits_arrays()
    X = (pixels / np.float32(MAX_PIXEL)).astype(np.float32)
    X_tr, X_te, y_tr, y_te = train_test_split(X, labels.astype(np.int64), test_fraction, seed)
    return Dataset(
        X_tr, y_tr, X_te, y_te, N_CLASSES, "digits",
        "8x8 handwritten digits (UCI Optical Recognition of Handwritten Digits, as packaged by "
        f"scikit-learn), pixels/16; stratified split, test_fraction={test_fraction}, seed={seed}",
    )
