"""Data frames at PCA's edges, as scikit-learn treats them: column names remembered at fit and checked
at transform (``feature_names_in_``), and outputs as pandas/polars frames on request (``set_output``)."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import numpy as np

OUTPUTS = ("default", "pandas", "polars")


def column_names(X: Any) -> np.ndarray | None:
    """The string column names of a data frame (object array), None for anything else."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    return names if len(names) and all(isinstance(n, str) for n in names) else None


def check_names(owner: str, fitted: np.ndarray | None, X: Any) -> None:
    """scikit-learn's rule: the same column names as at fit, or a warning when one side has none."""
    given = column_names(X)
    if fitted is None and given is not None:
        warnings.warn(f"X has feature names, but {owner} was fitted without feature names", UserWarning, stacklevel=3)
    elif fitted is not None and given is None:
        warnings.warn(f"X does not have valid feature names, but {owner} was fitted with feature names", UserWarning,
                      stacklevel=3)
    elif fitted is not None and (len(fitted) != len(given) or (fitted != given).any()):
        raise ValueError("The feature names should match those that were passed during fit.\n"
                         f"Fitted with: {list(fitted)}\nGiven: {list(given)}")


def output_kind(chosen: str | None) -> str:
    """The container asked for: ``set_output``'s choice, else scikit-learn's global one (if it is loaded)."""
    if chosen is not None and chosen != "default":
        return chosen
    if chosen is None and "sklearn" in sys.modules:
        return sys.modules["sklearn"].get_config().get("transform_output", "default")
    return "default"


def wrap(Y: np.ndarray, kind: str, names: list[str], X: Any) -> Any:
    """Y as the container ``kind`` with ``names`` as columns (pandas keeps X's index)."""
    if kind == "pandas":
        import pandas

        index = X.index if isinstance(X, pandas.DataFrame) else None
        return pandas.DataFrame(Y, columns=names, index=index)
    if kind == "polars":
        import polars

        return polars.DataFrame(Y, schema=names, orient="row")
    return Y
