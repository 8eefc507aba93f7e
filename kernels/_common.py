"""Plumbing shared by every kernel module: the three-ways shape of an op, how CPU kernels run and
CUDA kernels launch, and (from _checks) the argument checks of the plans. Nothing in this module
imports numba or CuPy at import time.

In place. An op may write its output over its input (``out=x``). Each side has one way to do it:

- CPU: ``run_cpu`` passes an array that fills two roles once and binds it to both inside compiled
  code (``cpu_kernel``). As two arguments, LLVM could not prove that they do not partly overlap;
  its run-time overlap check fails for the same array and the loop runs scalar (7x slower for
  sigmoid).
- CUDA: an output that may be its input comes after it in the kernel's argument list, and each
  element is read before it is written, by the thread that writes it. numba-cuda's simulator copies
  every array argument in and back in argument order, so the output's copy-back lands last.

How CUDA kernels are declared (one explicit signature each) and launched is _launch's part.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import numpy as np

# The argument checks live in _checks; kernel modules reach them, like everything shared, as _common.<name>.
from ._checks import (  # noqa: F401
    FLOAT_DTYPES,
    array_module,
    check_array,
    check_disjoint,
    check_finite_scalar,
    check_no_overlap,
    check_same_kind,
    is_device_array,
    output,
)

# How CUDA kernels are declared and launched lives in _launch; kernel modules reach it as _common.<name> too.
from ._launch import (  # noqa: F401
    LAUNCHES,
    cuda_kernel,
    device_jit,
    launch,
    recording,
    recording_launches,
    simulator_enabled,
)

T = TypeVar("T")
P = TypeVar("P")

# numba.njit options shared by the CPU kernels. Single-threaded on purpose: parallel Numba
# kernels between multi-threaded BLAS calls fight over the cores (measured 3x slower steps).
# 'nnan'/'ninf' are left out so NaN and Inf still propagate and get caught.
NJIT_OPTIONS: dict[str, Any] = {
    "fastmath": {"nsz", "arcp", "contract", "afn", "reassoc"},
    "error_model": "numpy",
    "boundscheck": False,
    "nogil": True,
}

CUDA_BLOCK = 256  # threads per block for elementwise/grid-stride kernels
MAX_BLOCKS = 4096  # blocks of a 1-D grid at most (grid_1d, row_launch): a few waves on any GPU

# CPU kernels share work across threads only from this many elements up. Below it one thread is
# faster (a hand-off costs tens of microseconds) and leaves the cores to BLAS, whose threads keep
# spinning after a GEMM: in an MLP step the per-layer kernels stay single-threaded.
PARALLEL_MIN_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- one op, three ways


class Op(NamedTuple):
    """An op three ways with one signature and docstring; a Backend calls the one it serves."""

    ref: Callable[..., Any]
    cpu: Callable[..., Any]
    cuda: Callable[..., Any]


_IMPLEMENTATIONS = {
    "ref": "plain NumPy/CuPy array code (the oracle).",
    "cpu": "Numba CPU kernels on NumPy arrays.",
    "cuda": "numba.cuda kernels on CuPy's current stream (NumPy arrays under the simulator).",
}


def three_ways(name: str, plan: Callable[..., P], ref: Callable[[P], Any], cpu: Callable[[P], Any],
               cuda: Callable[[P], Any]) -> Op:
    """The op ``name`` as ``name_ref``, ``name_cpu`` and ``name_cuda``.

    Each validates its arguments with ``plan(*args, **kwargs)``, which raises before anything runs
    and returns everything the runners need, and hands that plan to its runner. All three take the
    signature and docstring of ``plan``. The cpu variant refuses device arrays, the cuda variant host
    arrays when a real GPU runs it (the first argument decides; the plan checks that the others agree).
    """
    first = next(iter(inspect.signature(plan).parameters))

    def make(impl: str, run: Callable[[P], Any], refuse: Callable[[Any], str | None]) -> Callable[..., Any]:
        def op(*args: Any, **kwargs: Any) -> Any:
            if args and (wrong := refuse(args[0])):
                raise TypeError(f"{name}_{impl} takes {wrong}; {first} is a {type(args[0]).__module__}."
                                f"{type(args[0]).__name__}")
            return run(plan(*args, **kwargs))

        op.__name__ = op.__qualname__ = f"{name}_{impl}"
        op.__doc__ = f"{plan.__doc__}\n    Implementation: {_IMPLEMENTATIONS[impl]}\n"
        op.__signature__ = inspect.signature(plan)  # type: ignore[attr-defined]
        return op

    def anything(a: Any) -> None:
        return None

    def host_only(a: Any) -> str | None:
        return "NumPy arrays (use the cuda kernels for device arrays)" if is_device_array(a) else None

    def device_only(a: Any) -> str | None:
        if isinstance(a, np.ndarray) and not simulator_enabled() and not recording():
            return "CuPy arrays on a GPU (use the cpu kernels for NumPy arrays)"
        return None

    return Op(make("ref", ref, anything), make("cpu", cpu, host_only), make("cuda", cuda, device_only))


class OpTable(dict[str, Op]):
    """A kernel module's ops by name (its ``OPS``), which the Backend reads."""

    def add(self, name: str, plan: Callable[..., P], ref: Callable[[P], Any], cpu: Callable[[P], Any],
            cuda: Callable[[P], Any]) -> Op:
        """Make the op ``name`` three ways (see three_ways), enter it in the table and return it."""
        self[name] = three_ways(name, plan, ref, cpu, cuda)
        return self[name]


