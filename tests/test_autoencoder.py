"""Autoencoders: structure, encode/decode, and a linear autoencoder reaching PCA's reconstruction error."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.data import load_dataset, standardize


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        gd.seed(0)
        yield b


def test_linear_autoencoder_approaches_pca():
    data = load_dataset("digits", seed=0)
    X, _, _, _ = standardize(data.X_train)
    latent = 8
    model = gd.Autoencoder(X.shape[1], latent, hidden=(), activation="identity")
    history = gd.fit(model, gd.MSELoss(), gd.Adam(model.parameters(), lr=3e-3), X, X, epochs=150, batch_size=128,
                     progress=False)
    ae_error = float(np.mean((gd.predict(model, X) - X) ** 2))
    pca = gd.PCA(latent).fit(X)
    pca_error = float(np.mean((np.asarray(pca.inverse_transform(pca.transform(X))) - X) ** 2))
    # PCA is the optimum of a linear autoencoder: it can only approach it from above.
    assert pca_error <= ae_error <= 1.05 * pca_error, (ae_error, pca_error)
    assert history["loss"][-1] < history["loss"][0] / 2


def test_encode_decode_shapes_config_and_checkpoint(tmp_path, rng):
    model = gd.Autoencoder(10, 3, hidden=(6,), activation="tanh")
    x = rng.standard_normal((4, 10)).astype(np.float32)
    z = model.encode(x)
    assert z.shape == (4, 3)
    np.testing.assert_allclose(model.decode(z), model(x), rtol=1e-6)
    gd.save_checkpoint(tmp_path / "ae.npz", model)
    loaded = gd.load_checkpoint(tmp_path / "ae.npz").model
    assert isinstance(loaded, gd.Autoencoder) and loaded.config() == model.config()
    np.testing.assert_array_equal(loaded.encode(x), z)
    with pytest.raises(ValueError, match="must be >= 1"):
        gd.Autoencoder(10, 0)
