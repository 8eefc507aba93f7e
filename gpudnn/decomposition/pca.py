"""Principal component analysis on the current backend, with scikit-learn's ``PCA`` interface.

``PCA`` follows ``sklearn.decomposition.PCA`` (1.9) in parameters, attributes, solver choice
("auto"), sign convention and results, and runs on NumPy or CuPy arrays through the Backend
(its GEMM and linear algebra; on the NumPy backend SciPy's LAPACK/BLAS where NumPy lacks a routine
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

Solvers (``svd_solver``), each in the data dtype (see the Backend methods named):
- "covariance_eigh": ``mean_`` = X.mean(0); one ``Backend.gram`` of X - mean, then
  ``Backend.top_eigh`` of the d x d float64 covariance (of the top ``n_components`` pairs only
  when their number is fixed). Centring first costs one pass but avoids the cancellation of
  scikit-learn's ``X^T X - n mean mean^T`` in float32.
- "full": ``Backend.svd`` of the centred data, as in scikit-learn.
- "randomized": ``linalg.randomized_svd``, whose Gaussian test matrix is scikit-learn's draw.
- "auto": covariance_eigh when ``n_features <= 1000`` and ``n_samples >= 10 * n_features``;
  else full when ``max(shape) <= 500`` or n_components == "mle"; else randomized when
  ``1 <= n_components < 0.8 * min(shape)``; else full. "arpack" is not offered.
All solvers flip signs so that the largest-magnitude entry of each component is positive
(scikit-learn's ``svd_flip(u_based_decision=False)``, which it uses for every PCA solver).
Bad parameters or data raise TypeError/ValueError naming the argument before any heavy work
(non-finite data before X is centred in place); methods of an unfitted model raise
``NotFittedError`` (a ValueError and AttributeError, as scikit-learn's).

Beyond scikit-learn: ``partial_fit(X)`` and ``fit_batched(batches)`` accumulate exact float64
moments batch by batch (``moments.StreamingMoments``): after any sequence of batches the model
equals ``PCA(svd_solver="covariance_eigh").fit(all rows seen)`` up to rounding, so data larger
than device memory can be streamed through ``fit_batched``.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from .. import checks
from ..backend import get_backend
from ..backend.base import Backend
from .frames import OUTPUTS, check_names, column_names, output_kind, wrap
from .inputs import as_data, raise_not_finite
from .linalg import flip_signs, gaussian_log_likelihood, ppca_covariance, ppca_precision, randomized_svd
from .moments import StreamingMoments
from .params import PARAMS, check_k, check_params, choose_solver, resolve_k

_MODEL = ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_",
          "n_components_", "n_samples_", "noise_variance_", "_fit_svd_solver", "feature_names_in_")


class NotFittedError(ValueError, AttributeError):
    """A PCA method that needs a fitted model was called before fit (as in scikit-learn)."""


@functools.cache
def _not_fitted_error(sklearn_error: type | None) -> type:
    """gpudnn's NotFittedError, also scikit-learn's when scikit-learn is loaded (catching either works)."""
    if sklearn_error is None:
        return NotFittedError
    return type("NotFittedError", (NotFittedError, sklearn_error), {"__module__": __name__})


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

    # ------------------------------------------------------------- parameters

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (scikit-learn's estimator protocol, so ``clone`` works)."""
        return {name: getattr(self, name) for name in PARAMS}

    def set_params(self, **params: Any) -> PCA:
        for name, value in params.items():
            if name not in PARAMS:
                raise ValueError(f"invalid parameter {name!r} for PCA; valid ones: {', '.join(PARAMS)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = PCA().get_params()
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v != defaults[k])
        return f"PCA({args})"

    def set_output(self, *, transform: str | None = None) -> PCA:
        """The container ``transform`` and ``fit_transform`` return for host data: "default" (NumPy),
        "pandas" or "polars" (columns ``get_feature_names_out()``); None: scikit-learn's global setting."""
        if transform is not None:
            checks.choice("transform", transform, OUTPUTS)
        self._sklearn_output_config = {"transform": transform}  # the name scikit-learn's clone carries over
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: "pca0", "pca1", ... (object array, as scikit-learn)."""
        self._check_fitted()
        if input_features is not None:
            expected = getattr(self, "feature_names_in_", None)
            given = np.asarray(input_features, dtype=object)
            if len(given) != self.n_features_in_ or (expected is not None and (given != expected).any()):
                raise ValueError(f"input_features {list(given)} are not the {self.n_features_in_} features PCA was "
                                 "fitted with")
        return np.asarray([f"pca{i}" for i in range(self.n_components_)], dtype=object)

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's description of this estimator (a transformer of dense float data)."""
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(two_d_array=True))

    # ------------------------------------------------------------- fitting

    def fit(self, X: Any, y: Any = None) -> PCA:
        """Fit on X (n_samples, n_features); host data goes to the current backend. Returns self."""
        self._fit(X, project=False)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit on X and return its projection (n_samples, n_components_), as the kind of array given."""
        Y, host = self._fit(X, project=True)
        return self._framed(self._out(Y, host), host, X)

    def _fit(self, X: Any, project: bool) -> tuple[Any, bool]:
        """Fit; return (the projection of X when ``project`` else None, whether X was host data)."""
        check_params(self)
        b = get_backend()
        xp = b.xp
        X_given = X
        X, host, fresh = as_data(b, X, "X")
        n, d = X.shape
        if n < 2:
            raise ValueError(f"X has {n} sample(s); PCA needs at least 2")
        solver = choose_solver(self.svd_solver, self.n_components, n, d)
        check_k(self.n_components, n, d, solver)
        self._start(b, d, X.dtype, column_names(X_given))
        inplace = fresh or not self.copy
        if solver == "covariance_eigh":
            Xc = self._moments.add(X, inplace, "X")
            self._finish_covariance()
            return (self._project(Xc, centered=True) if project else None), host

        mean = xp.mean(X, axis=0)
        if not bool(xp.isfinite(mean).all()):
            raise_not_finite(xp, X, "X")
        Xc = xp.subtract(X, mean, out=X if inplace else None)
        if solver == "full":
            U, S, Vt = b.svd(Xc)
        else:
            U, S, Vt = randomized_svd(b, Xc, int(self.n_components), self.iterated_power, self.n_oversamples,
                                      self.random_state)
        spectrum = b.to_numpy(S).astype(np.float64) ** 2 / (n - 1)
        if solver == "full":
            k, total = resolve_k(self.n_components, spectrum, n, d), float(spectrum.sum())
        else:  # a truncated spectrum: the total variance comes from the data
            k, total = int(self.n_components), float(xp.sum(xp.square(Xc), dtype=xp.float64)) / (n - 1)
        U, Vt = U[:, :k], Vt[:k]
        flip_signs(xp, Vt, U)
        self._set_model(solver, mean, Vt, spectrum[:k], total, spectrum_size=min(n, d), n=n)
        if not project:
            return None, host
        # X_new = Xc V^T = U S (whitened: divided by sqrt(ev) = S / sqrt(n - 1))
        U = xp.ascontiguousarray(U)
        U *= xp.asarray(math.sqrt(n - 1) if self.whiten else S[:k], dtype=U.dtype)
        return U, host

    def partial_fit(self, X: Any, y: Any = None) -> PCA:
        """Add the rows of X to the model: afterwards it equals a covariance_eigh fit of all rows seen.

        The first call (after a covariance_eigh ``fit``: that fit) fixes the backend, dtype and
        n_features; later batches are converted to that dtype.
        Costs one GEMM for the batch and one d x d eigendecomposition per call; to stream many
        batches, ``fit_batched`` does the eigendecomposition once.
        """
        self._check_streaming()
        first = getattr(self, "_moments", None) is None or self._moments.count == 0
        if first and hasattr(self, "components_"):
            raise ValueError(f"this PCA was fitted with svd_solver={self._fit_svd_solver!r}, which keeps no "
                             "covariance to update; partial_fit continues only covariance_eigh fits")
        X, fresh = self._batch(X, "X", first)
        n = self._moments.count + X.shape[0]
        if n < 2:
            raise ValueError(f"partial_fit has seen {n} sample(s) with this batch; PCA needs at least 2")
        check_k(self.n_components, n, self.n_features_in_, "covariance_eigh")
        self._moments.add(X, fresh or not self.copy, "X")
        self._finish_covariance()
        return self

    def fit_batched(self, batches: Iterable[Any]) -> PCA:
        """Fit on the rows of all ``batches`` (2-D arrays, host or backend) without holding them together.

        Host batches are moved to the backend one at a time, so the data may exceed device
        memory. The result equals a covariance_eigh fit of the stacked batches. Returns self.
        """
        self._check_streaming()
        n = 0
        for i, batch in enumerate(batches):
            X, fresh = self._batch(batch, f"batches[{i}]", first=i == 0)
            self._moments.add(X, fresh or not self.copy, f"batches[{i}]")
            n = self._moments.count
        if n < 2:
            raise ValueError(f"fit_batched needs at least 2 samples in total; got {n}")
        check_k(self.n_components, n, self.n_features_in_, "covariance_eigh")
        self._finish_covariance()
        return self

    def _check_streaming(self) -> None:
        check_params(self)
        if self.svd_solver not in ("auto", "covariance_eigh"):
            raise ValueError("partial_fit and fit_batched compute the covariance eigendecomposition; "
                             f"svd_solver must be 'auto' or 'covariance_eigh', got {self.svd_solver!r}")

    def _batch(self, X: Any, name: str, first: bool) -> tuple[Any, bool]:
        """``(X on the backend, freshly allocated)`` for a streamed batch. The ``first`` starts the model
        on the current backend; later ones are held to its dtype and feature count."""
        if first:
            b = get_backend()
            names = column_names(X)
            X, _, fresh = as_data(b, X, name)
            self._start(b, X.shape[1], X.dtype, names)
            return X, fresh
        check_names("PCA", getattr(self, "feature_names_in_", None), X)
        X, _, fresh = as_data(self._backend, X, name)
        return self._moments.conform(X, fresh, name)

    def _start(self, b: Backend, d: int, dtype: Any, names: np.ndarray | None = None) -> None:
        """Forget any previous fit and the accumulated moments; bind the model to backend ``b``
        (``names``: the data's column names, kept as ``feature_names_in_``)."""
        for name in _MODEL:
            self.__dict__.pop(name, None)
        if names is not None:
            self.feature_names_in_ = names
        self._backend = b
        self._dtype = np.dtype(dtype)
        self.n_features_in_ = d
        self._moments = StreamingMoments(b, d, dtype)

    def _finish_covariance(self) -> None:
        """Eigendecompose the accumulated covariance (float64) and set the model attributes."""
        m, b, xp = self._moments, self._backend, self._backend.xp
        n, d = m.count, self.n_features_in_
        c = m.covariance()
        trace = xp.trace(c)  # taken before top_eigh may overwrite c; read back only for a partial spectrum
        w, v = b.top_eigh(c, int(self.n_components) if checks.is_integer(self.n_components) else None, self._dtype)
        spectrum = np.maximum(b.to_numpy(w), 0.0)  # a PSD matrix: negative eigenvalues are rounding
        total = float(spectrum.sum()) if spectrum.size == d else float(trace)
        k = resolve_k(self.n_components, spectrum, n, d)
        vt = xp.ascontiguousarray(v[:, :k].T)
        flip_signs(xp, vt)
        self._set_model("covariance_eigh", m.mean, vt, spectrum[:k], total, spectrum_size=d, n=n)

    def _set_model(self, solver: str, mean: Any, vt: Any, ev: np.ndarray, total: float, spectrum_size: int,
                   n: int) -> None:
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
        self._fit_svd_solver = solver

    # ------------------------------------------------------------- using the model

    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            sklearn_exceptions = sys.modules.get("sklearn.exceptions")
            error = _not_fitted_error(getattr(sklearn_exceptions, "NotFittedError", None))
            raise error("this PCA instance is not fitted yet; call fit, partial_fit or fit_batched first")

    def _fitted_input(self, X: Any, inverse: bool = False) -> tuple[Any, bool]:
        """X on the model's backend, checked against n_features_in_ (n_components_ when ``inverse``)."""
        self._check_fitted()
        if not inverse:
            check_names("PCA", getattr(self, "feature_names_in_", None), X)
        X, host, _ = as_data(self._backend, X, "X")
        width = self.n_components_ if inverse else self.n_features_in_
        if X.shape[1] != width:
            what = "the model has n_components_ =" if inverse else "PCA is expecting"
            raise ValueError(f"X has {X.shape[1]} features, but {what} {width} features as input")
        return X, host

    def _out(self, Y: Any, host: bool) -> Any:
        return self._backend.to_numpy(Y) if host else Y

    def _framed(self, Y: Any, host: bool, X: Any) -> Any:
        """Host output of transform/fit_transform in the container ``set_output`` chose."""
        kind = output_kind(getattr(self, "_sklearn_output_config", {}).get("transform")) if host else "default"
        return wrap(Y, kind, list(self.get_feature_names_out()), X) if kind != "default" else Y

    def _check_output(self, Y: Any, X: Any) -> Any:
        """Non-finite outputs come from non-finite inputs (or overflow): raise instead of returning them."""
        if not bool(self._backend.xp.isfinite(Y).all()):
            raise_not_finite(self._backend.xp, X, "X")
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
        X_given = X
        X, host = self._fitted_input(X)
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite results raise in _check_output
            Y = self._project(X, centered=False)
        return self._framed(self._out(self._check_output(Y, X), host), host, X_given)

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

    # ------------------------------------------------------------- the probabilistic model

    def get_covariance(self) -> Any:
        """Model covariance (d, d): ``W^T diag(max(ev - sigma2, 0)) W + sigma2 I`` (backend array)."""
        W, diff, noise = self._generative()  # checks that the model is fitted
        return ppca_covariance(self._backend, W, diff, noise)

    def get_precision(self) -> Any:
        """Inverse of ``get_covariance()``, by the matrix inversion lemma when sigma2 > 0 (backend array)."""
        W, diff, noise = self._generative()
        return ppca_precision(self._backend, W, diff, noise, self._dtype)

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
        return self._out(gaussian_log_likelihood(self._backend, X - self.mean_, self.get_precision()), host)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the samples of X."""
        return float(self.score_samples(X).mean())
