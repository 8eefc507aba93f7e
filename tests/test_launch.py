"""How CUDA kernels launch: each declares one signature, which is what its op passes it; the lean launch
packs arguments as numba-cuda lays them out; the numba path stays available as a reference.

Launches on a real GPU (lean against numba, bit for bit) are in the gpu-marked tests at the end; the
kernels' compiled entries are held to the packing in test_cuda_ptx."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest
from gpudnn.kernels import _launch

from tests.support import GPU_REASON, HAVE_GPU

ROOT = Path(__file__).resolve().parents[1]


def _variants_report() -> list[dict]:
    """Every kernel of kernels.variants: its label, declared and inferred signature (real numba.cuda, no GPU)."""
    code = ("import json; from gpudnn.kernels.variants import cuda_variants; "
            "print(json.dumps([{'label': v.label, 'kernel': id(v.kernel), 'declared': list(map(str, v.signature)), "
            "'inferred': list(map(str, v.inferred))} for v in cuda_variants()]))")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_every_kernel_is_passed_what_it_declares() -> None:
    found = _variants_report()
    assert len(found) >= 150
    wrong = [f"{v['label']}: declares {v['declared']}, is passed {v['inferred']}"
             for v in found if v["declared"] != v["inferred"]]
    assert not wrong, "\n".join(wrong)
    kernels = [v["kernel"] for v in found]
    assert len(set(kernels)) == len(kernels), "a kernel object launched with two signatures"


def _signature(text: str) -> tuple:
    return _launch.CudaKernel(lambda: None, text).signature


def test_the_packing_is_numba_cudas_layout() -> None:
    from gpudnn.backend.standin import xp

    x = xp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    b = xp.asarray(np.ones(4, np.float64))
    signature = _signature("void(float32[:, ::1], float64[::1], float32, int64, uint64, boolean, "
                           "UniTuple(float32[::1], 2), UniTuple(float64, 2))")
    v = xp.asarray(np.zeros(5, np.float32))
    packed = _launch.packer(signature)((x, b, 1.5, 7, np.uint64(2**63 + 1), True, (v, v[1:]), (0.25, 4.0)))
    expected = [0, 0, 12, 4, x.data.ptr, 3, 4, 16, 4,  # meminfo, parent, nitems, itemsize, data, shape, strides
                0, 0, 4, 8, b.data.ptr, 4, 8,
                ("c_float", 1.5), ("c_long", 7), ("c_ulong", 2**63 + 1), True,
                0, 0, 5, 4, v.data.ptr, 5, 4, 0, 0, 4, 4, v.data.ptr + 4, 4, 4,
                ("c_double", 0.25), ("c_double", 4.0)]
    as_values = [(type(p).__name__, p.value) if isinstance(p, ctypes._SimpleCData) else p for p in packed]
    assert as_values == expected
    assert _launch.parameter_bytes(signature) == [8] * 9 + [8] * 7 + [4, 8, 8, 1] + [8] * 14 + [8, 8]


class _Numba:
    """A compiled kernel whose packing (numba-cuda's _prepare_args, one call per argument) is given."""

    debug = cooperative = False
    extensions: list = []

    def __init__(self, per_argument: list[list]) -> None:
        self.per_argument = iter(per_argument)

    def _prepare_args(self, ty, value, stream, retr, out) -> None:
        out.extend(next(self.per_argument))


def _launcher_with(signature: tuple, numba_packs: list[list]) -> _launch._LeanLauncher:
    lean = object.__new__(_launch._LeanLauncher)
    lean.compiled, lean.signature, lean.pack = _Numba(numba_packs), signature, _launch.packer(signature)
    return lean


def test_the_first_launch_compares_the_packing_with_numba_cudas(monkeypatch) -> None:
    from gpudnn.backend.standin import xp

    monkeypatch.setattr(_launch, "_core_stream", lambda: 0)
    monkeypatch.setattr(_launch, "cuda_args", lambda *args: [a.get() if hasattr(a, "get") else a for a in args])
    x = xp.asarray(np.zeros((1, 4), np.float32))  # C- and F-contiguous: numba-cuda may write other strides
    signature = _signature("void(float32[:, ::1], float32, boolean)")
    array = [0, 0, 4, 4, x.data.ptr, 1, 4, 4, 4]

    def check(*numba_packs: list, args: tuple = (x, np.float32(2.0), True)) -> str | None:
        return _launcher_with(signature, list(numba_packs)).differences_from_numba(args, numba.typeof)

    assert check(array, [ctypes.c_float(2.0)], [True]) is None
    assert check([*array[:7], 16, 4], [ctypes.c_float(2.0)], [True]) is None  # strides: not read by the kernel
    assert "numba-cuda packs" in check([*array[:4], x.data.ptr + 4, *array[5:]], [ctypes.c_float(2.0)], [True])
    assert "c_double" in check(array, [ctypes.c_double(2.0)], [True])
    assert "11 parameters packed, numba-cuda packs 10" in check(array, [ctypes.c_float(2.0)], [])
    assert "passed (array(float64" in check(array, [ctypes.c_float(2.0)], [True],
                                            args=(x.astype(np.float64), np.float32(2.0), True))
    assert "passed (array(float32, 2d, C), float32, bool, float32)" in check(
        array, [ctypes.c_float(2.0)], [True], args=(x, np.float32(2.0), True, np.float32(1.0)))
    empty = x[:0]
    assert _launch.packer(signature)((empty, 2.0, True))[:5] == [0, 0, 0, 4, 0]  # CuPy reports no address


def test_the_launch_path_is_chosen_by_name() -> None:
    before = _launch.use_launch_path("numba")
    try:
        assert _launch.launch_path()["chosen"] == "numba"
        with pytest.raises(ValueError, match="lean"):
            _launch.use_launch_path("fast")
    finally:
        _launch.use_launch_path(before)
    assert set(_launch.launch_path()) == {"chosen", "numba_fallbacks"}


def test_no_kernel_compiles_or_touches_a_gpu_when_declared() -> None:
    code = ("import gpudnn.kernels.bias_act as m, numpy as np; k = m._cuda_kernel(0, np.dtype('float32'), False); "
            "print(type(k).__name__, len(k.dispatcher.overloads), k.signature_text)")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[:2] == ["CudaKernel", "0"]


def test_a_source_checkout_imports_without_installing() -> None:
    """PYTHONPATH=. (as on a machine where nothing is installed): gpudnn.kernels is the top-level kernels/."""
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
            "sys.path_hooks[:] = [h for h in sys.path_hooks if 'editable' not in repr(h).lower()]; "
            "sys.path_importer_cache.clear(); sys.path.insert(0, '.'); "
            "import gpudnn, gpudnn.kernels.bias_act; print(gpudnn.kernels.__file__); print(gpudnn.Dense.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    kernels_file, dense = done.stdout.split()
    assert Path(kernels_file).resolve() == ROOT / "kernels" / "__init__.py" and dense == "Dense"


# --------------------------------------------------------------------------- on a real GPU

needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason=GPU_REASON)


