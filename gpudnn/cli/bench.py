"""`gpudnn bench`: the benchmark suite of a source checkout (benchmarks/ is not part of the package)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..files import check_outputs
from .usage import UsageError


def bench_job(*, suite: str = "kernels", quick: bool = False, json: str | None = None) -> None:
    """Run the benchmarks of ``suite`` (kernels, mlp, pca or all), printing the table; ``json``: also save it."""
    check_outputs({"--json": json})
    root = Path(__file__).resolve().parents[2]
    if not (root / "benchmarks" / "harness.py").is_file():
        raise UsageError("the benchmarks ship with the source checkout: run `gpudnn bench` from a clone of gpudnn")
    sys.path.insert(0, str(root))
    from benchmarks.suite import run_suite

    run_suite(suite, quick=quick, json_path=json)
