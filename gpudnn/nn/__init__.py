"""The maths of the network on the Backend: parameters, layers, models and losses."""

from .layers import Activation, Dense, Dropout, Layer
from .losses import BinaryCrossEntropy, Loss, MSELoss, SoftmaxCrossEntropy
from .normalization import BatchNorm1d, LayerNorm
from .parameter import Parameter
from .sequential import Sequential

__all__ = ["Activation", "BatchNorm1d", "BinaryCrossEntropy", "Dense", "Dropout", "Layer", "LayerNorm", "Loss",
           "MSELoss", "Parameter", "Sequential", "SoftmaxCrossEntropy"]
