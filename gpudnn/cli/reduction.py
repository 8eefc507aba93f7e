"""`--reduce`: a dimensionality reduction fitted on the training rows only, placed as the frozen head of the
classifier (so checkpoints, `evaluate` and `predict` apply it to raw features)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backend import get_backend
from ..decomposition import PCA, Autoencoder, encoder_layers, pca_layer
from ..nn.layers import Layer
from ..nn.losses import MSELoss
from ..optim.optimizers import Adam
from ..training import fit, predict

KINDS = ("none", "pca", "pca-whiten", "autoencoder")


@dataclass(frozen=True)
class Reduction:
    """What `--reduce` asked for: ``kind`` and ``size`` (components, or a variance fraction for PCA)."""

    kind: str
    size: int | float | None = None

    def __str__(self) -> str:
        return self.kind if self.size is None else f"{self.kind}:{self.size}"


def parse_reduction(text: str) -> Reduction:
    """argparse type: none | pca:K | pca:0.95 | pca-whiten:K | autoencoder:K."""
    kind, _, size_text = text.strip().lower().partition(":")
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"must be one of none, pca:K, pca:FRACTION, pca-whiten:K, autoencoder:K; "
                                         f"got {text!r}")
    if kind == "none":
        if size_text:
            raise argparse.ArgumentTypeError(f"none takes no size, got {text!r}")
        return Reduction("none")
    try:
        size: int | float = int(size_text) if size_text.isdigit() else float(size_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{kind} needs a size, as in {kind}:16, got {text!r}") from None
    if isinstance(size, int) and size >= 1:
        return Reduction(kind, size)
    if kind != "autoencoder" and isinstance(size, float) and 0 < size < 1:
        return Reduction(kind, size)
    wanted = "a positive integer" if kind == "autoencoder" else "a positive integer or a fraction in (0, 1)"
    raise argparse.ArgumentTypeError(f"the size of {kind} must be {wanted}, got {text!r}")


def reduction_list(text: str) -> list[Reduction]:
    """argparse type: comma-separated reductions, "none,pca:16,autoencoder:16"."""
    return [parse_reduction(part) for part in text.split(",")]


def fit_reduction(reduction: Reduction, X_fit: np.ndarray, X_val: np.ndarray | None, *, seed: int,
                  epochs: int = 40, hidden: Sequence[int] = (128,), batch_size: int = 64,
                  quiet: bool = False) -> tuple[list[Layer], dict[str, Any]]:
    """The frozen head layers of ``reduction`` fitted on the training rows ``X_fit`` (standardised), and a
    JSON-able report. ``X_val`` (held-out training rows) only measures an autoencoder's reconstruction."""
    n_features = X_fit.shape[1]
    report: dict[str, Any] = {"spec": str(reduction), "kind": reduction.kind, "input_features": n_features,
                              "fitted_on": len(X_fit)}
    if reduction.kind == "autoencoder":
        if reduction.size >= n_features:
            raise ValueError(f"--reduce {reduction}: the latent size must be below the {n_features} features")
        model = Autoencoder(n_features, int(reduction.size), list(hidden))
        history = fit(model, MSELoss(), Adam(model.parameters(), lr=2e-3), X_fit, X_fit, epochs=epochs,
                      batch_size=batch_size, validation_data=None if X_val is None else (X_val, X_val),
                      progress=not quiet)
        report.update(components=int(reduction.size), hidden=list(hidden), epochs=epochs,
                      train_mse=float(np.mean((predict(model, X_fit) - X_fit) ** 2)),
                      val_mse=None if X_val is None else float(np.mean((predict(model, X_val) - X_val) ** 2)),
                      final_loss=history.epochs[-1]["loss"] if history.epochs else None)
        return encoder_layers(model), report
    if isinstance(reduction.size, int) and reduction.size > min(X_fit.shape):
        raise ValueError(f"--reduce {reduction}: at most {min(X_fit.shape)} components for {X_fit.shape[0]} training "
                         f"rows of {n_features} features")
    b = get_backend()
    pca = PCA(reduction.size, whiten=reduction.kind == "pca-whiten", random_state=seed).fit(b.asarray(X_fit))
    ratio = b.to_numpy(pca.explained_variance_ratio_)
    report.update(components=int(pca.n_components_), variance_explained=float(ratio.sum()),
                  whiten=bool(pca.whiten))
    return [pca_layer(pca)], report


def describe(report: dict[str, Any]) -> str:
    """One line on a fitted reduction, as `gpudnn train` prints it."""
    head = f"reduction {report['spec']}: {report['input_features']} -> {report['components']} features, fitted on " \
           f"{report['fitted_on']} training rows"
    if report["kind"] == "autoencoder":
        val = "" if report["val_mse"] is None else f", validation {report['val_mse']:.4f}"
        return (f"{head}; autoencoder {'-'.join(map(str, [report['input_features'], *report['hidden']]))}-"
                f"{report['components']} pretrained {report['epochs']} epochs, reconstruction MSE train "
                f"{report['train_mse']:.4f}{val} (standardised units)")
    return f"{head}; {report['variance_explained']:.1%} of the variance explained"
