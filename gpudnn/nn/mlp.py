"""Multi-layer perceptrons in one call: the networks `gpudnn train` and the estimators build."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import checks
from .initializers import default_init
from .layers import Activation, Dense, Dropout
from .normalization import BatchNorm1d, LayerNorm
from .sequential import Sequential

# The normalization an MLP may place between each hidden Dense and its activation.
NORMS: dict[str, type[LayerNorm] | type[BatchNorm1d] | None] = {"none": None, "layer": LayerNorm,
                                                               "batch": BatchNorm1d}


def build_mlp(n_in: int, hidden: Sequence[int], n_out: int, activation: str = "relu", dropout: float = 0.0,
              norm: str = "none") -> Sequential:
    """Hidden Dense layers of widths ``hidden`` with a fused ``activation`` (or Dense -> LayerNorm /
    BatchNorm1d -> Activation with a ``norm``; no Dense bias before a BatchNorm, whose mean subtraction
    cancels it), Dropout(``dropout``) after each when > 0, then a Dense output layer of ``n_out``."""
    norm_layer = NORMS[checks.choice("norm", norm, NORMS)]
    dropout = checks.real("dropout", dropout, low=0.0, high=1.0, high_open=True)
    layers: list[Any] = []
    for width in hidden:
        if norm_layer is None:
            layers.append(Dense(n_in, width, activation=activation))
        else:
            layers += [Dense(n_in, width, init=default_init(activation), bias=norm_layer is not BatchNorm1d),
                       norm_layer(width), Activation(activation)]
        if dropout > 0:
            layers.append(Dropout(dropout))
        n_in = width
    layers.append(Dense(n_in, n_out))
    return Sequential(*layers)
