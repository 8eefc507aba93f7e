"""Reductions as the head of a network: a fitted PCA as one frozen Dense layer, an autoencoder's encoder as
frozen copies of its layers. They are ordinary layers, so ``predict``, checkpoints, resume and export carry
them with no new layer type; ``unfreeze()`` makes them trainable (fine-tuning)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.layers import Dense, Layer
from .autoencoder import Autoencoder
from .pca import PCA


def pca_layer(pca: PCA, *, dtype: Any = None, frozen: bool = True) -> Dense:
    """``pca.transform`` as one GEMM: a Dense layer ``y = x @ W + b`` with ``W = components_.T`` (each column
    divided by sqrt(explained_variance_), clipped at eps as ``transform`` does, when whitening) and
    ``b = -mean_ @ W``, computed in float64 and stored in ``dtype`` (default: the backend's). Frozen unless
    ``frozen=False``. The layer lives on the current backend."""
    if not isinstance(pca, PCA):
        raise TypeError(f"pca must be a fitted gpudnn PCA, got {type(pca).__name__}")
    if not hasattr(pca, "components_"):
        raise ValueError("pca is not fitted yet: call pca.fit(X_train) first")
    to_numpy = pca._backend.to_numpy  # the backend the PCA was fitted on
    components = to_numpy(pca.components_)
    W = components.T.astype(np.float64)
    if pca.whiten:
        variance = to_numpy(pca.explained_variance_).astype(np.float64)
        W /= np.maximum(np.sqrt(variance), np.finfo(components.dtype).eps)
    bias = -to_numpy(pca.mean_).astype(np.float64) @ W
    layer = Dense(W.shape[0], W.shape[1], init="zeros", dtype=dtype)
    layer.W.data[...] = layer.backend.asarray(W, dtype=layer.W.data.dtype)
    layer.b.data[...] = layer.backend.asarray(bias, dtype=layer.b.data.dtype)
    return layer.freeze() if frozen else layer


def encoder_layers(autoencoder: Autoencoder, *, frozen: bool = True) -> list[Layer]:
    """Copies (configuration and weights) of a trained autoencoder's encoder layers, on the current backend,
    frozen unless ``frozen=False``; the autoencoder itself is left as it was."""
    if not isinstance(autoencoder, Autoencoder):
        raise TypeError(f"autoencoder must be a gpudnn Autoencoder, got {type(autoencoder).__name__}")
    copies = []
    for layer in autoencoder.layers[:autoencoder.n_encoder_layers]:
        copy = Layer.from_config(layer.config())
        for (_, source), (_, target) in zip(layer.named_parameters(), copy.named_parameters()):
            target.data[...] = copy.backend.asarray(layer.backend.to_numpy(source.data), dtype=target.data.dtype)
        copies.append(copy.freeze() if frozen else copy)
    return copies
