"""Offline datasets and host-side helpers: everything is NumPy, nothing is downloaded.

``load_dataset(name, seed=0, **options)`` returns a ``Dataset`` (float32 features, int64
labels, already split into train and test). Built in (``DATASETS``):

- ``"digits"``: the 8x8 handwritten digits shipped with scikit-learn, embedded here
  (1797 x 64, 10 classes), pixels / 16; options test_fraction.
- ``"mnist1d"``: MNIST-1D generated from the seed by the reference procedure (5000 x 40,
  10 classes, 4000/1000 split); options n_samples, shuffle_seq.
- ``"blobs"``: Gaussian clusters; options n_samples, n_features, n_classes, noise, test_fraction.
- ``"spirals"``: interleaved 2-D spirals; options n_samples, n_classes, noise, test_fraction.

Any other name is read as a file path: ``.npz`` (X, y, optional X_test, y_test), ``.csv``
(options label, header, delimiter, test_fraction) or MNIST IDX images
(``train-images-idx3-ubyte[.gz]``, labels and t10k files found by name). The training
loop moves the arrays to the backend.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import checks
from .dataset import (
    Dataset,
    describe,
    one_hot,
    standardize,
    train_test_split,
)
from .digits import load_digits
from .features import load_features
from .files import file_kind, load_csv, load_idx, load_npz
from .mnist1d import load_mnist1d
from .synthetic import load_blobs, load_spirals

_BUILTIN: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist1d": load_mnist1d,
    "blobs": load_blobs,
    "spirals": load_spirals,
}
_FILE_LOADERS: dict[str, Callable[..., Dataset]] = {"npz": load_npz, "csv": load_csv, "idx": load_idx}
DATASETS: tuple[str, ...] = tuple(_BUILTIN)


def _options(loader: Callable[..., Dataset]) -> list[str]:
    return [p for p in inspect.signature(loader).parameters if p not in ("path", "seed")]


def load_dataset(name: str | os.PathLike, *, seed: int = 0, **options: Any) -> Dataset:
    """A built-in dataset by name (see DATASETS) or a dataset file by path.

    seed drives every random choice (generation, split), so equal arguments give equal
    arrays. Unknown names and unsupported files raise ValueError; options a dataset does
    not take raise TypeError listing those it does.
    """
    seed = checks.seed("seed", seed)
    text = os.fspath(name)
    if text in _BUILTIN:
        loader, args, what = _BUILTIN[text], (), repr(text)
    else:
        kind = file_kind(text)
        if kind is None:
            if os.sep in text or "/" in text or Path(text).suffix:
                raise ValueError(
                    f"{text}: unsupported file type; give a .npz, .csv or MNIST IDX "
                    "(e.g. train-images-idx3-ubyte[.gz]) file"
                )
            raise ValueError(
                f"unknown dataset {text!r}; available: {', '.join(DATASETS)}, "
                "or the path of a .npz, .csv or MNIST IDX file"
            )
        loader, args, what = _FILE_LOADERS[kind], (text,), f"{kind} file"
    accepted = _options(loader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"load_dataset({what}) got unknown option(s) {', '.join(unknown)}; "
            f"it accepts {', '.join(accepted) or 'none'}"
        )
    return loader(*args, seed=seed, **options)


__all__ = [
    "DATASETS", "Dataset", "describe", "load_dataset", "load_features", "one_hot", "standardize", "train_test_split",
]
