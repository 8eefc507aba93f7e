"""dropout: bit-identical masks three ways and against a plain-Python SplitMix64, keep-rate
statistics, determinism, backward = forward mask, in place, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
from gpudnn.kernels import dropout as D

from tests.support import IMPLS, op, to_device, to_host

DTYPES = [np.float32, np.float64]
SHAPES = [(), (1,), (7, 13), (3, 5, 7)]


def _splitmix64(seed: int, count: int) -> list[int]:
    """The first ``count`` outputs of SplitMix64 (Steele et al. 2014), in plain Python integers."""
    mask, state, out = 2**64 - 1, seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def _seed(rng) -> int:
    return int(rng.integers(0, 2**63))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_python_splitmix64(impl, dtype, shape, rng):
    x = np.asarray(rng.standard_normal(shape) + 5, dtype=dtype)  # never 0, so y == 0 exactly where dropped
    p, seed = float(rng.uniform(0.05, 0.95)), _seed(rng)
    y = np.asarray(op("dropout", "dropout", impl)(x, p, seed))
    assert y.shape == x.shape and y.dtype == dtype
    keep = np.array([h >> 40 >= p * 2**24 for h in _splitmix64(seed, x.size)]).reshape(shape)
    np.testing.assert_array_equal(y != 0, keep)
    np.testing.assert_array_equal(y[keep], (x * dtype(1 / (1 - p)))[keep])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (300, 257), (2, 3, 4, 5)])
def test_three_ways_bit_identical(dtype, shape, rng):
    x = rng.standard_normal(shape).astype(dtype)
    p, seed = float(rng.uniform(0, 0.9)), _seed(rng)
    results = [op("dropout", "dropout", impl)(x, p, seed) for impl in IMPLS]
    backward = [op("dropout", "dropout_backward", impl)(x, p, seed) for impl in IMPLS]
    for y in results[1:] + backward:
        np.testing.assert_array_equal(y.view(np.uint8), results[0].view(np.uint8))


def test_mask_is_the_same_for_float32_and_float64(rng):
    x = rng.standard_normal(5000) + 10
    seed = _seed(rng)
    kept32 = D.dropout_cpu(x.astype(np.float32), 0.4, seed) != 0
    kept64 = D.dropout_cpu(x, 0.4, seed) != 0
    np.testing.assert_array_equal(kept32, kept64)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_rate_and_mean_are_preserved(p, rng):
    n = 2_000_003
    x = np.ones(n, np.float32)
    y = D.dropout_cpu(x, p, _seed(rng))
    sigma = np.sqrt(p * (1 - p) / n)  # of the keep fraction
    assert abs(np.count_nonzero(y) / n - (1 - p)) < 6 * sigma
    assert abs(y.astype(np.float64).mean() - 1) < 6 * sigma / (1 - p)
    assert set(np.unique(y)) == {0, np.float32(1 / (1 - p))}
    # neighbouring elements are independent: P(both kept) ~ (1-p)^2
    both = np.count_nonzero((y[:-1] != 0) & (y[1:] != 0)) / (n - 1)
    assert abs(both - (1 - p) ** 2) < 6 * np.sqrt((1 - p) ** 2 * (1 - (1 - p) ** 2) / n)


def test_deterministic_per_seed_and_independent_across_seeds(rng):
    x = np.ones(100_000)
    seed = _seed(rng) // 2
    a, again, b = (D.dropout_cpu(x, 0.5, s) for s in (seed, seed, seed + 1))
    np.testing.assert_array_equal(a, again)
    agreement = np.mean((a != 0) == (b != 0))
    assert abs(agreement - 0.5) < 0.01  # independent masks agree on half the elements
    assert D.dropout_cpu(x, 0.5, 0).any() and D.dropout_cpu(x, 0.5, 2**63 - 1).any()


@pytest.mark.parametrize("impl", IMPLS)
def test_p_zero_is_identity_and_backward_matches_forward(impl, rng):
    x = rng.standard_normal((6, 9))
    np.testing.assert_array_equal(op("dropout", "dropout", impl)(x, 0.0, 3), x)
    seed = _seed(rng)
    kept = op("dropout", "dropout", impl)(np.ones_like(x), 0.25, seed) != 0
    dy = rng.standard_normal(x.shape)
    dx = op("dropout", "dropout_backward", impl)(dy, 0.25, seed)
    np.testing.assert_array_equal(dx, np.where(kept, dy * (1 / 0.75), 0))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["dropout", "dropout_backward"])
def test_in_place_and_nan(impl, name, rng):
    x = rng.standard_normal((5, 11)).astype(np.float32)
    x[0, :] = np.nan
    seed = _seed(rng)
    expected = D.dropout_ref(x, 0.5, seed)
    fn = getattr(D, f"{name}_{impl}")
    a = to_device(x.copy()) if impl == "cuda" else x.copy()
    assert fn(a, 0.5, seed, out=a) is a
    np.testing.assert_array_equal(to_host(a), expected)
    assert np.isnan(expected[0]).all()  # dropped NaNs stay NaN (x * 0), never silently 0


@pytest.mark.parametrize("impl", IMPLS)
def test_empty(impl):
    assert op("dropout", "dropout", impl)(np.zeros((0, 4), np.float32), 0.5, 1).shape == (0, 4)


BAD = [
    (lambda x: (x, 1.0, 1), ValueError, "p must be < 1"),
    (lambda x: (x, -0.1, 1), ValueError, "p must be >= 0"),
    (lambda x: (x, float("nan"), 1), ValueError, "p must be finite"),
    (lambda x: (x, None, 1), TypeError, "p must be a real number"),
    (lambda x: (x, 0.5, -1), ValueError, r"seed must be in \[0, 2\*\*63\)"),
    (lambda x: (x, 0.5, 2**63), ValueError, r"seed must be in \[0, 2\*\*63\)"),
    (lambda x: (x, 0.5, 1.5), TypeError, "seed must be an int"),
    (lambda x: (x, 0.5, True), TypeError, "seed must be an int"),
    (lambda x: (x[:, ::2], 0.5, 1), ValueError, "must be C-contiguous"),
    (lambda x: (x.astype(np.int64), 0.5, 1), TypeError, "must be float32 or float64"),
    (lambda x: (x.tolist(), 0.5, 1), TypeError, "must be a NumPy or CuPy array"),
]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", ["dropout", "dropout_backward"])
@pytest.mark.parametrize("mutate,error,message", BAD)
def test_bad_arguments_are_named(impl, name, mutate, error, message):
    args = mutate(np.ones((4, 6), np.float32))
    with pytest.raises(error, match=message):
        op("dropout", name, impl)(*args)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_bad_outputs(impl):
    fn = getattr(D, f"dropout_{impl}")
    big = np.ones((8, 6), np.float32)
    with pytest.raises(ValueError, match="out overlaps x"):
        fn(big[:4], 0.5, 1, out=big[2:6])
    with pytest.raises(TypeError, match="out must have dtype float32"):
        fn(big, 0.5, 1, out=np.empty((8, 6)))
    with pytest.raises(ValueError, match="out must have shape"):
        fn(big, 0.5, 1, out=np.empty((6, 8), np.float32))
    with pytest.raises(ValueError, match="dy must be C-contiguous"):
        getattr(D, f"dropout_backward_{impl}")(big.T, 0.5, 1)
