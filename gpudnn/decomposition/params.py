"""PCA's parameters: their checks, scikit-learn's choice of solver, and the number of components kept."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .. import checks
from .mle import infer_dimension

SOLVERS = ("auto", "full", "covariance_eigh", "randomized")
PARAMS = ("n_components", "copy", "whiten", "svd_solver", "iterated_power", "n_oversamples", "random_state")


def check_params(pca: Any) -> None:
    """Raise a clear error for any of PCA's constructor parameters (see PARAMS) that cannot work."""
    nc = pca.n_components
    if nc is not None and nc != "mle":
        if checks.is_integer(nc):
            checks.integer("n_components", nc, low=0)
        elif isinstance(nc, numbers.Real) and not isinstance(nc, (bool, np.bool_)):
            if not 0.0 < nc < 1.0:
                raise ValueError(f"a float n_components is a fraction of variance in (0, 1), got {nc}")
        else:
            raise TypeError(f"n_components must be an int, a float in (0, 1), 'mle' or None; got {nc!r}")
    checks.flag("copy", pca.copy)
    checks.flag("whiten", pca.whiten)
    checks.choice("svd_solver", pca.svd_solver, SOLVERS)
    ip = pca.iterated_power
    if ip != "auto" and not (checks.is_integer(ip) and ip >= 0):
        raise ValueError(f"iterated_power must be 'auto' or an int >= 0, got {ip!r}")
    checks.integer("n_oversamples", pca.n_oversamples, low=1)
    rs = pca.random_state
    if not (rs is None or isinstance(rs, (np.random.RandomState, np.random.Generator))
            or (checks.is_integer(rs) and 0 <= rs < 2**32)):
        raise TypeError(f"random_state must be None, an int in [0, 2**32), a RandomState or a Generator; got {rs!r}")


def choose_solver(svd_solver: str, n_components: Any, n: int, d: int) -> str:
    """The solver for (n, d) data: ``svd_solver`` itself, or scikit-learn's rules for "auto"."""
    if svd_solver != "auto":
        return svd_solver
    nc = min(n, d) if n_components is None else n_components
    if d <= 1000 and n >= 10 * d:
        return "covariance_eigh"
    if max(n, d) <= 500 or nc == "mle":
        return "full"
    if checks.is_integer(nc) and 1 <= nc < 0.8 * min(n, d):
        return "randomized"
    return "full"


def check_k(n_components: Any, n: int, d: int, solver: str) -> None:
    """Before any heavy work: n_components must fit (n, d) data and the solver."""
    nc, m = n_components, min(n, d)
    if nc == "mle":
        if solver == "randomized":
            raise ValueError("n_components='mle' needs svd_solver 'full' or 'covariance_eigh'")
        if n < d:
            raise ValueError(f"n_components='mle' needs n_samples >= n_features; got {n} < {d}")
    elif checks.is_integer(nc):
        low = 1 if solver == "randomized" else 0
        if not low <= nc <= m:
            raise ValueError(f"n_components={nc} must be between {low} and min(n_samples, n_features)={m} "
                             f"with svd_solver={solver!r}")
    elif nc is not None and solver == "randomized":
        raise ValueError(f"n_components={nc!r} (a fraction of variance) needs svd_solver 'full' or "
                         "'covariance_eigh'")


def resolve_k(n_components: Any, spectrum: np.ndarray, n: int, d: int) -> int:
    """The number of components kept, given the descending explained variances of (n, d) data."""
    if n_components is None:
        return min(n, d)
    if n_components == "mle":
        return infer_dimension(spectrum, n)
    if checks.is_integer(n_components):
        return int(n_components)
    total = spectrum.sum()
    if not total > 0:  # no variance to explain: one (zero) component
        return 1
    ratio = np.cumsum(spectrum) / total
    return min(int(np.searchsorted(ratio, n_components, side="right")) + 1, min(n, d))
