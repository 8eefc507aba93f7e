"""The command line: `gpudnn info`, and bad requests ending in one line on stderr with exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import HAVE_GPU


def gpudnn(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | env
    return subprocess.run([sys.executable, "-m", "gpudnn", *args], capture_output=True, text=True,
                          env=full_env, timeout=300)


def test_info_reports_backend_reason_and_versions():
    out = gpudnn("info", GPUDNN_BACKEND="auto")
    assert out.returncode == 0, out.stderr
    for key in ("backend", "why", "numpy", "numba", "numba-cuda", "cupy"):
        assert any(line.split()[0] == key for line in out.stdout.splitlines() if line.strip()), key
    if HAVE_GPU:
        assert "compute capability" in out.stdout and "CUDA driver" in out.stdout


@pytest.mark.skipif(HAVE_GPU, reason="a usable GPU is present, so the cupy backend works")
def test_cupy_backend_unavailable_is_one_line_exit_2():
    out = gpudnn("info", GPUDNN_BACKEND="cupy")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpudnn: error: backend 'cupy' is unavailable:")
    assert "Traceback" not in out.stderr


def test_bad_backend_option_is_a_usage_error():
    out = gpudnn("--backend", "tpu", "info")
    assert out.returncode == 2 and "invalid choice" in out.stderr and "Traceback" not in out.stderr
