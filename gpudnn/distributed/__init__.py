"""Data-parallel training over MPI (processes and hosts) and NCCL (GPUs).

    mpiexec -n 2 python -m mpi4py train.py        # train.py calls gpudnn.distributed.init()

``init()`` joins the MPI world; ``fit`` then trains data-parallel (see data_parallel). mpi4py is
imported only by ``init()``: without it, single-process gpudnn works as before and ``init()``
names the missing extra (``pip install 'gpudnn[mpi]'``).
"""

from .collectives import gpu_path
from .context import (
    Context,
    DistributedError,
    abort,
    barrier,
    current,
    init,
    is_main,
    launched_size,
    rank_and_size,
)
from .data_parallel import DataParallel, data_parallel
from .sharding import shard, shard_length, split_range


def allreduce_(a: object) -> None:
    """Sum the array ``a`` (of the current backend) over all ranks, in place; init() must have run."""
    _require().collectives().allreduce_(a)


def broadcast_(a: object) -> None:
    """Overwrite the array ``a`` (of the current backend) with rank 0's, in place; init() must have run."""
    _require().collectives().broadcast_(a)


def _require() -> Context:
    context = current()
    if context is None:
        raise DistributedError("call gpudnn.distributed.init() before using collectives")
    return context


__all__ = [
    "Context", "DataParallel", "DistributedError", "abort", "allreduce_", "barrier", "broadcast_", "current",
    "data_parallel", "gpu_path", "init", "is_main", "launched_size", "rank_and_size", "shard", "shard_length",
    "split_range",
]
