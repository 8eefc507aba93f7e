"""Backends: one object per array library, and the choice of the current one."""

from ..kernels.activations import FROM_OUTPUT, activation_code
from ..kernels.activations import NAMES as ACTIVATION_NAMES
from .base import DEFAULT_DTYPE, Backend
from .precision import PRECISIONS, get_matmul_precision, set_matmul_precision
from .select import (
    KINDS,
    BackendUnavailableError,
    backend,
    cupy_status,
    free_memory,
    get_backend,
    seed,
    selection_reason,
    set_backend,
    use_backend,
)

__all__ = [
    "ACTIVATION_NAMES", "DEFAULT_DTYPE", "FROM_OUTPUT", "KINDS", "Backend", "BackendUnavailableError",
    "PRECISIONS", "activation_code", "backend", "cupy_status", "free_memory", "get_backend", "get_matmul_precision",
    "seed", "selection_reason", "set_backend", "set_matmul_precision", "use_backend",
]
