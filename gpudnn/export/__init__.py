"""gpudnn models for other runtimes: ONNX graphs, and weights exchanged with PyTorch (safetensors)."""

from .onnx import export_onnx, to_onnx
from .torch_weights import (
    load_safetensors,
    load_torch_weights,
    save_safetensors,
    to_torch,
    torch_layout,
    torch_state_dict,
)

__all__ = ["export_onnx", "load_safetensors", "load_torch_weights", "save_safetensors", "to_onnx", "to_torch",
           "torch_layout", "torch_state_dict"]
