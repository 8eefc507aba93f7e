"""Dimensionality reduction: PCA (scikit-learn's interface, on the Backend) and autoencoders."""

from .autoencoder import Autoencoder
from .pca import PCA

__all__ = ["PCA", "Autoencoder"]
