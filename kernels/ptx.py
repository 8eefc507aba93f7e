"""What NVIDIA's compiler makes of every CUDA kernel, without a GPU.

Each kernel of ``variants.cuda_variants()`` is compiled to PTX by NVVM (numba.cuda.compile_ptx, NVVM
from the ``nvidia-nvvm`` wheel) for a compute capability, and assembled by ``ptxas -c -v`` from the
``nvidia-cuda-nvcc`` wheel of the same CUDA release (``-c``: relocatable code, as nvJitLink links it
at run time). ptxas reports registers, shared memory and spills; the PTX shows the instructions that
matter: 64-bit integer division and remainder (emulated in software on the GPU, dozens of
instructions each), float64 arithmetic, atomics and compare-and-swap loops, vector loads.

``check`` holds every kernel to the rules below (``REGISTER_BOUNDS``, no spills, no 64-bit integer
division, no float64 arithmetic in a float32 kernel beyond ``FLOAT64_ALLOWED``, hardware atomics
only) and holds the parameters its entry declares to those the lean launch packs (_launch.packer:
count, order and size); `gpudnn bench ptx` prints the table and the test suite runs the checks.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from ._launch import parameter_bytes
from .variants import CudaVariant, cuda_variants

# Registers per thread allowed for each kind of kernel (variants.CudaVariant.kind), (float32, float64).
# An SM has 64K registers: 32 per thread lets it hold its full 2048 threads (Hopper, Ampere), 40 1536,
# 48 1280 and 56 1152. Elementwise and optimizer kernels (both dtypes) and float32 loss kernels are
# memory-bound: they need every thread to keep loads in flight, so 32 (the float64 softplus takes its
# log1p through log to fit, see activations). Row and column kernels reduce through shared memory and
# barriers, and loop over a row or a strip with more live values: 48. A float64 value takes two
# registers, and libdevice's float64 functions more: float64 loss kernels get 48, row kernels 56. The
# arena's sums (once per training step) carry three float64 totals through the loop and the grid's
# reduction: 40, which still holds 1536 threads.
REGISTER_BOUNDS: dict[str, tuple[int, int]] = {
    "elementwise": (32, 32),
    "optimizer": (32, 32),
    "reduction": (32, 48),
    "arena": (40, 48),
    "column": (48, 48),
    "row": (48, 56),
}


def register_bound(kind: str, variant: str) -> int:
    """The register bound of a kernel of ``kind`` whose variant names its dtype first ("float32 relu")."""
    return REGISTER_BOUNDS[kind][1 if variant.startswith("float64") else 0]

# Float32 kernels that compute in float64 on purpose, and why (the kernels' docstrings say the same).
FLOAT64_ALLOWED: dict[str, str] = {
    "bias_act_backward/kernel": "db, a column sum over all rows, accumulates in float64",
    "softmax_xent/xent": "the loss, summed over the grid, accumulates in float64 (grid_totals)",
    "bce_logits/kernel": "the loss, summed over the grid, accumulates in float64 (grid_totals)",
    "mse/kernel": "the loss, summed over the grid, accumulates in float64 (grid_totals)",
    "arena_sums/kernel": "the sums over the whole arena accumulate in float64",
}

# PTX instructions counted per kernel (regular expressions over the PTX text).
_COUNTED: dict[str, str] = {
    "div_rem_64": r"\b(?:div|rem)\.[su]64\b",
    "div_rem_32": r"\b(?:div|rem)\.[su]32\b",
    "f64_ops": r"\b(?:add|sub|mul|fma|div|sqrt|rcp|max|min|neg|abs|ex2|lg2)(?:\.[a-z]+)*\.f64\b",
    "cvt_f64": r"\bcvt(?:\.[a-z]+)*\.f64\.f32\b",
    "atomics": r"\b(?:atom|red)\.",
    "cas": r"\batom(?:\.[a-z]+)*\.cas\.",
    "vector_loads": r"\bld\.global(?:\.[a-z]+)*\.v[24]\.",
    "global_loads": r"\bld\.global\.",
    "global_stores": r"\bst\.global\.",
}

_PTXAS_FIELDS = {
    "registers": r"Used (\d+) registers",
    "shared_bytes": r"(\d+) bytes smem",
    "stack_bytes": r"(\d+) bytes stack frame",
    "spill_stores": r"(\d+) bytes spill stores",
    "spill_loads": r"(\d+) bytes spill loads",
}


class ToolchainMissing(RuntimeError):
    """NVVM or a matching ptxas is not installed (the message says what to install)."""


class Toolchain(NamedTuple):
    ptxas: str  # path of the ptxas executable
    release: str  # CUDA release of NVVM and ptxas, "13.5"


class KernelReport(NamedTuple):
    """ptxas's figures and the PTX instruction counts of one kernel compiled for one architecture."""

    label: str  # CudaVariant.label
    kernel: str  # op/name
    variant: str
    kind: str
    arch: str  # "sm_90"
    registers: int
    shared_bytes: int
    stack_bytes: int
    spill_stores: int
    spill_loads: int
    counts: dict[str, int]
    parameters: str  # how the entry's parameters differ from what the lean launch packs; "" when they agree

    def as_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "register_bound": register_bound(self.kind, self.variant)}


