"""gpudnn: a small, readable deep-learning framework on NumPy (CPU) or CuPy (GPU) arrays.

Importing gpudnn touches no GPU and compiles no kernel; both happen on first use.
"""

from .backend import (
    Backend,
    BackendUnavailableError,
    get_backend,
    seed,
    selection_reason,
    set_backend,
    use_backend,
)
from .autoencoder import Autoencoder
from .backend import free_memory
from .io import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .layers import Activation, Dense, Dropout, Layer
from .losses import BinaryCrossEntropy, MSELoss, SoftmaxCrossEntropy
from .model import Sequential
from .normalization import BatchNorm1d, LayerNorm
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop
from .parameter import Parameter
from .pca import PCA
from .precompile import precompile
from .schedules import Constant, Cosine, StepDecay, WarmUp
from .train import DeviceMemoryError, EarlyStopping, History, NonFiniteError, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Activation", "Adam", "AdamW", "Autoencoder", "BatchNorm1d", "LayerNorm", "DeviceMemoryError", "PCA", "free_memory", "precompile", "Backend", "BackendUnavailableError", "BinaryCrossEntropy", "Checkpoint",
    "CheckpointError", "Constant", "Cosine", "Dense", "Dropout", "EarlyStopping", "History", "Layer", "MSELoss",
    "NonFiniteError", "Optimizer", "Parameter", "RMSprop", "SGD", "Sequential", "SoftmaxCrossEntropy", "StepDecay",
    "WarmUp", "evaluate", "fit", "get_backend", "load_checkpoint", "predict", "save_checkpoint", "seed",
    "selection_reason", "set_backend", "use_backend", "__version__",
]
