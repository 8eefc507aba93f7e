"""Backends: one object per array library, and the choice of the current one."""

from ..kernels._common import check_finite_scalar
from ..kernels.activations import FROM_OUTPUT, activation_code
from ..kernels.activations import NAMES as ACTIVATION_NAMES
from .base import DEFAULT_DTYPE, Backend
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
    "ACTIVATION_NAMES", "FROM_OUTPUT", "activation_code", "check_finite_scalar", "DEFAULT_DTYPE", "KINDS", "Backend", "BackendUnavailableError", "backend", "cupy_status", "free_memory",
    "get_backend", "seed", "selection_reason", "set_backend", "use_backend",
]
