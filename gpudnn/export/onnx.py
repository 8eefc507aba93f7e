"""ONNX export: a gpudnn ``Sequential`` as a float32 ONNX graph with a dynamic batch dimension.

Every layer gpudnn has maps to standard ONNX operators (opset 20):

    Dense        MatMul (W is (in, out), as ONNX wants) + Add, then its activation
    Activation   identity: Identity, relu: Relu, leaky_relu: LeakyRelu(alpha), sigmoid: Sigmoid,
                 tanh: Tanh, gelu: Gelu, gelu_tanh: Gelu(approximate="tanh"), silu: x * Sigmoid(x),
                 softplus: Softplus
    Dropout      Identity (inference)
    LayerNorm    LayerNormalization(axis=-1, epsilon)
    BatchNorm1d  BatchNormalization(epsilon) with the running statistics (inference)

``softmax=True`` appends a Softmax over the outputs (probabilities instead of logits). The graph's
input is ``input`` (batch, in_features), its output ``output`` (batch, out_features). Needs the
``onnx`` package (``pip install gpudnn[onnx]``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write
from ..nn.layers import Activation, Dense, Dropout, Layer
from ..nn.normalization import BatchNorm1d, LayerNorm
from ..nn.sequential import Sequential

OPSET = 20
_SIMPLE = {"identity": "Identity", "relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softplus": "Softplus"}


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise ImportError("ONNX export needs the onnx package: pip install 'gpudnn[onnx]' "
                          "(onnx, and onnxruntime to run the exported model)") from exc
    return onnx


class _Graph:
    """Nodes and float32 initializers of the graph being built, with unique tensor names."""

    def __init__(self, onnx: Any) -> None:
        self.onnx, self.nodes, self.weights = onnx, [], []

    def constant(self, name: str, value: Any) -> str:
        array = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        self.weights.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _activation(g: _Graph, kind: str, alpha: float, x: str, prefix: str) -> str:
    if kind in _SIMPLE:
        return x if kind == "identity" else g.node(_SIMPLE[kind], [x], f"{prefix}.{kind}")
    if kind == "leaky_relu":
        return g.node("LeakyRelu", [x], f"{prefix}.leaky_relu", alpha=float(alpha))
    if kind in ("gelu", "gelu_tanh"):
        return g.node("Gelu", [x], f"{prefix}.{kind}", approximate="tanh" if kind == "gelu_tanh" else "none")
    if kind == "silu":
        return g.node("Mul", [x, g.node("Sigmoid", [x], f"{prefix}.sigmoid")], f"{prefix}.silu")
    raise ValueError(f"activation {kind!r} has no ONNX form")


def _layer(g: _Graph, layer: Layer, x: str, prefix: str, to_numpy: Any) -> str:
    if isinstance(layer, Dense):
        y = g.node("MatMul", [x, g.constant(f"{prefix}.W", to_numpy(layer.W.data))], f"{prefix}.matmul")
        if layer.b is not None:
            y = g.node("Add", [y, g.constant(f"{prefix}.b", to_numpy(layer.b.data))], f"{prefix}.add")
        return _activation(g, layer.activation, layer.alpha, y, prefix)
    if isinstance(layer, Activation):
        y = _activation(g, layer.activation, layer.alpha, x, prefix)
        return y if y != x else g.node("Identity", [x], f"{prefix}.identity")
    if isinstance(layer, Dropout):
        return g.node("Identity", [x], f"{prefix}.dropout")
    if isinstance(layer, (LayerNorm, BatchNorm1d)):
        params = [g.constant(f"{prefix}.gamma", to_numpy(layer.gamma.data)),
                  g.constant(f"{prefix}.beta", to_numpy(layer.beta.data))]
        if isinstance(layer, LayerNorm):
            return g.node("LayerNormalization", [x, *params], f"{prefix}.layer_norm", axis=-1,
                          epsilon=float(layer.eps))
        stats = [g.constant(f"{prefix}.running_mean", to_numpy(layer.running_mean)),
                 g.constant(f"{prefix}.running_var", to_numpy(layer.running_var))]
        return g.node("BatchNormalization", [x, *params, *stats], f"{prefix}.batch_norm", epsilon=float(layer.eps))
    raise ValueError(f"layer {prefix} ({type(layer).__name__}) has no ONNX export; exportable layers: Dense, "
                     "Activation, Dropout, LayerNorm, BatchNorm1d")


def to_onnx(model: Sequential, *, softmax: bool = False, name: str = "gpudnn") -> Any:
    """The ONNX ``ModelProto`` of ``model`` (float32, batch dimension named "batch"), checked by
    ``onnx.checker``."""
    onnx = _onnx()
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a gpudnn Sequential, got {type(model).__name__}")
    if model.in_features is None or model.out_features is None:
        raise ValueError("the model has no Dense or normalization layer, so its input and output widths are unknown")
    g, x = _Graph(onnx), "input"
    for i, layer in enumerate(model.layers):
        x = _layer(g, layer, x, str(i), model.backend.to_numpy)
    if softmax:
        x = g.node("Softmax", [x], "softmax", axis=-1)
    g.nodes.append(onnx.helper.make_node("Identity", [x], ["output"], name="output"))
    f32 = onnx.TensorProto.FLOAT
    graph = onnx.helper.make_graph(
        g.nodes, name, [onnx.helper.make_tensor_value_info("input", f32, ["batch", model.in_features])],
        [onnx.helper.make_tensor_value_info("output", f32, ["batch", model.out_features])], g.weights)
    proto = onnx.helper.make_model(graph, producer_name="gpudnn", opset_imports=[onnx.helper.make_opsetid("", OPSET)])
    proto.ir_version = min(proto.ir_version, 10)  # readable by runtimes a few releases old
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model: Sequential, path: str | os.PathLike, *, softmax: bool = False) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically); see ``to_onnx``. Returns the path."""
    proto = to_onnx(model, softmax=softmax)
    data = proto.SerializeToString()
    atomic_write(path, lambda f: f.write(data))
    return Path(path)
