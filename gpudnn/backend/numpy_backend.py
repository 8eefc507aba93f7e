"""CPU backend: NumPy arrays, OpenBLAS/MKL GEMMs, Numba ``@njit`` fused kernels."""

from __future__ import annotations

import numpy as np

from .base import Backend


class NumpyBackend(Backend):
    name = "numpy"
    kernel_impl = "cpu"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(np, seed)
