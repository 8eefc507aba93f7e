"""Data-parallel training on two MPI ranks (mpiexec from the venv, MPICH), against a single process.

Every launch runs under a timeout, so a hang fails the test instead of stalling the suite. The
scenarios live in tests/mpi/ranks.py; each launch compiles the kernels anew (a few seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpudnn as gd
from tests.mpi.ranks import EPOCHS, POISONED, STEPS_PER_EPOCH, B, problem, train_equivalence, weights
from tests.support import SIMULATOR

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
TIMEOUT = 240

try:
    import mpi4py
except ImportError:
    mpi4py = None
pytestmark = pytest.mark.skipif(mpi4py is None or not MPIEXEC.exists(),
                                reason="needs mpi4py and MPICH's mpiexec next to the Python (pip install -e '.[mpi]')")


def mpirun(*args: str, env: dict[str, str] | None = None, module: str = "mpi4py",
           timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """``mpiexec -n 2 python -m <module> args...`` from the repository root, one BLAS thread per rank."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def ranks(out: Path, name: str) -> list:
    paths = [out / f"{name}.rank{r}.npz" for r in range(2)] + [out / f"{name}.rank{r}.json" for r in range(2)]
    found = [p for p in paths if p.exists()]
    assert len(found) == 2, f"{name}: expected one result per rank, found {found}"
    return [dict(np.load(p)) if p.suffix == ".npz" else json.loads(p.read_text()) for p in found]


def assert_equivalent(out: Path, backend: str) -> None:
    path = {"numpy": "mpi", "cudasim": "host-staged mpi"}[backend]
    assert [seen["path"] for seen in ranks(out, "collectives")] == [path, path]
    rank0, rank1 = ranks(out, "equivalence")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=f"ranks differ in {key}")
    with gd.use_backend(backend):
        model, history = train_equivalence(backend, 2 * B)
    reference = weights(model)
    assert model.parameters()[0].data.dtype == np.float64
    for key, value in reference.items():
        np.testing.assert_allclose(rank0[key], value, rtol=1e-12, atol=1e-14, err_msg=key)
    start = problem()[0]
    assert any(np.abs(reference[k] - v).max() > 1e-3 for k, v in weights(start).items()), "training moved nothing"
    np.testing.assert_allclose(rank0["loss"], history["loss"], rtol=1e-12)
    np.testing.assert_allclose(rank0["accuracy"], history["accuracy"], rtol=1e-12)


def test_two_ranks_of_batch_b_train_as_one_process_of_batch_2b(tmp_path):
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "equivalence", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert EPOCHS * STEPS_PER_EPOCH == 30
    assert run.stderr.count("epoch 1/") == 1, "progress must come from rank 0 alone:\n" + run.stderr
    assert_equivalent(tmp_path, "numpy")


@pytest.mark.skipif(not SIMULATOR, reason="the CUDA simulator is off (NUMBA_ENABLE_CUDASIM=0) in this process")
def test_the_same_through_the_simulated_gpu_host_staged(tmp_path):
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "equivalence", str(tmp_path), "cudasim",
                 env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert run.returncode == 0, run.stderr
    assert_equivalent(tmp_path, "cudasim")


def test_skips_and_bad_configurations_are_decided_on_every_rank(tmp_path):
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "suite", str(tmp_path))
    assert run.returncode == 0, run.stderr
    # with shuffle off the poisoned sample 37 is rank 1's (37 % 2), in step 37 // 2 // B + 1 = 3
    assert (POISONED % 2, POISONED // 2 // B + 1) == (1, 3)
    skip0, skip1 = ranks(tmp_path, "nan_skip")
    assert int(skip0["skipped"]) == int(skip1["skipped"]) == 1
    for key in skip0:
        np.testing.assert_array_equal(skip0[key], skip1[key])
    with gd.use_backend("numpy"):  # the reference: one process of batch 2B skips the same global batch
        model, opt, X, y = problem(poison=True)
        gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=2 * B, shuffle=False,
               on_nonfinite="skip", progress=False)
    for key, value in weights(model).items():
        np.testing.assert_allclose(skip0[key], value, rtol=1e-12, atol=1e-14)
    for name, words in (("models_differ", "model"), ("lengths_differ", "samples")):
        for rank, seen in enumerate(ranks(tmp_path, name)):
            assert seen["type"] == "DistributedError", (name, rank, seen)
            assert words in seen["message"] and "rank 1" in seen["message"], seen["message"]
    failed0, failed1 = ranks(tmp_path, "save_failed")  # rank 0's epoch-end save fails: both stop, no hang
    assert failed0["epochs"] == failed1["epochs"] == 1, (failed0, failed1)
    assert "No space left" in failed0["stopped_by"] and "another rank" in failed1["stopped_by"], (failed0, failed1)
    norm0, norm1 = ranks(tmp_path, "buffers")
    for key in norm0:
        if key != "mask":
            np.testing.assert_array_equal(norm0[key], norm1[key], err_msg=key)
    assert any("running_mean" in k for k in norm0)
    assert (norm0["mask"] != norm1["mask"]).any(), "dropout masks must differ between ranks"
    np.testing.assert_array_equal(norm0["summed"], np.arange(6) * 3.0)
    np.testing.assert_array_equal(norm1["broadcast"], np.zeros(4))


