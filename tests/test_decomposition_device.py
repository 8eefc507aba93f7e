"""The decomposition room on the device path: PCA (every solver, streaming, the probabilistic model) and the
Autoencoder run on the cudasim backend, whose arrays are the strict CuPy stand-in, and give what the NumPy
backend and scikit-learn give; their host syncs are counted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.decomposition import PCA as SkPCA

import gpudnn as gd
from gpudnn.backend.standin import SYNCS, DeviceArray, xp
from tests.support import SIMULATOR

pytestmark = pytest.mark.skipif(not SIMULATOR, reason="the cudasim backend needs NUMBA_ENABLE_CUDASIM=1")

ATTRS = ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_")
TIGHT = {"rtol": 1e-9, "atol": 1e-10}  # float64 on both sides: the same maths, other LAPACK drivers


def spread(rng: np.random.Generator, n: int = 40, d: int = 6) -> np.ndarray:
    """(n, d) float64 data with well separated variances (so every component is determined) and offset means."""
    scales = np.geomspace(8.0, 8.0 / 2 ** (d - 1), d)
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return (rng.standard_normal((n, d)) * scales) @ rotation + rng.uniform(-3, 3, d)


def host(a: Any) -> np.ndarray:
    """A host copy of a device array (a host array as it is)."""
    return a.get() if isinstance(a, DeviceArray) else np.asarray(a)


def fit_numpy(X: np.ndarray, **kw) -> gd.PCA:
    with gd.use_backend("numpy"):
        return gd.PCA(**kw).fit(X)


def fit_device(X: np.ndarray, **kw) -> gd.PCA:
    with gd.use_backend("cudasim"):
        return gd.PCA(**kw).fit(xp.asarray(X))


def assert_same_model(dev: gd.PCA, ref: Any, **tol: float) -> None:
    """``dev`` (fitted on the device) holds ``ref``'s model (a NumPy-backend or scikit-learn PCA)."""
    assert dev.n_components_ == ref.n_components_ and dev.n_samples_ == ref.n_samples_
    assert dev._fit_svd_solver == ref._fit_svd_solver
    for name in ATTRS:
        got = getattr(dev, name)
        assert isinstance(got, DeviceArray) and got.dtype == getattr(ref, name).dtype, name
        np.testing.assert_allclose(host(got), getattr(ref, name), err_msg=name, **tol)
    assert isinstance(dev.noise_variance_, np.floating)
    np.testing.assert_allclose(dev.noise_variance_, ref.noise_variance_, **tol)


CASES = [("full", 3, {}), ("full", None, {}), ("full", "mle", {}), ("full", 0.9, {}),
         ("covariance_eigh", 3, {}), ("covariance_eigh", None, {}), ("covariance_eigh", "mle", {}),
         ("covariance_eigh", 0.9, {}), ("randomized", 2, {}),
         ("randomized", 2, {"n_oversamples": 1, "iterated_power": 1}), ("auto", 3, {})]


@pytest.mark.parametrize("whiten", [False, True], ids=["plain", "whiten"])
@pytest.mark.parametrize("solver, n_components, extra", CASES,
                         ids=[f"{s}-{k}{'-short' if e else ''}" for s, k, e in CASES])
def test_pca_on_device_matches_numpy_and_sklearn(rng, solver, n_components, extra, whiten):
    X = spread(rng)
    kw = dict(n_components=n_components, svd_solver=solver, whiten=whiten, random_state=0, **extra)
    dev, ref, sk = fit_device(X, **kw), fit_numpy(X, **kw), SkPCA(**kw).fit(X)
    assert_same_model(dev, ref, **TIGHT)
    assert_same_model(dev, sk, **TIGHT)

    Xd = xp.asarray(X)
    Y = dev.transform(Xd)
    assert isinstance(Y, DeviceArray)
    np.testing.assert_allclose(host(Y), sk.transform(X), **TIGHT)
    np.testing.assert_allclose(dev.transform(X), ref.transform(X), **TIGHT)  # host data in, NumPy out
    back = dev.inverse_transform(Y)
    assert isinstance(back, DeviceArray)
    np.testing.assert_allclose(host(back), sk.inverse_transform(sk.transform(X)), **TIGHT)
    with gd.use_backend("cudasim"):
        fitted = gd.PCA(**kw).fit_transform(xp.asarray(X))
        in_place = gd.PCA(copy=False, **kw).fit_transform(Xd)  # centres Xd itself
    assert isinstance(fitted, DeviceArray) and isinstance(in_place, DeviceArray)
    np.testing.assert_allclose(host(fitted), SkPCA(**kw).fit_transform(X), **TIGHT)
    np.testing.assert_allclose(host(in_place), host(fitted), **TIGHT)