# --------------------------------------------------------------------------- CPU kernels


def cpu_threads() -> int:
    """Threads for large CPU kernels: $GPUDNN_CPU_THREADS, else the cores this process may use."""
    env = os.environ.get("GPUDNN_CPU_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"GPUDNN_CPU_THREADS must be a positive integer, got {env!r}")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(workers, thread_name_prefix="gpudnn-cpu")


def row_ranges(rows: int, elements: int) -> list[tuple[int, int]]:
    """Contiguous [start, stop) row ranges, one per thread for ops of PARALLEL_MIN_ELEMENTS or more."""
    threads = min(cpu_threads(), rows) if elements >= PARALLEL_MIN_ELEMENTS else 1
    bounds = [rows * k // max(threads, 1) for k in range(max(threads, 1) + 1)]
    return list(zip(bounds, bounds[1:]))


@functools.cache
def cpu_kernel(body: Callable[..., Any], arity: int, bound: tuple[tuple[int, int], ...] = ()) -> Callable[..., Any]:
    """``body`` (an ``@njit(inline="always")`` function of ``arity`` arguments) compiled as a kernel
    with the same arguments, where each ``(i, j)`` in ``bound`` makes argument i the array passed as
    argument j (argument i is then ignored): the module docstring's in-place idiom. The wrapper is
    written out as source because a Numba function needs a fixed list of parameters."""
    from numba import njit

    params = [f"a{i}" for i in range(arity)]
    passed = list(params)
    for i, j in bound:
        passed[i] = params[j]
    namespace = {"body": body}
    exec(f"def kernel({', '.join(params)}):\n    return body({', '.join(passed)})\n", namespace)
    return njit(**NJIT_OPTIONS)(namespace["kernel"])


def cpu_kernel_for(body: Callable[..., Any], args: tuple[Any, ...]) -> Callable[..., Any]:
    """cpu_kernel of ``body`` for a call with ``args``: an array passed in several roles is bound once."""
    first_at: dict[int, int] = {}
    bound = []
    for i, a in enumerate(args):
        if isinstance(a, np.ndarray) and (j := first_at.setdefault(id(a), i)) != i:
            bound.append((i, j))
    return cpu_kernel(body, len(args), tuple(bound))


def run_cpu(body: Callable[..., T], args: tuple[Any, ...], rows_in: tuple[int, ...] | None = None) -> list[T]:
    """``body(*args)`` compiled for these arguments (cpu_kernel_for); returns the results in row order.

    ``rows_in``: for ops whose rows are independent, the positions of the arrays indexed by row, which
    over_row_blocks shares across the cores when they are large; None: one call on this thread.
    """
    kernel = cpu_kernel_for(body, args)
    if rows_in is None:
        LAUNCHES["cpu"] += 1
        return [kernel(*args)]
    return over_row_blocks(kernel, args, rows_in)


def over_row_blocks(fn: Callable[..., T], args: tuple[Any, ...], rows_in: tuple[int, ...] | None = None) -> list[T]:
    """``fn(*args)`` (a nogil Numba kernel call) over all rows of the row-indexed ``args``.

    ``rows_in``: the positions in ``args`` of arrays indexed by row first (all with the same rows;
    None: every argument). Ops under PARALLEL_MIN_ELEMENTS (counted on the first of them) make one
    call with ``args`` as they are, in the caller: no views, no hand-off. Larger ones make one call
    per block of rows (see row_ranges), each with those arrays sliced to its rows, the first in the
    caller, the others on the pool. Returns the results in row order; an error in any block is raised.
    """
    positions = range(len(args)) if rows_in is None else rows_in
    lead = args[positions[0]]
    if lead.size < PARALLEL_MIN_ELEMENTS:
        LAUNCHES["cpu"] += 1
        return [fn(*args)]

    def block(start: int, stop: int) -> T:
        return fn(*(a[start:stop] if i in positions else a for i, a in enumerate(args)))

    (first, *rest) = row_ranges(lead.shape[0], lead.size)
    LAUNCHES["cpu"] += 1 + len(rest)
    futures = [_pool(len(rest)).submit(block, *bounds) for bounds in rest]
    try:
        results = [block(*first)]
    finally:
        results_rest = [f.result() for f in futures]
    return results + results_rest


# --------------------------------------------------------------------------- CUDA launch shapes
# Pure functions of the shape (and of whether the simulator runs, fixed per process), cached.


def power_of_2_at_least(k: int, cap: int) -> int:
    """The smallest power of 2 >= ``k`` (and >= 1), at most ``cap`` (a power of 2)."""
    return min(1 << max(k - 1, 0).bit_length(), cap)


@functools.lru_cache(maxsize=1024)
def grid_1d(n: int, block: int = CUDA_BLOCK) -> tuple[int, int, int]:
    """(blocks, threads, shift) for a grid-stride loop over ``n`` items on blocks * threads = 2**shift
    threads (a power of 2, see _indexing).

    The simulator runs every thread as Python code, so there a single small block walks the
    whole range through the stride loop; on a GPU the grid is capped at a few waves of blocks.
    """
    if simulator_enabled():
        return 2, 32, 6
    blocks = power_of_2_at_least((n + block - 1) // block, MAX_BLOCKS)
    return blocks, block, (blocks * block).bit_length() - 1


@functools.lru_cache(maxsize=1024)
def grid_2d(n: int, m: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(grid, block, (column_shift, row_shift)) of an elementwise kernel over an (n, m) array: blocks of
    256 threads, at most 32 of them along a row (a warp reads adjacent elements of one or more rows),
    a grid that spans 2**column_shift threads along the columns and 2**row_shift along the rows, both
    powers of 2 (see _indexing), at most MAX_BLOCKS blocks. Under the simulator, 2 x 2 blocks of 32 threads."""
    sim = simulator_enabled()
    tx = power_of_2_at_least(m, 8 if sim else 32)
    ty = (32 if sim else CUDA_BLOCK) // tx
    gx = 2 if sim else power_of_2_at_least((m + tx - 1) // tx, 1024)
    gy = 2 if sim else power_of_2_at_least((n + ty - 1) // ty, MAX_BLOCKS // gx)
    return (gx, gy), (tx, ty), ((gx * tx).bit_length() - 1, (gy * ty).bit_length() - 1)


@functools.lru_cache(maxsize=1024)
def row_launch(n: int, k: int) -> tuple[int, int, int]:
    """(blocks, threads, row_shift) of a block-per-row kernel over ``n`` rows of ``k`` (a single warp
    for short rows), rows strided over a grid of blocks = 2**row_shift (see _indexing). The simulator
    runs every thread as a Python thread."""
    if simulator_enabled():
        return 2, 32, 1
    threads = 32 if k <= 64 else 128 if k <= 2048 else 256
    blocks = power_of_2_at_least(n, MAX_BLOCKS)
    return blocks, threads, blocks.bit_length() - 1


def column_tile() -> tuple[int, int]:
    """CUDA block shape (columns, rows) of column-strip kernels: a warp reads 32 adjacent columns of
    one row (coalesced). Under the simulator a smaller tile (same code) keeps the tests quick while
    still covering several blocks in both grid dimensions."""
    return (8, 4) if simulator_enabled() else (32, 8)


ROWS_PER_THREAD = 32  # column-strip kernels: a block covers ~256 rows of its strip before the grid repeats


def column_grid(n: int, m: int, tile: tuple[int, int]) -> tuple[int, int]:
    """Blocks along (columns, rows) for an (n, m) array, powers of 2 (see _indexing). Under the
    simulator 2 x 2 blocks walk everything by grid-stride."""
    if simulator_enabled():
        return 2, 2
    strips = power_of_2_at_least((m + tile[0] - 1) // tile[0], 32768)
    chunks = power_of_2_at_least((n + tile[1] * ROWS_PER_THREAD - 1) // (tile[1] * ROWS_PER_THREAD), 32768)
    return strips, chunks


@functools.lru_cache(maxsize=1024)
def column_launch(n: int, m: int) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(grid, block, (column_shift, row_shift)) of a column-strip kernel over an (n, m) array:
    column_grid of column_tile; the grid spans 2**column_shift threads along the columns and
    2**row_shift along the rows, the kernel's first two arguments. The grid has at least one block
    row even when n == 0, so the row-0 threads of each strip exist."""
    tile = column_tile()
    grid = column_grid(n, m, tile)
    return grid, tile, ((grid[0] * tile[0]).bit_length() - 1, (grid[1] * tile[1]).bit_length() - 1)


# --------------------------------------------------------------------------- device memory kept between calls
# So that an op allocates nothing per call where its inputs and outputs are given. Kept per array module,
# device and stream: calls on one stream run in order, so they may share memory; other streams get their own.


def _where(like: Any) -> tuple[Any, int, int]:
    """(array module, device, stream) of an op on ``like``: CuPy's current device and stream for CuPy
    arrays, (module, 0, 0) for others."""
    xp = array_module(like)
    if xp is np or not hasattr(xp, "cuda"):
        return xp, 0, 0
    return xp, xp.cuda.runtime.getDevice(), xp.cuda.get_current_stream().ptr


_KEPT: dict[tuple[Any, ...], Any] = {}


def _kept(where: tuple[Any, int, int], name: str, size: int, dtype: Any, zeroed: bool) -> Any:
    """The first ``size`` elements of a flat buffer kept under ``name`` at ``where`` (see _where; grown as
    needed, zeroed when made if asked)."""
    key = (*where, name, np.dtype(dtype))
    buffer = _KEPT.get(key)
    if buffer is None or buffer.size < size:
        xp = where[0]
        buffer = _KEPT[key] = (xp.zeros if zeroed else xp.empty)(max(size, 1), dtype=dtype)
    return buffer[:size]


def zeros_vector(like: Any, n: int, dtype: Any) -> Any:
    """``n`` zeros where ``like`` lives, shared by every caller and never written: the value of a missing
    input (no bias), or the argument in the place of an output that a kernel variant does not write."""
    return _kept(_where(like), "zeros", n, dtype, zeroed=True)


def scratch(like: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """Working memory of one op call (an accumulator, partial sums), ``shape`` and ``dtype``, its contents
    undefined. Reused by the next call on the same stream: never return it or keep it past the call."""
    return _kept(_where(like), f"scratch {name}", math.prod(shape), dtype, zeroed=False).reshape(shape)


def grid_scratch(like: Any) -> tuple[Any, Any]:
    """(partials, ticket) of _reductions.grid_totals where ``like`` lives: a (3, MAX_BLOCKS) float64 array and
    a uint32 counter that is zero between launches (zeroed when made; each launch's last block resets it)."""
    where = _where(like)
    partials = _kept(where, "grid partials", 3 * MAX_BLOCKS, np.float64, zeroed=False)
    return partials.reshape(3, MAX_BLOCKS), _kept(where, "grid ticket", 1, np.uint32, zeroed=True)
