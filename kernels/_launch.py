"""How CUDA kernels are declared and launched: one explicit signature each, a lean launch on a GPU.

A kernel module declares each CUDA kernel with ``cuda_kernel(signature)``: the Numba types it is launched
with, written as Numba signature strings ("void(float32[:, ::1], int64)"). Its plan guarantees them (dtype,
C-contiguity, scalar types); ``variants`` lists every kernel and the test suite checks each declared
signature against the types Numba infers for the arguments the op passes. Nothing compiles when a kernel
is declared: on a GPU it is compiled for that signature on its first launch on each device.

The launch path (``launch``) depends on where kernels run:

- on a GPU, lean: the kernel compiled for CuPy's current device, its arguments packed straight from the
  CuPy arrays' attributes (no argument typing, no DeviceNDArray or interface dict per argument, no
  configured dispatcher), launched by cuda.core on CuPy's current stream. The packing is numba-cuda's
  (``_Kernel._prepare_args``: an array is meminfo, parent, nitems, itemsize, data, shape, strides). Each
  kernel's first launch on a device checks, with numba-cuda's own typing and packing, that its
  arguments are of the declared types and pack the same; where not, or where numba-cuda lacks what
  the check uses, that kernel takes the numba path and ``launch_path()`` says why.
- on a GPU, numba (``GPUDNN_CUDA_LAUNCH=numba`` or ``use_launch_path("numba")``): numba-cuda's own
  dispatcher, with arrays wrapped without a stream sync (cuda_args).
- under numba-cuda's simulator: the simulator's dispatcher on NumPy views of the arrays' memory.
- while ``recording_launches``: nothing runs; each launch is recorded (see variants).

Nothing here imports numba or CuPy at import time.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np

from ._checks import is_device_array

# Kernel launches so far, by implementation: "cpu" (calls of compiled CPU kernels, one per block of
# rows where an op splits) and "cuda" (kernel launches). Read through Backend.launches.
LAUNCHES: Counter[str] = Counter()

LAUNCH_PATHS = ("lean", "numba")


@functools.cache
def simulator_enabled() -> bool:
    """True when numba-cuda runs CUDA kernels in its CPU simulator (NUMBA_ENABLE_CUDASIM=1). Numba reads
    the variable once, when first imported, so its value is read once here too."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


@functools.cache
def cuda():
    """The numba.cuda module, imported on first use (so `import gpudnn` never touches a GPU).

    numba's low-occupancy warning (grids under 128 blocks) is turned off: small models launch small
    grids by design, and the warning on every launch would flood users' stderr."""
    from numba import config
    from numba import cuda as numba_cuda

    config.CUDA_LOW_OCCUPANCY_WARNINGS = False
    return numba_cuda


def device_jit():
    """Decorator for CUDA device functions: ``cuda.jit(device=True)``, or the plain Python function
    under the simulator, whose device-function wrapper takes a global lock on every call and would
    serialise the simulated threads."""
    return (lambda f: f) if simulator_enabled() else cuda().jit(device=True)


# --------------------------------------------------------------------------- declaring kernels


class CudaKernel:
    """A numba.cuda kernel and the one signature it is launched with (see the module docstring)."""

    def __init__(self, py_func: Callable[..., None], signature: str) -> None:
        self.py_func = py_func
        self.signature_text = signature
        self.dispatcher = cuda().jit(py_func)  # compiles nothing yet
        self._launchers: dict[tuple[int, str], Callable[[Any, Any, tuple[Any, ...]], None]] = {}  # (device, path)

    def __repr__(self) -> str:
        return f"<CudaKernel {self.py_func.__module__}.{self.py_func.__name__}{self.signature_text[4:]}>"

    @functools.cached_property
    def signature(self) -> tuple[Any, ...]:
        """The argument types, as Numba types."""
        from numba.cuda.core import sigutils

        argtypes, _ = sigutils.normalize_signature(self.signature_text)
        return tuple(argtypes)

    def compile(self) -> Any:
        """numba-cuda's compiled kernel for the signature on the current device (compiled once)."""
        return self.dispatcher.compile(self.signature)


def cuda_kernel(signature: str) -> Callable[[Callable[..., None]], CudaKernel]:
    """Decorator: the function as a CudaKernel launched with ``signature`` (a Numba signature string)."""
    return lambda fn: CudaKernel(fn, signature)


# --------------------------------------------------------------------------- recording


class Launch(NamedTuple):
    """A kernel launch as recorded by recording_launches: the kernel, its grid and block, and the
    arguments it was given."""

    kernel: CudaKernel
    grid: Any
    block: Any
    args: tuple[Any, ...]


