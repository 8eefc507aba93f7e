"""MNIST-1D (Greydanus, 2020: "Scaling down deep learning", arXiv:2011.14439), generated here.

Ten hand-made 1-D "digit" templates of 12 points are turned into noisy 40-point signals
by the reference generator's procedure, reimplemented in NumPy. Reference: the
``mnist1d`` package 0.0.2.post1 (Apache-2.0), ``mnist1d.data.make_dataset`` with
``get_dataset_args()`` defaults. Per sample, in this order of random draws:

1. pad: append p = 36 + int(U * 25) zeros (36..60) to the template (+1e-8, so the
   signal is never exactly 0), then resample linearly to 12 + 60 = 72 points;
2. scale by 1 + 0.4 (U - 0.5);
3. translate: roll right by k = randint(48) places;
4. correlated noise: where the signal is exactly 0, put 0.25 N(0,1) noise smoothed by
   a Gaussian filter (sigma 2, radius 8, reflecting edges), drawn for all 72 points;
5. iid noise: add 0.02 N(0,1) everywhere;
6. shear: subtract 0.75 (U - 0.5) * linspace(-0.5, 0.5, 72);
7. resample linearly to 40 points.

Samples are made class by class (n_samples // 10 each), then shuffled by one random
permutation, optionally the 40 positions by another (``shuffle_seq``), and the whole
array is standardized to mean 0, std 1 by its global mean and std. The first
int(n * 0.8) samples are the training set.

All randomness comes from ``np.random.RandomState(seed)`` with exactly the reference's
draws, and the resampling and the Gaussian filter repeat the arithmetic of scipy's
``interp1d`` (linear, i.e. ``np.interp``) and ``gaussian_filter`` in the same order, so
``seed=42`` reproduces the reference's ``make_dataset()`` (default seed 42) bit for bit:
checked against mnist1d 0.0.2.post1 with scipy 1.17 and NumPy 2.4, for seeds 0 and 42 and
for seed 7 with shuffle_seq. No scipy at run time. Deviations: the default seed here is 0
(the seed argument of load_dataset); features are float32; the reference's ``t``
(plotting coordinates) and ``templates`` entries are not returned; the reference's
download of its pre-built pickle is not offered (nothing is downloaded).
"""

from __future__ import annotations

import numpy as np

from .. import checks
from .dataset import Dataset

N_CLASSES = 10
TEMPLATE_LEN = 12
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
CORR_NOISE_SIGMA = 2.0
IID_NOISE_SCALE = 2e-2
SHEAR_SCALE = 0.75
FINAL_SEQ_LENGTH = 40
TRAIN_SPLIT = 0.8
EPS = 1e-8

_TEMPLATE_POINTS = (
    (5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5),
    (5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5),
    (5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5),
    (5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5),
    (5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5),
    (5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5),
    (5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5),
    (5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5),
    (5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5),
)


def templates() -> np.ndarray:
    """(10, 12) float64: each digit's points whitened, shifted to start at 0, divided by 6."""
    x = np.array(_TEMPLATE_POINTS, dtype=np.float64)
    x -= x.mean(1, keepdims=True)
    x /= x.std(1, keepdims=True)
    x -= x[:, :1]
    return x / 6.0


def resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of x (..., m), m >= 2, from linspace(0, 1, m) to linspace(0, 1, n).

    Row by row the same numbers as np.interp (which scipy's interp1d(kind="linear") calls
    for 1-D float64 data): x_j + slope_j (t - t_j) inside interval j, exact knots copied.
    """
    m = x.shape[-1]
    old, new = np.linspace(0, 1, m), np.linspace(0, 1, n)
    j = np.searchsorted(old, new, side="right").clip(1, m - 1) - 1  # old[j] <= new < old[j+1]
    slope = (x[..., j + 1] - x[..., j]) / (old[j + 1] - old[j])
    out = slope * (new - old[j]) + x[..., j]
    on_left, on_right = new == old[j], new == old[j + 1]
    out[..., on_left] = x[..., j[on_left]]
    out[..., on_right] = x[..., j[on_right] + 1]
    return out


def gaussian_filter(x: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian smoothing of x (..., n) along the last axis, edges reflected (d c b a | a b c d).

    Weights exp(-t^2 / (2 sigma^2)) for |t| <= r = int(truncate * sigma + 0.5), normalized to
    sum 1; returns a new float64 array of x's shape. Summed as scipy.ndimage does for a symmetric kernel:
    y_i = x_i w_0 + sum over k = r..1 of (x_{i-k} + x_{i+k}) w_k.
    """
    r = int(truncate * float(sigma) + 0.5)
    t = np.arange(-r, r + 1)
    w = np.exp(-0.5 / (sigma * sigma) * t**2)
    w = w / w.sum()
    n = x.shape[-1]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(r, r)], mode="symmetric")
    out = padded[..., r:r + n] * w[r]
    for k in range(r, 0, -1):
        out += (padded[..., r - k:r - k + n] + padded[..., r + k:r + k + n]) * w[r + k]
    return out


