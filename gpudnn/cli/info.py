"""`gpudnn info`: the chosen backend and why, the device, and library versions."""

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


def _cuda_version(version: int) -> str:
    """CUDA's integer version (12040) as text (12.4)."""
    return f"{version // 1000}.{version % 1000 // 10}"


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
        info.update({
            "device": name,
            "compute capability": f"{props['major']}.{props['minor']}",
            "device memory": f"{total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free)",
            "CUDA runtime": _cuda_version(rt.runtimeGetVersion()),
            "CUDA driver": _cuda_version(rt.driverGetVersion()),
        })
    return info


def info_job() -> None:
    """Print ``report()`` as aligned lines."""
    info = report()
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