_RECORDING: list[Launch] | None = None


def recording() -> bool:
    """Whether launches are being recorded (the cuda ops then take NumPy arrays)."""
    return _RECORDING is not None


@contextlib.contextmanager
def recording_launches() -> Iterator[list[Launch]]:
    """Within this block the cuda ops take NumPy arrays and, instead of launching, append each launch
    they would make to the list yielded (nothing runs, outputs stay as they are). This is how the
    kernels and argument types an op launches are enumerated without a GPU (see variants)."""
    global _RECORDING
    if simulator_enabled():
        raise RuntimeError("recording_launches needs the real numba.cuda (NUMBA_ENABLE_CUDASIM is set)")
    outer, _RECORDING = _RECORDING, []
    try:
        yield _RECORDING
    finally:
        _RECORDING = outer


# --------------------------------------------------------------------------- launching


_PATH = {"chosen": os.environ.get("GPUDNN_CUDA_LAUNCH", "lean").strip().lower() or "lean"}
_WHY_NUMBA: dict[str, str] = {}  # kernel -> why it takes the numba path although "lean" is chosen
_LOCK = threading.Lock()


def use_launch_path(path: str) -> str:
    """Launch CUDA kernels by ``path`` from the next launch on: "lean" (the default) or "numba" (numba-cuda's
    dispatcher, as a reference); returns the previous choice. ``GPUDNN_CUDA_LAUNCH`` sets it for a process."""
    if path not in LAUNCH_PATHS:
        raise ValueError(f"path must be one of {LAUNCH_PATHS}, got {path!r}")
    previous, _PATH["chosen"] = _PATH["chosen"], path
    return previous


def launch_path() -> dict[str, Any]:
    """The chosen launch path and the kernels that fell back to numba's, with why."""
    chosen = _PATH["chosen"]
    return {"chosen": chosen if chosen in LAUNCH_PATHS else f"{chosen} (unknown: numba)",
            "numba_fallbacks": dict(_WHY_NUMBA)}


def launch(kernel: CudaKernel, grid: Any, block: Any, *args: Any) -> None:
    """``kernel`` over ``grid`` x ``block`` with ``args`` on CuPy's current device and stream (see the
    module docstring). Outputs that may be their inputs come after them in ``args`` (see _common)."""
    if _RECORDING is not None:
        _RECORDING.append(Launch(kernel, grid, block, args))
        return
    LAUNCHES["cuda"] += 1
    if simulator_enabled():
        _one_shared_array_per_block()
        kernel.dispatcher[grid, block, 0](*cuda_args(*args))
        return
    key = (_current_device(), _PATH["chosen"])
    launcher = kernel._launchers.get(key)
    if launcher is None:
        launcher = kernel._launchers[key] = _launcher(kernel, *key, args)
    launcher(grid, block, args)


_THREAD = threading.local()


def _current_device() -> int:
    """CuPy's current device, its context made current on this thread at the thread's first launch there
    (a launch goes to the current context; a thread that has only read device numbers has none yet)."""
    import cupy

    device = cupy.cuda.runtime.getDevice()
    if getattr(_THREAD, "device", None) != device:
        cupy.cuda.runtime.setDevice(device)
        _THREAD.device = device
    return device


def _launcher(kernel: CudaKernel, device: int, path: str,
              args: tuple[Any, ...]) -> Callable[[Any, Any, tuple[Any, ...]], None]:
    """How ``kernel`` launches on ``device`` by ``path``; ``args``: those of its first such launch."""
    with _LOCK, cuda().gpus[device]:
        compiled = kernel.compile()
        if path != "lean":
            return _numba_launcher(kernel)
        try:
            lean = _LeanLauncher(compiled, kernel.signature)
            why = lean.differences_from_numba(args, kernel.dispatcher.typeof_pyval)
        except Exception as exc:  # e.g. another numba-cuda's internals: numba's own path still works
            why = f"{type(exc).__name__}: {exc}"
        if why:
            _WHY_NUMBA[repr(kernel)] = why
            return _numba_launcher(kernel)
        return lean


def _numba_launcher(kernel: CudaKernel) -> Callable[[Any, Any, tuple[Any, ...]], None]:
    def run(grid: Any, block: Any, args: tuple[Any, ...]) -> None:
        kernel.dispatcher[grid, block, current_stream()](*cuda_args(*args))

    return run


