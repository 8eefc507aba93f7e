"""Unlabelled samples for prediction: a feature matrix from .npy, .npz (array X) or .csv."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def _csv_matrix(path: Path, label: str | None) -> np.ndarray:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [(n, [c.strip() for c in row]) for n, row in enumerate(csv.reader(f), 1) if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path}: empty CSV file")

    def numeric(cell: str) -> bool:
        try:
            float(cell)
            return True
        except ValueError:
            return False

    names = rows[0][1] if not all(numeric(c) for c in rows[0][1]) else None
    body = rows[1:] if names else rows
    width = len(rows[0][1])
    drop = None
    if label is not None:
        if names and label in names:
            drop = names.index(label)
        elif label.lstrip("+-").isdigit() and -width <= int(label) < width:
            drop = int(label) % width
        else:
            raise ValueError(f"{path}: --label {label!r} names no column (columns: {names or width})")
    values = []
    for line, cells in body:
        if len(cells) != width:
            raise ValueError(f"{path}: line {line} has {len(cells)} fields, expected {width}")
        try:
            values.append([float(c) for j, c in enumerate(cells) if j != drop])
        except ValueError:
            bad = next(j for j, c in enumerate(cells) if not numeric(c))
            raise ValueError(f"{path}: line {line}, column {bad + 1}: cannot read {cells[bad]!r} as a number") from None
    return np.array(values, dtype=np.float64)


def load_features(path: str | Path, label: str | None = None) -> np.ndarray:
    """A (samples, features) float matrix; ``label`` names a CSV column to drop (by name or index)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            X = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "X" not in npz.files:
                    raise ValueError(f"{path}: no array named X (arrays: {npz.files})")
                X = npz["X"]
        elif suffix == ".csv":
            X = _csv_matrix(path, label)
        else:
            raise ValueError(f"{path}: unsupported input type; give a .npy, .npz (array X) or .csv file")
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read ({exc})") from None
    X = X.reshape(len(X), -1) if X.ndim > 2 else X
    if X.ndim != 2 or X.dtype.kind not in "fiub" or len(X) == 0:
        raise ValueError(f"{path}: expected a non-empty numeric matrix of samples, got {X.dtype} of shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: features contain NaN or Inf")
    return X.astype(np.float32)
