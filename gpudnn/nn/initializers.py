"""Weight initialisers, drawn from the backend's seeded host generator.

"he" (Kaiming normal, std = sqrt(2 / fan_in)) suits ReLU-like activations; "glorot" (Xavier
uniform, limit = sqrt(6 / (fan_in + fan_out))) suits sigmoid/tanh/identity; "lecun" (std = sqrt(1 / fan_in)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

INITS = ("he", "glorot", "lecun", "zeros")
_RELU_LIKE = {"relu", "leaky_relu", "gelu", "gelu_tanh", "silu", "swish", "softplus"}


def default_init(activation: str | None) -> str:
    """The initialiser that keeps activations' variance stable for this activation."""
    return "he" if activation in _RELU_LIKE else "glorot"


def initial_weights(backend: Any, fan_in: int, fan_out: int, scheme: str, dtype: Any) -> Any:
    """A (fan_in, fan_out) weight matrix on ``backend``."""
    rng: np.random.Generator = backend.rng
    if scheme == "he":
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
    elif scheme == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, (fan_in, fan_out))
    elif scheme == "lecun":
        w = rng.standard_normal((fan_in, fan_out)) * np.sqrt(1.0 / fan_in)
    elif scheme == "zeros":
        w = np.zeros((fan_in, fan_out))
    else:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {scheme!r}")
    return backend.asarray(w, dtype=dtype)
