"""Test setup: CUDA kernels run on a real GPU when one answers, else in numba-cuda's simulator.

The simulator must be chosen before numba is first imported, which is why this runs at
collection start. Set NUMBA_ENABLE_CUDASIM yourself to force either way.
"""

from __future__ import annotations

import os


def _real_gpu() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


if "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0" if _real_gpu() else "1"

import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.support import GPU_REASON, HAVE_GPU, SIMULATOR  # noqa: E402

if SIMULATOR:
    # The simulator's syncthreads hands the GIL between Python threads; with the default 5 ms
    # switch interval every barrier of a block reduction costs milliseconds.
    sys.setswitchinterval(1e-4)


def pytest_report_header(config):
    where = "real GPU" if HAVE_GPU else ("numba-cuda simulator" if SIMULATOR else "none")
    return [f"gpudnn: CUDA kernels run on: {where}"]


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason=GPU_REASON)
    for item in items:
        if "gpu" in item.keywords and not HAVE_GPU:
            item.add_marker(skip_gpu)


@pytest.fixture
def rng():
    """Fresh random inputs each run; the seed is printed on failure for reproduction."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"rng seed: {seed}")
    return np.random.default_rng(seed)
