"""`gpudnn bench [kernels|mlp|pca|all|distributed]`: run benchmark families, print tables, optionally save JSON."""

from __future__ import annotations

import importlib
import json
from typing import Any

from benchmarks import harness
from gpudnn.files import atomic_write

SUITES = {
    "kernels": ("bench_activations", "bench_losses", "bench_optim", "bench_norm"),
    "mlp": ("bench_mlp",),
    "pca": ("bench_pca",),
    "sklearn": ("bench_sklearn",),
}
SUITES["all"] = SUITES["kernels"] + SUITES["mlp"] + SUITES["pca"] + SUITES["sklearn"]
SUITES["distributed"] = ("bench_distributed",)  # starts its own ranks with mpiexec; not part of "all"


def _print(name: str, result: dict[str, Any]) -> None:
    rows = result.get("rows", [])
    columns = getattr(importlib.import_module(f"benchmarks.{name}"), "COLUMNS", None) or (list(rows[0]) if rows else [])
    harness.report(result, columns, f"\n== {name}")


def run_suite(suite: str, quick: bool = False, json_path: str | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in SUITES[suite]:
        results[name] = importlib.import_module(f"benchmarks.{name}").run(quick=quick)
        _print(name, results[name])
    if json_path:
        text = json.dumps({"machine": harness.machine(), "results": results}, indent=2)
        atomic_write(json_path, lambda f: f.write(text.encode()), what="results file")
        print(f"\nresults written to {json_path}")
    return results
