"""CPU backend: NumPy arrays, OpenBLAS/MKL GEMMs, Numba ``@njit`` fused kernels, SciPy's LAPACK."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .base import Backend

HUGE_PAGE = 2 << 20  # bytes in an x86-64 transparent huge page
ALIGN_FROM = 2 * HUGE_PAGE  # allocations this large start on a huge-page boundary


def huge_page_aligned(allocate: Callable[..., np.ndarray], shape: Any, dtype: Any) -> np.ndarray:
    """``allocate(shape, dtype)`` (np.empty or np.zeros), starting on a huge-page boundary when it
    spans ALIGN_FROM bytes or more.

    NumPy asks Linux to back large allocations with 2 MiB pages (madvise), but only the whole
    pages inside an allocation can be. Aligned, all of it is, and memory-bound passes over it miss
    the TLB less: the MLP benchmark's Adam update (52 MB of traffic) ran 5-9% faster. The bytes
    before the boundary and after the end are never touched, so they cost address space only.
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else shape
    dtype = np.dtype(dtype)
    valid = isinstance(shape, (tuple, list)) and all(isinstance(d, (int, np.integer)) and d >= 0 for d in shape)
    nbytes = math.prod(shape) * dtype.itemsize if valid else 0
    if nbytes < ALIGN_FROM:
        return allocate(shape, dtype)  # small, or a bad shape that NumPy's own error explains
    raw = allocate(nbytes + HUGE_PAGE, np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


@functools.cache
def _scipy_linalg() -> Any:
    """``scipy.linalg`` when SciPy is importable, else None (imported on first use: it is slow to import).

    It offers what ``numpy.linalg`` lacks: LAPACK in the data's own precision (NumPy's float32 SVD
    and QR measured 2-5x slower), the top eigenpairs alone (syevr), and LU, the cheap normaliser
    of randomized power iterations (as in scikit-learn).
    """
    try:
        import scipy.linalg
    except ImportError:
        return None
    return scipy.linalg


class NumpyBackend(Backend):
    name = "numpy"
    kernel_impl = "cpu"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(np, seed)

    def empty(self, shape: Any, dtype: Any = None) -> np.ndarray:
        return huge_page_aligned(np.empty, shape, dtype or self.dtype)

    def zeros(self, shape: Any, dtype: Any = None) -> np.ndarray:
        return huge_page_aligned(np.zeros, shape, dtype or self.dtype)

    # ----------------------------------------------------------------- linear algebra (SciPy when importable)

    def gram(self, a: np.ndarray) -> np.ndarray:
        """``a^T a`` (d, d) by SciPy's SYRK, which fills the upper triangle only.

        SciPy's rather than NumPy's GEMM: NumPy and SciPy wheels each bundle their own OpenBLAS,
        and the threads of one pool keep spinning for a while after a call, stalling the other's
        next call (the eigensolver right after this GEMM ran 1-5x slower, at random). One pool
        avoids that.
        """
        sl = _scipy_linalg()
        if sl is None:
            return super().gram(a)
        syrk = sl.get_blas_funcs("syrk", (a,))
        return syrk(1.0, a.T, trans=0) if a.flags.c_contiguous else syrk(1.0, a, trans=1)

    def top_eigh(self, c: np.ndarray, k: int | None, dtype: Any) -> tuple[np.ndarray, np.ndarray]:
        """With ``0 < k < d``: the top ``k`` pairs alone, by SciPy's MRRR (syevr), several times
        cheaper than a full eigendecomposition at k << d.

        For float32 data its tridiagonal reduction (the bulk of the cost) runs in float32, then one
        Rayleigh-Ritz step in float64 on the subspace found restores float64-accurate eigenvalues
        (their error is second order in the subspace's); the vectors keep float32 accuracy, all
        that float32 components hold.
        """
        d, sl = c.shape[0], _scipy_linalg()
        if sl is None or k is None or not 0 < k < d:
            return super().top_eigh(c, k, dtype)
        top = (d - k, d - 1)
        if dtype != np.float32:
            w, v = sl.eigh(c, subset_by_index=top, driver="evr", overwrite_a=True, check_finite=False)
        else:
            _, v = sl.eigh(c.astype(np.float32), subset_by_index=top, driver="evr", overwrite_a=True,
                           check_finite=False)
            q = sl.qr(v.astype(np.float64), mode="economic", check_finite=False)[0]
            symm, gemm = sl.get_blas_funcs(("symm", "gemm"), (q,))  # SciPy's BLAS: see gram
            w, y = sl.eigh(gemm(1.0, q, symm(1.0, c, q), trans_a=1), check_finite=False)
            v = gemm(1.0, q, y)
        return w[::-1], v[:, ::-1]

    def svd(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """SciPy's gesdd in a's own precision (as in scikit-learn)."""
        sl = _scipy_linalg()
        if sl is None:
            return super().svd(a)
        return sl.svd(a, full_matrices=False, check_finite=False)

    def orthonormal_basis(self, a: np.ndarray) -> np.ndarray:
        """SciPy's economic QR in a's own precision."""
        sl = _scipy_linalg()
        if sl is None:
            return super().orthonormal_basis(a)
        return sl.qr(a, mode="economic", check_finite=False)[0]

    def well_conditioned_basis(self, a: np.ndarray) -> np.ndarray:
        """The P L of an LU of ``a``: much cheaper than a QR, and well-conditioned enough for power
        iterations (scikit-learn normalises them the same way)."""
        sl = _scipy_linalg()
        if sl is None:
            return super().well_conditioned_basis(a)
        return sl.lu(a, permute_l=True, check_finite=False)[0]
