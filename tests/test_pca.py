"""gpudnn.PCA against scikit-learn's PCA (the reference), on random and real (digits) data."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA as SkPCA
from threadpoolctl import threadpool_limits

import gpudnn
from gpudnn.decomposition.pca import PCA, NotFittedError

SOLVERS = ["full", "covariance_eigh", "randomized"]
ATTRS = ["components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"]


@pytest.fixture(autouse=True)
def numpy_backend():
    with gpudnn.use_backend("numpy") as b:
        yield b


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """These matrices are small: a second BLAS thread only adds spinning (40x slower on a busy 2-core box)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def low_rank(rng, n=201, d=37, rank=6, offset=5.0, noise=0.3, dtype=np.float64):
    """Rank-``rank`` signal with well separated singular values, isotropic noise, offset columns."""
    scales = np.geomspace(20, 2, rank)[:, None]
    X = rng.standard_normal((n, rank)) @ (rng.standard_normal((rank, d)) * scales)
    return (X + noise * rng.standard_normal((n, d)) + offset * rng.uniform(-1, 1, d)).astype(dtype)


@pytest.fixture(scope="module")
def digits():
    return load_digits().data  # 1797 x 64, integer pixels, several constant columns (rank-deficient)


def _determined(sk):
    """How many leading components of a fit are determined (eigenvalue clearly above zero and distinct)."""
    ev = np.asarray(sk.explained_variance_, dtype=np.float64)
    k = sk.n_components_
    gaps = np.abs(np.diff(ev)) > 1e-8 * ev[0]
    distinct = (ev > 1e-8 * ev[0]) & np.concatenate([gaps, [True]]) & np.concatenate([[True], gaps])
    return int(np.argmin(distinct)) if not distinct.all() else k


