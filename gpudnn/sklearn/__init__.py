"""scikit-learn estimators trained by gpudnn (needs scikit-learn: ``pip install gpudnn[sklearn]``)."""

from .estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
