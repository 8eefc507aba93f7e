"""The MPI world of a data-parallel job: ``init()``, the context it returns, and its process-wide state.

mpi4py is imported here alone, and only when ``init()`` runs. ``init()`` is idempotent: the
first call joins the MPI world (``mpiexec -n N``), tells each process its rank and its rank on
its host, picks its GPU on the cupy backend, gives it its share of the host's BLAS and Numba
threads, and, with more than one rank, makes an uncaught exception on any rank abort the whole
job (``MPI_Abort``) instead of leaving the others waiting in a collective.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from ..backend import get_backend

# The variables MPI launchers set in every rank's environment (MPICH/Hydra, Open MPI, PMIx, Slurm).
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS")
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


class DistributedError(RuntimeError):
    """A data-parallel job is misconfigured (no MPI, ranks that disagree, init() too late)."""


@dataclass
class Context:
    """This process's place in the job: ``rank`` of ``size``, ``local_rank`` of ``local_size`` on ``host``."""

    rank: int
    size: int
    local_rank: int
    local_size: int
    host: str
    comm: Any = field(repr=False)
    device: int | None = None  # the GPU this rank uses on the cupy backend
    threads: dict[str, int] = field(default_factory=dict)  # thread pools sized by init()
    _collectives: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def collectives(self, backend: Any = None) -> Any:
        """The collectives for arrays of ``backend`` (default: the current one), built once per backend."""
        from .collectives import collectives_for

        backend = backend or get_backend()
        if backend.name not in self._collectives:
            self._collectives[backend.name] = collectives_for(self, backend)
        return self._collectives[backend.name]


_context: Context | None = None
_trained_alone = False  # a single-process fit ran in this process


def launched_size() -> int:
    """The world size an MPI launcher announced in the environment (1 when none did)."""
    for name in _SIZE_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def _import_mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError("gpudnn.distributed needs mpi4py and an MPI library: "
                               f"pip install 'gpudnn[mpi]' (mpi4py and MPICH); cause: {exc}") from None
    return MPI


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _share_threads(local_size: int) -> dict[str, int]:
    """Limit BLAS and Numba to this rank's share of the host's cores, unless the user sized them."""
    share = max(1, _cores() // local_size)
    sized: dict[str, int] = {}
    if not any(v in os.environ for v in _THREAD_VARIABLES):
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass  # without threadpoolctl the BLAS keeps its pool; the [mpi] extra installs it
        else:
            threadpool_limits(share)
            sized["blas"] = share
    if "NUMBA_NUM_THREADS" not in os.environ:
        import numba

        numba.set_num_threads(min(share, numba.config.NUMBA_NUM_THREADS))
        sized["numba"] = numba.get_num_threads()
    return sized


def _pick_gpu(local_rank: int) -> int | None:
    backend = get_backend()
    if backend.name != "cupy":
        return None
    n_gpus = backend.xp.cuda.runtime.getDeviceCount()
    device = local_rank % n_gpus
    backend.xp.cuda.Device(device).use()
    return device


def _abort_on_uncaught(comm: Any, rank: int) -> None:
    """Make an uncaught exception print its traceback, then end every rank of the job."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
        else:
            sys.stderr.write(f"gpudnn rank {rank}: {''.join(traceback.format_exception(kind, exc, tb))}")
        sys.stderr.flush()
        comm.Abort(1)

    sys.excepthook = hook


def init() -> Context:
    """Join the MPI world (idempotent); returns the Context with ``rank``, ``size`` and ``local_rank``.

    Run under ``mpiexec -n N python -m mpi4py script.py`` (or plain ``python``: init() makes an
    uncaught exception abort the job either way). Raises DistributedError when mpi4py is missing,
    or when this process already trained alone before joining a world of several ranks.
    """
    global _context
    if _context is not None:
        return _context
    mpi = _import_mpi()
    comm = mpi.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    if size > 1 and _trained_alone:
        raise DistributedError(f"gpudnn.distributed.init() on rank {rank} comes after fit() already trained this "
                               "process alone: call init() before the first fit()")
    local = comm.Split_type(mpi.COMM_TYPE_SHARED, key=rank)
    context = Context(rank=rank, size=size, local_rank=local.Get_rank(), local_size=local.Get_size(),
                      host=socket.gethostname(), comm=comm)
    local.Free()
    if size > 1:
        _abort_on_uncaught(comm, rank)
        context.threads = _share_threads(context.local_size)
    context.device = _pick_gpu(context.local_rank)
    _context = context
    return context


def current() -> Context | None:
    """The context of ``init()``, or None when this process has not joined an MPI world."""
    return _context


def note_training_alone() -> None:
    """Record that a single-process fit ran (``init()`` afterwards, in a world of several, is an error)."""
    global _trained_alone
    _trained_alone = True


def is_main() -> bool:
    """True on rank 0, and in a process that is not part of a data-parallel job."""
    return _context is None or _context.is_main


def rank_and_size() -> tuple[int, int]:
    """(rank, size): (0, 1) outside a data-parallel job."""
    return (0, 1) if _context is None else (_context.rank, _context.size)


def barrier() -> None:
    """Wait until every rank arrives (nothing to wait for in a single process)."""
    if _context is not None:
        _context.comm.Barrier()


def abort(code: int) -> None:
    """End every rank of a job of several with ``code`` (returns at once in a single process)."""
    if _context is not None and _context.size > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        _context.comm.Abort(code)
