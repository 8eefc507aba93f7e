"""Dimensionality reduction: PCA (scikit-learn's interface, on the Backend) and autoencoders."""

from .autoencoder import Autoencoder
from .pca import PCA
from .stages import encoder_layers, pca_layer

__all__ = ["PCA", "Autoencoder", "encoder_layers", "pca_layer"]
