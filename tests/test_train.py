"""The training loop end to end: accuracy on digits, determinism, backends agree, faults stop cleanly."""

from __future__ import annotations

import io

import numpy as np
import pytest

import gpudnn as gd
from gpudnn.data import load_dataset
from tests.support import SIMULATOR


def digits_mlp(seed: int = 0):
    gd.seed(seed)
    model = gd.Sequential(gd.Dense(64, 128, activation="relu"), gd.Dropout(0.1), gd.Dense(128, 10))
    return model, gd.SoftmaxCrossEntropy(), gd.Adam(model.parameters(), lr=2e-3)


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        yield b


def test_digits_mlp_reaches_95_percent_and_repeats_exactly():
    data = load_dataset("digits", seed=0)
    runs = []
    for _ in range(2):
        model, loss, opt = digits_mlp()
        history = gd.fit(model, loss, opt, data.X_train, data.y_train, epochs=15, batch_size=64, progress=False,
                         validation_data=(data.X_test, data.y_test))
        runs.append((history["loss"], model.state_dict(), gd.evaluate(model, loss, data.X_test, data.y_test)))
    assert runs[0][2]["accuracy"] >= 0.95, runs[0][2]
    assert runs[0][0] == runs[1][0]
    for name, value in runs[0][1].items():
        np.testing.assert_array_equal(value, runs[1][1][name])
    assert runs[0][0][-1] < runs[0][0][0] / 5


TINY_MODELS = {
    "dense-dropout": lambda: gd.Sequential(gd.Dense(5, 6, activation="tanh"), gd.Dropout(0.2), gd.Dense(6, 3)),
    # tanh before the BatchNorm: a bias feeding a norm directly has a zero gradient up to rounding,
    # which Adam would scale up into backend-dependent steps
    "norms": lambda: gd.Sequential(gd.Dense(5, 6, activation="tanh"), gd.BatchNorm1d(6), gd.Activation("relu"),
                                   gd.LayerNorm(6), gd.Dense(6, 3)),
}


