"""Backends: one object per array library, and the choice of the current one."""

from .base import DEFAULT_DTYPE, Backend
from .select import (
    KINDS,
    BackendUnavailableError,
    backend,
    cupy_status,
    get_backend,
    seed,
    selection_reason,
    set_backend,
    use_backend,
)

__all__ = [
    "DEFAULT_DTYPE", "KINDS", "Backend", "BackendUnavailableError", "backend", "cupy_status",
    "get_backend", "seed", "selection_reason", "set_backend", "use_backend",
]