def assert_like_sklearn(ours, sk, X, rtol=1e-9, atol_components=1e-8):
    """Every fitted attribute and every method of ``ours`` equals scikit-learn's ``sk`` (fitted on X)."""
    assert ours.n_components_ == sk.n_components_
    assert ours.n_samples_ == sk.n_samples_ and ours.n_features_in_ == sk.n_features_in_
    assert ours._fit_svd_solver == sk._fit_svd_solver
    total = float(np.sum(np.var(X, axis=0, ddof=1)))
    for name in ATTRS:
        assert getattr(ours, name).dtype == getattr(sk, name).dtype, name
    k = _determined(sk)
    spectra = dict(atol=1e-12 * total, rtol=rtol)
    np.testing.assert_allclose(ours.explained_variance_, sk.explained_variance_, **spectra)
    np.testing.assert_allclose(ours.explained_variance_ratio_, sk.explained_variance_ratio_, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(ours.singular_values_, sk.singular_values_, rtol=rtol,
                               atol=np.sqrt(1e-12 * total * X.shape[0]))
    np.testing.assert_allclose(ours.mean_, sk.mean_, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.noise_variance_, sk.noise_variance_, **spectra)
    np.testing.assert_allclose(ours.components_[:k], sk.components_[:k], atol=atol_components)  # signs included
    np.testing.assert_allclose(ours.transform(X)[:, :k], sk.transform(X)[:, :k], rtol=1e-6, atol=1e-7)
    atol = 1e-7 * np.abs(X).max()
    if k == sk.n_components_:
        Y = sk.transform(X)
        np.testing.assert_allclose(ours.inverse_transform(Y), sk.inverse_transform(Y), atol=atol)
    else:  # individual components are arbitrary but the reconstruction from all of them is not
        np.testing.assert_allclose(ours.inverse_transform(ours.transform(X)),
                                   sk.inverse_transform(sk.transform(X)), atol=atol)


# ----------------------------------------------------------------------------- against scikit-learn


def _solver_cases(n_components):
    """(solver, n_components) pairs scikit-learn accepts: randomized takes an int only."""
    return [(s, k) for s in SOLVERS for k in n_components if s != "randomized" or isinstance(k, int)]


@pytest.mark.parametrize("whiten", [False, True])
@pytest.mark.parametrize("solver, n_components", _solver_cases([4, 0.95, None, "mle"]))
def test_matches_sklearn_random(rng, solver, n_components, whiten):
    X = low_rank(rng)
    kw = dict(n_components=n_components, svd_solver=solver, whiten=whiten, random_state=3)
    ours, sk = PCA(**kw).fit(X), SkPCA(**kw).fit(X)
    assert_like_sklearn(ours, sk, X)
    k = _determined(sk)  # as in assert_like_sklearn: components of nearly equal eigenvalues are not defined
    np.testing.assert_allclose(PCA(**kw).fit_transform(X)[:, :k], SkPCA(**kw).fit_transform(X)[:, :k],
                               rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.get_covariance(), sk.get_covariance(), rtol=1e-8, atol=1e-10)
    # all components kept: no noise term, the precision is a plain inverse of an ill-conditioned matrix
    rtol = 1e-7 if sk.noise_variance_ > 0 else 1e-3
    precision = sk.get_precision()
    np.testing.assert_allclose(ours.get_precision(), precision, rtol=rtol, atol=1e-2 * rtol * np.abs(precision).max())
    np.testing.assert_allclose(ours.score_samples(X), sk.score_samples(X), rtol=rtol)
    assert ours.score(X) == pytest.approx(sk.score(X), rel=rtol)


@pytest.mark.parametrize("whiten", [False, True])
@pytest.mark.parametrize("solver, n_components", _solver_cases([10, 0.8, None]))
def test_matches_sklearn_digits(digits, solver, n_components, whiten):
    """Real, rank-deficient data (constant pixels): components compared where they are determined."""
    kw = dict(n_components=n_components, svd_solver=solver, whiten=whiten, random_state=0)
    ours, sk = PCA(**kw).fit(digits), SkPCA(**kw).fit(digits)
    assert_like_sklearn(ours, sk, digits, atol_components=1e-7)


def test_digits_mle_and_auto(digits):
    ours, sk = PCA("mle").fit(digits), SkPCA("mle").fit(digits)
    assert ours.n_components_ == sk.n_components_ and ours._fit_svd_solver == sk._fit_svd_solver
    ours, sk = PCA(20).fit(digits), SkPCA(20).fit(digits)  # auto: covariance_eigh (1797 >= 10 * 64)
    assert ours._fit_svd_solver == sk._fit_svd_solver == "covariance_eigh"
    assert_like_sklearn(ours, sk, digits, atol_components=1e-7)


@pytest.mark.parametrize("solver", SOLVERS)
def test_xp_linalg_path(rng, monkeypatch, solver):
    """Without SciPy's extras (the path CuPy takes): xp.linalg QR, SVD and full eigh give the same model."""
    from gpudnn.backend.base import Backend
    from gpudnn.backend.numpy_backend import NumpyBackend

    for name in ("gram", "top_eigh", "svd", "orthonormal_basis", "well_conditioned_basis"):
        assert name in vars(NumpyBackend), name  # a SciPy override that this test replaces
        monkeypatch.setattr(NumpyBackend, name, getattr(Backend, name))
    X = low_rank(rng, n=211, d=31)
    for n_components, whiten in ((5, False), (7, True)):
        kw = dict(n_components=n_components, svd_solver=solver, whiten=whiten, random_state=2)
        assert_like_sklearn(PCA(**kw).fit(X), SkPCA(**kw).fit(X), X)


@pytest.mark.parametrize("shape, n_components", [
    ((2000, 50), 10), ((2000, 50), None), ((300, 40), 5), ((510, 60), 10), ((510, 60), 50), ((510, 60), 0.5),
    ((510, 60), "mle"), ((60, 510), 10), ((510, 60), None)])
def test_auto_picks_like_sklearn(rng, shape, n_components):
    X = rng.standard_normal(shape)
    ours, sk = PCA(n_components, random_state=0).fit(X), SkPCA(n_components, random_state=0).fit(X)
    assert ours._fit_svd_solver == sk._fit_svd_solver


def test_auto_thresholds_on_large_shapes():
    from gpudnn.decomposition.params import choose_solver

    assert choose_solver("auto", 50, 20000, 1000) == "covariance_eigh"
    assert choose_solver("auto", 50, 20000, 1001) == "randomized"
    assert choose_solver("auto", 50, 9999, 1000) == "randomized"
    assert choose_solver("auto", 900, 9999, 1000) == "full"


def test_randomized_close_to_full_with_spectral_gap(rng):
    """Different random draws, same answer within 1e-6 on data whose top 6 components stand clear."""
    X = low_rank(rng, n=403, d=151, rank=6, noise=0.05)
    full = PCA(6, svd_solver="full").fit(X)
    for seed in (0, 1, np.random.RandomState(7), np.random.default_rng(8)):
        rnd = PCA(6, svd_solver="randomized", random_state=seed, iterated_power=3).fit(X)
        np.testing.assert_allclose(rnd.explained_variance_ratio_, full.explained_variance_ratio_, rtol=1e-6)
        np.testing.assert_allclose(rnd.components_, full.components_, atol=1e-6)
        np.testing.assert_allclose(rnd.noise_variance_, full.noise_variance_, rtol=1e-6)


@pytest.mark.parametrize("solver", SOLVERS)
def test_wide_data(rng, solver):
    """n_samples < n_features (the randomized solver works on the transpose, like scikit-learn)."""
    X = low_rank(rng, n=23, d=71)
    kw = dict(n_components=5, svd_solver=solver, random_state=1)
    assert_like_sklearn(PCA(**kw).fit(X), SkPCA(**kw).fit(X), X, rtol=1e-8, atol_components=1e-7)


@pytest.mark.parametrize("solver", SOLVERS)
def test_float32(rng, solver):
    """float32 data stay float32 and agree with a float64 scikit-learn fit to float32 accuracy."""
    X = low_rank(rng, n=1003, d=41, dtype=np.float32)
    kw = dict(n_components=6, svd_solver=solver, random_state=0)
    ours, ref = PCA(**kw).fit(X), SkPCA(**kw).fit(X.astype(np.float64))
    for name in ATTRS:
        assert getattr(ours, name).dtype == np.float32, name
    assert np.asarray(ours.noise_variance_).dtype == np.float32
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-5)
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(ours.singular_values_, ref.singular_values_, rtol=1e-5)
    # the noise variance is the bottom of the spectrum, where float32 rounding of the largest terms
    # (the GEMM for covariance_eigh, the total variance for randomized) shows; scikit-learn's own
    # float32 errors there are of the same size
    np.testing.assert_allclose(ours.noise_variance_, ref.noise_variance_,
                               rtol={"full": 1e-5, "covariance_eigh": 2e-3, "randomized": 1e-2}[solver])
    np.testing.assert_allclose(ours.components_, ref.components_, atol=2e-5)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-5, atol=1e-5)
    Y = ours.transform(X)
    assert Y.dtype == np.float32
    np.testing.assert_allclose(Y, ref.transform(X.astype(np.float64)), atol=2e-3 * np.abs(Y).max())
    assert ours.transform(X.astype(np.float64)).dtype == np.float64  # like scikit-learn: X's dtype wins


