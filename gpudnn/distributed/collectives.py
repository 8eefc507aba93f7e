"""Collectives on a backend's arrays: MPI on host memory, NCCL on GPUs, or MPI through host buffers.

Every rank must call each collective in the same order (as MPI requires). ``allreduce_`` sums an
array over the ranks in place; ``broadcast_`` overwrites it with rank 0's. Which path serves a
backend (``path``, and ``reason`` for it) is chosen once, by ``collectives_for``:

- numpy: MPI reads and writes the arrays themselves;
- cupy: NCCL on CuPy's current stream (its unique id sent over MPI) when cupy.cuda.nccl loads and
  no two ranks share a GPU (NCCL refuses that); otherwise a copy through a reused host buffer,
  since the MPI wheels on PyPI are not CUDA-aware;
- cudasim: the host-staged path, as on a GPU without NCCL.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from .context import Context


def _mpi() -> Any:
    from mpi4py import MPI

    return MPI


class HostCollectives:
    """MPI straight on host arrays (C-contiguous NumPy)."""

    path = "mpi"

    def __init__(self, context: Context, backend: Any, reason: str = "host arrays: MPI reads them directly") -> None:
        self.comm, self.backend, self.reason = context.comm, backend, reason
        self.size = context.size

    def allreduce_(self, a: Any) -> None:
        """a = sum of a over all ranks, in place."""
        self.comm.Allreduce(_mpi().IN_PLACE, a, op=_mpi().SUM)

    def broadcast_(self, a: Any) -> None:
        """a = rank 0's a, in place."""
        self.comm.Bcast(a, root=0)

    def sum_host(self, values: Any) -> np.ndarray:
        """The sum over ranks of a small host vector (metrics, verdicts), as float64."""
        out = np.array(values, dtype=np.float64)
        self.comm.Allreduce(_mpi().IN_PLACE, out, op=_mpi().SUM)
        return out

    def allgather_json(self, value: Any) -> list[Any]:
        """Every rank's JSON-able ``value``, in rank order."""
        return [json.loads(s) for s in self.comm.allgather(json.dumps(value))]

    def broadcast_json(self, value: Any) -> Any:
        """Rank 0's JSON-able ``value`` on every rank."""
        return json.loads(self.comm.bcast(json.dumps(value) if self.comm.Get_rank() == 0 else None, root=0))


class StagedCollectives(HostCollectives):
    """MPI on a host copy of device arrays: device -> reused host buffer -> MPI -> device."""

    path = "host-staged mpi"

    def __init__(self, context: Context, backend: Any, reason: str) -> None:
        super().__init__(context, backend, reason)
        self._buffers: dict[tuple[tuple[int, ...], str], np.ndarray] = {}

    def _staged(self, a: Any) -> np.ndarray:
        key = (tuple(a.shape), str(a.dtype))
        if key not in self._buffers:
            self._buffers[key] = np.empty(a.shape, dtype=a.dtype)
        host = self._buffers[key]
        if isinstance(a, np.ndarray):
            np.copyto(host, a)
        else:
            a.get(out=host)
        return host

    def _write_back(self, a: Any, host: np.ndarray) -> None:
        if isinstance(a, np.ndarray):
            np.copyto(a, host)
        else:
            a.set(host)

    def allreduce_(self, a: Any) -> None:
        host = self._staged(a)
        super().allreduce_(host)
        self._write_back(a, host)

    def broadcast_(self, a: Any) -> None:
        host = self._staged(a)
        super().broadcast_(host)
        self._write_back(a, host)


class NcclCollectives(HostCollectives):
    """NCCL on CuPy arrays, on CuPy's current stream; small host values still go over MPI."""

    path = "nccl"

    def __init__(self, context: Context, backend: Any, reason: str) -> None:
        super().__init__(context, backend, reason)
        from cupy.cuda import nccl

        self.nccl = nccl
        uid = nccl.get_unique_id() if context.rank == 0 else None
        self.nccl_comm = nccl.NcclCommunicator(context.size, self.comm.bcast(uid, root=0), context.rank)
        self.dtypes = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                       np.dtype(np.float16): nccl.NCCL_FLOAT16, np.dtype(np.int64): nccl.NCCL_INT64,
                       np.dtype(np.int32): nccl.NCCL_INT32}

    def _args(self, a: Any) -> tuple[int, int, int]:
        if a.dtype not in self.dtypes:
            raise TypeError(f"NCCL collectives take {sorted(map(str, self.dtypes))} arrays, not {a.dtype}")
        return a.size, self.dtypes[a.dtype], self.backend.xp.cuda.get_current_stream().ptr

    def allreduce_(self, a: Any) -> None:
        count, dtype, stream = self._args(a)
        self.nccl_comm.allReduce(a.data.ptr, a.data.ptr, count, dtype, self.nccl.NCCL_SUM, stream)

    def broadcast_(self, a: Any) -> None:
        count, dtype, stream = self._args(a)
        self.nccl_comm.bcast(a.data.ptr, count, dtype, 0, stream)


def gpu_path(nccl_loads: bool, placements: list[list[Any]]) -> tuple[str, str]:
    """(path, reason) for CuPy arrays: "nccl" when NCCL loads and every rank has a GPU of its own
    (``placements``: each rank's [host, device]), else "host-staged mpi"."""
    if not nccl_loads:
        return "host-staged mpi", "cupy.cuda.nccl is not available: arrays go through host memory over MPI"
    seen: dict[tuple[str, int], int] = {}
    for rank, (host, device) in enumerate(placements):
        if (host, device) in seen:
            return "host-staged mpi", (f"ranks {seen[host, device]} and {rank} share GPU {device} on {host} "
                                       "(NCCL needs one GPU per rank): arrays go through host memory over MPI")
        seen[host, device] = rank
    return "nccl", f"NCCL across {len(placements)} GPUs"


def _nccl_loads() -> bool:
    try:
        from cupy.cuda import nccl
    except ImportError:
        return False
    return bool(getattr(nccl, "available", True))


def collectives_for(context: Context, backend: Any) -> HostCollectives:
    """The collectives for arrays of ``backend`` (a collective call: every rank must make it)."""
    if backend.name == "cudasim":
        return StagedCollectives(context, backend, "simulated GPU: arrays go through host buffers, as on a GPU "
                                                   "without NCCL")
    if backend.name != "cupy":
        return HostCollectives(context, backend)
    host = HostCollectives(context, backend)
    gathered = host.allgather_json([context.host, backend.xp.cuda.Device().id, _nccl_loads()])
    path, reason = gpu_path(all(loads for *_, loads in gathered), [[h, d] for h, d, _ in gathered])
    return NcclCollectives(context, backend, reason) if path == "nccl" else StagedCollectives(context, backend, reason)