def test_a_nan_on_one_rank_stops_both_with_the_step_and_a_nonzero_exit(tmp_path):
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "nan_raise", str(tmp_path))
    assert run.returncode != 0
    assert "NonFiniteError" in run.stderr
    for seen in ranks(tmp_path, "nan_raise"):
        assert seen["type"] == "NonFiniteError", seen
        assert "step 3 of 10" in seen["message"] and "loss on rank(s) [1]" in seen["message"], seen["message"]


def test_an_exception_on_one_rank_ends_the_whole_job(tmp_path):
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "crash", str(tmp_path), timeout=120)
    assert run.returncode != 0
    assert "rank 1 fails on purpose" in run.stderr + run.stdout


def test_init_after_a_single_process_fit_is_refused_on_every_rank(tmp_path):
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "init_after_fit", str(tmp_path))
    assert run.returncode == 0, run.stderr
    for seen in ranks(tmp_path, "init_after_fit"):
        assert seen["type"] == "DistributedError" and "before the first fit" in seen["message"], seen


def test_cli_trains_on_two_ranks_with_one_bar_and_resumes_exactly(tmp_path):
    """`mpiexec -n 2 gpudnn train`: one progress bar, the usual accuracy, one checkpoint (rank 0's) that
    a single process loads, and --resume under mpiexec equal to training straight through."""
    from gpudnn.checkpoint import read_checkpoint

    common = ("--backend", "numpy", "train", "--batch-size", "32")  # 2 x 32: the default 64 a step
    first, resumed, straight = tmp_path / "2.npz", tmp_path / "3r.npz", tmp_path / "3.npz"
    run = mpirun(*common, "--epochs", "2", "--save", str(first), "--metrics-json", str(tmp_path / "m.json"),
                 module="gpudnn")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("epoch 1/2") == 1 and run.stderr.count("epoch 2/2") == 1, run.stderr
    assert run.stdout.count("test accuracy") == 1, run.stdout
    summary = json.loads((tmp_path / "m.json").read_text())
    assert summary["ranks"] == 2 and summary["test_accuracy"] >= 0.9, summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.npz", "m.json"], "rank 0 alone writes files"
    ckpt = gd.load_checkpoint(first, restore_rng=False)
    with gd.use_backend("numpy"):
        from gpudnn.cli.train import evaluate_job

        assert evaluate_job(model=str(first))["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-12)
    assert ckpt.epoch == 2
    for args, path in ((("--epochs", "3", "--resume", str(first)), resumed), (("--epochs", "3"), straight)):
        run = mpirun(*common, *args, "--save", str(path), "--quiet", module="gpudnn")
        assert run.returncode == 0, run.stderr
    (meta_r, arrays_r), (meta_s, arrays_s) = read_checkpoint(resumed), read_checkpoint(straight)
    assert arrays_r.keys() == arrays_s.keys() and any(k.startswith("optim/") for k in arrays_r)
    for key in arrays_r:
        np.testing.assert_array_equal(arrays_r[key], arrays_s[key], err_msg=key)
    assert meta_r["rng"] == meta_s["rng"] and meta_r["optimizer"]["step"] == meta_s["optimizer"]["step"]


def test_info_shows_rank_size_and_collectives():
    run = mpirun("info", module="gpudnn", timeout=120)
    assert run.returncode == 0, run.stderr
    assert "rank 0 of 2" in run.stdout and "rank 1 of 2" in run.stdout and "collectives" in run.stdout
    assert run.stdout.count("numpy ") == 1, "rank 0 alone prints the report"
