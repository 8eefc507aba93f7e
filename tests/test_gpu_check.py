"""The prepared GPU acceptance run, end to end on the CPU (--dry-run), so a Python error in it never
costs GPU time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import SIMULATOR

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(not SIMULATOR, reason="the dry run uses the cudasim backend (NUMBA_ENABLE_CUDASIM=1)")
def test_gpu_check_dry_run_passes_end_to_end(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path), "--dry-run",
                          "--only", "bandwidth", "launch", "syncs", "mlp", "pca", "sanitizer"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = results["sections"]
    assert results["dry_run"] and {s["status"] for s in sections.values()} == {"ok"}
    assert sections["syncs"]["syncs_per_step"] == 1
    assert [row["op"] for row in sections["bandwidth"]["rows"]][:2] == ["bias_act relu", "bias_act_backward relu"]
    assert all(row["GB/s"] > 0 and row["copy_GB/s"] > 0 for row in sections["bandwidth"]["rows"])
    assert all(row["launches_per_step"] >= 6 for row in sections["mlp"]["rows"])
    assert (tmp_path / "summary.md").read_text().startswith("# gpu_check")


@pytest.mark.skipif(not SIMULATOR, reason="the dry run uses the cudasim backend (NUMBA_ENABLE_CUDASIM=1)")
def test_gpu_check_test_section_collects_the_device_tests(tmp_path):
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path), "--dry-run",
                          "--only", "tests"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    tests = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]["tests"]
    assert "test_bias_act.py" in tests["kernel_tests"]["command"]
    assert any("collected" in line or "selected" in line for line in tests["gpu_marked"]["tail"])
