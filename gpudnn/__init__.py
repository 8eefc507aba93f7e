"""gpudnn: a small, readable deep-learning framework on NumPy (CPU) or CuPy (GPU) arrays.

Importing gpudnn touches no GPU and compiles no kernel; both happen on first use.
"""

import importlib.util as _importlib_util
from pathlib import Path as _Path

# gpudnn.kernels is the top-level kernels/ folder (pyproject.toml's package-dir): installed, it sits in the
# package; in a source checkout run without installing (PYTHONPATH=.), it is found beside gpudnn/.
if _importlib_util.find_spec(f"{__name__}.kernels") is None and \
        (_Path(__file__).resolve().parents[1] / "kernels" / "__init__.py").is_file():
    __path__.append(str(_Path(__file__).resolve().parents[1]))

from . import distributed as distributed  # gd.distributed.init(), is_main(), ... (mpi4py loads on init)
from .backend import (
    Backend,
    BackendUnavailableError,
    free_memory,
    get_backend,
    get_matmul_precision,
    seed,
    selection_reason,
    set_backend,
    set_matmul_precision,
    use_backend,
)
from .backend.precompile import precompile
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .decomposition import PCA, Autoencoder, encoder_layers, pca_layer
from .export import export_onnx, load_safetensors, load_torch_weights, save_safetensors
from .files import SaveError
from .nn import (
    Activation,
    BatchNorm1d,
    BinaryCrossEntropy,
    Dense,
    Dropout,
    Layer,
    LayerNorm,
    MSELoss,
    Parameter,
    Sequential,
    SoftmaxCrossEntropy,
)
from .optim import (
    SGD,
    Adam,
    AdamW,
    Constant,
    Cosine,
    Optimizer,
    RMSprop,
    StepDecay,
    WarmUp,
)
from .training import (
    DeviceMemoryError,
    EarlyStopping,
    History,
    NonFiniteError,
    evaluate,
    fit,
    predict,
)

__version__ = "0.1.0"

__all__ = [
    "Activation", "Adam", "AdamW", "Autoencoder", "Backend", "BackendUnavailableError", "BatchNorm1d",
    "BinaryCrossEntropy", "Checkpoint", "CheckpointError", "Constant", "Cosine", "Dense", "DeviceMemoryError",
    "Dropout", "EarlyStopping", "evaluate", "export_onnx", "load_safetensors", "load_torch_weights",
    "save_safetensors", "fit", "free_memory", "get_backend", "History", "Layer",
    "LayerNorm", "load_checkpoint", "MSELoss", "NonFiniteError", "Optimizer", "Parameter", "PCA",
    "precompile", "predict", "RMSprop", "SaveError", "save_checkpoint", "seed", "selection_reason", "Sequential",
    "set_backend", "SGD", "SoftmaxCrossEntropy", "StepDecay", "use_backend", "WarmUp", "__version__",
    "encoder_layers", "pca_layer",
    "get_matmul_precision", "set_matmul_precision",
]
