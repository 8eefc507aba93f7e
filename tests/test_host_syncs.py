"""The host side of a GPU step, proven on the CPU: the strict CuPy stand-in refuses host-array habits,
a training step reads back from the device once (the sync budget) and allocates no device memory, and
data already on the device is validated there."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.backend.standin import ALLOCATIONS, SYNCS, DeviceArray, xp
from tests.support import SIMULATOR

needs_simulator = pytest.mark.skipif(not SIMULATOR, reason="the cudasim backend needs NUMBA_ENABLE_CUDASIM=1")


def test_standin_refuses_what_cupy_refuses(rng):
    host = rng.standard_normal((3, 4)).astype(np.float32)
    a = xp.asarray(host)
    assert isinstance(a, DeviceArray) and not isinstance(a, np.ndarray)
    assert not hasattr(a, "__array_interface__") and a.__cuda_array_interface__["shape"] == (3, 4)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    for mix in (lambda: a + host, lambda: host + a, lambda: xp.stack([a, host]), lambda: np.add(host, a)):
        with pytest.raises(TypeError):
            mix()
    with pytest.raises(TypeError, match="cannot be mixed"):
        a[...] = host
    a[0] = 2.0  # scalars and device arrays may be written
    a[1] = xp.asarray(host[1])
    expected = host.copy()
    expected[0] = 2.0
    np.testing.assert_array_equal(a.get(), expected)


def test_standin_reductions_stay_on_the_device_and_reads_are_counted(rng):
    host = rng.standard_normal(10)
    a = xp.asarray(host)
    with SYNCS.counting() as syncs:
        total, first, top = a.sum(), a[0], xp.maximum(a, 0).max()
        assert all(isinstance(v, DeviceArray) and v.ndim == 0 for v in (total, first, top))
        assert syncs.count == 0
        assert float(total) == pytest.approx(host.sum(), rel=1e-12)
        assert int(a.argmax()) == int(np.argmax(host))
        assert bool(top >= 0)
        np.testing.assert_array_equal(xp.asnumpy(a), host)
    assert syncs.count == 4
    assert sum(n for where, n in syncs.where.items() if where.startswith("test_host_syncs.py")) == 4


def _every_layer(out: int) -> gd.Sequential:
    """A model with a layer of each kind: bias-less Dense, both norms, a lone activation, dropout."""
    return gd.Sequential(gd.Dense(5, 6, bias=False), gd.BatchNorm1d(6), gd.Activation("tanh"), gd.Dropout(0.2),
                         gd.Dense(6, 6, activation="gelu"), gd.LayerNorm(6), gd.Dense(6, out))


def _fit_events(n: int, loss: str = "xent", every_layer: bool = False, **optimizer: float):
    """(syncs, allocations): the counters of one epoch of fit over n samples in batches of 4 on the cudasim
    backend, of a two-layer MLP or the every-layer model."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 5)).astype(np.float32)
    if loss == "xent":
        loss_fn, y, out = gd.SoftmaxCrossEntropy(), np.arange(n) % 3, 3
    elif loss == "bce":
        loss_fn, y, out = gd.BinaryCrossEntropy(), (rng.random((n, 2)) > 0.5).astype(np.float32), 2
    else:
        loss_fn, y, out = gd.MSELoss(), rng.standard_normal((n, 2)).astype(np.float32), 2
    gd.seed(0)
    model = _every_layer(out) if every_layer else gd.Sequential(gd.Dense(5, 6, activation="tanh"), gd.Dense(6, out))
    opt = gd.Adam(model.parameters(), lr=1e-2, **optimizer)
    with SYNCS.counting() as syncs, ALLOCATIONS.counting() as allocations:
        gd.fit(model, loss_fn, opt, X, y, epochs=1, batch_size=4, progress=False)
    return syncs, allocations


@needs_simulator
@pytest.mark.parametrize("loss,optimizer", [("xent", {}), ("xent", {"max_grad_norm": 1.0}), ("bce", {"l2": 1e-3}),
                                            ("mse", {"l1": 1e-3, "l2": 1e-3})],
                         ids=["xent", "xent-clipping", "bce-l2", "mse-l1-l2"])
