"""Weights to and from PyTorch: gpudnn Sequential <-> torch.nn.Sequential state dicts and safetensors files."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.export import to_torch, torch_layout, torch_state_dict
from gpudnn.nn import Activation, BatchNorm1d, Dense, Dropout, LayerNorm, Sequential

pytest.importorskip("safetensors", reason="safetensors is not installed (pip install 'gpudnn[torch-io]')")

F64 = {"dtype": "float64"}


def _gpudnn_model() -> Sequential:
    return Sequential(Dense(5, 7, "gelu", **F64), LayerNorm(7, **F64), Dropout(0.2), Dense(7, 6, bias=False, **F64),
                      BatchNorm1d(6, **F64), Activation("tanh"), Dense(6, 3, "leaky_relu", alpha=0.1, **F64),
                      Dense(3, 2, **F64))


def _randomize(model: Sequential, rng) -> None:
    """Weights and running statistics away from their initial values, so every slot is checked."""
    for name, value in model.state_dict().items():
        fresh = rng.uniform(0.5, 2.0, value.shape) if name.endswith("running_var") else rng.normal(size=value.shape)
        model.load_state_dict({**model.state_dict(), name: fresh})


def _torch_model(torch):
    nn = torch.nn
    return nn.Sequential(nn.Linear(5, 7), nn.GELU(), nn.LayerNorm(7), nn.Dropout(0.2), nn.Linear(7, 6, bias=False),
                         nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, 3), nn.LeakyReLU(0.1), nn.Linear(3, 2)).double()


def test_layout_names_and_transposes_without_torch(tmp_path, rng):
    model = _gpudnn_model()
    _randomize(model, rng)
    assert [kind for _, _, kind in torch_layout(model)] == ["Linear", "gelu", "LayerNorm", "Dropout", "Linear",
                                                            "BatchNorm1d", "tanh", "Linear", "leaky_relu", "Linear"]
    state = torch_state_dict(model)
    ours = model.state_dict()
    np.testing.assert_array_equal(state["0.weight"], ours["0.W"].T)
    np.testing.assert_array_equal(state["5.running_var"], ours["4.running_var"])
    assert "4.bias" not in state and state["9.weight"].shape == (2, 3)
    path = gd.save_safetensors(model, tmp_path / "w.safetensors")
    X = rng.normal(size=(11, 5))
    np.testing.assert_array_equal(gd.predict(gd.load_safetensors(path), X), gd.predict(model, X))
    other = _gpudnn_model()
    gd.load_safetensors(path, other)
    np.testing.assert_array_equal(gd.predict(other, X), gd.predict(model, X))


def test_gpudnn_to_torch_and_back(tmp_path, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the round trip needs it")
    model = _gpudnn_model()
    _randomize(model, rng)
    X = rng.normal(size=(13, 5))
    net = _torch_model(torch)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in torch_state_dict(model).items()}, strict=True)
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(out, gd.predict(model, X), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(to_torch(model)(torch.from_numpy(X)).numpy(), out, rtol=1e-6, atol=1e-6)
    # a file written by gpudnn, read by safetensors.torch into the PyTorch network
    from safetensors.torch import load_file

    gd.save_safetensors(model, tmp_path / "g.safetensors")
    fresh = _torch_model(torch)
    fresh.load_state_dict(load_file(str(tmp_path / "g.safetensors")), strict=True)
    with torch.no_grad():
        np.testing.assert_allclose(fresh.eval()(torch.from_numpy(X)).numpy(), out, rtol=1e-6, atol=1e-6)


def test_torch_to_gpudnn_by_state_dict_and_file(tmp_path, rng):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the round trip needs it")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = _torch_model(torch)
    net.train()
    with torch.no_grad():  # a few training-mode passes give BatchNorm running statistics
        for _ in range(3):
            net(torch.randn(32, 5, dtype=torch.float64) * 2 + 1)
    net.eval()
    X = rng.normal(size=(17, 5))
    with torch.no_grad():
        expected = net(torch.from_numpy(X)).numpy()
    model = gd.load_torch_weights(_gpudnn_model(), net.state_dict())
    np.testing.assert_allclose(gd.predict(model, X), expected, rtol=1e-6, atol=1e-6)
    save_file(net.state_dict(), str(tmp_path / "t.safetensors"))
    from_file = gd.load_safetensors(tmp_path / "t.safetensors", _gpudnn_model())
    np.testing.assert_allclose(gd.predict(from_file, X), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="holds no gpudnn architecture"):
        gd.load_safetensors(tmp_path / "t.safetensors")


def test_mismatched_state_dicts_are_refused_by_name(rng):
    model = _gpudnn_model()
    state = torch_state_dict(model)
    before = model.state_dict()
    wide = {**state, "7.weight": np.zeros((3, 9))}
    with pytest.raises(ValueError, match=r"7.weight has shape \(3, 9\), but layer 6 \(Dense\(6, 3.*needs \(3, 6\)"):
        gd.load_torch_weights(model, wide)
    with pytest.raises(ValueError, match=r"missing \['9.weight', '9.bias'\]"):
        gd.load_torch_weights(model, {k: v for k, v in state.items() if not k.startswith("9.")})
    with pytest.raises(ValueError, match=r"unexpected \['10.weight'\]"):
        gd.load_torch_weights(model, {**state, "10.weight": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="floating-point"):
        gd.load_torch_weights(model, {**state, "0.bias": np.zeros(7, dtype=np.int64)})
    with pytest.raises(FileNotFoundError, match="no safetensors file"):
        gd.load_torch_weights(model, "/nonexistent/w.safetensors")
    for name, value in model.state_dict().items():  # nothing was copied by the refused loads
        np.testing.assert_array_equal(value, before[name])