@pytest.mark.parametrize("solver", ["full", "randomized"])
def test_pca_on_wide_device_data(rng, solver):
    """n_samples < n_features: the randomized solver iterates on the transpose."""
    X = spread(rng, n=5, d=9)
    kw = dict(n_components=3, svd_solver=solver, random_state=1)
    dev, sk = fit_device(X, **kw), SkPCA(**kw).fit(X)
    assert_same_model(dev, fit_numpy(X, **kw), **TIGHT)
    assert_same_model(dev, sk, **TIGHT)
    np.testing.assert_allclose(host(dev.transform(xp.asarray(X))), sk.transform(X), **TIGHT)


@pytest.mark.parametrize("solver", ["full", "covariance_eigh", "randomized"])
def test_pca_refuses_non_finite_device_data(rng, solver):
    X = spread(rng)
    model = fit_device(X, n_components=2)
    X[3, 2] = np.nan
    with gd.use_backend("cudasim"), pytest.raises(ValueError, match="X contains NaN"):
        gd.PCA(2, svd_solver=solver, random_state=0).fit(xp.asarray(X))
    with pytest.raises(ValueError, match="X contains NaN"):
        model.transform(xp.asarray(X))


@pytest.mark.parametrize("solver", ["full", "covariance_eigh", "randomized"])
def test_pca_keeps_float32_and_converts_integers_on_device(rng, solver):
    X = spread(rng)
    kw = dict(n_components=3, svd_solver=solver, random_state=0)
    X32 = X.astype(np.float32)
    dev = fit_device(X32, **kw)
    for name in ATTRS:
        assert getattr(dev, name).dtype == np.float32, name
    assert dev.noise_variance_.dtype == np.float32
    ref, sk = fit_numpy(X32, **kw), SkPCA(**kw).fit(X32.astype(np.float64))
    for name in ATTRS:
        np.testing.assert_allclose(host(getattr(dev, name)), getattr(ref, name), rtol=2e-5, atol=2e-5, err_msg=name)
        np.testing.assert_allclose(host(getattr(dev, name)), getattr(sk, name), rtol=2e-5, atol=2e-5, err_msg=name)
    Y = dev.transform(xp.asarray(X32))
    assert Y.dtype == np.float32
    np.testing.assert_allclose(host(Y), sk.transform(X32.astype(np.float64)), rtol=1e-4, atol=1e-4)

    counts = np.round(4 * X).astype(np.int64)  # integers become float64, as on the NumPy backend
    dev = fit_device(counts, **kw)
    assert dev.components_.dtype == np.float64
    assert_same_model(dev, SkPCA(**kw).fit(counts.astype(np.float64)), **TIGHT)