def mnist1d_arrays(
    seed: int = 0, n_samples: int = 5000, shuffle_seq: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """All samples, shuffled and standardized, unsplit: x (n_samples, 40) float64, y (n_samples,) int64.

    n_samples must be a positive multiple of 10 (n_samples // 10 per digit).
    """
    seed = checks.seed("seed", seed)
    if checks.integer("n_samples", n_samples, low=N_CLASSES) % N_CLASSES:
        raise ValueError(f"n_samples must be a positive multiple of {N_CLASSES}, got {n_samples!r}")
    rs = np.random.RandomState(seed)
    per_class = n_samples // N_CLASSES
    length = TEMPLATE_LEN + PADDING[1]
    low, high = PADDING
    # Padding then dilating depends only on (digit, pad length): tabulate the 10 x 25 signals.
    dilated = np.stack([
        np.stack([resample(np.concatenate([tpl + EPS, np.zeros(p)]), length) for p in range(low, high + 1)])
        for tpl in templates()
    ])

    pad = np.empty(n_samples, np.int64)
    shift = np.empty(n_samples, np.int64)
    u_scale = np.empty(n_samples)
    u_shear = np.empty(n_samples)
    corr = np.empty((n_samples, length))
    iid = np.empty((n_samples, length))
    for i in range(n_samples):  # the reference's draws, one sample at a time, in its order
        pad[i] = low + int(rs.rand() * (high - low + 1))
        u_scale[i] = rs.rand()
        shift[i] = rs.choice(MAX_TRANSLATION)
        corr[i] = CORR_NOISE_SCALE * rs.randn(length)
        iid[i] = IID_NOISE_SCALE * rs.randn(length)
        u_shear[i] = rs.rand()

    y = np.repeat(np.arange(N_CLASSES, dtype=np.int64), per_class)
    x = dilated[y, pad - low]
    x *= (1 + SCALE_COEFF * (u_scale - 0.5))[:, None]
    x = x[np.arange(n_samples)[:, None], (np.arange(length) - shift[:, None]) % length]
    x = np.where(x != 0, x, gaussian_filter(corr, CORR_NOISE_SIGMA))
    x = x + iid
    x = x - (SHEAR_SCALE * (u_shear - 0.5))[:, None] * np.linspace(-0.5, 0.5, length)
    x = resample(x, FINAL_SEQ_LENGTH)

    order = rs.permutation(n_samples)
    x, y = x[order], y[order]
    if shuffle_seq:
        x = x[:, rs.permutation(FINAL_SEQ_LENGTH)]
    return (x - x.mean()) / x.std(), y


def load_mnist1d(*, seed: int = 0, n_samples: int = 5000, shuffle_seq: bool = False) -> Dataset:
    """MNIST-1D: (n_samples, 40) float32 signals, 10 classes, first 80% train (4000/1000 by default)."""
    x, y = mnist1d_arrays(seed, n_samples, bool(shuffle_seq))
    x = x.astype(np.float32)
    split = int(n_samples * TRAIN_SPLIT)
    return Dataset(
        x[:split], y[:split], x[split:], y[split:], N_CLASSES, "mnist1d",
        "MNIST-1D (Greydanus 2020), generated with the reference procedure of the mnist1d package; "
        f"seed={seed}, n_samples={n_samples}, shuffle_seq={bool(shuffle_seq)}",
    )
