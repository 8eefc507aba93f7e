"""``MLPClassifier`` and ``MLPRegressor``: gpudnn networks as scikit-learn estimators.

Both take scikit-learn's ``MLPClassifier`` parameters where the meaning is the same
(``hidden_layer_sizes``, ``activation``, ``solver`` "adam"/"sgd", ``alpha``, ``batch_size``,
``learning_rate_init``, ``max_iter``, ``shuffle``, ``random_state``, ``tol``, ``verbose``,
``momentum``, ``beta_1``, ``beta_2``, ``epsilon``, ``early_stopping``, ``validation_fraction``,
``n_iter_no_change``) and add gpudnn's: ``activation`` may be any of the nine gpudnn activations,
``dropout`` after each hidden layer, ``norm`` ("none", "layer", "batch"), ``optimizer`` (any gpudnn
optimizer by name, overriding ``solver``), ``l1``, ``weight_decay`` (decoupled) and ``dtype``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..nn.losses import Loss, MSELoss, SoftmaxCrossEntropy
from .base import BaseMLP


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class MLPClassifier(ClassifierMixin, BaseMLP):
    """A softmax classifier over any labels scikit-learn accepts (strings, non-contiguous integers),
    binary or multiclass; ``classes_`` holds them in sorted order."""

    def _loss(self) -> Loss:
        return SoftmaxCrossEntropy()

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _encode_targets(self, y: Any, first: bool, classes: Any = None) -> np.ndarray:
        check_classification_targets(y)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim != 1:
            raise ValueError(f"MLPClassifier takes one label per sample (y of shape (n_samples,)), got y of shape "
                             f"{y.shape}; multilabel targets are not supported")
        if first:
            self._encoder = LabelEncoder().fit(y if classes is None else np.asarray(classes))
            self.classes_ = self._encoder.classes_
            if len(self.classes_) < 2:
                raise ValueError(f"MLPClassifier needs samples of at least 2 classes in y; got only one class: "
                                 f"{self.classes_.tolist()}")
        unseen = np.setdiff1d(y, self.classes_)
        if unseen.size:
            raise ValueError(f"y holds labels {unseen.tolist()} that are not in classes_ {self.classes_.tolist()}")
        return self._encoder.transform(y).astype(np.int64)

    def fit(self, X: Any, y: Any) -> MLPClassifier:
        """Train on X (n_samples, n_features) and labels y (n_samples,)."""
        return super().fit(X, y)

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> MLPClassifier:
        """One epoch over (X, y); the first call builds the network, and needs ``classes`` (every label
        that will ever be seen)."""
        if not hasattr(self, "model_") and classes is None:
            raise ValueError("the first call to partial_fit needs classes= (all the labels the data will have)")
        return self._partial_fit(X, y, classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        return _softmax(self._outputs(X).astype(np.float64))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        z = self._outputs(X).astype(np.float64)
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable label of each sample."""
        outputs = self._outputs(X)
        return self.classes_[np.argmax(outputs, axis=1)]

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class MLPRegressor(RegressorMixin, BaseMLP):
    """A network with a linear output trained on the mean squared error; y of shape (n_samples,) or
    (n_samples, n_outputs) (multi-output), and ``predict`` returns the same shape."""

    def _loss(self) -> Loss:
        return MSELoss()

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def _encode_targets(self, y: Any, first: bool, classes: Any = None) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if type_of_target(y) not in ("continuous", "continuous-multioutput", "binary", "multiclass",
                                     "multiclass-multioutput"):
            raise ValueError(f"MLPRegressor needs real-valued targets, got {type_of_target(y)!r}")
        width = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self.n_outputs_, self._flat = width, y.ndim == 1
        elif width != self.n_outputs_:
            raise ValueError(f"y has {width} target columns, but the model was fitted with {self.n_outputs_}")
        return y.reshape(len(y), width)

    def partial_fit(self, X: Any, y: Any) -> MLPRegressor:
        """One epoch over (X, y); the first call builds the network."""
        return self._partial_fit(X, y)

    def predict(self, X: Any) -> np.ndarray:
        """Predictions (n_samples,) for a 1-D fit, else (n_samples, n_outputs)."""
        check_is_fitted(self, "model_")
        out = self._outputs(X).astype(np.float64)
        return out.ravel() if self._flat else out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