def _release(version: str) -> str:
    return ".".join(version.split(".")[:2])


@functools.cache
def toolchain() -> Toolchain:
    """NVVM's and ptxas's CUDA release, once checked to be the same; raises ToolchainMissing."""
    install = 'pip install "numba-cuda[cu13]" "cuda-toolkit[nvcc]==13.*" (the "test" extra)'
    try:
        nvvm = _release(metadata.version("nvidia-nvvm"))
    except metadata.PackageNotFoundError:
        raise ToolchainMissing(f"NVVM (the nvidia-nvvm wheel) is not installed: {install}") from None
    try:
        nvcc = metadata.distribution("nvidia-cuda-nvcc")
    except metadata.PackageNotFoundError:
        raise ToolchainMissing(f"ptxas (the nvidia-cuda-nvcc wheel) is not installed: {install}") from None
    found = [Path(str(nvcc.locate_file(f))) for f in nvcc.files or () if Path(str(f)).name == "ptxas"]
    ptxas = next((str(p) for p in found if p.is_file()), None) or shutil.which("ptxas")
    if ptxas is None:
        raise ToolchainMissing("the nvidia-cuda-nvcc wheel has no ptxas executable")
    if not os.access(ptxas, os.X_OK):
        raise ToolchainMissing(f"{ptxas} is not executable")
    if _release(metadata.version("nvidia-cuda-nvcc")) != nvvm:
        raise ToolchainMissing(f"ptxas is from CUDA {_release(metadata.version('nvidia-cuda-nvcc'))}, NVVM from "
                               f"CUDA {nvvm}: ptxas rejects the PTX of a newer NVVM; install the same release of both")
    return Toolchain(ptxas, nvvm)


class _Device(NamedTuple):
    compute_capability: tuple[int, int]


@contextlib.contextmanager
def _compute_capability(cc: tuple[int, int]) -> Iterator[None]:
    """numba-cuda types a kernel's call of a ``cuda.jit(device=True)`` function by compiling that
    function for ``get_current_device().compute_capability`` (numba.cuda.dispatcher), which needs a
    driver even inside compile_ptx(cc=...). Here the dispatcher module's get_current_device answers
    ``cc`` instead, for the duration of the block. The device function's code depends on cc only
    through atomics and a few math intrinsics that are the same from cc 6.0 on (every cc compiled
    here), and the kernel's PTX is generated for the cc given to compile_ptx."""
    from numba.cuda import dispatcher

    real = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: _Device(cc)
    try:
        yield
    finally:
        dispatcher.get_current_device = real


def kernel_ptx(variant: CudaVariant, ccs: tuple[tuple[int, int], ...]) -> dict[tuple[int, int], str]:
    """The PTX of ``variant``'s kernel compiled by NVVM for each compute capability of ``ccs``.

    The steps of numba.cuda.compile_ptx (numba-cuda 0.30: compiler.compile), with Numba's typing and
    lowering, which take most of the time and give the same LLVM IR for every cc from 6.0 on, done
    once; NVVM then generates the PTX of each cc."""
    from numba.cuda.compiler import _compile_pyfunc_with_fixup

    with _compute_capability(min(ccs)):
        library, _ = _compile_pyfunc_with_fixup(variant.kernel.py_func, variant.signature, debug=False,
                                                device=False, cc=min(ccs), opt=True, abi="numba")
    found = {}
    for cc in ccs:
        (found[cc],) = library.get_asm_strs(cc=cc)  # one kernel, one PTX module
    return found


