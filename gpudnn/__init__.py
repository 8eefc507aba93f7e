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

__version__ = "0.1.0"

__all__ = [
    "Backend", "BackendUnavailableError", "get_backend", "seed", "selection_reason", "set_backend",
    "use_backend", "__version__",
]
