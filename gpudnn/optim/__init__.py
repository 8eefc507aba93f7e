"""Optimizers (one fused update over the parameter arena) and learning-rate schedules."""

from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .schedules import Constant, Cosine, Schedule, StepDecay, WarmUp

__all__ = ["SGD", "Adam", "AdamW", "Constant", "Cosine", "Optimizer", "RMSprop", "Schedule", "StepDecay", "WarmUp"]
