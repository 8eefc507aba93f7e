"""LayerNorm and BatchNorm1d as layers: gradients through whole models, running statistics,
inference mode, saving and loading, and the CLI option that inserts them."""

from __future__ import annotations

import json

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.nn.mlp import build_mlp
from tests.test_layers import check_model_gradients


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        gd.seed(11)
        yield b


def _affine(layer: gd.Layer, rng: np.random.Generator) -> None:
    """Non-trivial gamma and beta, so the gradient checks exercise them."""
    layer.gamma.data[...] = rng.uniform(0.5, 1.5, layer.num_features)
    layer.beta.data[...] = rng.standard_normal(layer.num_features)


@pytest.mark.parametrize("norm", [gd.LayerNorm, gd.BatchNorm1d])
def test_gradients_through_a_model_match_finite_differences(norm, rng):
    layer = norm(6, dtype=np.float64)
    _affine(layer, rng)
    model = gd.Sequential(gd.Dense(4, 6, dtype=np.float64), layer, gd.Activation("tanh"),
                          gd.Dense(6, 3, dtype=np.float64))
    model.layers[0].needs_input_grad = True  # also check dx of the input
    check_model_gradients(model, gd.SoftmaxCrossEntropy(), rng.standard_normal((5, 4)), rng.integers(0, 3, 5))


@pytest.mark.parametrize("norm", [gd.LayerNorm, gd.BatchNorm1d])
def test_norm_as_first_layer_gives_input_gradients(norm, rng):
    layer = norm(5, dtype=np.float64)
    _affine(layer, rng)
    model = gd.Sequential(layer, gd.Dense(5, 2, dtype=np.float64))
    check_model_gradients(model, gd.MSELoss(), rng.standard_normal((7, 5)), rng.standard_normal((7, 2)))


def test_layer_norm_normalizes_each_row(rng):
    x = rng.standard_normal((8, 33)) * 5 + 3
    y = gd.LayerNorm(33, dtype=np.float64)(x)
    expected = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-10, atol=1e-12)


def test_batch_norm_running_statistics_follow_pytorch_rule_and_serve_inference(rng):
    bn = gd.BatchNorm1d(4, momentum=0.2, dtype=np.float64)
    batches = [rng.standard_normal((10, 4)) * 3 + 2 for _ in range(3)]
    mean, var = np.zeros(4), np.ones(4)
    for x in batches:
        y = bn.forward(x, train=True)
        np.testing.assert_allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), rtol=1e-10, atol=1e-12)
        mean = 0.8 * mean + 0.2 * x.mean(0)
        var = 0.8 * var + 0.2 * x.var(0, ddof=1)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-12)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(bn(x), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10)
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-12)  # inference leaves them alone


def test_batch_norm_matches_pytorch_training_and_eval(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((16, 5))
    ours = gd.BatchNorm1d(5, dtype=np.float64)
    theirs = torch.nn.BatchNorm1d(5, dtype=torch.float64)
    for _ in range(2):
        y = ours.forward(x, train=True)
        expected = theirs.train()(torch.from_numpy(x))
        np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours(x), theirs.eval()(torch.from_numpy(x)).detach().numpy(), rtol=1e-10, atol=1e-12)


def test_buffers_are_saved_loaded_and_checkpointed(tmp_path, rng):
    model = gd.Sequential(gd.Dense(3, 4), gd.BatchNorm1d(4), gd.Activation("relu"), gd.LayerNorm(4), gd.Dense(4, 2))
    model.forward(rng.standard_normal((6, 3)).astype(np.float32) * 4 + 1, train=True)
    state = model.state_dict()
    assert {"1.running_mean", "1.running_var", "1.gamma", "1.beta", "3.gamma", "3.beta"} <= set(state)
    assert not np.allclose(state["1.running_mean"], 0)
    opt = gd.Adam(model.parameters())
    assert "1.running_mean" not in [p.name for p in opt.params]  # buffers are not trained
    path = tmp_path / "bn.npz"
    gd.save_checkpoint(path, model, opt)
    restored = gd.load_checkpoint(path).model
    assert [type(layer).__name__ for layer in restored.layers] == [type(layer).__name__ for layer in model.layers]
    for name, value in restored.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(restored(x), model(x))
    state.pop("1.running_var")
    with pytest.raises(ValueError, match=r"missing \['1.running_var'\]"):
        model.load_state_dict(state)


def test_clear_errors(rng):
    with pytest.raises(ValueError, match="num_features"):
        gd.LayerNorm(0)
    with pytest.raises(ValueError, match="eps"):
        gd.LayerNorm(3, eps=float("nan"))
    with pytest.raises(ValueError, match="momentum"):
        gd.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="layer 0 outputs 4 features but layer 1 expects 5"):
        gd.Sequential(gd.Dense(3, 4), gd.LayerNorm(5))
    with pytest.raises(ValueError, match="expects 4 input features"):
        gd.LayerNorm(4)(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="float64 but the layer's parameters are float32"):
        gd.BatchNorm1d(3)(np.zeros((2, 3)))
    with pytest.raises(RuntimeError, match="before forward"):
        gd.LayerNorm(3).backward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="x"):
        gd.BatchNorm1d(3).forward(np.zeros((1, 3), np.float32), train=True)


def test_build_mlp_places_the_norm_between_dense_and_activation():
    model = build_mlp(8, [16, 12], 3, "gelu", 0.1, norm="layer")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Dense", "LayerNorm", "Activation", "Dropout", "Dense", "LayerNorm", "Activation", "Dropout",
                     "Dense"]
    assert model.layers[0].activation == "identity" and model.layers[0].init == "he"
    assert "0.b" in model.state_dict()
    batch = build_mlp(8, [16], 3, "relu", 0.0, norm="batch")
    assert [p.name for p in batch.parameters()] == ["0.W", "1.gamma", "1.beta", "3.W", "3.b"]  # BN cancels a bias


def test_dense_without_bias(rng):
    model = gd.Sequential(gd.Dense(4, 3, activation="tanh", bias=False, dtype=np.float64),
                          gd.Dense(3, 2, dtype=np.float64))
    model.layers[0].needs_input_grad = True
    assert [p.name for p in model.parameters()] == ["0.W", "1.W", "1.b"]
    check_model_gradients(model, gd.MSELoss(), rng.standard_normal((5, 4)), rng.standard_normal((5, 2)))
    x = rng.standard_normal((2, 4))
    np.testing.assert_allclose(model.layers[0](x), np.tanh(x @ model.layers[0].W.data), rtol=1e-12)
    assert gd.Sequential.from_config(model.config()).layers[0].b is None
    with pytest.raises(TypeError, match="bias must be True or False"):
        gd.Dense(4, 3, bias="no")


@pytest.mark.parametrize("norm", ["layer", "batch"])
def test_cli_trains_with_a_norm(norm, tmp_path, capsys):
    from gpudnn.cli import main

    metrics = tmp_path / "m.json"
    code = main(["train", "--norm", norm, "--epochs", "8", "--hidden", "64", "--quiet", "--metrics-json", str(metrics),
                 "--save", str(tmp_path / "model.npz")])
    assert code == 0, capsys.readouterr().err
    accuracy = json.loads(metrics.read_text())["test_accuracy"]
    assert accuracy >= 0.9
    assert main(["evaluate", "--model", str(tmp_path / "model.npz")]) == 0
    assert f"test accuracy {accuracy:.4f}" in capsys.readouterr().out
