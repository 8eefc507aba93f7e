"""Datasets from local files: .npz archives, .csv tables and MNIST IDX files (raw or gzipped).

Every problem with a file raises ValueError naming the file and the problem: a missing
file, a file of another kind (saying what it is), a wrong magic number, truncated data, a
non-numeric or non-UTF-8 CSV cell (with its line and column), NaN/Inf among the features,
X and y of different lengths, non-integer labels, a largest label beyond MAX_CLASSES
(TypeError for arrays of the wrong kind, such as text in an .npz). .npz archives are read
without unpickling (``files.read_npz``); an IDX header's declared size is checked against
the file before any data is read, so a header claiming 10**12 items allocates nothing.
Features come back as float32 (n_samples, n_features), labels as int64 >= 0, and
n_classes = largest label + 1. A file without its own test set is split with
``train_test_split`` (stratified, seeded, test_fraction).
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .. import checks
from ..files import existing_file, read_npz
from .csv_table import read_csv
from .dataset import FEATURE_DTYPE, Dataset, train_test_split

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, columns)
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)
MAX_CLASSES = 1 << 20  # a label beyond this is a wrong label column, not a class: it would size the output layer
_IDX_NAME = re.compile(r"idx\d")


def file_kind(name: str | Path) -> str | None:
    """'npz', 'csv' or 'idx' from a file name (IDX: an 'idx<digit>' part, optionally .gz); else None."""
    lower = Path(name).name.lower()
    if lower.endswith(".npz"):
        return "npz"
    if lower.endswith(".csv"):
        return "csv"
    if _IDX_NAME.search(lower.removesuffix(".gz")):
        return "idx"
    return None


def _assemble(path: Path, X, y, X_test, y_test, *, seed: int, test_fraction: float, source: str,
              locate_x: Callable[[int, int], str] | None = None,
              locate_y: Callable[[int], str] | None = None) -> Dataset:
    """Validate train (and optional test) arrays from one file; split when there is no test set."""
    test_fraction = checks.fraction("test_fraction", test_fraction)
    parts = [("", X, y)] + ([("_test", X_test, y_test)] if X_test is not None else [])
    checked = []
    for suffix, features, labels in parts:
        features = checks.features(f"{path}: X{suffix}", features, dtype=FEATURE_DTYPE, flatten=True,
                                   locate=locate_x)
        labels = checks.labels(f"{path}: y{suffix}", labels, locate=locate_y)
        if features.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{path}: X{suffix} has {features.shape[0]} samples but y{suffix} has {labels.shape[0]}"
            )
        if features.shape[0] == 0:
            raise ValueError(f"{path}: X{suffix} holds no samples")
        checked.append((features, labels))
    if len(checked) == 2:
        (X_tr, y_tr), (X_te, y_te) = checked
        if X_tr.shape[1] != X_te.shape[1]:
            raise ValueError(f"{path}: X has {X_tr.shape[1]} features per sample but X_test {X_te.shape[1]}")
        how = "its own test set"
    else:
        try:
            X_tr, X_te, y_tr, y_te = train_test_split(*checked[0], test_fraction, seed)
        except ValueError as e:  # too few samples to split
            raise ValueError(f"{path}: {e}") from None
        how = f"stratified split, test_fraction={test_fraction}, seed={seed}"
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    if n_classes > MAX_CLASSES:
        raise ValueError(f"{path}: the largest label is {n_classes - 1}, i.e. {n_classes} classes (at most "
                         f"{MAX_CLASSES}); labels must be class numbers 0..K-1 (is the label column right?)")
    return Dataset(X_tr, y_tr, X_te, y_te, n_classes, path.name, f"{source}; {how}")


# --------------------------------------------------------------------------- .npz


def load_npz(path: str | Path, *, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """Arrays X (n, ...) and y (n,); optional X_test and y_test (together). Other arrays are ignored.

    X is flattened to (n, prod(...)) and cast to float32, unscaled. test_fraction applies
    only without X_test.
    """
    arrays = read_npz(existing_file(path))
    path = Path(path)
    missing = [k for k in ("X", "y") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; found {sorted(arrays) or 'none'}")
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path}: X_test and y_test must come together; found only one of them")
    return _assemble(path, arrays["X"], arrays["y"], arrays.get("X_test"), arrays.get("y_test"),
                     seed=seed, test_fraction=test_fraction, source=f".npz file {path}")


# --------------------------------------------------------------------------- .csv


def load_csv(path: str | Path, *, seed: int = 0, test_fraction: float = 0.2, label: int | str = -1,
             header: bool | None = None, delimiter: str = ",") -> Dataset:
    """A table with one sample per row: numeric features and one integer label column.

    label: the label column by header name or by 0-based index (negative counts from the
    end; default the last column); a text of digits that names no column is an index.
    header: True/False, or None to detect it (the first row is a header when any of its
    cells is not a number). Blank lines are skipped; cells are stripped of spaces.
    Features are float32, unscaled.
    """
    table = read_csv(existing_file(path), delimiter=delimiter, header=header)
    if table.width < 2:
        raise ValueError(f"{table.path}: need at least 2 columns (features and a label), found {table.width}")
    label_col = table.index(label)
    feature_cols = [j for j in range(table.width) if j != label_col]
    lines = table.lines
    return _assemble(
        table.path, table.values(feature_cols), table.values([label_col])[:, 0], None, None,
        seed=seed, test_fraction=test_fraction,
        source=f"CSV file {table.path}, label {table.column(label_col)}",
        locate_x=lambda i, j: f"line {lines[i]}, {table.column(feature_cols[j])}",
        locate_y=lambda i: f"line {lines[i]}, {table.column(label_col)}",
    )


# --------------------------------------------------------------------------- MNIST IDX


_GZIP_MAX_RATIO = 1032  # deflate cannot expand a stream more than this: a bound on a gzip file's contents
_CHUNK = 1 << 20


def _read_body(f: BinaryIO, count: int) -> tuple[bytes, int]:
    """Up to ``count`` bytes of ``f`` read in chunks (no allocation beyond what the file holds), and how
    many bytes follow them."""
    parts, have = [], 0
    while have < count:
        part = f.read(min(_CHUNK, count - have))
        if not part:
            break
        parts.append(part)
        have += len(part)
    extra = 0
    while part := f.read(_CHUNK):
        extra += len(part)
    return b"".join(parts), extra


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file with the given magic number (raw, or gzipped if *.gz).

    The size the header declares is checked against what the file can hold before any data is read.
    """
    gz, ndim = path.name.endswith(".gz"), magic & 0xFF
    header_size, file_size = 4 + 4 * ndim, path.stat().st_size
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            header = f.read(header_size)
            if len(header) < header_size:
                raise ValueError(f"{path}: truncated: {len(header)} bytes, shorter than an IDX header")
            found = int.from_bytes(header[:4], "big")
            if found != magic:
                kind = {IDX_IMAGES_MAGIC: "images", IDX_LABELS_MAGIC: "labels"}
                raise ValueError(
                    f"{path}: wrong magic number 0x{found:08X}, expected 0x{magic:08X} "
                    f"(IDX {kind[magic]}: unsigned bytes, {ndim} dimension{'s' * (ndim > 1)})"
                )
            dims = tuple(int.from_bytes(header[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
            count = math.prod(dims)
            room = file_size * _GZIP_MAX_RATIO if gz else file_size - header_size
            if count > room:  # refused before reading: a header may claim 10**12 items
                found = f"more than a {file_size}-byte gzip file can hold" if gz else f"found {room}"
                raise ValueError(f"{path}: truncated: the header gives shape {dims}, i.e. {count} data bytes, {found}")
            data, extra = _read_body(f, count)
    except (OSError, EOFError, zlib.error) as e:
        if gz and not isinstance(e, FileNotFoundError):
            raise ValueError(f"{path}: not a valid gzip file, corrupt or truncated ({e})") from e
        raise ValueError(f"{path}: cannot read ({e})") from e
    if len(data) != count or extra:
        problem = "truncated" if len(data) < count else "unexpected trailing data"
        raise ValueError(
            f"{path}: {problem}: the header gives shape {dims}, i.e. {count} data bytes, found {len(data) + extra}"
        )
    return np.frombuffer(data, np.uint8, count).reshape(dims)


def _partner(path: Path, base: str) -> Path | None:
    """The file named base (same compression as path first, then the other) next to path."""
    names = [base + ".gz", base] if path.name.endswith(".gz") else [base, base + ".gz"]
    return next((path.parent / n for n in names if (path.parent / n).is_file()), None)


def _idx_pair(images: Path) -> tuple[np.ndarray, np.ndarray, Path]:
    base = images.name.removesuffix(".gz")
    labels_base = base.replace("images", "labels").replace("idx3", "idx1")
    labels = _partner(images, labels_base)
    if labels is None:
        raise ValueError(
            f"{images}: its labels file {labels_base}[.gz] is missing from {images.parent}"
        )
    pixels = _read_idx(images, IDX_IMAGES_MAGIC)
    y = _read_idx(labels, IDX_LABELS_MAGIC)
    if pixels.shape[0] != y.shape[0]:
        raise ValueError(f"{images}: {pixels.shape[0]} images but {labels.name} has {y.shape[0]} labels")
    return (pixels / np.float32(255)).astype(np.float32), y, labels


def load_idx(path: str | Path, *, seed: int = 0, test_fraction: float = 0.2) -> Dataset:
    """MNIST-format IDX files: give the images file (e.g. train-images-idx3-ubyte[.gz]).

    The labels file is found by the standard name pairing (images -> labels, idx3 -> idx1,
    e.g. train-labels-idx1-ubyte); for a train-* file the t10k-* pair next to it, when
    present, is the test set, otherwise the training file is split (test_fraction).
    Images (n, rows, cols) uint8 become (n, rows * cols) float32 pixel / 255 in [0, 1].
    """
    path = existing_file(path)
    base = path.name.removesuffix(".gz")
    if "labels" in base or "idx1" in base:
        raise ValueError(f"{path}: this is an IDX labels file; give the images file (…-images-idx3-ubyte)")
    if "images" not in base or "idx3" not in base:
        raise ValueError(
            f"{path}: IDX image files are named like train-images-idx3-ubyte[.gz] so that their "
            "labels file can be found"
        )
    X, y, labels = _idx_pair(path)
    X_test = y_test = None
    names = f"{path.name} + {labels.name}"
    test_images = _partner(path, "t10k" + base[len("train"):]) if base.startswith("train") else None
    if test_images is not None:
        X_test, y_test, test_labels = _idx_pair(test_images)
        names += f", {test_images.name} + {test_labels.name}"
    return _assemble(path, X, y, X_test, y_test, seed=seed, test_fraction=test_fraction,
                     source=f"MNIST IDX files {names} in {path.parent}, pixels/255")
