"""`gpudnn export`: a saved model as an ONNX graph and/or PyTorch-named safetensors weights."""

from __future__ import annotations

from typing import Any

from ..checkpoint import load_checkpoint
from ..export import export_onnx, save_safetensors, torch_layout
from ..export.scaling import fold_input_scaling
from ..files import check_outputs
from .usage import UsageError


def export_job(*, model: str, onnx: str | None = None, safetensors: str | None = None, softmax: bool = False,
               no_scaling: bool = False) -> dict[str, Any]:
    """Write the checkpoint's model as ONNX (float32, dynamic batch) and/or safetensors.

    A model trained by ``gpudnn train`` expects standardized features; unless ``no_scaling``, that
    standardization is folded into the first layer, so the exported model takes raw features (as
    ``gpudnn predict`` does)."""
    if not onnx and not safetensors:
        raise UsageError("nothing to write: give --onnx OUT.onnx and/or --safetensors OUT.safetensors")
    check_outputs({"--onnx": onnx, "--safetensors": safetensors})
    ckpt = load_checkpoint(model, restore_rng=False)
    net, scaling = ckpt.model, ckpt.extra.get("standardize")
    if scaling and not no_scaling:
        net = fold_input_scaling(net, scaling["mean"], scaling["std"])
    written: dict[str, Any] = {"model": model, "scaling_folded": bool(scaling and not no_scaling)}
    if onnx:
        written["onnx"] = str(export_onnx(net, onnx, softmax=softmax))
        print(f"ONNX model written to {onnx} (input 'input' (batch, {net.in_features}), output 'output' "
              f"(batch, {net.out_features}){', softmax' if softmax else ''})")
    if safetensors:
        if softmax:
            print("note: --softmax applies to ONNX only; safetensors holds weights")
        written["safetensors"] = str(save_safetensors(net, safetensors))
        layout = ", ".join(kind for _, _, kind in torch_layout(net))
        print(f"safetensors weights written to {safetensors} (torch.nn.Sequential: {layout})")
    return written
