"""Backend selection, transfer, mixing rules, seeding, and the simulated CUDA dispatch path."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import gpudnn
from gpudnn.backend import BackendUnavailableError, backend, cupy_status, selection_reason
from tests.support import HAVE_GPU, SIMULATOR, to_host


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | env
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120)


def test_import_touches_no_gpu_and_compiles_nothing():
    out = _python("import sys, gpudnn; print(sorted(m for m in sys.modules if m.split('.')[0] in "
                  "('numba', 'cupy', 'numba_cuda', 'llvmlite')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_set_get_and_context_manager():
    numpy_backend = gpudnn.set_backend("numpy")
    assert gpudnn.get_backend() is numpy_backend and numpy_backend.name == "numpy"
    assert selection_reason(numpy_backend) == "requested"
    if SIMULATOR:
        with gpudnn.use_backend("cudasim") as sim:
            assert gpudnn.get_backend() is sim and sim.kernel_impl == "cuda"
        assert gpudnn.get_backend() is numpy_backend


def test_environment_variable_and_unknown_kind():
    out = _python("import gpudnn; print(gpudnn.get_backend().name)", GPUDNN_BACKEND="numpy")
    assert out.stdout.strip() == "numpy", out.stderr
    with pytest.raises(ValueError, match="backend must be one of"):
        gpudnn.set_backend("tpu")


def test_auto_says_why():
    chosen = backend("auto")
    ok, why = cupy_status()
    assert chosen.name == ("cupy" if ok else "numpy")
    assert why in selection_reason(chosen)


@pytest.mark.skipif(HAVE_GPU, reason="a usable GPU is present, so 'cupy' works here")
def test_cupy_unavailable_names_the_cause():
    with pytest.raises(BackendUnavailableError, match="backend 'cupy' is unavailable: .+"):
        gpudnn.set_backend("cupy")


def test_cudasim_needs_the_simulator():
    out = _python("import gpudnn; gpudnn.set_backend('cudasim')", NUMBA_ENABLE_CUDASIM="0")
    assert "needs NUMBA_ENABLE_CUDASIM=1" in out.stderr
    assert out.returncode != 0 and "BackendUnavailableError" in out.stderr, out.stderr


class _DeviceLike:
    """Looks like a GPU array to a host backend."""
    __cuda_array_interface__ = {"shape": (2, 2), "typestr": "<f4", "data": (0, False), "version": 3}


def test_arrays_of_another_backend_are_refused():
    b = backend("numpy")
    with pytest.raises(TypeError, match="transfer it explicitly with backend.asarray"):
        b.bias_act(_DeviceLike(), None)
    with pytest.raises(TypeError, match="transfer it explicitly"):
        b.matmul([[1.0]], b.zeros((1, 1)))


def test_transfer_creation_and_matmul(rng):
    b = backend("numpy")
    host = rng.standard_normal((5, 3))
    a = b.asarray(host, dtype=np.float32)
    assert a.dtype == np.float32 and a.flags.c_contiguous
    np.testing.assert_array_equal(b.to_numpy(a), host.astype(np.float32))
    assert b.zeros((2, 3)).dtype == np.float32 and b.empty((4,), np.float64).dtype == np.float64
    w = b.asarray(rng.standard_normal((5, 4)))
    rounded = host.astype(np.float32).astype(np.float64)  # what `a` holds
    np.testing.assert_allclose(b.matmul(a.astype(np.float64), w, transpose_a=True), rounded.T @ b.to_numpy(w),
                               rtol=1e-12, atol=1e-12)
    out = b.empty((3, 3), np.float64)
    assert b.matmul(a.astype(np.float64), a.astype(np.float64), out=out, transpose_a=True) is out
    with pytest.raises(ValueError, match="matmul shapes do not match"):
        b.matmul(a, a)


@pytest.mark.parametrize("shape, dtype", [((1024, 1025), np.float32), ((5, 7), np.float32), (1 << 20, np.float64)])
def test_large_cpu_arrays_start_on_a_huge_page(shape, dtype):
    from gpudnn.backend.numpy_backend import ALIGN_FROM, HUGE_PAGE

    b = backend("numpy")
    for make in (b.empty, b.zeros):
        a = make(shape, dtype)
        assert a.shape == np.empty(shape).shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable
        if a.nbytes >= ALIGN_FROM:
            assert a.ctypes.data % HUGE_PAGE == 0
        a[...] = 1
        assert a.sum() == a.size
    assert not b.zeros(shape, dtype).any()


@pytest.mark.parametrize("shape", [2.5, (-1,), (3, "a"), "big"])
def test_cpu_allocation_of_a_bad_shape_gets_numpys_error(shape):
    b = backend("numpy")
    for make, numpy_make in ((b.empty, np.empty), (b.zeros, np.zeros)):
        with pytest.raises((TypeError, ValueError)) as expected:
            numpy_make(shape, np.float32)
        with pytest.raises(type(expected.value), match=re.escape(str(expected.value))):
            make(shape)


def test_seed_reproduces_every_generator():
    gpudnn.seed(123)
    b = backend("numpy")
    first = (b.rng.standard_normal(4), b.next_seed())
    gpudnn.seed(123)
    second = (b.rng.standard_normal(4), b.next_seed())
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    with pytest.raises(ValueError, match="seed must be"):
        gpudnn.seed(-1)


@pytest.mark.skipif(not SIMULATOR, reason="the simulated CUDA backend needs NUMBA_ENABLE_CUDASIM=1")
def test_simulated_cuda_dispatch_matches_numpy_backend(rng):
    x = rng.standard_normal((9, 17)).astype(np.float32)
    bias = rng.standard_normal(17).astype(np.float32)
    cpu, sim = backend("numpy"), backend("cudasim")
    before = sim.launches
    y = sim.bias_act(sim.asarray(x), sim.asarray(bias), "tanh")
    assert sim.launches == before + 1
    assert not isinstance(y, np.ndarray)  # the strict CuPy stand-in
    np.testing.assert_allclose(sim.to_numpy(y), cpu.bias_act(x, bias, "tanh"), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="transfer it explicitly"):
        sim.bias_act(x, None)


@pytest.mark.gpu
def test_cupy_backend_runs_kernels_on_gpu(rng):
    b = backend("cupy")
    x = rng.standard_normal((300, 257)).astype(np.float32)
    bias = rng.standard_normal(257).astype(np.float32)
    y = b.bias_act(b.asarray(x), b.asarray(bias), "relu")
    assert not isinstance(y, np.ndarray)
    np.testing.assert_allclose(to_host(y), np.maximum(x + bias, 0), rtol=1e-6)
    with pytest.raises(TypeError, match="transfer it explicitly"):
        b.bias_act(x, None)


def test_every_op_table_entry_is_offered_by_the_backend():
    import importlib
    import pkgutil

    import gpudnn.kernels as kernels

    from gpudnn.backend.base import Backend

    tables = {info.name: importlib.import_module(f"gpudnn.kernels.{info.name}").OPS
              for info in pkgutil.iter_modules(kernels.__path__)
              if hasattr(importlib.import_module(f"gpudnn.kernels.{info.name}"), "OPS")}
    assert kernels.OP_MODULES == {name: module for module, ops in tables.items() for name in ops}
    for module, ops in tables.items():
        for name, three in ops.items():
            for impl in ("ref", "cpu", "cuda"):
                entry = getattr(three, impl)
                assert entry is getattr(importlib.import_module(f"gpudnn.kernels.{module}"), f"{name}_{impl}")
                assert entry.__name__ == f"{name}_{impl}" and entry.__doc__
            assert callable(getattr(Backend, name))


def test_precompile_runs_every_fused_op(monkeypatch):
    import gpudnn.kernels as kernels

    from gpudnn.backend.numpy_backend import NumpyBackend

    b = NumpyBackend()
    called, bind = set(), NumpyBackend._bind
    monkeypatch.setattr(NumpyBackend, "_bind", lambda self, name: called.add(name) or bind(self, name))
    calls = gpudnn.precompile(backend=b)
    assert called == set(kernels.OP_MODULES)
    assert calls >= 2 * 9 + len(called)  # every activation forward and backward, then each other op


@pytest.mark.skipif(not SIMULATOR, reason="concerns numba-cuda's simulator (NUMBA_ENABLE_CUDASIM=1)")
def test_simulated_threads_of_a_block_share_one_shared_array():
    """The simulator's own lookup of a shared array is an unlocked get-then-set: threads arriving
    together could each get their own array (reductions then lose partial sums). gpudnn's launches
    install a locked lookup; 16 threads released at once must all get the same array."""
    import threading

    from gpudnn.kernels import _launch
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    _launch._one_shared_array_per_block()
    for _ in range(100):  # unlocked, about one round in 20 saw two arrays
        shared, start, got = FakeCUDAShared(0), threading.Barrier(16), []

        def take(shared=shared, start=start, got=got):
            start.wait()
            got.append(shared.array((4, 8), np.float32))

        threads = [threading.Thread(target=take) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(got) == 16 and all(a is got[0] for a in got)
        assert got[0].shape == (4, 8) and got[0].dtype == np.float32
