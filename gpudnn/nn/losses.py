"""Losses: each returns its value and the gradient w.r.t. its input together (one fused kernel).

``loss(pred, target)`` returns ``(float, grad)``. ``forward_backward`` returns the value as a
0-d backend array instead, so a training loop on a GPU need not wait for it every step, and a
classification loss also counts the batch's correct predictions where asked (``hits_out``).
The value and the gradient are workspaces reused by the next call: copy them to keep them.

Targets are checked on the host (``check_targets``, with messages that point at the bad value) or,
for device targets, probed on the device (``device_targets``): a fit on device data reads back one
flag for its validation instead of copying the data to the host and back.
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

    def forward_backward(self, pred: Any, target: Any, *, checked: bool = False,
                         hits_out: Any = None) -> tuple[Any, Any]:
        """``(loss, grad)``, the loss a 0-d backend array. ``checked=True``: the targets were validated
        already (``check_targets``, as fit does once), so device targets are not read back to check them.
        ``hits_out``: a (1,) int64 or float64 backend array that receives the number of samples predicted
        right (classification losses only)."""
        raise NotImplementedError

    def _outputs(self, pred: Any) -> tuple[Any, Any]:
        """Where the kernel writes: the loss (0-d) and the gradient (like pred), workspaces of this loss."""
        b = self.backend
        return self.ws.get(b, "loss", (), pred.dtype), self.ws.get(b, "grad", tuple(pred.shape), pred.dtype)

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

    def device_targets(self, y: Any, n_outputs: int | None, dtype: Any, name: str = "y") -> tuple[Any, Any]:
        """Device targets in the form the loss takes (as ``check_targets`` gives them, floats in ``dtype``),
        and a 0-d device bool that is true when their values pass ``check_targets`` (read it back before
        use; where it is false, ``check_targets`` on a host copy says why). Shapes and dtypes are checked
        here, without reading the data."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


def _target_matrix(y: np.ndarray, n_outputs: int | None, name: str) -> np.ndarray:
    """Real-valued targets as a (samples, outputs) float64 matrix, checked for width and finiteness."""
    y = np.asarray(y)
    return checks.features(name, y.reshape(len(y), -1) if y.ndim == 1 else y, width=n_outputs, dtype=np.float64,
                           columns="target columns")


def _device_target_matrix(xp: Any, y: Any, n_outputs: int | None, dtype: Any, name: str) -> tuple[Any, Any]:
    """Device targets as a (samples, outputs) matrix of ``dtype``, and whether they are all finite (0-d)."""
    y = y.reshape(len(y), -1) if y.ndim == 1 else y
    checks.feature_shape(name, y, width=n_outputs, columns="target columns")
    y = xp.ascontiguousarray(y.astype(dtype, copy=False))
    return y, xp.isfinite(y).all()