def assemble(ptx: str, cc: tuple[int, int]) -> dict[str, int]:
    """ptxas -c -v's registers, shared memory, stack and spills of the (one-kernel) ``ptx``."""
    arch = f"sm_{cc[0]}{cc[1]}"
    with tempfile.TemporaryDirectory(prefix="gpudnn-ptx-") as tmp:
        source = Path(tmp) / "kernel.ptx"
        source.write_text(ptx)
        done = subprocess.run([toolchain().ptxas, "-c", "-v", f"-arch={arch}", str(source), "-o",
                               str(Path(tmp) / "kernel.o")], capture_output=True, text=True, timeout=300)
    if done.returncode:
        raise RuntimeError(f"ptxas -arch={arch} failed: {done.stderr.strip()}")
    info = done.stderr + done.stdout
    return {field: int(m.group(1)) if (m := re.search(pattern, info)) else 0
            for field, pattern in _PTXAS_FIELDS.items()}


def instruction_counts(ptx: str) -> dict[str, int]:
    """How often each instruction class of _COUNTED appears in ``ptx`` (static counts)."""
    return {name: len(re.findall(pattern, ptx)) for name, pattern in _COUNTED.items()}


def arch(cc: tuple[int, int]) -> str:
    """The ptxas architecture name of a compute capability: (9, 0) -> "sm_90"."""
    return f"sm_{cc[0]}{cc[1]}"


def parse_arch(name: str) -> tuple[int, int]:
    """The compute capability of an architecture name: "sm_90", "90", "9.0" -> (9, 0)."""
    m = re.fullmatch(r"(?:sm_?)?(\d)\.?(\d)", name.strip().lower())
    if not m:
        raise ValueError(f"an architecture is written sm_90, 90 or 9.0, got {name!r}")
    return int(m.group(1)), int(m.group(2))


def static_shared_bytes(ptx: str) -> int:
    """Bytes of the ``.shared`` arrays the PTX declares. Relocatable code (ptxas -c) declares a kernel's
    static shared arrays at module scope, so ptxas's per-kernel "bytes smem" leaves them out."""
    return sum(int(size) for size in re.findall(r"^\s*(?:\.visible\s+)?\.shared\s+[^\n\[]*\[(\d+)\]", ptx, re.M))


_PARAMETER_BYTES = {"u8": 1, "s8": 1, "b8": 1, "u16": 2, "s16": 2, "b16": 2, "f16": 2, "u32": 4, "s32": 4,
                    "b32": 4, "f32": 4, "u64": 8, "s64": 8, "b64": 8, "f64": 8}


def entry_parameter_bytes(ptx: str) -> list[int]:
    """The size in bytes of each parameter of the (one) kernel entry in ``ptx``, in order."""
    found = re.search(r"\.entry\s+[^(]*\((.*?)\)", ptx, re.S)
    if found is None:
        raise ValueError("no kernel entry in the PTX")
    return [_PARAMETER_BYTES[t] for t in re.findall(r"\.param\s+\.(\w+)", found.group(1))]


def _parameters(variant: CudaVariant, ptx: str) -> str:
    """How the kernel's parameters disagree with its launches: the types its op passes, or the bytes the
    lean launch packs; "" when they agree."""
    if variant.signature != variant.inferred:
        declared, passed = (", ".join(map(str, types)) for types in (variant.signature, variant.inferred))
        return f"declares ({declared}), is passed ({passed})"
    declared, packed = entry_parameter_bytes(ptx), parameter_bytes(variant.signature)
    return "" if declared == packed else f"the entry declares parameters of {declared} bytes, the launch packs {packed}"