class _LeanLauncher:
    """Launches one compiled kernel on one device through cuda.core, arguments packed by ``packer``."""

    def __init__(self, compiled: Any, signature: tuple[Any, ...]) -> None:
        from cuda.core import launch as core_launch

        self.compiled, self.signature = compiled, signature
        self.function = compiled._codelibrary.get_cufunc().kernel
        self.pack = packer(signature)
        self.core_launch = core_launch

    def __call__(self, grid: Any, block: Any, args: tuple[Any, ...]) -> None:
        self.core_launch(_core_stream(), _launch_config(grid, block), self.function, *self.pack(args))

    def differences_from_numba(self, args: tuple[Any, ...], typeof: Callable[[Any], Any]) -> str | None:
        """Why ``pack`` cannot stand in for numba-cuda's launch of ``args``, or None: arguments that are not of
        the declared types (``typeof``: numba's typing of a launch argument), a compiled kernel that asks
        for more than a plain launch (debug checks, a cooperative launch, argument extensions), or a
        packing other than numba-cuda's own. The strides of C-contiguous arrays are compared by count
        only: the compiled code indexes them from the shape (and numba-cuda writes canonical strides
        where an array is both C- and F-contiguous)."""
        wrapped = cuda_args(*args)
        types = [typeof(value) for value in wrapped]
        if tuple(types) != self.signature:
            return f"declares ({', '.join(map(str, self.signature))}), passed ({', '.join(map(str, types))})"
        if self.compiled.debug or self.compiled.cooperative or self.compiled.extensions:
            return "compiled for a debug, cooperative or extended launch"
        theirs: list[Any] = []
        for ty, value in zip(self.signature, wrapped):
            self.compiled._prepare_args(ty, value, _core_stream(), [], theirs)
        ours = self.pack(args)
        kinds = [kind for ty in self.signature for kind in parameter_kinds(ty)]
        if not len(ours) == len(theirs) == len(kinds):
            return f"{len(ours)} parameters packed, numba-cuda packs {len(theirs)}, the signature has {len(kinds)}"
        ours, theirs = ([_comparable(v, k) for v, k in zip(values, kinds)] for values in (ours, theirs))
        return None if ours == theirs else f"packed {ours}, numba-cuda packs {theirs}"


def _comparable(value: Any, kind: str) -> tuple[str, Any]:
    """A packed argument as (C type, value): ctypes scalars by their type, Python ints as intptr_t."""
    if isinstance(value, ctypes._SimpleCData):
        return type(value).__name__, value.value
    if isinstance(value, (bool, np.bool_)):
        return "bool", bool(value)
    return "intptr", None if kind == "stride" else int(value)


ARRAY_FIELDS = ("meminfo", "parent", "nitems", "itemsize", "data")


def parameter_kinds(ty: Any) -> list[str]:
    """The kernel parameters one argument of Numba type ``ty`` becomes, by kind: an array's fields
    (ARRAY_FIELDS, then "shape" and "stride" per dimension), a tuple's members in order, or the
    scalar type's name."""
    from numba.core import types

    if isinstance(ty, types.Array):
        return [*ARRAY_FIELDS, *["shape"] * ty.ndim, *["stride"] * ty.ndim]
    if isinstance(ty, types.BaseTuple):
        return [kind for member in ty for kind in parameter_kinds(member)]
    return [str(ty)]


def parameter_bytes(signature: tuple[Any, ...]) -> list[int]:
    """The size in bytes of each kernel parameter ``packer`` passes for ``signature`` (an array's fields are
    intptr_t, a boolean one byte, a number its own size): what the compiled kernel's entry must declare."""
    kinds = [kind for ty in signature for kind in parameter_kinds(ty)]
    return [8 if kind in (*ARRAY_FIELDS, "shape", "stride") else np.dtype(kind).itemsize for kind in kinds]


def packer(signature: tuple[Any, ...]) -> Callable[[tuple[Any, ...]], list[Any]]:
    """``pack(args) -> list``: the kernel parameters of ``args`` for ``signature`` as numba-cuda lays them
    out (``_Kernel._prepare_args``, see parameter_kinds): an array's fields are Python ints (meminfo and
    parent 0, the data pointer 0 for an empty array as CuPy reports it, strides in bytes), which
    cuda.core passes as intptr_t; integers and floats are ctypes values of their type; booleans Python
    bools."""
    from numba.core import types

    def part(ty: Any) -> Callable[[Any, list[Any]], None]:
        if isinstance(ty, types.Array):
            def array(a: Any, out: list[Any]) -> None:
                out += (0, 0, a.size, a.itemsize, a.data.ptr if a.size else 0, *a.shape, *a.strides)
            return array
        if isinstance(ty, types.BaseTuple):
            members = [part(t) for t in ty]

            def members_of(values: Any, out: list[Any]) -> None:
                for put, v in zip(members, values):
                    put(v, out)
            return members_of
        if ty == types.boolean:
            return lambda v, out: out.append(bool(v))
        if isinstance(ty, types.Integer):
            c_type = getattr(ctypes, f"c_{ty}")
        elif ty in (types.float32, types.float64):
            c_type = ctypes.c_float if ty == types.float32 else ctypes.c_double
        else:
            raise TypeError(f"no packing for kernel arguments of type {ty}")
        return lambda v, out: out.append(c_type(v))

    parts = [part(t) for t in signature]

    def pack(args: tuple[Any, ...]) -> list[Any]:
        out: list[Any] = []
        for put, value in zip(parts, args):
            put(value, out)
        return out

    return pack


