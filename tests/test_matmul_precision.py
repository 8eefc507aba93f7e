"""set_matmul_precision: PyTorch's names, checked arguments, TF32 only where asked for."""

from __future__ import annotations

import numpy as np
import pytest

import gpudnn as gd
from tests.support import HAVE_GPU


@pytest.fixture(autouse=True)
def restore_precision():
    yield
    gd.set_matmul_precision("highest")


def test_default_is_highest_and_names_are_checked():
    assert gd.get_matmul_precision() == "highest"
    gd.set_matmul_precision(" High ")
    assert gd.get_matmul_precision() == "high"
    for bad in ("medium", "tf32", 1):
        with pytest.raises(ValueError, match="precision must be one of 'highest', 'high'"):
            gd.set_matmul_precision(bad)
    assert gd.get_matmul_precision() == "high"


def test_numpy_backend_matmul_stays_full_float32_under_high(rng):
    a, b = (rng.standard_normal((64, 64)).astype(np.float32) for _ in range(2))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    gd.set_matmul_precision("high")
    got = gd.backend.backend("numpy").matmul(a, b)
    assert np.max(np.abs(got - exact)) / np.max(np.abs(exact)) < 1e-5


@pytest.mark.gpu
@pytest.mark.skipif(not HAVE_GPU, reason="TF32 needs a real GPU")
def test_high_uses_tf32_on_the_gpu_and_highest_does_not(rng):
    b = gd.backend.backend("cupy")
    a, c = (rng.standard_normal((512, 512)).astype(np.float32) for _ in range(2))
    exact = a.astype(np.float64) @ c.astype(np.float64)
    errors = {}
    for precision in ("highest", "high"):
        gd.set_matmul_precision(precision)
        got = b.to_numpy(b.matmul(b.asarray(a), b.asarray(c)))
        errors[precision] = np.max(np.abs(got - exact)) / np.max(np.abs(exact))
    assert errors["highest"] < 1e-5 < errors["high"] < 1e-2, errors
