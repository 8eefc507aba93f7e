"""Fused kernels: arrays in, arrays out.

One op family per module. Each op comes three ways with one signature: ``<op>_ref`` (plain NumPy/CuPy
maths, the oracle), ``<op>_cpu`` (Numba ``@njit``) and ``<op>_cuda`` (``numba.cuda``, launched on
CuPy's current stream), built by ``_common.three_ways`` from one validated plan; each module's
``OPS`` table names its ops. In-place ops end in ``_``. Kernel modules import numba (never a GPU
query) and are themselves imported only when an op is first used (``op``); Numba compiles each
kernel on its first call. CUDA kernels refer to ``numba.cuda`` as a module global, which is what lets
numba-cuda's simulator run them. Never imports ``gpudnn``.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._checks import check_finite_scalar
from ._common import LAUNCHES, simulator_enabled
from ._launch import launch, launch_path, use_launch_path

__all__ = ["LAUNCHES", "OP_MODULES", "check_finite_scalar", "launch", "launch_path", "op", "simulator_enabled",
           "use_launch_path"]

# Every op a Backend offers and the module whose OPS table holds it.
OP_MODULES: dict[str, str] = {
    "bias_act": "bias_act",
    "bias_act_backward": "bias_act_backward",
    "softmax_xent": "softmax_xent",
    "softmax": "softmax_xent",
    "log_softmax": "softmax_xent",
    "bce_logits": "losses",
    "mse": "losses",
    "dropout": "dropout",
    "dropout_backward": "dropout",
    "layer_norm": "layer_norm",
    "layer_norm_backward": "layer_norm",
    "batch_norm": "batch_norm",
    "batch_norm_backward": "batch_norm",
    "sgd_": "optim",
    "adam_": "optim",
    "rmsprop_": "optim",
    "arena_sums": "arena",
}


def op(name: str) -> Any:
    """The ``_common.Op`` (ref, cpu, cuda) of the op ``name``, importing its module on first use."""
    return importlib.import_module(f"{__name__}.{OP_MODULES[name]}").OPS[name]
