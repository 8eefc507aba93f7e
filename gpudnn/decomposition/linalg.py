"""PCA's linear algebra above the Backend: sign convention, randomized SVD, and the covariance,
precision and likelihood of the probabilistic PCA model.

Written once for every backend: the routines underneath (GEMMs, SVD, QR, LU) are Backend methods.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend.base import Backend


def flip_signs(xp: Any, vt: Any, u: Any = None) -> None:
    """In place: make the largest-|.| entry of each row of ``vt`` (k, d) positive, flipping the columns
    of ``u`` (n, k) alike (scikit-learn's ``svd_flip(u_based_decision=False)``)."""
    rows = xp.arange(vt.shape[0])
    signs = xp.sign(vt[rows, xp.argmax(xp.abs(vt), axis=1)])
    vt *= signs[:, None]
    if u is not None:
        u *= signs[None, :]


def _add_to_diagonal(a: Any, v: Any) -> None:
    """In place: ``a[i, i] += v[i]`` (or ``+= v``) for a C-contiguous square ``a`` (NumPy or CuPy)."""
    a.reshape(-1)[:: a.shape[0] + 1] += v


def gaussian(random_state: Any, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal float64 draws of ``shape`` as scikit-learn makes them
    (``check_random_state(random_state).normal``): None draws from NumPy's global RandomState, an int
    seeds a new RandomState, a RandomState or Generator is used as it is."""
    if random_state is None:
        rs = np.random.mtrand._rand
    elif isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        rs = random_state
    else:
        rs = np.random.RandomState(int(random_state))
    return rs.normal(size=shape)


def randomized_svd(b: Backend, Xc: Any, k: int, n_iter: int | str, n_oversamples: int,
                   random_state: Any) -> tuple[Any, Any, Any]:
    """Top-``k`` SVD of ``Xc`` (n, d) by Halko et al.'s randomized subspace iteration, as scikit-learn's
    ``randomized_svd``: U (n, k), S (k,), Vt (k, d) C-contiguous, in Xc's dtype.

    The Gaussian test matrix of k + n_oversamples columns is drawn from ``random_state`` exactly as
    scikit-learn draws it, so both find the same subspace; ``n_iter`` power iterations ("auto": 7
    when k < 0.1 min(n, d), else 4), each renormalised by ``Backend.well_conditioned_basis``.
    """
    n, d = Xc.shape
    if n_iter == "auto":
        n_iter = 7 if k < 0.1 * min(n, d) else 4
    transpose = n < d  # iterate on the smaller Gram side, as scikit-learn does
    Q = b.asarray(gaussian(random_state, (n if transpose else d, k + n_oversamples)).astype(Xc.dtype))

    def apply(Z: Any, adjoint: bool) -> Any:  # M Z or M^T Z, with M = Xc or Xc^T
        return b.matmul(Xc, Z, transpose_a=transpose != adjoint)

    for _ in range(n_iter):
        Q = b.well_conditioned_basis(apply(Q, False))
        Q = b.well_conditioned_basis(apply(Q, True))
    Q = b.orthonormal_basis(apply(Q, False))
    Uhat, S, Vt = b.svd(apply(Q, True).T)  # of Q^T M
    U = b.matmul(Q, Uhat)
    if transpose:
        U, Vt = Vt.T, U.T
    return U[:, :k], S[:k], b.xp.ascontiguousarray(Vt[:k])


def ppca_covariance(b: Backend, W: Any, diff: Any, noise: Any) -> Any:
    """``W^T diag(diff) W + noise I`` (d, d) for W (k, d), diff (k,) and the scalar noise variance."""
    cov = b.matmul(W.T * diff, W)
    _add_to_diagonal(cov, noise)
    return cov


def ppca_precision(b: Backend, W: Any, diff: Any, noise: Any, dtype: Any) -> Any:
    """Inverse (d, d) of ``ppca_covariance(b, W, diff, noise)``, by the matrix inversion lemma when
    noise > 0 (a k x k inverse instead of a d x d one); ``dtype``: that of the identity when k = 0."""
    xp, (k, d) = b.xp, W.shape
    if k == 0:
        return xp.eye(d, dtype=dtype) / noise
    if noise == 0.0:
        return xp.linalg.inv(ppca_covariance(b, W, diff, noise))
    inner = b.matmul(W, W, transpose_b=True) / noise
    _add_to_diagonal(inner, 1.0 / diff)
    precision = b.matmul(W.T, b.matmul(xp.linalg.inv(inner), W)) / -(noise ** 2)
    _add_to_diagonal(precision, 1.0 / noise)
    return precision


def gaussian_log_likelihood(b: Backend, Xr: Any, precision: Any) -> Any:
    """Log-density (n,) of each row of the centred ``Xr`` (n, d) under N(0, precision^-1)."""
    xp = b.xp
    sign, logdet = xp.linalg.slogdet(precision)
    logdet = float(logdet) if float(sign) > 0 else -math.inf
    ll = -0.5 * xp.sum(Xr * b.matmul(Xr, precision.astype(Xr.dtype, copy=False)), axis=1)
    ll -= 0.5 * (Xr.shape[1] * math.log(2.0 * math.pi) - logdet)
    return ll