@functools.lru_cache(maxsize=256)
def _launch_config(grid: Any, block: Any) -> Any:
    from cuda.core import LaunchConfig

    return LaunchConfig(grid=_dim3(grid), block=_dim3(block), shmem_size=0)


def _dim3(d: Any) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, int) else tuple(d)
    return d + (1,) * (3 - len(d))  # type: ignore[return-value]


def _core_stream() -> Any:
    """cuda.core's handle of CuPy's current stream (one per stream, kept)."""
    import cupy

    return _core_stream_of(cupy.cuda.get_current_stream().ptr)


@functools.cache
def _core_stream_of(ptr: int) -> Any:
    from numba.cuda.cudadrv.driver import _to_core_stream

    return _to_core_stream(_numba_stream_of(ptr) if ptr else 0)


@functools.cache
def _numba_stream_of(ptr: int) -> Any:
    return cuda().external_stream(ptr)


def current_stream() -> Any:
    """The numba stream for CuPy's current stream (0, the default stream, under the simulator)."""
    if simulator_enabled():
        return 0
    import cupy

    ptr = cupy.cuda.get_current_stream().ptr
    return _numba_stream_of(ptr) if ptr else 0


def cuda_args(*args: Any) -> list[Any]:
    """Kernel arguments for numba's dispatcher (and the simulator's), tuples member by member.

    Under the simulator NumPy arrays go in as they are, and device arrays (the CI stand-in for CuPy)
    as NumPy views of their memory (simulated_memory). CuPy arrays are wrapped through
    ``__cuda_array_interface__`` with ``sync=False``: we launch on CuPy's current stream, so
    stream order already guarantees the producer has finished.
    """
    if simulator_enabled():
        wrap = simulated_memory
    else:
        as_cuda = cuda().as_cuda_array

        def wrap(a: Any) -> Any:
            return as_cuda(a, sync=False)

    def one(a: Any) -> Any:
        if isinstance(a, tuple):
            return tuple(one(v) for v in a)
        return wrap(a) if is_device_array(a) else a

    return [one(a) for a in args]


class _HostInterface:
    __slots__ = ("__array_interface__",)

    def __init__(self, interface: dict[str, Any]) -> None:
        self.__array_interface__ = interface


def simulated_memory(a: Any) -> np.ndarray:
    """A NumPy view of a device array's memory read through its ``__cuda_array_interface__``: what
    numba-cuda's simulator, which takes only NumPy arrays, runs kernels on. Only where that memory is
    host memory (the stand-in's), so only under the simulator."""
    cai = a.__cuda_array_interface__
    return np.asarray(_HostInterface({"shape": cai["shape"], "typestr": cai["typestr"], "data": cai["data"],
                                      "strides": cai.get("strides"), "version": 3}))


@functools.cache
def _one_shared_array_per_block() -> None:
    """Make numba-cuda's simulator give every thread of a block the same shared array.

    The simulator (numba-cuda 0.30) finds a block's ``cuda.shared.array`` by the caller's source line
    in a dict, with an unlocked get-then-set: two simulated threads (Python threads) that reach the
    declaration together may both allocate, and each then reduces in its own array. Under load that
    made reductions lose partial sums now and then (LayerNorm's dgamma and dbeta off by units). Here
    the same lookup runs under a lock, keyed the same way; static arrays only (gpudnn's kernels use
    no dynamic shared memory). Runs once, only under the simulator.
    """
    from numba.core import types
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.np.numpy_support import as_dtype

    lock, dynamic = threading.Lock(), FakeCUDAShared.array

    def array(self: Any, shape: Any, dtype: Any, alignment: Any = None) -> Any:
        if shape == 0 or alignment is not None:
            return dynamic(self, shape, dtype, alignment)
        caller = sys._getframe(1)
        key = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            if key not in self._allocations:
                self._allocations[key] = np.empty(shape, as_dtype(dtype) if isinstance(dtype, types.Type) else dtype)
            return self._allocations[key]

    FakeCUDAShared.array = array
