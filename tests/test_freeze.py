"""Frozen parameters and reductions as the head of a network: a fitted PCA as one frozen Dense layer, an
autoencoder's encoder as frozen copies; gradients, optimizer state, checkpoints and resume."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from tests.test_layers import numeric_grad


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        gd.seed(3)
        yield b


def _data(rng, n=120, d=12):
    X = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.standard_normal(d)
    return X, rng.integers(0, 3, size=n)


def _head_and_net(pca, k, dtype=np.float64):
    """A model headed by the frozen PCA stage, and the same network alone (same weights) for pca.transform."""
    model = gd.Sequential(gd.pca_layer(pca, dtype=dtype), gd.Dense(k, 8, activation="tanh", dtype=dtype),
                          gd.Dense(8, 3, dtype=dtype))
    net = gd.Sequential(gd.Dense(k, 8, activation="tanh", dtype=dtype), gd.Dense(8, 3, dtype=dtype))
    net.load_state_dict({name: model.state_dict()[f"{int(name[0]) + 1}{name[1:]}"] for name in net.state_dict()})
    return model, net


@pytest.mark.parametrize("whiten", [False, True])
def test_pca_head_equals_transform_then_network(whiten, rng):
    X, y = _data(rng)
    pca = gd.PCA(5, whiten=whiten).fit(X)
    model, net = _head_and_net(pca, 5)
    head = model[0]
    assert head.W.shape == (12, 5) and not head.trainable and model.frozen_parameter_names() == ["0.W", "0.b"]
    np.testing.assert_allclose(head.forward(X), pca.transform(X), rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.forward(X), net.forward(pca.transform(X)), rtol=0, atol=1e-6)
    # training mode too, and the trainable layers' gradients are those of the network fed pca.transform(X)
    loss = gd.SoftmaxCrossEntropy()
    model.zero_grad()
    net.zero_grad()
    assert model.backward(loss(model.forward(X, train=True), y)[1]) is None
    net.backward(loss(net.forward(pca.transform(X), train=True), y)[1])
    for p, q in zip(model.parameters()[2:], net.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-8, atol=1e-12, err_msg=p.name)


def test_frozen_head_takes_no_gradient_no_state_and_no_update(rng, monkeypatch):
    X, y = _data(rng)
    pca = gd.PCA(4).fit(X)
    model, _ = _head_and_net(pca, 4)
    W0, b0 = model[0].W.data.copy(), model[0].b.data.copy()
    monkeypatch.setattr(model[0], "backward", lambda *a, **k: pytest.fail("the frozen head's backward ran"))
    opt = gd.SGD(model.parameters(), lr=0.1, momentum=0.9, l2=1e-3)
    trainable = sum(p.size for p in model.parameters()[2:])
    assert [p.name for p in opt.params] == ["1.W", "1.b", "2.W", "2.b"]
    assert opt.arena.data.size == trainable and opt.state["momentum_buf"].size == trainable
    before = model.state_dict()
    gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=2, batch_size=32, progress=False)
    np.testing.assert_array_equal(model[0].W.data, W0)
    np.testing.assert_array_equal(model[0].b.data, b0)
    assert not model[0].W.grad.any() and not model[0].b.grad.any()
    assert not np.array_equal(model.state_dict()["1.W"], before["1.W"])
    assert opt.penalty() == pytest.approx(5e-4 * sum(float((p.data ** 2).sum()) for p in opt.params), rel=1e-12)


def test_a_frozen_middle_layer_passes_gradients_through(rng):
    model = gd.Sequential(gd.Dense(5, 6, activation="tanh", dtype=np.float64), gd.LayerNorm(6, dtype=np.float64),
                          gd.Dense(6, 3, dtype=np.float64))
    model[1].freeze()
    model[0].needs_input_grad = True
    x, t = rng.standard_normal((4, 5)), rng.standard_normal((4, 3))
    loss = gd.MSELoss()
    model.zero_grad()
    dx = model.backward(loss(model.forward(x, train=True), t)[1])

    def value() -> float:
        return loss(model.forward(x, train=True), t)[0]

    for p in model.parameters():
        expected = np.zeros(p.shape) if not p.trainable else numeric_grad(value, p.data)
        np.testing.assert_allclose(p.grad, expected, rtol=1e-5, atol=1e-7, err_msg=p.name)
    np.testing.assert_allclose(dx, numeric_grad(value, x), rtol=1e-5, atol=1e-7)


def test_freeze_unfreeze_and_the_optimizer(rng):
    model = gd.Sequential(gd.Dense(4, 5, activation="relu"), gd.Dense(5, 2))
    assert model[0].freeze() is model[0] and not model[0].trainable and model[0].trainable_parameters() == []
    assert "frozen" in repr(model[0].W)
    opt = gd.Adam(model.parameters())
    assert [p.name for p in opt.params] == ["1.W", "1.b"] and opt.state["exp_avg"].size == 5 * 2 + 2
    model[0].unfreeze()
    assert model.frozen_parameter_names() == [] and len(gd.Adam(model.parameters()).params) == 4
    model[1].freeze()
    X, y = rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 2, 8)
    with pytest.raises(ValueError, match=r"\['1.W', '1.b'\] were frozen after the optimizer was built"):
        gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, progress=False)
    model[0].freeze()
    with pytest.raises(ValueError, match="every parameter given is frozen"):
        gd.SGD(model.parameters())
    with pytest.raises(ValueError, match="no parameters named"):
        model.set_frozen(["9.W"])


def test_checkpoint_records_frozenness_and_resumes_bit_identically(tmp_path, rng):
    X, y = _data(rng, n=96)
    pca = gd.PCA(6, whiten=True).fit(X)
    loss = gd.SoftmaxCrossEntropy()

    def fresh():
        gd.seed(11)
        model, _ = _head_and_net(pca, 6)
        return model, gd.Adam(model.parameters(), lr=1e-2)

    model, opt = fresh()
    gd.fit(model, loss, opt, X, y, epochs=4, batch_size=16, progress=False)
    straight = model.state_dict()

    model, opt = fresh()
    gd.fit(model, loss, opt, X, y, epochs=2, batch_size=16, progress=False)
    gd.save_checkpoint(tmp_path / "mid.npz", model, opt, epoch=2)
    gd.seed(999)
    ckpt = gd.load_checkpoint(tmp_path / "mid.npz", with_optimizer=True)
    assert ckpt.model.frozen_parameter_names() == ["0.W", "0.b"] and ckpt.meta["frozen"] == ["0.W", "0.b"]
    assert [p.name for p in ckpt.optimizer.params] == ["1.W", "1.b", "2.W", "2.b"]
    np.testing.assert_array_equal(ckpt.model.state_dict()["0.W"], model.state_dict()["0.W"])
    np.testing.assert_allclose(gd.predict(ckpt.model, X), gd.predict(model, X), rtol=0, atol=0)
    gd.fit(ckpt.model, loss, ckpt.optimizer, X, y, epochs=4, initial_epoch=2, batch_size=16, progress=False)
    for name, value in straight.items():
        np.testing.assert_array_equal(ckpt.model.state_dict()[name], value, err_msg=name)
    model[0].unfreeze()
    with pytest.raises(gd.CheckpointError, match="frozen parameters"):
        gd.load_checkpoint(tmp_path / "mid.npz", model)


def test_encoder_layers_are_frozen_copies(rng):
    X = rng.standard_normal((64, 10)).astype(np.float32)
    ae = gd.Autoencoder(10, 3, hidden=(6,))
    gd.fit(ae, gd.MSELoss(), gd.Adam(ae.parameters(), lr=1e-2), X, X, epochs=2, batch_size=16, progress=False)
    layers = gd.encoder_layers(ae)
    assert len(layers) == 2 and not any(layer.trainable for layer in layers)
    model = gd.Sequential(*layers, gd.Dense(3, 2))
    np.testing.assert_array_equal(model[1].forward(model[0].forward(X)), ae.encode(X))
    layers[0].W.data[...] = 0  # a copy: the autoencoder keeps its weights
    assert ae.layers[0].W.data.any() and ae[0].trainable
    assert all(layer.trainable for layer in gd.encoder_layers(ae, frozen=False))


def test_pca_layer_refuses_what_is_not_a_fitted_pca():
    with pytest.raises(ValueError, match="not fitted"):
        gd.pca_layer(gd.PCA(2))
    with pytest.raises(TypeError, match="fitted gpudnn PCA"):
        gd.pca_layer(object())
