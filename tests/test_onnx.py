"""ONNX export: every layer and activation, run by onnxruntime, equal to gd.predict; the CLI command."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.backend import ACTIVATION_NAMES
from gpudnn.cli import main
from gpudnn.nn import Activation, BatchNorm1d, Dense, Dropout, Layer, LayerNorm, Sequential

onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'gpudnn[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'gpudnn[onnx]')")


def _run(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0]


def _every_layer(rng) -> Sequential:
    """Dense with each fused activation, an Activation layer of each, both norms, Dropout."""
    layers = [Dense(5, 8, "relu"), LayerNorm(8)]
    for name in ACTIVATION_NAMES.values():
        layers += [Dense(8, 8, name, alpha=0.2), Activation(name, alpha=0.05)]
    layers += [Dense(8, 8, bias=False), BatchNorm1d(8), Dropout(0.3), Dense(8, 3)]
    model = Sequential(*layers)
    for layer in model.layers:  # non-trivial norm parameters and running statistics
        if isinstance(layer, (LayerNorm, BatchNorm1d)):
            layer.gamma.data[...] = rng.uniform(0.5, 1.5, 8)
            layer.beta.data[...] = rng.normal(size=8)
        if isinstance(layer, BatchNorm1d):
            layer.running_mean[...] = rng.normal(size=8)
            layer.running_var[...] = rng.uniform(0.5, 2.0, 8)
    return model


def test_every_layer_and_activation_runs_in_onnxruntime(tmp_path, rng):
    model = _every_layer(rng)
    path = gd.export_onnx(model, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    ops = {node.op_type for node in proto.graph.node}
    assert {"MatMul", "Add", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu", "Mul", "Softplus", "LayerNormalization",
            "BatchNormalization"} <= ops
    for batch in (1, 33):  # the batch dimension is dynamic
        X = rng.normal(size=(batch, 5)).astype(np.float32)
        np.testing.assert_allclose(_run(path, X), gd.predict(model, X), rtol=1e-5, atol=1e-5)


def test_softmax_output_and_float64_models(tmp_path, rng):
    model = Sequential(Dense(4, 6, "tanh", dtype="float64"), Dense(6, 3, dtype="float64"))
    path = gd.export_onnx(model, tmp_path / "p.onnx", softmax=True)
    X = rng.normal(size=(20, 4))
    logits = gd.predict(model, X)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(_run(path, X.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)


class _Doubler(Layer):
    def forward(self, x, train=False):
        return 2 * x

    def config(self):
        return {"type": "_Doubler"}


def test_unsupported_layer_and_missing_onnx_are_named(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"layer 1 \(_Doubler\) has no ONNX export"):
        gd.export_onnx(Sequential(Dense(3, 3), _Doubler()), tmp_path / "x.onnx")
    with pytest.raises(TypeError, match="gpudnn Sequential"):
        gd.export_onnx(Dense(3, 3), tmp_path / "x.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'gpudnn\[onnx\]'"):
        gd.export_onnx(Sequential(Dense(3, 3)), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_folds_the_training_standardization(tmp_path, rng, capsys):
    model = Sequential(Dense(4, 8, "gelu"), BatchNorm1d(8), Dense(8, 3))
    mean, std = rng.normal(size=4), rng.uniform(0.5, 2.0, 4)
    gd.save_checkpoint(tmp_path / "c.npz", model, extra={"standardize": {"mean": mean.tolist(), "std": std.tolist()}})
    out, st = tmp_path / "c.onnx", tmp_path / "c.safetensors"
    assert main(["export", "--model", str(tmp_path / "c.npz"), "--onnx", str(out), "--safetensors", str(st)]) == 0
    assert "ONNX model written" in capsys.readouterr().out
    X = rng.normal(size=(9, 4)).astype(np.float32)
    expected = gd.predict(model, ((X - mean) / std).astype(np.float32))
    np.testing.assert_allclose(_run(out, X), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gd.predict(gd.load_safetensors(st), X), expected, rtol=1e-5, atol=1e-5)
    assert main(["export", "--model", str(tmp_path / "c.npz"), "--onnx", str(out), "--no-scaling"]) == 0
    np.testing.assert_allclose(_run(out, X), gd.predict(model, X), rtol=1e-5, atol=1e-5)
    assert main(["export", "--model", str(tmp_path / "c.npz")]) == 2
    assert "nothing to write" in capsys.readouterr().err
