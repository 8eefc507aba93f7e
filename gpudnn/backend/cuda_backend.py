"""GPU backends: the fused ops run as numba.cuda kernels.

``CupyBackend`` holds CuPy arrays on an NVIDIA GPU (cuBLAS GEMMs through CuPy).
``SimulatorBackend`` runs the very same dispatch path (launch grids, argument order, output
allocation) on NumPy arrays through numba-cuda's CPU simulator; it exists so CI without a GPU
exercises the code a GPU runs, and is only available with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import precision, standin
from .base import Backend


class CudaBackend(Backend):
    kernel_impl = "cuda"


class CupyBackend(CudaBackend):
    name = "cupy"

    def __init__(self, seed: int | None = None) -> None:
        import cupy

        super().__init__(cupy, seed)
        precision.apply_to_cupy()

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a) if isinstance(a, self.xp.ndarray) else np.asarray(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def free_memory(self) -> None:
        self.synchronize()
        self.xp.get_default_memory_pool().free_all_blocks()
        self.xp.get_default_pinned_memory_pool().free_all_blocks()

    def is_out_of_memory(self, exc: BaseException) -> bool:
        return isinstance(exc, (MemoryError, self.xp.cuda.memory.OutOfMemoryError)) or \
            "CUDA_ERROR_OUT_OF_MEMORY" in str(exc) or "cudaErrorMemoryAllocation" in str(exc)


class SimulatorBackend(CudaBackend):
    """The CUDA dispatch path on the CPU, its arrays the strict CuPy stand-in (see standin): host code
    that treats a device array as a host array fails here as it would on a GPU, and every read back
    to the host is counted (``standin.SYNCS``)."""

    name = "cudasim"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(standin.xp, seed)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.synchronize()