@pytest.mark.parametrize("whiten", [False, True], ids=["plain", "whiten"])
@pytest.mark.parametrize("n_components", [2, None])
def test_pca_covariance_and_precision_on_device(rng, n_components, whiten):
    X = spread(rng)
    kw = dict(n_components=n_components, whiten=whiten)
    dev, sk = fit_device(X, **kw), SkPCA(**kw).fit(X)
    covariance, precision = dev.get_covariance(), dev.get_precision()
    assert isinstance(covariance, DeviceArray) and isinstance(precision, DeviceArray)
    np.testing.assert_allclose(host(covariance), sk.get_covariance(), rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(host(precision), sk.get_precision(), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("n_components", [2, None])
def test_pca_score_on_device(rng, n_components):
    X = spread(rng)
    dev, sk = fit_device(X, n_components=n_components), SkPCA(n_components).fit(X)
    samples = dev.score_samples(xp.asarray(X))
    assert isinstance(samples, DeviceArray)
    np.testing.assert_allclose(host(samples), sk.score_samples(X), rtol=1e-9)
    np.testing.assert_allclose(dev.score_samples(X), sk.score_samples(X), rtol=1e-9)
    assert dev.score(xp.asarray(X)) == pytest.approx(sk.score(X), rel=1e-9)


def test_pca_streaming_on_device(rng):
    """partial_fit on device batches and fit_batched on device, host and float32 batches equal one
    covariance_eigh fit of all their rows."""
    X = spread(rng)
    X[30:] = X[30:].astype(np.float32)  # rows that the float32 batch below holds exactly
    sk = SkPCA(3, svd_solver="covariance_eigh").fit(X)
    with gd.use_backend("numpy"):
        ref = gd.PCA(3)
        for rows in (slice(0, 15), slice(15, 30), slice(30, 40)):
            ref.partial_fit(X[rows])
    with gd.use_backend("cudasim"):
        dev = gd.PCA(3)
        for rows in (slice(0, 15), slice(15, 30), slice(30, 40)):
            dev.partial_fit(xp.asarray(X[rows]))
        batched = gd.PCA(3).fit_batched([xp.asarray(X[:15]), X[15:30], xp.asarray(X[30:].astype(np.float32))])
    for model in (dev, batched):
        assert_same_model(model, ref, **TIGHT)
        assert_same_model(model, sk, **TIGHT)
    np.testing.assert_allclose(host(batched.transform(xp.asarray(X))), sk.transform(X), **TIGHT)


@pytest.mark.parametrize("whiten", [False, True], ids=["plain", "whiten"])
def test_pca_layer_of_a_device_pca(rng, whiten):
    """pca_layer of a PCA fitted on the device: one Dense layer equal to transform, on either backend."""
    X = spread(rng)
    dev = fit_device(X, n_components=3, whiten=whiten)
    expected = host(dev.transform(xp.asarray(X)))
    with gd.use_backend("cudasim") as b:
        layer = gd.pca_layer(dev, dtype=np.float64)
        assert isinstance(layer.W.data, DeviceArray) and not layer.trainable
        np.testing.assert_allclose(host(layer.forward(b.asarray(X))), expected, **TIGHT)
    with gd.use_backend("numpy"):
        layer = gd.pca_layer(dev, dtype=np.float64)
        np.testing.assert_allclose(layer.forward(X), expected, **TIGHT)


def train_autoencoder(backend: str, X: np.ndarray, epochs: int = 2) -> tuple[gd.Autoencoder, Any]:
    """(model, history) of a small tanh autoencoder trained in float64 on ``backend`` (seed 0), its data
    given as that backend's arrays."""
    with gd.use_backend(backend) as b:
        gd.seed(0)
        model = gd.Autoencoder(X.shape[1], 2, hidden=(4,), activation="tanh", dtype=np.float64)
        Xb = b.asarray(X)
        history = gd.fit(model, gd.MSELoss(), gd.Adam(model.parameters(), lr=1e-2), Xb, Xb, epochs=epochs,
                         batch_size=8, progress=False)
    return model, history


def test_autoencoder_on_device_matches_numpy(rng, tmp_path):
    X = spread(rng) / 4
    dev, dev_history = train_autoencoder("cudasim", X)
    ref, ref_history = train_autoencoder("numpy", X)
    np.testing.assert_allclose(dev_history["loss"], ref_history["loss"], rtol=1e-10)
    assert dev_history["loss"][-1] < dev_history["loss"][0]
    dev_state, ref_state = dev.state_dict(), ref.state_dict()
    assert dev_state.keys() == ref_state.keys()
    for name in ref_state:
        np.testing.assert_allclose(dev_state[name], ref_state[name], rtol=1e-10, atol=1e-12, err_msg=name)

    Xd = xp.asarray(X)
    z = dev.encode(Xd)
    assert isinstance(z, DeviceArray) and z.shape == (40, 2)
    np.testing.assert_allclose(host(z), ref.encode(X), rtol=1e-10, atol=1e-12)
    reconstruction = dev.decode(z)
    assert isinstance(reconstruction, DeviceArray)
    np.testing.assert_allclose(host(reconstruction), ref.decode(ref.encode(X)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gd.predict(dev, Xd), host(reconstruction), rtol=1e-12, atol=1e-14)

    with gd.use_backend("cudasim"):
        gd.save_checkpoint(tmp_path / "ae.npz", dev)
        loaded = gd.load_checkpoint(tmp_path / "ae.npz").model
    assert isinstance(loaded, gd.Autoencoder) and loaded.config() == dev.config()
    np.testing.assert_array_equal(host(loaded.encode(Xd)), host(z))


@pytest.mark.parametrize("target", ["cudasim", "numpy"])
def test_encoder_layers_of_a_device_autoencoder(rng, target):
    X = spread(rng) / 4
    model, _ = train_autoencoder("cudasim", X, epochs=1)
    expected = host(model.encode(xp.asarray(X)))
    with gd.use_backend(target) as b:
        layers = gd.encoder_layers(model)
        x = b.asarray(X)
        for layer in layers:
            assert not layer.trainable and b.is_array(layer.W.data)
            x = layer.forward(x)
    np.testing.assert_allclose(host(x), expected, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- host syncs


@pytest.mark.parametrize("shape, solver, syncs", [((40, 6), "full", 2), ((60, 6), "covariance_eigh", 3),
                                                  ((40, 6), "randomized", 3)])
def test_pca_fit_syncs(rng, shape, solver, syncs):
    """``PCA(3).fit`` reads back a fixed few times: the default solver (full at 40 x 6, covariance_eigh at
    60 x 6) and randomized; ``transform`` once."""
    Xd = xp.asarray(spread(rng, *shape))
    kw = {"svd_solver": "randomized", "random_state": 0} if solver == "randomized" else {}
    with gd.use_backend("cudasim"), SYNCS.counting() as counted:
        pca = gd.PCA(3, **kw).fit(Xd)
    assert pca._fit_svd_solver == solver
    assert counted.count == syncs, dict(counted.where)
    with SYNCS.counting() as counted:
        pca.transform(Xd)
    assert counted.count == 1, dict(counted.where)  # the check that the projection is finite


def test_autoencoder_fit_syncs_once_per_step(rng):
    X = spread(rng) / 4  # 40 rows in batches of 8: 5 steps per epoch
    with SYNCS.counting() as one:
        train_autoencoder("cudasim", X, epochs=1)
    with SYNCS.counting() as three:
        train_autoencoder("cudasim", X, epochs=3)
    assert (three.count - one.count) / 10 == 1, dict(three.where)