def test_float32_large_offset_is_centred_before_the_gemm(rng):
    """Columns at 1e3 +- 1: uncentred X^T X in float32 would lose every digit of the variance."""
    X = (rng.standard_normal((2000, 30)) * np.linspace(2, 1, 30) + 1e3).astype(np.float32)
    ours = PCA(5, svd_solver="covariance_eigh").fit(X)
    ref = SkPCA(5, svd_solver="covariance_eigh").fit(X.astype(np.float64))
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=1e-3)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-3)


def test_float32_eigenvalues_beat_a_float32_eigensolver(rng):
    """The small (noise) eigenvalues of float32 data: a float32 eigensolver is off by ~1e-4 here
    (eps32 * largest / smallest), the float64 Rayleigh-Ritz step brings them to ~1e-5."""
    n, d, rank = 3000, 120, 10
    X = (rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) * 3 + rng.standard_normal((n, d))
         + rng.uniform(0, 10, d)).astype(np.float32)
    ours = PCA(20, svd_solver="covariance_eigh").fit(X)
    ref = SkPCA(20, svd_solver="covariance_eigh").fit(X.astype(np.float64))
    np.testing.assert_allclose(ours.explained_variance_, ref.explained_variance_, rtol=4e-5)


# ----------------------------------------------------------------------------- incremental


