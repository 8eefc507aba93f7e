"""Checkpoints: round trips, bit-identical resume, damaged files, and SIGKILL in the middle of a save."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import gpudnn as gd
from tests.support import SIMULATOR


@pytest.fixture(autouse=True)
def numpy_backend():
    with gd.use_backend("numpy") as b:
        yield b


def small_problem(seed: int = 0):
    gd.seed(seed)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((96, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    model = gd.Sequential(gd.Dense(6, 16, activation="gelu"), gd.Dropout(0.2), gd.Dense(16, 2))
    return X, y, model


def test_roundtrip_restores_weights_optimizer_and_architecture(tmp_path):
    X, y, model = small_problem()
    opt = gd.Adam(model.parameters(), lr=1e-2, l2=1e-4)
    gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=2, batch_size=32, progress=False)
    path = gd.save_checkpoint(tmp_path / "c.npz", model, opt, epoch=2, extra={"note": "x"})
    ckpt = gd.load_checkpoint(path)
    assert ckpt.epoch == 2 and ckpt.extra == {"note": "x"}
    np.testing.assert_array_equal(ckpt.model(X), model(X))
    opt2 = gd.Adam(ckpt.model.parameters(), lr=0.5)
    gd.load_checkpoint(path, ckpt.model, opt2)
    assert opt2.lr == 1e-2 and opt2.step_count == opt.step_count and opt2.l2 == 1e-4
    for k in opt.state:
        np.testing.assert_array_equal(opt.state[k], opt2.state[k])
    rebuilt = gd.load_checkpoint(path, with_optimizer=True).optimizer
    assert isinstance(rebuilt, gd.Adam) and rebuilt.hyper() == opt.hyper() and rebuilt.step_count == opt.step_count
    for k in opt.state:
        np.testing.assert_array_equal(opt.state[k], rebuilt.state[k])
    assert not [f for f in os.listdir(tmp_path) if f != "c.npz"], "temporary files left behind"


def test_resume_is_bit_identical(tmp_path):
    X, y, model = small_problem()
    opt = gd.Adam(model.parameters(), lr=1e-2)
    loss = gd.SoftmaxCrossEntropy()
    gd.fit(model, loss, opt, X, y, epochs=5, batch_size=16, progress=False)
    straight = model.state_dict()

    X, y, model = small_problem()
    opt = gd.Adam(model.parameters(), lr=1e-2)
    gd.fit(model, loss, opt, X, y, epochs=2, batch_size=16, progress=False)
    gd.save_checkpoint(tmp_path / "mid.npz", model, opt, epoch=2)
    gd.seed(999)  # scramble the generator: the checkpoint must restore it
    ckpt = gd.load_checkpoint(tmp_path / "mid.npz")
    opt = gd.Adam(ckpt.model.parameters(), lr=1e-2)
    gd.load_checkpoint(tmp_path / "mid.npz", ckpt.model, opt)
    gd.fit(ckpt.model, loss, opt, X, y, epochs=5, initial_epoch=ckpt.epoch, batch_size=16, progress=False)
    for name, value in straight.items():
        np.testing.assert_array_equal(ckpt.model.state_dict()[name], value, err_msg=name)


def test_damaged_files_are_refused(tmp_path):
    X, y, model = small_problem()
    path = gd.save_checkpoint(tmp_path / "c.npz", model)
    blob = path.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(gd.CheckpointError, match="truncated.npz: not a readable gpudnn checkpoint: truncated"):
        gd.load_checkpoint(tmp_path / "truncated.npz")
    # Alter one weight but keep the archive valid: only the checksum can tell.
    with np.load(path) as npz:
        arrays = {k: npz[k].copy() for k in npz.files}
    arrays["model/0.W"][0, 0] += 1
    np.savez(tmp_path / "altered.npz", **arrays)
    with pytest.raises(gd.CheckpointError, match="failed its checksum"):
        gd.load_checkpoint(tmp_path / "altered.npz")
    with pytest.raises(gd.CheckpointError, match="does not exist"):
        gd.load_checkpoint(tmp_path / "missing.npz")
    other = gd.Sequential(gd.Dense(6, 3))
    with pytest.raises(gd.CheckpointError, match="another architecture"):
        gd.load_checkpoint(path, other)
    with pytest.raises(gd.CheckpointError, match="no optimizer state"):
        gd.load_checkpoint(path, model, gd.SGD(model.parameters()))
    with pytest.raises(gd.CheckpointError, match="no optimizer state"):
        gd.load_checkpoint(path, with_optimizer=True)
    with zipfile.ZipFile(path) as z:
        assert all(not n.endswith(".pkl") for n in z.namelist())


_SAVER = """
import sys, numpy as np, gpudnn as gd
gd.set_backend("numpy")
model = gd.Sequential(gd.Dense(1024, 2048), gd.Dense(2048, 10))
i = 0
while True:
    i += 1
    for p in model.parameters():
        p.data[...] = i
    gd.save_checkpoint(sys.argv[1], model, epoch=i)
    print(i, flush=True)
"""


def test_sigkill_during_save_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "live.npz"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    kills, rng = 0, np.random.default_rng()
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline()  # at least one complete save exists
        time.sleep(rng.uniform(0.0, 0.4))  # then kill it at a random point, most likely mid-save
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        ckpt = gd.load_checkpoint(path)  # verifies the checksum
        epoch = ckpt.epoch
        for p in ckpt.model.parameters():
            np.testing.assert_array_equal(p.data, epoch)
    assert kills == 6


@pytest.mark.skipif(not SIMULATOR, reason="the simulated CUDA backend needs NUMBA_ENABLE_CUDASIM=1")
@pytest.mark.parametrize("source,target", [("cudasim", "numpy"), ("numpy", "cudasim")])
def test_checkpoints_move_between_backends(source, target, tmp_path):
    with gd.use_backend(source):
        X, y, model = small_problem()
        opt = gd.SGD(model.parameters(), lr=0.1, momentum=0.9)
        gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=32, progress=False)
        gd.save_checkpoint(tmp_path / "c.npz", model, opt, epoch=1)
        expected = model.backend.to_numpy(model(model.backend.asarray(X)))
    with gd.use_backend(target) as b:
        ckpt = gd.load_checkpoint(tmp_path / "c.npz")
        assert ckpt.model.backend is b
        opt = gd.SGD(ckpt.model.parameters(), lr=0.1, momentum=0.9)
        gd.load_checkpoint(tmp_path / "c.npz", ckpt.model, opt)
        np.testing.assert_allclose(b.to_numpy(ckpt.model(b.asarray(X))), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_gpu_checkpoint_loads_on_cpu(tmp_path):
    with gd.use_backend("cupy") as gpu:
        X, y, model = small_problem()
        gd.save_checkpoint(tmp_path / "g.npz", model)
        expected = gpu.to_numpy(model(gpu.asarray(X)))
    with gd.use_backend("numpy"):
        ckpt = gd.load_checkpoint(tmp_path / "g.npz")
        np.testing.assert_allclose(ckpt.model(X), expected, rtol=1e-4, atol=1e-5)