@pytest.mark.skipif(not SIMULATOR, reason="the simulated CUDA backend needs NUMBA_ENABLE_CUDASIM=1")
@pytest.mark.parametrize("build", TINY_MODELS.values(), ids=TINY_MODELS.keys())
def test_numpy_and_simulated_cuda_backends_train_alike(build, rng):
    X = rng.standard_normal((24, 5)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    trajectories = []
    for kind in ("numpy", "cudasim"):
        with gd.use_backend(kind):
            gd.seed(3)
            model = build()
            opt = gd.AdamW(model.parameters(), lr=1e-2)
            history = gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=3, batch_size=8, progress=False)
            trajectories.append((history["loss"], model.state_dict()))
    np.testing.assert_allclose(trajectories[0][0], trajectories[1][0], rtol=1e-5)
    for name, value in trajectories[0][1].items():
        np.testing.assert_allclose(value, trajectories[1][1][name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_progress_lines_when_not_a_terminal():
    data = load_dataset("digits", seed=0)
    model, loss, opt = digits_mlp()
    out = io.StringIO()
    gd.fit(model, loss, opt, data.X_train[:256], data.y_train[:256], epochs=2, batch_size=64, stream=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2") and "samples/s" in lines[0]
    assert "\r" not in out.getvalue()


def test_early_stopping_restores_best_and_schedules_set_lr(rng):
    X = rng.standard_normal((64, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)  # learnable; the validation labels below are its opposite
    model = gd.Sequential(gd.Dense(4, 2))
    opt = gd.SGD(model.parameters(), lr=0.5)
    stopper = gd.EarlyStopping("val_loss", patience=1)
    history = gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=40, batch_size=64, progress=False,
                     validation_data=(X[:8], 1 - y[:8]), early_stopping=stopper, schedule=gd.Cosine(40))
    assert history.stopped_early and len(history.epochs) < 40
    best = min(history["val_loss"])
    assert gd.evaluate(model, gd.SoftmaxCrossEntropy(), X[:8], 1 - y[:8])["loss"] == pytest.approx(best, rel=1e-5)
    lrs = history["lr"]
    assert lrs[0] == 0.5 and all(a > b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
def test_nonfinite_loss_stops_with_epoch_and_step_and_keeps_parameters(rng):
    X = rng.standard_normal((32, 3)).astype(np.float32)
    X[20, 1] = 3e38  # finite, but overflows to inf inside the first layer on the 3rd batch
    y = rng.integers(0, 2, 32)
    model = gd.Sequential(gd.Dense(3, 4, activation="relu"), gd.Dense(4, 2))
    model.parameters()[0].data[1, :] = 10.0
    opt = gd.SGD(model.parameters(), lr=1e-6)
    before_step, after_step = [], []  # the parameters around every update the loop makes
    step = opt.step

    def recorded_step() -> None:
        before_step.append([p.data.copy() for p in model.parameters()])
        step()
        after_step.append([p.data.copy() for p in model.parameters()])

    opt.step = recorded_step
    with pytest.raises(gd.NonFiniteError, match=r"epoch 1, step 3 of 4"):
        gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=8, shuffle=False, progress=False)
    assert all(np.all(np.isfinite(p.data)) for p in model.parameters())
    assert len(after_step) == 2  # steps 1 and 2; the bad 3rd never reached the optimizer
    for p, kept in zip(model.parameters(), after_step[-1]):  # exactly as before the bad step
        np.testing.assert_array_equal(p.data, kept, err_msg=p.name)
    before_step.clear()
    after_step.clear()
    history = gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=8, shuffle=False,
                     progress=False, on_nonfinite="skip")
    assert history.skipped_steps == 1 and len(history.epochs) == 1
    assert all(np.all(np.isfinite(p.data)) for p in model.parameters())
    assert len(before_step) == 3  # steps 1, 2 and 4; the 4th starts from where the 2nd left the parameters
    for p, kept, now in zip(model.parameters(), after_step[1], before_step[2]):
        np.testing.assert_array_equal(now, kept, err_msg=p.name)


def test_out_of_memory_suggests_a_smaller_batch(monkeypatch, rng):
    model = gd.Sequential(gd.Dense(3, 2))

    def exhausted(*args, **kwargs):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(model.backend, "matmul", exhausted)
    with pytest.raises(gd.DeviceMemoryError, match="batch_size=16: try a smaller batch size"):
        gd.fit(model, gd.SoftmaxCrossEntropy(), gd.SGD(model.parameters()), rng.random((20, 3)),
               rng.integers(0, 2, 20), batch_size=16, progress=False)


def test_gradient_clipping_bounds_the_step(rng):
    model = gd.Sequential(gd.Dense(3, 2, dtype=np.float64))
    before = model.parameters()[0].data.copy()
    start = [p.data.copy() for p in model.parameters()]
    opt = gd.SGD(model.parameters(), lr=1.0, max_grad_norm=0.5)
    x = rng.standard_normal((4, 3)) * 100
    model.backward(gd.MSELoss()(model.forward(x, train=True), np.zeros((4, 2)))[1])
    assert opt.grad_norm() > 0.5
    opt.step()
    moved = np.sqrt(sum(((p.data - s) ** 2).sum() for p, s in zip(model.parameters()[:1], [before])))
    assert moved <= 0.5 + 1e-9
    # SGD with lr 1 moves all parameters together by the clipped gradient: by max_grad_norm exactly
    # (up to the 1e-6 in the scale max_grad_norm / (norm + 1e-6)).
    assert len(start) == 2
    moved_all = np.sqrt(sum(((p.data - s) ** 2).sum() for p, s in zip(model.parameters(), start)))
    assert moved_all == pytest.approx(0.5, rel=1e-5)


def test_bad_training_data_is_named(rng):
    model, loss, opt = digits_mlp()
    X, y = rng.random((10, 64)), rng.integers(0, 10, 10)
    with pytest.raises(ValueError, match="X has 63 features, expected 64"):
        gd.fit(model, loss, opt, X[:, :63], y, progress=False)
    bad = X.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="X must be finite, found a NaN or Inf .* at sample 3, feature 5"):
        gd.fit(model, loss, opt, bad, y, progress=False)
    with pytest.raises(ValueError, match=r"y must be below 10 \(the number of classes\)"):
        gd.fit(model, loss, opt, X, y + 5, progress=False)
    with pytest.raises(ValueError, match="one target per sample"):
        gd.fit(model, loss, opt, X, y[:9], progress=False)
    with pytest.raises(ValueError, match="y must be integers"):
        gd.fit(model, loss, opt, X, y + 0.5, progress=False)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        gd.fit(model, loss, opt, X, y, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="y_val must be below 10"):
        gd.fit(model, loss, opt, X, y, validation_data=(X, y + 10), progress=False)


@pytest.mark.filterwarnings("ignore:(overflow|invalid value) encountered:RuntimeWarning")
@pytest.mark.parametrize("on_nonfinite", ["raise", "skip"])
def test_a_non_finite_step_leaves_running_statistics_as_they_were(on_nonfinite, rng):
    X = rng.standard_normal((16, 4)).astype(np.float32)
    X[9] = 3e38  # finite, but its first layer's output overflows: the second batch of 8 goes non-finite
    y = rng.integers(0, 2, 16)
    model = gd.Sequential(gd.Dense(4, 3), gd.BatchNorm1d(3), gd.Dense(3, 2))
    model.layers[0].W.data[...] = rng.uniform(0.5, 1.5, (4, 3))  # all positive: 3e38 * their sums overflows
    opt = gd.SGD(model.parameters(), lr=0.1)
    bn, W0, b0 = model.layers[1], model.layers[0].W.data.copy(), model.layers[0].b.data.copy()

    def run() -> gd.History:
        return gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=8, shuffle=False,
                      progress=False, on_nonfinite=on_nonfinite)

    if on_nonfinite == "raise":
        with pytest.raises(gd.NonFiniteError):
            run()
    else:
        assert run().skipped_steps == 1
    assert np.isfinite(bn.running_mean).all() and np.isfinite(bn.running_var).all()
    first_batch = X[:8].astype(np.float64) @ W0 + b0  # the only finite step's input to the BatchNorm
    np.testing.assert_allclose(bn.running_mean, 0.1 * first_batch.mean(0), rtol=1e-4, atol=1e-6)
