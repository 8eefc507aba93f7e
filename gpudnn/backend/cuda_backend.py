"""GPU backends: the fused ops run as numba.cuda kernels.

``CupyBackend`` holds CuPy arrays on an NVIDIA GPU (cuBLAS GEMMs through CuPy).
``SimulatorBackend`` runs the very same dispatch path (launch grids, argument order, output
allocation) on NumPy arrays through numba-cuda's CPU simulator; it exists so CI without a GPU
exercises the code a GPU runs, and is only available with ``NUMBA_ENABLE_CUDASIM=1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Backend


class CudaBackend(Backend):
    kernel_impl = "cuda"


class CupyBackend(CudaBackend):
    name = "cupy"

    def __init__(self, seed: int | None = None) -> None:
        import cupy

        super().__init__(cupy, seed)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a) if isinstance(a, self.xp.ndarray) else np.asarray(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()


class SimulatorBackend(CudaBackend):
    name = "cudasim"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(np, seed)
