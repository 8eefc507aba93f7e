"""Layers, losses and whole models: gradients against float64 finite differences; clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from tests.support import numeric_grad

ACTIVATIONS = ["identity", "relu", "leaky_relu", "sigmoid", "tanh", "gelu_tanh", "gelu", "silu", "softplus"]


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        gd.seed(7)
        yield b


def check_model_gradients(model, loss_fn, x, y, rtol=1e-5, atol=1e-7):
    """Analytic input and parameter gradients of loss(model(x), y) against finite differences."""
    model.zero_grad()
    out = model.forward(x, train=True)
    _, dout = loss_fn(out, y)
    dx = model.backward(dout)

    def loss() -> float:
        return loss_fn(model.forward(x, train=True), y)[0]

    for p in model.parameters():
        np.testing.assert_allclose(p.grad, numeric_grad(loss, p.data), rtol=rtol, atol=atol, err_msg=p.name)
    # Only a first layer that declares it needs no input gradient (Sequential turns that off for a
    # leading Dense) may return None; every other model must hand back dx.
    if getattr(model.layers[0], "needs_input_grad", True):
        assert dx is not None, "the model lost its input gradient"
        np.testing.assert_allclose(dx, numeric_grad(loss, x), rtol=rtol, atol=atol, err_msg="dx")
    else:
        assert dx is None, "the first layer needs no input gradient, yet one was computed"


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_dense_gradients(activation, rng):
    model = gd.Sequential(gd.Activation("identity"), gd.Dense(5, 4, activation=activation, dtype=np.float64))
    x = rng.standard_normal((3, 5))
    check_model_gradients(model, gd.MSELoss(), x, rng.standard_normal((3, 4)))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer_gradients(activation, rng):
    model = gd.Sequential(gd.Activation(activation), gd.Dense(4, 2, dtype=np.float64))
    check_model_gradients(model, gd.MSELoss(), rng.standard_normal((5, 4)), rng.standard_normal((5, 2)))


def test_whole_mlp_with_softmax_cross_entropy(rng):
    model = gd.Sequential(gd.Dense(6, 8, activation="tanh", dtype=np.float64),
                          gd.Dense(8, 7, activation="gelu", dtype=np.float64),
                          gd.Dense(7, 3, dtype=np.float64))
    labels = rng.integers(0, 3, size=4)
    check_model_gradients(model, gd.SoftmaxCrossEntropy(label_smoothing=0.1), rng.standard_normal((4, 6)), labels)


def test_binary_cross_entropy_model(rng):
    model = gd.Sequential(gd.Dense(3, 5, activation="silu", dtype=np.float64), gd.Dense(5, 2, dtype=np.float64))
    targets = (rng.random((6, 2)) > 0.5).astype(np.float64)
    check_model_gradients(model, gd.BinaryCrossEntropy(), rng.standard_normal((6, 3)), targets)


def test_dropout_gradient_uses_the_forward_mask(rng):
    layer = gd.Dropout(0.4)
    x = rng.standard_normal((20, 30))
    y = layer.forward(x, train=True)
    kept = y != 0
    assert 0.4 < kept.mean() < 0.8
    np.testing.assert_allclose(y[kept], x[kept] / 0.6)
    dx = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(dx != 0, kept)
    np.testing.assert_allclose(layer(x), x)  # inference is the identity


@pytest.mark.parametrize("norm", [gd.LayerNorm, gd.BatchNorm1d])
def test_gradients_accumulate_until_zeroed(norm, rng):
    # Every kind of parameter: weights (written by a GEMM), biases and norm scales/shifts (by fused kernels).
    model = gd.Sequential(gd.Dense(4, 3, activation="tanh", dtype=np.float64), norm(3, dtype=np.float64),
                          gd.Dense(3, 3, dtype=np.float64))
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    loss = gd.MSELoss()
    for _ in range(2):
        model.backward(loss(model.forward(x, train=True), y)[1])
    twice = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    for p in model.parameters():
        np.testing.assert_array_equal(p.grad, 0)
    model.backward(loss(model.forward(x, train=True), y)[1])
    for p, total in zip(model.parameters(), twice):
        assert np.any(p.grad != 0), p.name
        np.testing.assert_allclose(total, 2 * p.grad, rtol=1e-12, err_msg=p.name)


def test_parameter_names_and_state_dict_roundtrip(rng):
    model = gd.Sequential(gd.Dense(4, 3, activation="relu"), gd.Dropout(0.1), gd.Dense(3, 2))
    assert [p.name for p in model.parameters()] == ["0.W", "0.b", "2.W", "2.b"]
    state = model.state_dict()
    other = gd.Sequential(gd.Dense(4, 3, activation="relu"), gd.Dropout(0.1), gd.Dense(3, 2))
    other.load_state_dict(state)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), other(x))
    assert gd.Sequential.from_config(model.config()).config() == model.config()


def test_clear_errors():
    model = gd.Sequential(gd.Dense(4, 3), gd.Dense(3, 2))
    with pytest.raises(ValueError, match="expects 4 input features"):
        model(np.zeros((2, 5), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        gd.Sequential(gd.Dense(4, 3)).backward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="missing .*unexpected"):
        model.load_state_dict({"0.W": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="has shape"):
        bad = model.state_dict()
        bad["0.W"] = np.zeros((5, 3))
        model.load_state_dict(bad)
    with pytest.raises(ValueError, match="layer 0 outputs 3 features but layer 1 expects 4"):
        gd.Sequential(gd.Dense(4, 3), gd.Dense(4, 2))
    with pytest.raises(ValueError, match="activation must be one of"):
        gd.Dense(3, 3, activation="swishy")
    with pytest.raises(ValueError, match="p must be < 1.0"):
        gd.Dropout(1.0)
    with pytest.raises(TypeError, match="transfer it explicitly"):
        model([[0.0] * 4])
    with pytest.raises(TypeError, match="float64 but the layer's weights are float32"):
        model(np.zeros((2, 4)))


def test_backward_leaves_the_callers_gradient_alone_unless_allowed(rng):
    model = gd.Sequential(gd.Dense(4, 6, activation="relu", dtype=np.float64), gd.Dropout(0.3),
                          gd.Dense(6, 3, activation="gelu", dtype=np.float64))
    x, dy = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    model.forward(x, train=True)
    kept = dy.copy()
    model.backward(dy)
    np.testing.assert_array_equal(dy, kept)
    grads = [p.grad.copy() for p in model.parameters()]
    model.zero_grad()
    model.backward(dy, overwrite_dy=True)  # same gradients, dy used as scratch
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad, g, rtol=1e-12)


def test_non_finite_settings_are_refused_up_front():
    for make, message in [
        (lambda: gd.Cosine(float("nan")), "epochs must be finite"),
        (lambda: gd.WarmUp(float("inf")), "epochs must be finite"),
        (lambda: gd.StepDecay(float("nan")), "every must be finite"),
        (lambda: gd.EarlyStopping(min_delta=float("nan")), "min_delta must be finite"),
        (lambda: gd.Dense(3, 3, activation="leaky_relu", alpha=float("nan")), "alpha must be finite"),
        (lambda: gd.Activation("leaky_relu", alpha=float("inf")), "alpha must be finite"),
        (lambda: gd.MSELoss()(np.zeros((3, 2), np.float32), np.zeros((3, 3), np.float32)),
         "targets must hold one value per prediction"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
