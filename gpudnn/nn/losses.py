"""Losses: each returns its value and the gradient w.r.t. its input together (one fused kernel).

``loss(pred, target)`` returns ``(float, grad)``. ``forward_backward`` returns the value as a
0-d backend array instead, so a training loop on a GPU need not wait for it every step.
The gradient array is a workspace reused by the next call: copy it to keep it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks
from ..backend import get_backend
from ..registry import Registered
from .workspace import Workspace


class Loss(Registered, family="loss"):
    classification = False

    def __init__(self) -> None:
        self.backend = get_backend()
        self.ws = Workspace()

    def __call__(self, pred: Any, target: Any) -> tuple[float, Any]:
        value, grad = self.forward_backward(pred, target)
        return float(value), grad

    def forward_backward(self, pred: Any, target: Any, *, checked: bool = False) -> tuple[Any, Any]:
        """``(loss, grad)``, the loss a 0-d backend array. ``checked=True``: the targets were validated
        already (``check_targets``, as fit does once), so device targets are not read back to check them."""
        raise NotImplementedError

    @staticmethod
    def _like(pred: Any, target: Any) -> Any:
        """``target`` viewed in the shape of ``pred`` (one target per prediction)."""
        if getattr(target, "size", None) != pred.size:
            raise ValueError(f"targets must hold one value per prediction, shape {tuple(pred.shape)}; "
                             f"got shape {tuple(getattr(target, 'shape', ()))}")
        return target.reshape(pred.shape)

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        """Validate host targets for a model with ``n_outputs`` outputs; return them in the dtype the loss takes.
        Errors call the targets ``name``."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


def _target_matrix(y: np.ndarray, n_outputs: int | None, name: str) -> np.ndarray:
    """Real-valued targets as a (samples, outputs) float64 matrix, checked for width and finiteness."""
    y = np.asarray(y)
    return checks.features(name, y.reshape(len(y), -1) if y.ndim == 1 else y, width=n_outputs, dtype=np.float64,
                           columns="target columns")


class SoftmaxCrossEntropy(Loss):
    """Mean over the batch of ``-sum_j t_j log softmax(logits)_j`` with integer labels, where
    ``t = (1 - label_smoothing) * onehot(label) + label_smoothing / k``; grad = (softmax - t) / n."""

    classification = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = checks.real("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True)

    def forward_backward(self, logits: Any, labels: Any, *, checked: bool = False) -> tuple[Any, Any]:
        b = self.backend
        grad = self.ws.get(b, "grad", tuple(logits.shape), logits.dtype)
        return b.softmax_xent(logits, labels, self.label_smoothing, dlogits_out=grad, labels_checked=checked)

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        if np.ndim(y) != 1:
            raise ValueError(f"{name} must be a 1-D array of integer class labels, got shape {np.shape(y)}")
        return checks.labels(name, y, n_classes=n_outputs)

    def config(self) -> dict[str, Any]:
        return {"type": "SoftmaxCrossEntropy", "label_smoothing": self.label_smoothing}


class BinaryCrossEntropy(Loss):
    """Mean over all elements of ``max(x, 0) - x t + log(1 + exp(-|x|))`` on logits x and targets
    t in [0, 1]; grad = (sigmoid(x) - t) / N. Only ``from_logits=True`` is offered: it is the stable form."""

    classification = True

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        if not from_logits:
            raise ValueError("BinaryCrossEntropy takes logits (from_logits=True): apply no sigmoid before it; "
                             "probabilities lose precision near 0 and 1")
        self.from_logits = True

    def forward_backward(self, logits: Any, targets: Any, *, checked: bool = False) -> tuple[Any, Any]:
        b = self.backend
        grad = self.ws.get(b, "grad", tuple(logits.shape), logits.dtype)
        return b.bce_logits(logits, self._like(logits, targets), grad_out=grad, targets_checked=checked)

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        y = _target_matrix(y, n_outputs, name)
        if np.any((y < 0) | (y > 1)):
            raise ValueError(f"{name} must hold binary targets in [0, 1]")
        return y


class MSELoss(Loss):
    """Mean over all elements of ``(pred - target)^2``; grad = 2 (pred - target) / N."""

    def forward_backward(self, pred: Any, target: Any, *, checked: bool = False) -> tuple[Any, Any]:
        b = self.backend
        grad = self.ws.get(b, "grad", tuple(pred.shape), pred.dtype)
        return b.mse(pred, self._like(pred, target), grad_out=grad)

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        return _target_matrix(y, n_outputs, name)

