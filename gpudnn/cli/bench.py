"""`gpudnn bench`: the benchmark suite of a source checkout (benchmarks/ is not part of the package), and
`gpudnn bench ptx`, what NVIDIA's compiler makes of every CUDA kernel (no GPU needed)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..files import check_outputs
from .usage import UsageError


def bench_job(*, suite: str = "kernels", quick: bool = False, json: str | None = None,
              arch: str = "sm_90,sm_80") -> None:
    """Run the benchmarks of ``suite`` (kernels, mlp, pca, all, distributed or ptx), printing the table;
    ``json``: also save it."""
    check_outputs({"--json": json})
    if suite == "ptx":
        ptx_table(arch, json)
        return
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "harness.py").is_file():
        raise UsageError("the benchmarks ship with the source checkout: run `gpudnn bench` from a clone of gpudnn")
    sys.path.insert(0, str(root))
    from benchmarks.suite import run_suite

    run_suite(suite, quick=quick, json_path=json)


def ptx_table(arch: str, json: str | None) -> None:
    """Compile every CUDA kernel for each architecture of ``arch`` ("sm_90,sm_80"), print each one's
    table and, with ``json``, write it ('{arch}' in the path stands for the architecture, as sm90). Raises
    RuntimeError when a kernel breaks the rules of gpudnn.kernels.ptx."""
    from gpudnn.kernels import ptx
    from gpudnn.kernels.variants import cuda_variants

    try:
        ccs = tuple(dict.fromkeys(ptx.parse_arch(a) for a in arch.split(",") if a.strip()))
    except ValueError as exc:
        raise UsageError(f"--arch: {exc}") from None
    if not ccs:
        raise UsageError("--arch names no architecture")
    if json and len(ccs) > 1 and "{arch}" not in json:
        raise UsageError("--json needs '{arch}' in its name when compiling for several architectures")
    toolchain = ptx.toolchain()
    variants = cuda_variants()
    names = ", ".join(ptx.arch(cc) for cc in ccs)
    print(f"compiling {len(variants)} CUDA kernels for {names} (NVVM and ptxas of CUDA {toolchain.release})",
          file=sys.stderr)

    def progress(i: int, total: int, variant: object) -> None:
        if i and i % 16 == 0:
            print(f"  {i}/{total}", file=sys.stderr)

    found = ptx.reports(ccs, variants, progress)
    broken = 0
    for name, reports in found.items():
        print(f"\n== {name}: {len(reports)} kernels")
        print(ptx.table(reports))
        broken += sum(1 for r in reports if ptx.problems(r))
        if json:
            path = json.replace("{arch}", name.replace("_", ""))
            ptx.report_json(reports, path)
            print(f"results written to {path}")
    if broken:
        raise RuntimeError(f"{broken} kernel builds break the rules (see 'problems' above)")
