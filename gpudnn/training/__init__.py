"""Training on top of nn and optim: fit, evaluate, predict, early stopping, history, progress output."""

from .history import EarlyStopping, History
from .loop import DeviceMemoryError, NonFiniteError, evaluate, fit, predict

__all__ = ["DeviceMemoryError", "EarlyStopping", "History", "NonFiniteError", "evaluate", "fit", "predict"]
