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
from tests.mpi.ranks import EPOCHS, POISONED, STEPS_PER_EPOCH, B, problem, weights

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


def single_process(batch_size: int, backend: str = "numpy", **fit_args) -> tuple[gd.Sequential, gd.History]:
    with gd.use_backend(backend):
        model, opt, X, y = problem()
        history = gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, batch_size=batch_size, progress=False,
                         **fit_args)
    return model, history


def assert_equivalent(out: Path, backend: str = "numpy") -> None:
    rank0, rank1 = ranks(out, "equivalence")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=f"ranks differ in {key}")
    model, history = single_process(2 * B, backend, epochs=EPOCHS)
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
    assert_equivalent(tmp_path)


@pytest.mark.slow
def test_the_same_through_the_simulated_gpu_host_staged(tmp_path):
    pytest.importorskip("numba.cuda")
    run = mpirun(str(ROOT / "tests/mpi/ranks.py"), "equivalence", str(tmp_path), "cudasim",
                 env={"NUMBA_ENABLE_CUDASIM": "1"})
    assert run.returncode == 0, run.stderr
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        assert_equivalent(tmp_path, "cudasim")
    else:  # this process cannot switch the simulator on after numba loaded: compare with numpy maths
        assert_equivalent(tmp_path, "numpy")


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
