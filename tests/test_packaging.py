"""The distribution: kernels/ ships as gpudnn.kernels in a built wheel, with the embedded dataset,
and claims no generic top-level import name."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_built_wheel_ships_kernels_under_gpudnn(tmp_path):
    pytest.importorskip("setuptools", minversion="77", reason="building the wheel offline needs setuptools>=77 "
                        "(the test extra installs it)")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("gpudnn-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "gpudnn/kernels/bias_act.py" in names and "gpudnn/data/digits.npz" in names
    assert not any(n.startswith(("kernels/", "tests/", "benchmarks/")) for n in names)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "gpudnn = gpudnn.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"} | {"PYTHONPATH": str(target)}
    code = ("import gpudnn, gpudnn.kernels.bias_act as k, numpy as np; from gpudnn.data import load_dataset; "
            f"print(gpudnn.__file__.startswith({str(target)!r}), "
            "k.bias_act_cpu(np.ones((2, 2), np.float32), None, 'relu').sum(), load_dataset('digits').n_classes)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["True", "4.0", "10"]
