"""Large CPU kernels share rows across threads: the split must not change any result."""

from __future__ import annotations

import numpy as np
import pytest
from gpudnn.kernels import _common

from tests.support import op


@pytest.fixture
def split_everything(monkeypatch):
    monkeypatch.setattr(_common, "PARALLEL_MIN_ELEMENTS", 1)
    monkeypatch.setenv("GPUDNN_CPU_THREADS", "3")
    assert len(_common.row_ranges(7, 7)) == 3


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_bias_act_split_matches_single_thread(split_everything, activation, rng):
    x = rng.standard_normal((7, 13)).astype(np.float32)
    b = rng.standard_normal(13).astype(np.float32)
    z = np.empty_like(x)
    y = op("bias_act", "bias_act", "cpu")(x, b, activation, z_out=z)
    np.testing.assert_allclose(y, op("bias_act", "bias_act", "ref")(x, b, activation), rtol=2e-6, atol=1e-7)
    np.testing.assert_array_equal(z, x + b)


def test_backward_split_keeps_exact_bias_gradient(split_everything, rng):
    dy = rng.standard_normal((7, 13)).astype(np.float32)
    y = np.maximum(rng.standard_normal((7, 13)), 0).astype(np.float32)
    dz, db = op("bias_act_backward", "bias_act_backward", "cpu")(dy, y, "relu")
    np.testing.assert_array_equal(dz, dy * (y > 0))
    np.testing.assert_array_equal(db, (dy * (y > 0)).astype(np.float64).sum(0).astype(np.float32))


def test_adam_split_matches_reference(split_everything, rng):
    p_ref, g = (rng.standard_normal(1003).astype(np.float32) for _ in range(2))
    states = {impl: [p_ref.copy(), np.zeros(1003, np.float32), np.zeros(1003, np.float32)] for impl in ("ref", "cpu")}
    for impl, (p, m, v) in states.items():
        for step in range(1, 4):
            op("optim", "adam_", impl)(p, g, m, v, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, step=step)
    for a, b in zip(states["ref"], states["cpu"]):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_thread_setting_is_validated(monkeypatch):
    monkeypatch.setenv("GPUDNN_CPU_THREADS", "zero")
    with pytest.raises(ValueError, match="GPUDNN_CPU_THREADS must be a positive integer"):
        _common.cpu_threads()


@pytest.mark.parametrize("in_place", [False, True])
def test_softmax_xent_split_matches_reference(split_everything, in_place, rng):
    logits = rng.standard_normal((7, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 7)
    loss_ref, grad_ref = op("softmax_xent", "softmax_xent", "ref")(logits, labels, 0.1)
    x = logits.copy()
    loss, grad = op("softmax_xent", "softmax_xent", "cpu")(x, labels, 0.1, dlogits_out=x if in_place else None)
    np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
    np.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-7)
    for name in ("softmax", "log_softmax"):
        np.testing.assert_allclose(op("softmax_xent", name, "cpu")(logits), op("softmax_xent", name, "ref")(logits),
                                   rtol=1e-5, atol=1e-6)
