"""`gpudnn pca` and `gpudnn autoencoder`: dimensionality reduction of a dataset, reported and plotted."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend as backend_module
from ..backend import get_backend
from ..data import load_dataset, standardize
from ..decomposition import PCA, Autoencoder
from ..files import check_outputs
from ..nn.losses import MSELoss
from ..optim.optimizers import Adam
from ..training import fit, predict
from .plots import check_plot_output


def _reconstructions_path(plot: str | Path) -> Path:
    """Where the autoencoder's reconstructions go, beside its latent scatter."""
    return Path(plot).with_name(Path(plot).stem + "_reconstructions.png")


def _reconstruction_mse(X: np.ndarray, X_hat: np.ndarray) -> float:
    return float(np.mean((X - X_hat) ** 2))


def pca_job(*, dataset: str = "digits", components: int = 2, whiten: bool = False, plot: str | None = None,
            seed: int = 0) -> dict[str, Any]:
    """Fit PCA on a dataset's samples; print explained variance; optionally scatter the first two components."""
    if plot:
        check_outputs({"--plot": plot})
        check_plot_output("--plot", plot)
    data = load_dataset(dataset, seed=seed)
    X = np.concatenate([data.X_train, data.X_test])
    y = np.concatenate([data.y_train, data.y_test])
    started = time.perf_counter()
    pca = PCA(components, whiten=whiten, random_state=seed)
    b = get_backend()
    Z = b.to_numpy(pca.fit_transform(b.asarray(X)))
    elapsed = time.perf_counter() - started
    ratio = b.to_numpy(pca.explained_variance_ratio_)
    print(f"PCA of {dataset}: {X.shape[0]} samples x {X.shape[1]} features -> {pca.n_components_} components "
          f"in {elapsed * 1e3:.1f} ms on {b.name}")
    for i, (r, c) in enumerate(zip(ratio, np.cumsum(ratio)), 1):
        print(f"  component {i:>3}: explained variance ratio {r:.4f}  (cumulative {c:.4f})")
    if plot:
        if Z.shape[1] < 2:
            raise ValueError("--plot needs at least 2 components")
        from .plots import scatter_2d

        scatter_2d(Z[:, :2], y, plot, f"PCA of {dataset} ({ratio[:2].sum():.1%} of variance)",
                   ("component 1", "component 2"))
        print(f"scatter written to {plot}")
    return {"dataset": dataset, "explained_variance_ratio": ratio.tolist(), "seconds": elapsed}


def autoencoder_job(*, dataset: str = "digits", latent: int = 2, hidden: Sequence[int] = (128,), epochs: int = 60,
                    lr: float = 2e-3, batch_size: int = 64, plot: str | None = None, seed: int = 0,
                    quiet: bool = False) -> dict[str, Any]:
    """Train an autoencoder with MSE and compare its test reconstruction error with PCA's at the same size."""
    if plot:
        check_outputs({"--plot": plot, "--plot (reconstructions)": _reconstructions_path(plot)})
        check_plot_output("--plot", plot)
    backend_module.seed(seed)
    data = load_dataset(dataset, seed=seed)
    X_train, X_test, mean, std = standardize(data.X_train, data.X_test)
    model = Autoencoder(X_train.shape[1], latent, list(hidden))
    history = fit(model, MSELoss(), Adam(model.parameters(), lr=lr), X_train, X_train, epochs=epochs,
                  batch_size=batch_size, validation_data=(X_test, X_test), progress=not quiet)
    b = get_backend()
    ae_mse = _reconstruction_mse(X_test, predict(model, X_test))
    pca = PCA(latent).fit(b.asarray(X_train))
    pca_mse = _reconstruction_mse(X_test, b.to_numpy(pca.inverse_transform(pca.transform(b.asarray(X_test)))))
    print(f"test reconstruction MSE (standardised units): autoencoder {ae_mse:.4f}, PCA({latent}) {pca_mse:.4f}",
          file=sys.stdout)
    if plot:
        from .plots import reconstructions, scatter_2d

        codes = b.to_numpy(model.encode(b.asarray(X_test, dtype=np.float32)))
        if latent >= 2:
            scatter_2d(codes[:, :2], data.y_test, plot, f"autoencoder latent space of {dataset}", ("z1", "z2"))
            print(f"latent scatter written to {plot}")
        side = int(round(np.sqrt(X_test.shape[1])))
        shape = (side, side) if side * side == X_test.shape[1] else None
        recon_path = _reconstructions_path(plot)
        originals = data.X_test[:10]
        recon = predict(model, X_test[:10]) * std + mean
        reconstructions(originals, recon, recon_path, f"autoencoder (latent {latent}) reconstructions", shape)
        print(f"reconstructions written to {recon_path}")
    return {"dataset": dataset, "autoencoder_mse": ae_mse, "pca_mse": pca_mse, "history": history.epochs}

