"""Choosing the current backend: ``set_backend``, ``use_backend``, ``get_backend``, ``seed``.

The current backend lives in a context variable (``use_backend`` scopes it to a ``with`` block,
per thread or task); ``set_backend`` sets the process-wide default. Without either, the
environment variable ``GPUDNN_BACKEND`` decides, and "auto" when that is unset.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator

from .. import checks
from ..kernels import simulator_enabled
from .base import Backend

KINDS = ("auto", "numpy", "cupy", "cudasim")


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message names the cause."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@functools.cache
def cupy_status() -> tuple[bool, str]:
    """(usable, why): whether CuPy and numba-cuda can run kernels on a real GPU here."""
    try:
        import cupy
    except ImportError:
        return False, "CuPy is not installed (pip install 'gpudnn[cuda12]' or 'gpudnn[cuda13]')"
    except Exception as exc:  # a broken CuPy install raises all sorts of things at import
        return False, f"CuPy failed to import ({_first_line(exc)})"
    runtime = cupy.cuda.runtime
    try:
        count = runtime.getDeviceCount()
    except Exception as exc:
        return False, f"no usable CUDA driver or GPU ({_first_line(exc)})"
    if count == 0:
        return False, "no CUDA GPU found"
    try:
        built_for, driver = runtime.runtimeGetVersion(), runtime.driverGetVersion()
    except Exception as exc:
        return False, f"cannot read the CUDA versions ({_first_line(exc)})"
    if driver < built_for and driver // 1000 != built_for // 1000:
        return False, (f"CUDA version mismatch: CuPy is built for CUDA {built_for // 1000}.{built_for % 1000 // 10}"
                       f" but the driver supports CUDA {driver // 1000}.{driver % 1000 // 10}; install the "
                       f"matching extra (gpudnn[cuda{driver // 1000}])")
    try:
        (cupy.arange(4) + 1).sum().item()
    except Exception as exc:
        return False, f"the GPU did not answer a test computation ({_first_line(exc)})"
    if simulator_enabled():
        return False, "NUMBA_ENABLE_CUDASIM=1 is set, so numba.cuda runs its simulator instead of the GPU"
    try:
        from numba import cuda

        if not cuda.is_available():
            return False, "numba-cuda cannot reach the GPU (is numba-cuda installed for this CUDA version?)"
    except Exception as exc:
        return False, f"numba-cuda failed ({_first_line(exc)})"
    name = runtime.getDeviceProperties(0)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return True, f"CuPy {cupy.__version__} answered on {name}"


def _resolve(kind: str) -> tuple[str, str]:
    """(concrete kind, reason) for a requested kind."""
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise ValueError(f"backend must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "auto":
        ok, why = cupy_status()
        return ("cupy", f"auto: {why}") if ok else ("numpy", f"auto: NumPy on the CPU, because {why}")
    if kind == "cupy":
        ok, why = cupy_status()
        if not ok:
            raise BackendUnavailableError(f"backend 'cupy' is unavailable: {why}")
        return "cupy", f"requested: {why}"
    if kind == "cudasim" and not simulator_enabled():
        raise BackendUnavailableError("backend 'cudasim' needs NUMBA_ENABLE_CUDASIM=1 set before numba is imported")
    return kind, "requested"


_instances: dict[str, Backend] = {}
_reasons: dict[str, str] = {}
_seed: int | None = None
_default: Backend | None = None
_current: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("gpudnn_backend", default=None)


def _instance(kind: str) -> Backend:
    if kind not in _instances:
        if kind == "numpy":
            from .numpy_backend import NumpyBackend as cls
        elif kind == "cupy":
            from .cuda_backend import CupyBackend as cls
        else:
            from .cuda_backend import SimulatorBackend as cls
        _instances[kind] = cls(seed=_seed)
    return _instances[kind]


def backend(kind: str = "auto") -> Backend:
    """The backend object of a kind ("auto", "numpy", "cupy", "cudasim"), without making it current."""
    concrete, why = _resolve(kind)
    _reasons[concrete] = why
    return _instance(concrete)


def set_backend(kind: str = "auto") -> Backend:
    """Make ``kind`` the process-wide current backend and return it."""
    global _default
    _default = backend(kind)
    return _default


@contextlib.contextmanager
def use_backend(kind: str | Backend) -> Iterator[Backend]:
    """Within the ``with`` block, ``get_backend()`` returns this backend."""
    chosen = kind if isinstance(kind, Backend) else backend(kind)
    token = _current.set(chosen)
    try:
        yield chosen
    finally:
        _current.reset(token)


def get_backend() -> Backend:
    """The current backend (from use_backend, else set_backend, else $GPUDNN_BACKEND or "auto")."""
    chosen = _current.get() or _default
    return chosen if chosen is not None else set_backend(os.environ.get("GPUDNN_BACKEND", "auto") or "auto")


def selection_reason(b: Backend | None = None) -> str:
    """Why the given (default: current) backend was chosen."""
    b = b or get_backend()
    return _reasons.get(b.name, "requested")


def seed(n: int | None) -> None:
    """Seed every random generator gpudnn uses, in every backend made so far and to come."""
    global _seed
    _seed = None if n is None else checks.seed("seed", n)
    for b in _instances.values():
        b.seed(n)


def free_memory() -> None:
    """Release the memory pools of every backend made so far (CuPy's device and pinned pools)."""
    for b in _instances.values():
        b.free_memory()