def _report(variant: CudaVariant, cc: tuple[int, int], ptx: str) -> KernelReport:
    figures = assemble(ptx, cc)
    figures["shared_bytes"] = max(figures["shared_bytes"], static_shared_bytes(ptx))
    return KernelReport(variant.label, f"{variant.op}/{variant.name}", variant.variant, variant.kind, arch(cc),
                        **figures, counts=instruction_counts(ptx), parameters=_parameters(variant, ptx))


def reports(ccs: tuple[tuple[int, int], ...], variants: list[CudaVariant] | None = None,
            progress: Callable[[int, int, CudaVariant], None] | None = None) -> dict[str, list[KernelReport]]:
    """The KernelReport of every variant (default: all of cuda_variants()) for each compute capability
    of ``ccs``, by architecture name; ``progress(i, total, variant)`` is called before each variant.
    ptxas runs on a second thread while the next kernel compiles."""
    toolchain()
    chosen = cuda_variants() if variants is None else list(variants)
    pending: dict[str, list[Future[KernelReport]]] = {arch(cc): [] for cc in ccs}
    with ThreadPoolExecutor(2, thread_name_prefix="gpudnn-ptxas") as pool:
        for i, variant in enumerate(chosen):
            if progress is not None:
                progress(i, len(chosen), variant)
            for cc, ptx in kernel_ptx(variant, ccs).items():
                pending[arch(cc)].append(pool.submit(_report, variant, cc, ptx))
        return {name: [f.result() for f in futures] for name, futures in pending.items()}


def problems(r: KernelReport) -> list[str]:
    """What ``r`` breaks of the module docstring's rules (empty when it holds them all)."""
    found = []
    bound = register_bound(r.kind, r.variant)
    if r.registers > bound:
        found.append(f"{r.registers} registers, above the {bound} of {r.variant.split()[0]} {r.kind} kernels")
    if r.spill_stores or r.spill_loads:
        found.append(f"spills ({r.spill_stores} bytes stored, {r.spill_loads} loaded)")
    if r.counts["div_rem_64"]:
        found.append(f"{r.counts['div_rem_64']} 64-bit integer divisions/remainders")
    if r.counts["cas"]:
        found.append(f"{r.counts['cas']} compare-and-swap atomics (a software atomic loop)")
    f64 = r.counts["f64_ops"] + r.counts["cvt_f64"]
    if r.variant.startswith("float32") and f64 and r.kernel not in FLOAT64_ALLOWED:
        found.append(f"{f64} float64 instructions in a float32 kernel")
    if r.parameters:
        found.append(r.parameters)
    return found


def table(found: list[KernelReport]) -> str:
    """The reports as a text table, one kernel a line."""
    head = f"{'kernel':<70} {'kind':<11} {'regs':>4} {'bound':>5} {'smem':>5} {'spill':>5} {'div64':>5} " \
           f"{'f64':>4} {'atom':>4} {'ld.v':>4}  problems"
    lines = [head, "-" * len(head)]
    for r in found:
        f64 = r.counts["f64_ops"] + r.counts["cvt_f64"]
        name = f"{r.kernel} {r.variant}"
        lines.append(f"{name[:70]:<70} {r.kind:<11} {r.registers:>4} {register_bound(r.kind, r.variant):>5} "
                     f"{r.shared_bytes:>5} {r.spill_stores + r.spill_loads:>5} {r.counts['div_rem_64']:>5} "
                     f"{f64:>4} {r.counts['atomics']:>4} {r.counts['vector_loads']:>4}  "
                     f"{'; '.join(problems(r)) or 'ok'}")
    return "\n".join(lines)


def report_json(found: list[KernelReport], path: str | Path) -> None:
    """Write the reports of one architecture with the rules and the toolchain, atomically."""
    import json

    import numba_cuda

    payload = {
        "arch": found[0].arch if found else None,
        "toolchain": {"cuda": toolchain().release, "numba_cuda": numba_cuda.__version__,
                      "ptxas": "ptxas -c -v (relocatable, as nvJitLink links at run time)"},
        "register_bounds": {kind: dict(zip(("float32", "float64"), bounds))
                            for kind, bounds in REGISTER_BOUNDS.items()},
        "float64_allowed": FLOAT64_ALLOWED,
        "kernels": [r.as_dict() for r in found],
        "problems": {r.label: problems(r) for r in found if problems(r)},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(temporary, target)
