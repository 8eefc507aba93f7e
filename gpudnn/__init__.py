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
from .backend import free_memory
from .backend.precompile import precompile
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .decomposition import PCA, Autoencoder
from .nn import (Activation, BatchNorm1d, BinaryCrossEntropy, Dense, Dropout, Layer, LayerNorm, MSELoss, Parameter,
                 Sequential, SoftmaxCrossEntropy)
from .optim import SGD, Adam, AdamW, Constant, Cosine, Optimizer, RMSprop, StepDecay, WarmUp
from .training import DeviceMemoryError, EarlyStopping, History, NonFiniteError, evaluate, fit, predict

__version__ = "0.1.0"

__all__ = [
    "Activation", "Adam", "AdamW", "Autoencoder", "BatchNorm1d", "LayerNorm", "DeviceMemoryError", "PCA", "free_memory", "precompile", "Backend", "BackendUnavailableError", "BinaryCrossEntropy", "Checkpoint",
    "CheckpointError", "Constant", "Cosine", "Dense", "Dropout", "EarlyStopping", "History", "Layer", "MSELoss",
    "NonFiniteError", "Optimizer", "Parameter", "RMSprop", "SGD", "Sequential", "SoftmaxCrossEntropy", "StepDecay",
    "WarmUp", "evaluate", "fit", "get_backend", "load_checkpoint", "predict", "save_checkpoint", "seed",
    "selection_reason", "set_backend", "use_backend", "__version__",
]