def test_a_training_step_syncs_once(loss, optimizer):
    with gd.use_backend("cudasim"):
        (few, _), (more, _) = _fit_events(8, loss, **optimizer), _fit_events(16, loss, **optimizer)
    per_step = (more.count - few.count) / 2
    assert per_step == 1, f"syncs per step: {per_step}; where (4 steps): {dict(more.where)}"


@needs_simulator
def test_evaluate_reads_back_once_for_all_batches(rng):
    X = rng.standard_normal((20, 5)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    with gd.use_backend("cudasim"):
        gd.seed(0)
        model = gd.Sequential(gd.Dense(5, 3))
        loss_fn = gd.SoftmaxCrossEntropy()
        with SYNCS.counting() as syncs:
            result = gd.evaluate(model, loss_fn, X, y, batch_size=4)  # 5 batches
        assert syncs.count == 1, dict(syncs.where)
        W, bias = (model.backend.to_numpy(p.data) for p in model.parameters())
    logits = X.astype(np.float64) @ W + bias  # the reference, in float64
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-log_p[np.arange(20), y].mean(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))


def test_a_device_array_given_to_a_numpy_model_says_how_to_transfer(rng):
    with gd.use_backend("numpy"):
        model = gd.Sequential(gd.Dense(5, 3))
        loss_fn, opt = gd.SoftmaxCrossEntropy(), gd.SGD(model.parameters(), lr=0.1)
        X, y = xp.asarray(rng.standard_normal((8, 5))), np.arange(8) % 3
        with pytest.raises(TypeError, match=r"X is a .*DeviceArray in GPU memory.*'numpy' backend.*X\.get\(\)"):
            gd.fit(model, loss_fn, opt, X, y, epochs=1, progress=False)
        with pytest.raises(TypeError, match=r"y is a .*in GPU memory"):
            gd.evaluate(model, loss_fn, rng.standard_normal((8, 5)), xp.asarray(y))
        with pytest.raises(TypeError, match="X.get"):
            gd.predict(model, X)


@needs_simulator
def test_train_on_the_standin_prints_no_numba_warnings(tmp_path):
    import os
    import subprocess
    import sys

    rng = np.random.default_rng(0)  # a tiny dataset: the simulator runs every thread as Python
    X = rng.standard_normal((48, 3))
    np.savez(tmp_path / "tiny.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    metrics = tmp_path / "metrics.json"
    out = subprocess.run([sys.executable, "-W", "default", "-m", "gpudnn", "--backend", "cudasim", "train",
                          "--dataset", str(tmp_path / "tiny.npz"), "--hidden", "4", "--epochs", "1",
                          "--batch-size", "16", "--quiet", "--metrics-json", str(metrics)],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    assert out.returncode == 0, out.stderr
    assert metrics.exists()
    assert "Numba" not in out.stderr and "Warning" not in out.stderr, out.stderr


@needs_simulator
@pytest.mark.parametrize("loss,optimizer", [("xent", {}), ("bce", {"l2": 1e-3, "max_grad_norm": 1.0}),
                                            ("mse", {"l1": 1e-3})], ids=["xent", "bce-l2-clipping", "mse-l1"])
def test_a_training_step_allocates_no_device_memory(loss, optimizer):
    """Workspaces, scratch memory and the step's summary buffer hold everything a step writes: after
    the first fit, a step allocates nothing (the stand-in counts every new block of device memory)."""
    with gd.use_backend("cudasim"):
        _fit_events(8, loss, True, **optimizer)  # kernels' scratch memory, made once per process
        (syncs_few, few), (syncs_more, more) = (_fit_events(n, loss, True, **optimizer) for n in (8, 16))
    new = {where: n - few.where.get(where, 0) for where, n in more.where.items() if n != few.where.get(where, 0)}
    per_step = (more.count - few.count) / 2
    # the 8 more samples themselves go to the device once: X, y and the epoch's permutation are larger, not more
    assert per_step == 0, f"allocations per step: {per_step}; where (2 more steps): {new}"
    assert (syncs_more.count - syncs_few.count) / 2 == 1


def _device_data(rng, n: int = 12):
    X = rng.standard_normal((n, 5)).astype(np.float32)
    return X, np.arange(n) % 3


@needs_simulator
def test_device_data_is_validated_on_the_device(rng):
    """fit on data already on the device reads back one flag to validate it, and never copies it back."""
    X, y = _device_data(rng)
    with gd.use_backend("cudasim"):
        gd.seed(0)
        model = gd.Sequential(gd.Dense(5, 3))
        loss_fn, opt = gd.SoftmaxCrossEntropy(), gd.SGD(model.parameters(), lr=0.1)
        with SYNCS.counting() as syncs:
            gd.fit(model, loss_fn, opt, xp.asarray(X), xp.asarray(y), epochs=1, batch_size=4, progress=False)
        assert syncs.count == 1 + 3, dict(syncs.where)  # the validation flag, then one per step
        with SYNCS.counting() as syncs:
            result = gd.evaluate(model, loss_fn, xp.asarray(X), xp.asarray(y), batch_size=5)
        assert syncs.count == 2, dict(syncs.where)  # the validation flag, the result
        with SYNCS.counting() as syncs:
            out = gd.predict(model, xp.asarray(X), batch_size=5)
        assert syncs.count == 2, dict(syncs.where)  # the finiteness flag, the outputs in one copy
        W, b = (model.backend.to_numpy(p.data) for p in model.parameters())
    logits = X.astype(np.float64) @ W + b
    np.testing.assert_allclose(out, logits, rtol=1e-5, atol=1e-6)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == y))
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-log_p[np.arange(12), y].mean(), rel=1e-5)


