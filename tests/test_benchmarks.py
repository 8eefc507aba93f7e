"""The benchmarks still run (small shapes): every family returns rows of positive, finite timings."""

from __future__ import annotations

import importlib
import math

import pytest

from benchmarks.suite import SUITES


@pytest.mark.parametrize("name", SUITES["all"])
def test_benchmark_runs_on_small_shapes(name):
    result = importlib.import_module(f"benchmarks.{name}").run(quick=True)
    rows = result["rows"]
    assert rows, f"{name} returned no rows"
    timings = [v for row in rows for k, v in row.items() if k.endswith("_ms")]
    assert timings and all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in timings), rows
