"""What gpudnn runs on: chosen backend and why, the device, and library versions."""

from __future__ import annotations

import importlib.metadata as md
import platform

from ..backend import get_backend, selection_reason


def _version(*dists: str) -> str:
    for dist in dists:
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return "not installed"


def report() -> dict[str, str]:
    """A flat mapping of everything `gpudnn info` prints. Raises BackendUnavailableError as selection does."""
    backend = get_backend()
    info = {
        "backend": backend.name,
        "why": selection_reason(backend),
        "default dtype": str(backend.dtype),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpudnn": _version("gpudnn"),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "numba-cuda": _version("numba-cuda"),
        "cupy": _version("cupy-cuda13x", "cupy-cuda12x", "cupy"),
    }
    if backend.name == "cupy":
        import cupy

        rt = cupy.cuda.runtime
        props = rt.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        free, total = cupy.cuda.Device().mem_info
        fmt = lambda v: f"{v // 1000}.{v % 1000 // 10}"  # noqa: E731
        info.update({
            "device": name,
            "compute capability": f"{props['major']}.{props['minor']}",
            "device memory": f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)",
            "CUDA runtime": fmt(rt.runtimeGetVersion()),
            "CUDA driver": fmt(rt.driverGetVersion()),
        })
    return info
