"""Matmul precision: ``set_matmul_precision("highest" | "high")``, PyTorch's names for the same choice.

"highest" (the default): float32 GEMMs compute in full float32. "high": on GPUs that have tensor
cores for it (compute capability 8.0 and up), CuPy's cuBLAS GEMMs on float32 arrays use TF32
inputs (10-bit mantissa, float32 accumulation): several times the throughput, relative error per
product around 1e-3 instead of 1e-7. Float64 and the NumPy backend are never affected.
"""

from __future__ import annotations

import sys

PRECISIONS = ("highest", "high")

_precision = "highest"


def get_matmul_precision() -> str:
    """The current matmul precision ("highest" or "high")."""
    return _precision


def set_matmul_precision(precision: str) -> None:
    """Choose the precision of float32 matrix products on the GPU (see the module docstring)."""
    global _precision
    if not isinstance(precision, str) or precision.strip().lower() not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    _precision = precision.strip().lower()
    if "cupy" in sys.modules:  # not imported: the CuPy backend applies it when it is made
        apply_to_cupy()


def apply_to_cupy() -> None:
    """Set CuPy's float32 GEMM compute type to match the current precision."""
    import numpy as np
    from cupy._core import _routines_linalg as linalg

    compute = linalg.COMPUTE_TYPE_TF32 if _precision == "high" else linalg.COMPUTE_TYPE_DEFAULT
    linalg.set_compute_type(np.float32, compute)
