"""Input standardization folded into a model's first Dense, so an exported model takes raw features."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..nn.layers import Dense
from ..nn.sequential import Sequential


def fold_input_scaling(model: Sequential, mean: Any, std: Any) -> Sequential:
    """A new model equal to ``model((x - mean) / std)``: the first layer must be a Dense, whose
    W becomes ``W / std[:, None]`` and b becomes ``b - (mean / std) @ W`` (a bias is added if it had none)."""
    first = model.layers[0]
    if not isinstance(first, Dense):
        raise ValueError(f"input scaling folds into a first Dense layer; this model starts with {first!r}")
    mean, std = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (mean, std))
    if mean.shape != (first.in_features,) or std.shape != (first.in_features,):
        raise ValueError(f"scaling has {mean.size} means and {std.size} stds, the model takes {first.in_features} "
                         "features")
    if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
        raise ValueError("scaling means must be finite and stds finite and > 0")
    config = model.config()
    config["layers"][0]["bias"] = True
    folded = Sequential.from_config(config)
    state = model.state_dict()
    W = state["0.W"].astype(np.float64)
    b = state.get("0.b", np.zeros(first.out_features)).astype(np.float64)
    state["0.W"] = W / std[:, None]
    state["0.b"] = b - (mean / std) @ W
    folded.load_state_dict(state)
    return folded
