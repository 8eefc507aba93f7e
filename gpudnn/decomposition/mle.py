"""Minka's choice of the PCA dimension (n_components="mle"), ported from scikit-learn, vectorised.

T. P. Minka, "Automatic choice of dimensionality for PCA", NIPS 2000: the rank whose
probabilistic PCA model of the spectrum has the highest Laplace-approximated evidence.
"""

from __future__ import annotations

import math

import numpy as np


def assess_dimension(spectrum: np.ndarray, rank: int, n_samples: int) -> float:
    """Minka's log-likelihood of a rank-``rank`` model of ``spectrum`` (d,) float64, descending."""
    d = spectrum.shape[0]
    if spectrum[rank - 1] < 1e-15:
        return -math.inf
    i = np.arange(1, rank + 1)
    pu = -rank * math.log(2.0) + sum(math.lgamma((d - j + 1) / 2.0) for j in i) \
        - math.log(math.pi) * float(np.sum(d - i + 1)) / 2.0
    pl = -float(np.sum(np.log(spectrum[:rank]))) * n_samples / 2.0
    v = max(1e-15, float(np.sum(spectrum[rank:])) / (d - rank))
    pv = -math.log(v) * n_samples * (d - rank) / 2.0
    m = d * rank - rank * (rank + 1.0) / 2.0
    pp = math.log(2.0 * math.pi) * (m + rank) / 2.0
    inv = 1.0 / np.concatenate([spectrum[:rank], np.full(d - rank, v)])
    with np.errstate(divide="ignore"):
        terms = np.log((spectrum[:rank, None] - spectrum[None, :]) * (inv[None, :] - inv[:rank, None]))
    upper = np.arange(d)[None, :] > np.arange(rank)[:, None]
    pa = float(np.sum(terms[upper])) + upper.sum() * math.log(n_samples)
    return pu + pl + pv + pp - pa / 2.0 - rank * math.log(n_samples) / 2.0


def infer_dimension(spectrum: np.ndarray, n_samples: int) -> int:
    """The rank in [1, d - 1] that maximises Minka's likelihood of ``spectrum`` (d,), descending."""
    ll = [-math.inf] + [assess_dimension(spectrum, r, n_samples) for r in range(1, spectrum.shape[0])]
    return int(np.argmax(ll))