@pytest.mark.gpu
@needs_gpu
def test_lean_and_numba_launches_give_the_same_bits() -> None:
    import cupy

    import gpudnn as gd

    rng = np.random.default_rng(0)
    b = gd.backend.backend("cupy")

    def run() -> list[np.ndarray]:
        x = b.asarray(rng.standard_normal((37, 45)), dtype=np.float32)
        bias = b.asarray(rng.standard_normal(45), dtype=np.float32)
        labels = b.asarray(rng.integers(0, 45, 37))
        hits = b.zeros((1,), np.float64)
        y = b.bias_act(x, bias, "gelu")
        loss, g = b.softmax_xent(x, labels, 0.1, hits_out=hits)
        p, grad, m, v = (b.asarray(rng.standard_normal(1003), dtype=np.float32) for _ in range(4))
        v = abs(v)
        b.adam_(p, grad, m, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=3, l2=1e-4)
        out, mean, rstd = b.batch_norm(x, bias, bias)
        sums = b.arena_sums(p, grad, loss)
        cupy.cuda.get_current_stream().synchronize()
        return [b.to_numpy(a) for a in (y, loss, g, hits, p, m, v, out, mean, rstd, sums)]

    state = rng.bit_generator.state
    lean = run()
    before = _launch.use_launch_path("numba")
    try:
        rng.bit_generator.state = state
        reference = run()
    finally:
        _launch.use_launch_path(before)
    for ours, theirs in zip(lean, reference):
        np.testing.assert_array_equal(ours, theirs)
    assert _launch.launch_path()["numba_fallbacks"] == {}
