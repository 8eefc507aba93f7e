"""Training on top of nn and optim: fit, evaluate, predict, early stopping, history, progress output."""

from .loop import DeviceMemoryError, EarlyStopping, History, NonFiniteError, evaluate, fit, predict

__all__ = ["DeviceMemoryError", "EarlyStopping", "History", "NonFiniteError", "evaluate", "fit", "predict"]