class SoftmaxCrossEntropy(Loss):
    """Mean over the batch of ``-sum_j t_j log softmax(logits)_j`` with integer labels, where
    ``t = (1 - label_smoothing) * onehot(label) + label_smoothing / k``; grad = (softmax - t) / n.
    A prediction is right when its largest logit is at the label (the first largest, as argmax)."""

    classification = True

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = checks.real("label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True)

    def forward_backward(self, logits: Any, labels: Any, *, checked: bool = False,
                         hits_out: Any = None) -> tuple[Any, Any]:
        loss, grad = self._outputs(logits)
        return self.backend.softmax_xent(logits, labels, self.label_smoothing, dlogits_out=grad, labels_checked=checked,
                                         loss_out=loss, hits_out=hits_out)

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        if np.ndim(y) != 1:
            raise ValueError(f"{name} must be a 1-D array of integer class labels, got shape {np.shape(y)}")
        return checks.labels(name, y, n_classes=n_outputs)

    def device_targets(self, y: Any, n_outputs: int | None, dtype: Any, name: str = "y") -> tuple[Any, Any]:
        if y.ndim != 1:
            raise ValueError(f"{name} must be a 1-D array of integer class labels, got shape {tuple(y.shape)}")
        xp = self.backend.xp
        if y.dtype.kind == "f":
            whole = (xp.isfinite(y) & (y == xp.round(y)) & (xp.abs(y) < 2**53)).all()
        elif y.dtype.kind in "iub":
            whole = None
        else:
            raise TypeError(f"{name} must be integers (class labels), got dtype {y.dtype}")
        labels = xp.ascontiguousarray(y.astype(np.int64))
        ok = (labels >= 0).all() if n_outputs is None else ((labels >= 0) & (labels < n_outputs)).all()
        return labels, ok if whole is None else ok & whole

    def config(self) -> dict[str, Any]:
        return {"type": "SoftmaxCrossEntropy", "label_smoothing": self.label_smoothing}


class BinaryCrossEntropy(Loss):
    """Mean over all elements of ``max(x, 0) - x t + log(1 + exp(-|x|))`` on logits x and targets
    t in [0, 1]; grad = (sigmoid(x) - t) / N. Only ``from_logits=True`` is offered: it is the stable form.
    A prediction is right when every output is on the side of 0 that its target is of 0.5."""

    classification = True

    def __init__(self, from_logits: bool = True) -> None:
        super().__init__()
        if not from_logits:
            raise ValueError("BinaryCrossEntropy takes logits (from_logits=True): apply no sigmoid before it; "
                             "probabilities lose precision near 0 and 1")
        self.from_logits = True

    def forward_backward(self, logits: Any, targets: Any, *, checked: bool = False,
                         hits_out: Any = None) -> tuple[Any, Any]:
        targets = self._like(logits, targets)
        if hits_out is not None:
            self._count_hits(logits, targets, hits_out)
        loss, grad = self._outputs(logits)
        return self.backend.bce_logits(logits, targets, grad_out=grad, targets_checked=checked, loss_out=loss)

    def _count_hits(self, logits: Any, targets: Any, hits_out: Any) -> None:
        """hits_out[0] = the rows whose every logit is > 0 exactly where its target is > 0.5 (array ops into
        workspaces: nothing allocated)."""
        b, xp, ws = self.backend, self.backend.xp, self.ws
        predicted = xp.greater(logits, 0, out=ws.get(b, "predicted", tuple(logits.shape), np.bool_))
        right = xp.equal(predicted, xp.greater(targets, 0.5, out=ws.get(b, "true", tuple(logits.shape), np.bool_)),
                         out=predicted)
        rows = right.all(axis=1, out=ws.get(b, "rows right", (logits.shape[0],), np.bool_))
        xp.sum(rows, dtype=hits_out.dtype, out=hits_out.reshape(()))

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        y = _target_matrix(y, n_outputs, name)
        if np.any((y < 0) | (y > 1)):
            raise ValueError(f"{name} must hold binary targets in [0, 1]")
        return y

    def device_targets(self, y: Any, n_outputs: int | None, dtype: Any, name: str = "y") -> tuple[Any, Any]:
        y, finite = _device_target_matrix(self.backend.xp, y, n_outputs, dtype, name)
        return y, finite & ((y >= 0) & (y <= 1)).all()


class MSELoss(Loss):
    """Mean over all elements of ``(pred - target)^2``; grad = 2 (pred - target) / N."""

    def forward_backward(self, pred: Any, target: Any, *, checked: bool = False,
                         hits_out: Any = None) -> tuple[Any, Any]:
        if hits_out is not None:
            raise ValueError("MSELoss is not a classification loss: it counts no hits (hits_out must be None)")
        loss, grad = self._outputs(pred)
        return self.backend.mse(pred, self._like(pred, target), grad_out=grad, loss_out=loss)

    def check_targets(self, y: np.ndarray, n_outputs: int | None, name: str = "y") -> np.ndarray:
        return _target_matrix(y, n_outputs, name)

    def device_targets(self, y: Any, n_outputs: int | None, dtype: Any, name: str = "y") -> tuple[Any, Any]:
        return _device_target_matrix(self.backend.xp, y, n_outputs, dtype, name)
