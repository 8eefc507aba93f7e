"""`gpudnn info`: the chosen backend and why, the device, library versions, and the rank in an MPI job."""

from __future__ import annotations

import importlib.metadata as md
import platform

from .. import distributed
from ..backend import get_backend, selection_reason
from ..kernels import launch_path


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
        "mpi4py": _version("mpi4py"),
        **_distributed(backend),
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
            "CUDA launches": _launches(),
        })
    return info


def _launches() -> str:
    """How CUDA kernels launch (kernels._launch): the chosen path, and the kernels that fell back so far."""
    path = launch_path()
    how = {"lean": "lean (arguments packed as numba-cuda packs them, checked on each kernel's first launch)",
           "numba": "through numba-cuda's dispatcher (GPUDNN_CUDA_LAUNCH=numba)"}.get(path["chosen"], path["chosen"])
    fallbacks = path["numba_fallbacks"]
    return how + (f"; {len(fallbacks)} kernels through numba's dispatcher: {fallbacks}" if fallbacks else "")


def _distributed(backend: object) -> dict[str, str]:
    """The rank and size, and which collectives serve this backend (under mpiexec)."""
    context = distributed.current()
    if context is None:
        how = ("run under mpiexec -n N to train data-parallel" if _version("mpi4py") != "not installed"
               else "pip install 'gpudnn[mpi]' to train data-parallel")
        return {"distributed": f"single process ({how})"}
    collectives = context.collectives(backend)
    return {"distributed": f"rank {context.rank} of {context.size} (local rank {context.local_rank} of "
                           f"{context.local_size} on {context.host})",
            "collectives": f"{collectives.path} ({collectives.reason})",
            "threads per rank": ", ".join([f"{k} {v}" for k, v in context.threads.items()]
                                          + ["the rest as the environment sets"])}


def info_job() -> None:
    """Print ``report()`` as aligned lines; under mpiexec rank 0 prints, adding for each other rank the
    lines where it differs."""
    info = report()
    context = distributed.current()
    everyone = context.collectives().allgather_json(info) if context is not None and context.size > 1 else [info]
    if not distributed.is_main():
        return
    width = max(map(len, info))
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    for rank, theirs in enumerate(everyone[1:], start=1):
        for key, value in theirs.items():
            if value != info.get(key):
                print(f"{f'rank {rank}: {key}':<{width}}  {value}")
