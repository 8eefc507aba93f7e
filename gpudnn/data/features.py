"""Unlabelled samples for prediction: a feature matrix from .npy, .npz (array X) or .csv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .. import checks
from ..files import existing_file, read_npy, read_npz
from .csv_table import read_csv


def _csv_features(path: Path, label: str | None) -> tuple[np.ndarray, Callable[[int, int], str]]:
    """The CSV's numbers without its ``label`` column, and a locator of sample i, feature j in the file."""
    table = read_csv(path)
    drop = table.index(label) if label is not None else None
    columns = [j for j in range(table.width) if j != drop]
    return table.values(columns), lambda i, j: f"line {table.lines[i]}, {table.column(columns[j])}"


def load_features(path: str | Path, label: str | None = None) -> np.ndarray:
    """A (samples, features) float matrix; ``label`` names a CSV column to drop (by name or index)."""
    path = existing_file(path)
    suffix, locate = path.suffix.lower(), None
    if suffix == ".npy":
        X = read_npy(path)
    elif suffix == ".npz":
        arrays = read_npz(path)
        if "X" not in arrays:
            raise ValueError(f"{path}: no array named X (arrays: {sorted(arrays) or 'none'})")
        X = arrays["X"]
    elif suffix == ".csv":
        X, locate = _csv_features(path, label)
    else:
        raise ValueError(f"{path}: unsupported input type; give a .npy, .npz (array X) or .csv file")
    return checks.features(f"{path}: X", X, dtype=np.float32, flatten=True, locate=locate)