@pytest.mark.parametrize("dtype, rtol, atol", [(np.float64, 1e-10, 1e-9), (np.float32, 1e-5, 1e-4)])
def test_partial_fit_equals_full_fit(rng, dtype, rtol, atol):
    X = low_rank(rng, n=517, d=29, dtype=dtype)
    sizes = [7, 1, 100, 2, 0, 407]
    full = PCA(5, svd_solver="covariance_eigh").fit(X)
    inc = PCA(5)
    start = 0
    for size in sizes:
        inc.partial_fit(X[start:start + size])
        start += size
        assert inc.n_samples_ == start
    assert inc.components_.dtype == dtype
    for name in ATTRS:
        np.testing.assert_allclose(getattr(inc, name), getattr(full, name), rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_allclose(inc.noise_variance_, full.noise_variance_, rtol=10 * rtol)  # bottom of the spectrum
    np.testing.assert_allclose(inc.transform(X), full.transform(X), rtol=rtol, atol=atol * 100)


def test_partial_fit_continues_a_covariance_fit_and_grows_n_components(rng):
    X = low_rank(rng, n=60, d=9)
    model = PCA(svd_solver="covariance_eigh").fit(X[:4])
    assert model.n_components_ == 4  # None: min(n_samples seen, n_features)
    model.partial_fit(X[4:])
    ref = SkPCA(svd_solver="covariance_eigh").fit(X)
    assert model.n_components_ == 9
    assert_like_sklearn(model, ref, X, rtol=1e-9, atol_components=1e-8)


@pytest.mark.parametrize("n_components", [3, 0.9, None, "mle"])
def test_fit_batched_equals_sklearn(rng, n_components):
    X = low_rank(rng, n=300, d=17)
    batches = (X[i:i + 64].tolist() if i % 128 else X[i:i + 64] for i in range(0, 300, 64))  # lists and arrays
    ours = PCA(n_components, whiten=True).fit_batched(batches)
    sk = SkPCA(n_components, whiten=True, svd_solver="covariance_eigh").fit(X)
    assert_like_sklearn(ours, sk, X)


def test_fit_batched_converts_later_batches_to_the_first_dtype(rng):
    X = low_rank(rng, n=100, d=8)
    model = PCA(2).fit_batched([X[:50].astype(np.float32), X[50:]])
    assert model.components_.dtype == np.float32
    np.testing.assert_allclose(model.explained_variance_, SkPCA(2).fit(X).explained_variance_, rtol=1e-5)


# ----------------------------------------------------------------------------- conventions


def test_copy_false_centres_in_place_and_copy_true_does_not(rng):
    X = low_rank(rng)
    for solver in SOLVERS:
        kept = X.copy()
        PCA(3, svd_solver=solver, random_state=0).fit(kept)
        np.testing.assert_array_equal(kept, X)
        model = PCA(3, svd_solver=solver, random_state=0, copy=False)
        Y = model.fit_transform(scratch := X.copy())
        np.testing.assert_allclose(Y, PCA(3, svd_solver=solver, random_state=0).fit_transform(X), atol=1e-9)
        np.testing.assert_allclose(scratch.mean(axis=0), 0, atol=1e-9)  # centred in place


@pytest.mark.parametrize("layout", ["C", "F", "strided"])
@pytest.mark.parametrize("solver", SOLVERS)
def test_memory_layouts(rng, solver, layout):
    X = low_rank(rng, n=161, d=46)
    X = {"C": X, "F": np.asfortranarray(X), "strided": X[::2, ::2]}[layout]
    for copy in (True, False):
        kw = dict(n_components=4, svd_solver=solver, random_state=0)
        sk = SkPCA(**kw).fit(X)
        assert_like_sklearn(PCA(copy=copy, **kw).fit(X if copy else X.copy(order="K")), sk, X)


def test_input_kinds_and_dtypes(rng):
    X = rng.integers(0, 9, size=(40, 6))
    model = PCA(3).fit(X.tolist())
    assert model.components_.dtype == np.float64 and isinstance(model.components_, np.ndarray)
    Y = model.transform(X.tolist())
    assert isinstance(Y, np.ndarray) and Y.shape == (40, 3)
    np.testing.assert_allclose(Y, SkPCA(3).fit(X).transform(X), atol=1e-10)
    assert model.transform(np.asfortranarray(X.astype(np.float32))).dtype == np.float64
    assert model.transform(X[:0]).shape == (0, 3)


@pytest.mark.parametrize("solver", SOLVERS)
def test_constant_data_give_zeros_not_nan(solver):
    """No variance at all: scikit-learn divides 0 by 0; here the ratios are 0 and nothing is NaN."""
    X = np.tile([1.0, -2.0, 3.5, 0.25], (9, 1))
    model = PCA(2, svd_solver=solver, whiten=True, random_state=0).fit(X)
    for name in ATTRS[1:4]:
        np.testing.assert_array_equal(getattr(model, name), 0.0)
    np.testing.assert_array_equal(model.mean_, X[0])
    np.testing.assert_array_equal(model.transform(X), 0.0)
    np.testing.assert_allclose(model.inverse_transform(model.transform(X)), X)
    assert PCA(0.5, svd_solver=solver if solver != "randomized" else "full").fit(X).n_components_ == 1


def test_estimator_protocol():
    model = PCA(7, whiten=True, random_state=4)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()
    assert repr(model) == "PCA(n_components=7, whiten=True, random_state=4)"
    assert model.set_params(n_components=2) is model and model.n_components == 2
    with pytest.raises(ValueError, match="tol"):
        model.set_params(tol=1e-3)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("solver", SOLVERS)
def test_non_finite_data_raise_before_touching_x(rng, solver, bad):
    X = low_rank(rng, n=30, d=5)
    X[7, 3] = bad
    kept = X.copy()
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        PCA(2, svd_solver=solver, copy=False).fit(X)
    np.testing.assert_array_equal(X, kept)
    model = PCA(2, svd_solver="covariance_eigh").fit(low_rank(rng, n=30, d=5))
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        model.transform(X)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        model.partial_fit(X)
    with pytest.raises(ValueError, match=r"batches\[1\] contains NaN or infinity"):
        PCA(2).fit_batched([low_rank(rng, n=3, d=5), X])
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        model.inverse_transform(np.full((2, 2), bad))


def test_float32_overflow_is_reported(rng):
    X = rng.standard_normal((50, 4)).astype(np.float32) * 1e30
    with pytest.raises(ValueError, match="overflows float32"):
        PCA(2).fit(X)


@pytest.mark.parametrize("kw, error, match", [
    (dict(n_components=6), ValueError, "n_components=6 must be between 0 and min"),
    (dict(n_components=6, svd_solver="covariance_eigh"), ValueError, "n_components=6 must be between 0 and min"),
    (dict(n_components=6, svd_solver="randomized"), ValueError, "n_components=6 must be between 1 and min"),
    (dict(n_components=0, svd_solver="randomized"), ValueError, "n_components=0 must be between 1 and min"),
    (dict(n_components=-1), ValueError, "n_components must be >= 0"),
    (dict(n_components=1.0), ValueError, "fraction of variance in"),
    (dict(n_components=1.5), ValueError, "fraction of variance in"),
    (dict(n_components="all"), TypeError, "n_components must be"),
    (dict(n_components=True), TypeError, "n_components must be"),
    (dict(n_components=[2]), TypeError, "n_components must be"),
    (dict(n_components=0.5, svd_solver="randomized"), ValueError, "fraction of variance"),
    (dict(n_components="mle", svd_solver="randomized"), ValueError, "mle"),
    (dict(svd_solver="arpack"), ValueError, "svd_solver must be one of"),
    (dict(whiten="yes"), TypeError, "whiten must be True or False"),
    (dict(copy=None), TypeError, "copy must be True or False"),
    (dict(iterated_power=-1), ValueError, "iterated_power"),
    (dict(n_oversamples=0), ValueError, "n_oversamples"),
    (dict(random_state="seed"), TypeError, "random_state"),
])
def test_bad_parameters(rng, kw, error, match):
    X = rng.standard_normal((20, 5))
    with pytest.raises(error, match=match):
        PCA(**kw).fit(X)


def test_bad_data(rng):
    with pytest.raises(ValueError, match="X has 1 sample"):
        PCA().fit(np.ones((1, 4)))
    with pytest.raises(ValueError, match="X must be 2-D"):
        PCA().fit(np.ones(8))
    with pytest.raises(ValueError, match="X must be 2-D"):
        PCA().fit(np.ones((3, 4, 2)))
    with pytest.raises(ValueError, match=r"0 feature\(s\)"):
        PCA().fit(np.ones((5, 0)))
    with pytest.raises(ValueError, match="Complex data not supported"):
        PCA().fit(np.ones((5, 3), dtype=complex))
    with pytest.raises(TypeError, match="real numbers"):
        PCA().fit([["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match="array-like"):
        PCA().fit([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="n_samples >= n_features"):
        PCA("mle").fit(rng.standard_normal((4, 9)))


def test_bad_use_of_a_model(rng):
    X = rng.standard_normal((20, 5))
    for call in (lambda m: m.transform(X), lambda m: m.inverse_transform(X[:, :2]), lambda m: m.get_covariance(),
                 lambda m: m.score(X)):
        with pytest.raises(NotFittedError, match="not fitted"):
            call(PCA(2))
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    model = PCA(2, svd_solver="covariance_eigh").fit(X)
    with pytest.raises(ValueError, match="X has 4 features, but PCA is expecting 5 features as input"):
        model.transform(X[:, :4])
    with pytest.raises(ValueError, match="X has 3 features, but the model has n_components_ = 2"):
        model.inverse_transform(X[:, :3])
    with pytest.raises(ValueError, match="X has 4 features, but PCA is expecting 5 features as input"):
        model.partial_fit(X[:, :4])
    with pytest.raises(ValueError, match="fitted with svd_solver='full'"):
        PCA(2).fit(X).partial_fit(X)  # auto picked full for 20 x 5
    with pytest.raises(ValueError, match="svd_solver must be 'auto' or 'covariance_eigh'"):
        PCA(2, svd_solver="randomized").fit_batched([X])
    with pytest.raises(ValueError, match="at least 2 samples"):
        PCA(2).fit_batched([])
    with pytest.raises(ValueError, match="batches\\[1\\] has 4 features"):
        PCA(2).fit_batched([X, X[:, :4]])
    with pytest.raises(ValueError, match="seen 1 sample"):
        PCA(1).partial_fit(X[:1])
    with pytest.raises(ValueError, match="n_components=3 must be between 0 and min"):
        PCA(3).partial_fit(X[:2])


# ----------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cupy_backend_matches_numpy(rng):
    import cupy

    X = low_rank(rng, n=5003, d=97, dtype=np.float32)
    host = PCA(8).fit(X)
    with gpudnn.use_backend("cupy") as b:
        for solver in SOLVERS:
            dev = PCA(8, svd_solver=solver, random_state=0).fit(b.asarray(X))
            assert isinstance(dev.components_, cupy.ndarray)
            np.testing.assert_allclose(b.to_numpy(dev.components_), host.components_, atol=1e-4)
            np.testing.assert_allclose(b.to_numpy(dev.explained_variance_ratio_), host.explained_variance_ratio_,
                                       rtol=1e-4)
            assert isinstance(dev.transform(X), np.ndarray)  # host data in, host data out
            assert isinstance(dev.transform(b.asarray(X)), cupy.ndarray)
        batched = PCA(8).fit_batched(np.array_split(X, 5))
        np.testing.assert_allclose(b.to_numpy(batched.components_), host.components_, atol=1e-4)