BAD_DEVICE_DATA = [
    ("xent", lambda X, y: (X.__setitem__((7, 2), np.nan), y)[1], ValueError, "X must be finite.*sample 7, feature 2"),
    ("xent", lambda X, y: (X.__setitem__((3, 0), 1e39), y)[1], ValueError, "X must be finite.*beyond float32"),
    ("xent", lambda X, y: np.where(np.arange(12) == 5, 3, y), ValueError, "y must be below 3.*sample 5"),
    ("xent", lambda X, y: np.where(np.arange(12) == 4, -1, y), ValueError, "y must be >= 0.*sample 4"),
    ("xent", lambda X, y: y + 0.5, ValueError, "y must be integers"),
    ("bce", lambda X, y: np.where(np.arange(24).reshape(12, 2) == 9, 1.5, y), ValueError,
     r"y must hold binary targets in \[0, 1\]"),
    ("mse", lambda X, y: np.where(np.arange(24).reshape(12, 2) == 9, np.inf, y), ValueError, "y must be finite"),
    ("mse", lambda X, y: y[:, :1], ValueError, "y has 1 target columns, expected 2"),
    ("xent", lambda X, y: y[:11], ValueError, "y must have one target per sample"),
]


@needs_simulator
@pytest.mark.parametrize("loss,spoil,error,message", BAD_DEVICE_DATA)
def test_bad_device_data_gets_the_host_checks_message(loss, spoil, error, message, rng):
    X = rng.standard_normal((12, 5))
    y = {"xent": np.arange(12) % 3, "bce": (rng.random((12, 2)) > 0.5).astype(np.float64),
         "mse": rng.standard_normal((12, 2))}[loss]
    y = spoil(X, y)
    loss_fn = {"xent": gd.SoftmaxCrossEntropy, "bce": gd.BinaryCrossEntropy, "mse": gd.MSELoss}[loss]
    for kind in ("numpy", "cudasim"):
        with gd.use_backend(kind) as b:
            gd.seed(0)
            model = gd.Sequential(gd.Dense(5, 3 if loss == "xent" else 2))
            opt = gd.SGD(model.parameters(), lr=0.1)
            with pytest.raises(error, match=message):
                gd.fit(model, loss_fn(), opt, b.asarray(X), b.asarray(y), epochs=1, progress=False)
