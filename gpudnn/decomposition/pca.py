"""Principal component analysis on the current backend, with scikit-learn's ``PCA`` interface.

``PCA`` follows ``sklearn.decomposition.PCA`` (1.9) in parameters, attributes, solver choice
("auto"), sign convention and results, and runs on NumPy or CuPy arrays through the Backend
(``Backend.matmul``, ``xp.linalg``; on the CPU SciPy's LAPACK/BLAS where NumPy lacks a routine
or its speed, when SciPy is importable). One deliberate difference: data without variance give
explained_variance_ratio_ = 0, where scikit-learn divides 0 by 0.

Where the arrays live:
- fitting happens on ``get_backend()`` at the time of ``fit``; the model stays on that backend.
- ``components_``, ``explained_variance_``, ``explained_variance_ratio_``, ``singular_values_``
  and ``mean_`` are arrays of that backend (NumPy on the CPU, CuPy on a GPU), in the data dtype
  (float32 stays float32; integers and bools become float64). ``noise_variance_`` is a host
  scalar of that dtype; ``n_components_``, ``n_samples_`` and ``n_features_in_`` are ints.
- ``transform``, ``fit_transform`` and ``inverse_transform`` return the kind of array they were
  given: a backend array in, a backend array out; host data (NumPy, lists) in, NumPy out (it is
  moved to the device and back when the backend is CuPy). A CuPy array given to a model on the
  NumPy backend is refused (transfer it explicitly).

Solvers (``svd_solver``):
- "covariance_eigh": ``mean_`` = X.mean(0); one product ``(X - mean)^T (X - mean)`` in the data
  dtype (a SYRK: SciPy's on the CPU, ``Backend.matmul`` elsewhere), then the eigendecomposition
  of the d x d covariance, of the top ``n_components`` eigenpairs only when their number is fixed
  (SciPy's MRRR on the CPU; float32 data: float32 solver plus a float64 Rayleigh-Ritz step, see
  ``_top_eigh``; ``xp.linalg.eigh`` in float64 elsewhere). Centring first costs one pass but
  avoids the cancellation of scikit-learn's ``X^T X - n mean mean^T`` in float32.
- "full": thin SVD of the centred data (SciPy's gesdd in the data dtype on the CPU, as in
  scikit-learn; ``xp.linalg.svd`` elsewhere).
- "randomized": Halko et al.'s subspace iteration, normalised by LU on the CPU (as in
  scikit-learn) and by QR elsewhere; the Gaussian test matrix is drawn exactly as scikit-learn
  draws it from ``random_state`` (a ``RandomState`` for None/int), so both find the same subspace.
- "auto": covariance_eigh when ``n_features <= 1000`` and ``n_samples >= 10 * n_features``;
  else full when ``max(shape) <= 500`` or n_components == "mle"; else randomized when
  ``1 <= n_components < 0.8 * min(shape)``; else full. "arpack" is not offered.
All solvers flip signs so that the largest-magnitude entry of each component is positive
(scikit-learn's ``svd_flip(u_based_decision=False)``, which it uses for every PCA solver).
Bad parameters or data raise TypeError/ValueError naming the argument before any heavy work
(non-finite data before X is centred in place); methods of an unfitted model raise
``NotFittedError`` (a ValueError and AttributeError, as scikit-learn's).

Beyond scikit-learn: ``partial_fit(X)`` and ``fit_batched(batches)`` accumulate, in float64,
the count, mean and centred scatter matrix batch by batch (Chan et al.'s pairwise update:
``M2 = M2_a + M2_b + (n_a n_b / n) (mean_b - mean_a)(mean_b - mean_a)^T``) and finish with the
covariance eigendecomposition. Unlike ``IncrementalPCA`` this is exact: after any sequence of
batches the model equals ``PCA(svd_solver="covariance_eigh").fit(all rows seen)`` up to
rounding, so data larger than device memory can be streamed through ``fit_batched``. Memory is
O(n_features^2) besides one batch.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..backend import get_backend
from ..backend.base import Backend

_SOLVERS = ("auto", "full", "covariance_eigh", "randomized")
_PARAMS = ("n_components", "copy", "whiten", "svd_solver", "iterated_power", "n_oversamples", "random_state")


class NotFittedError(ValueError, AttributeError):
    """A PCA method that needs a fitted model was called before fit (as in scikit-learn)."""


# ----------------------------------------------------------------------------- helpers


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _as_data(b: Backend, X: Any, name: str) -> tuple[Any, bool, bool]:
    """``(array on b, given_as_host_data, freshly_allocated)`` for a 2-D real input.

    float32/float64 keep their dtype; integers, bools and float16 become float64.
    """
    xp = b.xp
    if b.is_array(X):
        a, host = X, False
    elif hasattr(X, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a device array ({type(X).__module__}.{type(X).__name__}) but this PCA runs "
                        f"on the {b.name!r} backend; transfer it explicitly (e.g. {name}.get())")
    else:
        try:
            a = np.asarray(X)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a 2-D array-like of numbers ({exc})") from exc
        host = True
    fresh = False
    if a.dtype not in (np.float32, np.float64):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers; got dtype {a.dtype}")
        a, fresh = a.astype(np.float64), True
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features); got shape {tuple(a.shape)}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has 0 features; PCA needs at least 1")
    if host and xp is not np:
        a, fresh = b.asarray(a), True
    return a, host, fresh


def _raise_not_finite(xp: Any, X: Any, name: str) -> None:
    """Called once a reduction over ``X`` came out non-finite: say whether X itself is to blame."""
    if not bool(xp.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or infinity")
    raise ValueError(f"{name} overflows {X.dtype} in PCA's sums; rescale it or pass float64 data")


def _host_linalg(xp: Any) -> Any:
    """``scipy.linalg`` when the arrays are NumPy and SciPy is importable, else None.

    It offers what ``numpy.linalg`` lacks and PCA uses on the CPU: LAPACK in the data's own
    precision (NumPy's float32 SVD and QR measured 2-5x slower), the top eigenpairs alone (syevr),
    and LU, the cheap normaliser of randomized power iterations (as in scikit-learn).
    """
    if xp is not np:
        return None
    try:
        import scipy.linalg
    except ImportError:
        return None
    return scipy.linalg


def _gram(b: Backend, Xc: Any) -> Any:
    """``Xc^T Xc`` (d, d) in Xc's dtype; only its upper triangle is meant to be read.

    On the CPU with SciPy this is SciPy's SYRK (which fills the upper triangle only) rather than
    ``Backend.matmul``: NumPy and SciPy wheels each bundle their own OpenBLAS, and the threads of
    one pool keep spinning for a while after a call, stalling the other's next call (the
    eigensolver right after this GEMM ran 1-5x slower, at random). One pool avoids that.
    """
    sl = _host_linalg(b.xp)
    if sl is None:
        return b.matmul(Xc, Xc, transpose_a=True)
    syrk = sl.get_blas_funcs("syrk", (Xc,))
    return syrk(1.0, Xc.T, trans=0) if Xc.flags.c_contiguous else syrk(1.0, Xc, trans=1)


def _top_eigh(xp: Any, c: Any, k: int | None, dtype: Any) -> tuple[Any, Any]:
    """Eigenvalues (descending) and eigenvectors (columns) of the symmetric float64 ``c`` (may be destroyed).

    With ``k`` given only the top ``k`` pairs are returned, by SciPy's MRRR (syevr) when it is
    there: several times cheaper than a full eigendecomposition at k << d. For float32 data its
    tridiagonal reduction (the bulk of the cost) runs in float32, then one Rayleigh-Ritz step in
    float64 on the subspace found restores float64-accurate eigenvalues (their error is second
    order in the subspace's); the vectors keep float32 accuracy, all that float32 components hold.
    """
    d, sl = c.shape[0], _host_linalg(xp)
    if sl is None or k is None or not 0 < k < d:
        w, v = xp.linalg.eigh(c)
    elif dtype != np.float32:
        w, v = sl.eigh(c, subset_by_index=(d - k, d - 1), driver="evr", overwrite_a=True, check_finite=False)
    else:
        _, v = sl.eigh(c.astype(np.float32), subset_by_index=(d - k, d - 1), driver="evr", overwrite_a=True,
                       check_finite=False)
        q = sl.qr(v.astype(np.float64), mode="economic", check_finite=False)[0]
        symm, gemm = sl.get_blas_funcs(("symm", "gemm"), (q,))  # SciPy's BLAS: see _gram
        w, y = sl.eigh(gemm(1.0, q, symm(1.0, c, q), trans_a=1), check_finite=False)
        v = gemm(1.0, q, y)
    return w[::-1], v[:, ::-1]


def _randomized_linalg(xp: Any) -> tuple[Callable, Callable, Callable]:
    """(orthonormal basis of Z's columns, any well-conditioned basis of them, thin SVD).

    The power iterations only need a well-conditioned basis: with SciPy that is the P L of an
    LU, much cheaper than a QR (scikit-learn does the same); elsewhere a QR.
    """
    sl = _host_linalg(xp)
    if sl is None:
        def orthonormal(Z: Any) -> Any:
            return xp.linalg.qr(Z)[0]
        return orthonormal, orthonormal, xp.linalg.svd

    def orthonormal(Z: Any) -> Any:
        return sl.qr(Z, mode="economic", check_finite=False)[0]

    def normalised(Z: Any) -> Any:
        return sl.lu(Z, permute_l=True, check_finite=False)[0]

    return orthonormal, normalised, functools.partial(sl.svd, check_finite=False)


def _flip_signs(xp: Any, vt: Any, u: Any = None) -> None:
    """In place: make the largest-|.| entry of each row of ``vt`` positive, flipping ``u``'s columns alike."""
    rows = xp.arange(vt.shape[0])
    signs = xp.sign(vt[rows, xp.argmax(xp.abs(vt), axis=1)])
    vt *= signs[:, None]
    if u is not None:
        u *= signs[None, :]


def _add_to_diagonal(a: Any, v: Any) -> None:
    """In place: ``a[i, i] += v[i]`` (or ``+= v``) for a C-contiguous square ``a`` (NumPy or CuPy)."""
    a.reshape(-1)[:: a.shape[0] + 1] += v


def _assess_dimension(spectrum: np.ndarray, rank: int, n_samples: int) -> float:
    """Minka's log-likelihood of a rank-``rank`` model of a ``spectrum`` (vectorised sklearn port)."""
    d = spectrum.shape[0]
    if spectrum[rank - 1] < 1e-15:
        return -math.inf
    i = np.arange(1, rank + 1)
    pu = -rank * math.log(2.0) + sum(math.lgamma((d - j + 1) / 2.0) for j in i) \
        - math.log(math.pi) * float(np.sum(d - i + 1)) / 2.0
    pl = -float(np.sum(np.log(spectrum[:rank]))) * n_samples / 2.0
    v = max(1e-15, float(np.sum(spectrum[rank:])) / (d - rank))
    pv = -math.log(v) * n_samples * (d - rank) / 2.0
    m = d * rank - rank * (rank + 1.0) / 2.0
    pp = math.log(2.0 * math.pi) * (m + rank) / 2.0
    inv = 1.0 / np.concatenate([spectrum[:rank], np.full(d - rank, v)])
    with np.errstate(divide="ignore"):
        terms = np.log((spectrum[:rank, None] - spectrum[None, :]) * (inv[None, :] - inv[:rank, None]))
    upper = np.arange(d)[None, :] > np.arange(rank)[:, None]
    pa = float(np.sum(terms[upper])) + upper.sum() * math.log(n_samples)
    return pu + pl + pv + pp - pa / 2.0 - rank * math.log(n_samples) / 2.0


def _infer_dimension(spectrum: np.ndarray, n_samples: int) -> int:
    """The rank in [1, d - 1] that maximises Minka's likelihood (n_components="mle")."""
    ll = [-math.inf] + [_assess_dimension(spectrum, r, n_samples) for r in range(1, spectrum.shape[0])]
    return int(np.argmax(ll))


def _normal(random_state: Any, shape: tuple[int, int]) -> np.ndarray:
    """Standard normal draws as scikit-learn makes them (``check_random_state(random_state).normal``)."""
    if random_state is None:
        rs = np.random.mtrand._rand
    elif _is_int(random_state):
        rs = np.random.RandomState(int(random_state))
    else:
        rs = random_state
    return rs.normal(size=shape)


# ----------------------------------------------------------------------------- the estimator


class PCA:
    """Principal component analysis; see the module docstring for semantics and array placement.

    Parameters are those of ``sklearn.decomposition.PCA`` (without ``tol`` and
    ``power_iteration_normalizer``, which concern solvers offered differently here):
    n_components (int >= 0, float in (0, 1) = fraction of variance to keep, "mle", or None =
    min(n_samples, n_features)), copy (False lets fit centre X in place), whiten,
    svd_solver ("auto", "full", "covariance_eigh", "randomized"), iterated_power ("auto" or
    int >= 0), n_oversamples (int >= 1), random_state (None, int, RandomState or Generator).
    """

    def __init__(self, n_components: int | float | str | None = None, *, copy: bool = True,
                 whiten: bool = False, svd_solver: str = "auto", iterated_power: int | str = "auto",
                 n_oversamples: int = 10, random_state: Any = None) -> None:
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.random_state = random_state

    # ------------------------------------------------------------- estimator protocol

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (scikit-learn's estimator protocol, so ``clone`` works)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params: Any) -> PCA:
        for name, value in params.items():
            if name not in _PARAMS:
                raise ValueError(f"invalid parameter {name!r} for PCA; valid ones: {', '.join(_PARAMS)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = PCA().get_params()
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"PCA({args})"

    def _check_params(self) -> None:
        nc = self.n_components
        if nc is not None and nc != "mle":
            if _is_int(nc):
                if nc < 0:
                    raise ValueError(f"n_components must be >= 0, got {nc}")
            elif isinstance(nc, numbers.Real) and not isinstance(nc, (bool, np.bool_)):
                if not 0.0 < nc < 1.0:
                    raise ValueError(f"a float n_components is a fraction of variance in (0, 1), got {nc}")
            else:
                raise TypeError(f"n_components must be an int, a float in (0, 1), 'mle' or None; got {nc!r}")
        for name in ("copy", "whiten"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.svd_solver not in _SOLVERS:
            raise ValueError(f"svd_solver must be one of {', '.join(map(repr, _SOLVERS))}; "
                             f"got {self.svd_solver!r}")
        if self.iterated_power != "auto" and not (_is_int(self.iterated_power) and self.iterated_power >= 0):
            raise ValueError(f"iterated_power must be 'auto' or an int >= 0, got {self.iterated_power!r}")
        if not (_is_int(self.n_oversamples) and self.n_oversamples >= 1):
            raise ValueError(f"n_oversamples must be an int >= 1, got {self.n_oversamples!r}")
        rs = self.random_state
        if not (rs is None or isinstance(rs, (np.random.RandomState, np.random.Generator))
                or (_is_int(rs) and 0 <= rs < 2**32)):
            raise TypeError(f"random_state must be None, an int in [0, 2**32), a RandomState or a Generator; "
                            f"got {rs!r}")

    def _choose_solver(self, n: int, d: int) -> str:
        if self.svd_solver != "auto":
            return self.svd_solver
        nc = min(n, d) if self.n_components is None else self.n_components
        if d <= 1000 and n >= 10 * d:
            return "covariance_eigh"
        if max(n, d) <= 500 or nc == "mle":
            return "full"
        if _is_int(nc) and 1 <= nc < 0.8 * min(n, d):
            return "randomized"
        return "full"

    def _check_k(self, n: int, d: int, solver: str) -> None:
        """Before any heavy work: n_components must fit the data and the solver."""
        nc, m = self.n_components, min(n, d)
        if nc == "mle":
            if solver == "randomized":
                raise ValueError("n_components='mle' needs svd_solver 'full' or 'covariance_eigh'")
            if n < d:
                raise ValueError(f"n_components='mle' needs n_samples >= n_features; got {n} < {d}")
        elif _is_int(nc):
            low = 1 if solver == "randomized" else 0
            if not low <= nc <= m:
                raise ValueError(f"n_components={nc} must be between {low} and min(n_samples, n_features)={m} "
                                 f"with svd_solver={solver!r}")
        elif nc is not None and solver == "randomized":
            raise ValueError(f"n_components={nc!r} (a fraction of variance) needs svd_solver 'full' or "
                             "'covariance_eigh'")

    def _resolve_k(self, spectrum: np.ndarray, n: int, d: int) -> int:
        """The number of components kept, given the descending explained variances."""
        nc = self.n_components
        if nc is None:
            return min(n, d)
        if nc == "mle":
            return _infer_dimension(spectrum, n)
        if _is_int(nc):
            return int(nc)
        total = spectrum.sum()
        if not total > 0:  # no variance to explain: one (zero) component
            return 1
        ratio = np.cumsum(spectrum) / total
        return min(int(np.searchsorted(ratio, nc, side="right")) + 1, min(n, d))

    # ------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Fit on X (n_samples, n_features); host data goes to the current backend. Returns self."""
        self._fit(X, project=False)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit on X and return its projection (n_samples, n_components_), as the kind of array given."""
        return self._out(*self._fit(X, project=True))

    def _fit(self, X: Any, project: bool) -> tuple[Any, bool]:
        """Fit; return (the projection of X when ``project`` else None, whether X was host data)."""
        self._check_params()
        b = get_backend()
        xp = b.xp
        X, host, fresh = _as_data(b, X, "X")
        n, d = X.shape
        if n < 2:
            raise ValueError(f"X has {n} sample(s); PCA needs at least 2")
        solver = self._choose_solver(n, d)
        self._check_k(n, d, solver)
        self._start(b, d, X.dtype)
        self._fit_svd_solver = solver
        inplace = fresh or not self.copy
        if solver == "covariance_eigh":
            Xc = self._accumulate(X, inplace, "X")
            self._finish_covariance()
            return (self._project(Xc, centered=True) if project else None), host

        mean = xp.mean(X, axis=0)
        if not bool(xp.isfinite(mean).all()):
            _raise_not_finite(xp, X, "X")
        Xc = xp.subtract(X, mean, out=X if inplace else None)
        if solver == "full":
            sl = _host_linalg(xp)
            U, S, Vt = (sl.svd(Xc, full_matrices=False, check_finite=False) if sl is not None
                        else xp.linalg.svd(Xc, full_matrices=False))
            spectrum = b.to_numpy(S).astype(np.float64) ** 2 / (n - 1)
            k = self._resolve_k(spectrum, n, d)
            total = float(spectrum.sum())
        else:
            k = int(self.n_components)
            U, S, Vt = self._randomized_svd(b, Xc, k)
            spectrum = b.to_numpy(S).astype(np.float64) ** 2 / (n - 1)
            total = float(xp.sum(xp.square(Xc), dtype=xp.float64)) / (n - 1)
        U, Vt = U[:, :k], Vt[:k]
        _flip_signs(xp, Vt, U)
        self._set_model(mean, Vt, spectrum[:k], total, spectrum_size=min(n, d), n=n)
        if not project:
            return None, host
        # X_new = Xc V^T = U S (whitened: divided by sqrt(ev) = S / sqrt(n - 1))
        U = xp.ascontiguousarray(U)
        U *= xp.asarray(math.sqrt(n - 1) if self.whiten else S[:k], dtype=U.dtype)
        return U, host

    def _randomized_svd(self, b: Backend, Xc: Any, k: int) -> tuple[Any, Any, Any]:
        """Truncated SVD of the centred (n, d) data by randomized subspace iteration (Halko et al.)."""
        xp = b.xp
        n, d = Xc.shape
        n_iter = self.iterated_power
        if n_iter == "auto":
            n_iter = 7 if k < 0.1 * min(n, d) else 4
        transpose = n < d  # iterate on the smaller Gram side, as scikit-learn does
        cols = n if transpose else d
        Q = b.asarray(_normal(self.random_state, (cols, k + self.n_oversamples)).astype(Xc.dtype))

        def apply(Z: Any, adjoint: bool) -> Any:
            return b.matmul(Xc, Z, transpose_a=transpose != adjoint)

        orthonormal, normalised, svd = _randomized_linalg(xp)
        for _ in range(n_iter):
            Q = normalised(apply(Q, False))
            Q = normalised(apply(Q, True))
        Q = orthonormal(apply(Q, False))
        B = apply(Q, True).T  # Q^T M, with M = Xc or Xc^T
        Uhat, S, Vt = svd(B, full_matrices=False)
        U = b.matmul(Q, Uhat)
        if transpose:
            U, Vt = Vt.T, U.T
        return U[:, :k], S[:k], xp.ascontiguousarray(Vt[:k])

    def partial_fit(self, X: Any, y: Any = None) -> PCA:
        """Add the rows of X to the model: afterwards it equals a covariance_eigh fit of all rows seen.

        The first call (after a covariance_eigh ``fit``: that fit) fixes the backend, dtype and
        n_features; later batches are converted to that dtype.
        Costs one GEMM for the batch and one d x d eigendecomposition per call; to stream many
        batches, ``fit_batched`` does the eigendecomposition once.
        """
        self._check_params()
        self._check_streaming()
        if getattr(self, "_m2", None) is None:
            if hasattr(self, "components_"):
                raise ValueError(f"this PCA was fitted with svd_solver={self._fit_svd_solver!r}, which keeps no "
                                 "covariance to update; partial_fit continues only covariance_eigh fits")
            b = get_backend()
            X, _, fresh = _as_data(b, X, "X")
            self._start(b, X.shape[1], X.dtype)
        else:
            X, fresh = self._stream_batch(X, "X")
        n = self._n_seen + X.shape[0]
        if n < 2:
            raise ValueError(f"partial_fit has seen {n} sample(s) with this batch; PCA needs at least 2")
        self._check_k(n, self.n_features_in_, "covariance_eigh")
        self._accumulate(X, fresh or not self.copy, "X")
        self._fit_svd_solver = "covariance_eigh"
        self._finish_covariance()
        return self

    def fit_batched(self, batches: Iterable[Any]) -> PCA:
        """Fit on the rows of all ``batches`` (2-D arrays, host or backend) without holding them together.

        Host batches are moved to the backend one at a time, so the data may exceed device
        memory. The result equals a covariance_eigh fit of the stacked batches. Returns self.
        """
        self._check_params()
        self._check_streaming()
        b = get_backend()
        started = False
        for i, batch in enumerate(batches):
            name = f"batches[{i}]"
            if started:
                X, fresh = self._stream_batch(batch, name)
            else:
                X, _, fresh = _as_data(b, batch, name)
                self._start(b, X.shape[1], X.dtype)
                started = True
            self._accumulate(X, fresh or not self.copy, name)
        n = self._n_seen if started else 0
        if n < 2:
            raise ValueError(f"fit_batched needs at least 2 samples in total; got {n}")
        self._check_k(self._n_seen, self.n_features_in_, "covariance_eigh")
        self._fit_svd_solver = "covariance_eigh"
        self._finish_covariance()
        return self

    def _check_streaming(self) -> None:
        if self.svd_solver not in ("auto", "covariance_eigh"):
            raise ValueError("partial_fit and fit_batched compute the covariance eigendecomposition; "
                             f"svd_solver must be 'auto' or 'covariance_eigh', got {self.svd_solver!r}")

    def _start(self, b: Backend, d: int, dtype: Any) -> None:
        """Forget any previous fit and the accumulated moments; bind the model to backend ``b``."""
        for name in ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_",
                     "mean_", "n_components_", "n_samples_", "noise_variance_", "_fit_svd_solver"):
            self.__dict__.pop(name, None)
        self._backend = b
        self._dtype = np.dtype(dtype)
        self.n_features_in_ = d
        self._n_seen = 0
        self._mean64 = None
        self._m2 = None

    def _stream_batch(self, X: Any, name: str) -> tuple[Any, bool]:
        """A further batch: on the model's backend, in its dtype, with its feature count."""
        X, _, fresh = _as_data(self._backend, X, name)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"{name} has {X.shape[1]} features, but PCA was fitted with {self.n_features_in_}")
        if X.dtype != self._dtype:
            X, fresh = X.astype(self._dtype), True
        return X, fresh

    def _accumulate(self, X: Any, inplace: bool, name: str) -> Any:
        """Merge X's count, mean and centred scatter into the float64 moments; return X centred by its mean.

        The batch's scatter is one GEMM in X's dtype; merging (Chan et al.) happens in float64, on
        the upper triangle of ``_m2`` (see _gram). Non-finite data are reported before X is centred
        in place.
        """
        b, xp = self._backend, self._backend.xp
        n_b = X.shape[0]
        if n_b == 0:
            return X
        mean_b = xp.mean(X, axis=0)
        if not bool(xp.isfinite(mean_b).all()):
            _raise_not_finite(xp, X, name)
        Xc = xp.subtract(X, mean_b, out=X if inplace else None)
        with np.errstate(over="ignore", invalid="ignore"):  # checked right below
            m2_b = _gram(b, Xc).astype(xp.float64, copy=False)
        if not bool(xp.isfinite(m2_b).all()):
            raise ValueError(f"{name} overflows {X.dtype} in PCA's X^T X; rescale it or pass float64 data")
        mean_b = mean_b.astype(xp.float64)
        n_a = self._n_seen
        if n_a == 0:
            self._mean64, self._m2 = mean_b, m2_b
        else:
            n = n_a + n_b
            delta = mean_b - self._mean64
            self._mean64 = self._mean64 + delta * (n_b / n)
            self._m2 += m2_b
            self._m2 += xp.outer(delta, delta * (n_a * n_b / n))
        self._n_seen = n_a + n_b
        return Xc

    def _finish_covariance(self) -> None:
        """Eigendecompose the accumulated covariance (float64) and set the model attributes."""
        b, xp = self._backend, self._backend.xp
        n, d = self._n_seen, self.n_features_in_
        c = xp.triu(self._m2) + xp.triu(self._m2, 1).T  # the upper triangle holds the scatter (see _gram)
        c /= n - 1
        total = float(xp.trace(c))
        k_fixed = int(self.n_components) if _is_int(self.n_components) else None
        w, v = _top_eigh(xp, c, k_fixed, self._dtype)
        spectrum = np.maximum(b.to_numpy(w), 0.0)  # a PSD matrix: negative eigenvalues are rounding
        if spectrum.size == d:
            total = float(spectrum.sum())
        k = self._resolve_k(spectrum, n, d)
        vt = xp.ascontiguousarray(v[:, :k].T)
        _flip_signs(xp, vt)
        self._set_model(self._mean64, vt, spectrum[:k], total, spectrum_size=d, n=n)

    def _set_model(self, mean: Any, vt: Any, ev: np.ndarray, total: float, spectrum_size: int, n: int) -> None:
        """Store the attributes from the kept components ``vt`` (k, d), their variances and the total.

        ``noise_variance_`` = mean of the ``spectrum_size - k`` discarded variances
        = (total - sum(ev)) / (spectrum_size - k) when k < min(n, d), else 0.
        """
        b, dt = self._backend, self._dtype
        k, d = ev.size, self.n_features_in_
        rest = max(total - float(ev.sum()), 0.0) / (spectrum_size - k) if k < min(n, d) else 0.0
        self.mean_ = mean.astype(dt)
        self.components_ = vt.astype(dt)  # a compact copy: the discarded components are freed
        self.explained_variance_ = b.asarray(ev, dtype=dt)
        self.explained_variance_ratio_ = b.asarray(ev / total if total > 0 else np.zeros_like(ev), dtype=dt)
        self.singular_values_ = b.asarray(np.sqrt(ev * (n - 1)), dtype=dt)
        self.noise_variance_ = dt.type(rest)
        self.n_components_ = k
        self.n_samples_ = n

    # ------------------------------------------------------------- using the model

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("this PCA instance is not fitted yet; call fit, partial_fit or fit_batched first")

    def _fitted_input(self, X: Any, inverse: bool = False) -> tuple[Any, bool]:
        """X on the model's backend, checked against n_features_in_ (n_components_ when ``inverse``)."""
        self._check_fitted()
        X, host, _ = _as_data(self._backend, X, "X")
        width = self.n_components_ if inverse else self.n_features_in_
        if X.shape[1] != width:
            what = "the model has n_components_ =" if inverse else "PCA was fitted with"
            raise ValueError(f"X has {X.shape[1]} features, but {what} {width}")
        return X, host

    def _out(self, Y: Any, host: bool) -> Any:
        return self._backend.to_numpy(Y) if host else Y

    def _check_output(self, Y: Any, X: Any) -> Any:
        """Non-finite outputs come from non-finite inputs (or overflow): raise instead of returning them."""
        if not bool(self._backend.xp.isfinite(Y).all()):
            _raise_not_finite(self._backend.xp, X, "X")
        return Y

    def _project(self, X: Any, centered: bool) -> Any:
        """``(X - mean_) @ components_.T``, divided by sqrt(explained_variance_) when whitening."""
        b = self._backend
        Y = b.matmul(X, self.components_, transpose_b=True)
        if not centered:  # centre after projecting: no copy of X
            Y -= b.matmul(self.mean_[None, :], self.components_, transpose_b=True)
        if self.whiten:
            # near-zero variances (rank-deficient data) would blow up: clip at eps like scikit-learn
            Y /= b.xp.maximum(b.xp.sqrt(self.explained_variance_), np.finfo(self._dtype).eps)
        return Y

    def transform(self, X: Any) -> Any:
        """Project X (n_samples, n_features_in_) on the components: (n_samples, n_components_).

        Returns the kind of array given (see the module docstring); float32 X with a float32
        model gives float32, float64 X gives float64.
        """
        X, host = self._fitted_input(X)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite results raise in _check_output
            Y = self._project(X, centered=False)
        return self._out(self._check_output(Y, X), host)

    def inverse_transform(self, X: Any) -> Any:
        """Map projections (n_samples, n_components_) back: ``X @ W + mean_`` with ``W = components_``,
        scaled row-wise by sqrt(explained_variance_) when whitening."""
        X, host = self._fitted_input(X, inverse=True)
        xp = self._backend.xp
        W = self.components_
        if self.whiten:
            W = xp.sqrt(self.explained_variance_)[:, None] * W
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite results raise in _check_output
            Y = self._backend.matmul(X, W) + self.mean_
        return self._out(self._check_output(Y, X), host)

    def get_covariance(self) -> Any:
        """Model covariance (d, d): ``W^T diag(max(ev - sigma2, 0)) W + sigma2 I`` (backend array)."""
        W, diff, noise = self._generative()
        cov = self._backend.matmul(W.T * diff, W)
        _add_to_diagonal(cov, noise)
        return cov

    def get_precision(self) -> Any:
        """Inverse of ``get_covariance()``, by the matrix inversion lemma when sigma2 > 0 (backend array)."""
        W, diff, noise = self._generative()
        xp, d = self._backend.xp, W.shape[1]
        if self.n_components_ == 0:
            return xp.eye(d, dtype=self._dtype) / noise
        if noise == 0.0:
            return xp.linalg.inv(self.get_covariance())
        inner = self._backend.matmul(W, W, transpose_b=True) / noise
        _add_to_diagonal(inner, 1.0 / diff)
        precision = self._backend.matmul(W.T, self._backend.matmul(xp.linalg.inv(inner), W)) / -(noise ** 2)
        _add_to_diagonal(precision, 1.0 / noise)
        return precision

    def _generative(self) -> tuple[Any, Any, Any]:
        """(W, max(ev - sigma2, 0), sigma2) of the probabilistic PCA model; W scaled when whitening."""
        self._check_fitted()
        xp = self._backend.xp
        W, ev, noise = self.components_, self.explained_variance_, self.noise_variance_
        if self.whiten:
            W = W * xp.sqrt(ev)[:, None]
        return W, xp.maximum(ev - noise, 0), noise

    def score_samples(self, X: Any) -> Any:
        """Log-likelihood of each sample under the probabilistic PCA model (n_samples,)."""
        X, host = self._fitted_input(X)
        b, xp = self._backend, self._backend.xp
        Xr = X - self.mean_
        precision = self.get_precision()
        sign, logdet = xp.linalg.slogdet(precision)
        logdet = float(logdet) if float(sign) > 0 else -math.inf
        ll = -0.5 * xp.sum(Xr * b.matmul(Xr, precision.astype(Xr.dtype, copy=False)), axis=1)
        ll -= 0.5 * (X.shape[1] * math.log(2.0 * math.pi) - logdet)
        return self._out(ll, host)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the samples of X."""
        return float(self.score_samples(X).mean())
