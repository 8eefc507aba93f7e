"""Sequential: a stack of layers with stable parameter names ("0.W", "0.b", "2.W", ...)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import Dense, Layer


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse (the chain rule)."""

    def __init__(self, *layers: Layer) -> None:
        super().__init__()
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a gpudnn Layer, got {type(layer).__name__}")
            if layer.backend is not self.backend:
                raise TypeError(f"layer {i} was built on backend {layer.backend.name}, the model on "
                                f"{self.backend.name}")
        self.layers = list(layers)
        widths = [(i, layer) for i, layer in enumerate(self.layers) if layer.in_features is not None]
        for (i, a), (j, b) in zip(widths, widths[1:]):
            if a.out_features != b.in_features:
                raise ValueError(f"layer {i} outputs {a.out_features} features but layer {j} expects {b.in_features}")
        if isinstance(self.layers[0], Dense):  # nothing upstream needs dx of the input
            self.layers[0].needs_input_grad = False
        self._params = {name: p for i, layer in enumerate(self.layers) for name, p in layer.named_parameters(f"{i}.")}
        for name, p in self._params.items():
            p.name = name
        self._buffers = {name: buf for i, layer in enumerate(self.layers)
                         for name, buf in layer.named_buffers(f"{i}.")}

    def __repr__(self) -> str:
        inner = ",\n  ".join(map(repr, self.layers))
        return f"Sequential(\n  {inner}\n)"

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    @property
    def in_features(self) -> int | None:  # type: ignore[override]
        return next((layer.in_features for layer in self.layers if layer.in_features is not None), None)

    @property
    def out_features(self) -> int | None:  # type: ignore[override]
        return next((layer.out_features for layer in reversed(self.layers) if layer.out_features is not None),
                    None)

    def forward(self, x: Any, train: bool = False) -> Any:
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        """The chain rule through every layer; returns dx (None when the first layer needs none).

        Gradients between layers live in the layers' workspaces, which the next layer down may
        overwrite; the caller's ``dy`` is overwritten only with ``overwrite_dy=True``.
        """
        original = dy
        for layer in reversed(self.layers):
            dy = layer.backward(dy, overwrite_dy=overwrite_dy or dy is not original)
            if dy is None:
                break
        return dy

    def zero_grad(self) -> None:
        for p in self._params.values():
            p.zero_grad()

    def config(self) -> dict[str, Any]:
        return {"type": "Sequential", "layers": [layer.config() for layer in self.layers]}

    @classmethod
    def _from_spec(cls, spec: dict[str, Any]) -> Sequential:
        layers = spec.get("layers")
        if not isinstance(layers, list):
            raise ValueError(f"a Sequential config lists its layers, got {spec!r}")
        return cls(*(Layer.from_config(layer) for layer in layers))

    def _state_arrays(self) -> dict[str, Any]:
        """Every saved array by name: parameters' data, then buffers."""
        return {**{name: p.data for name, p in self._params.items()}, **self._buffers}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter and buffer name -> host NumPy copy."""
        return {name: self.backend.to_numpy(a).copy() for name, a in self._state_arrays().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy values into the existing parameters and buffers; names and shapes must match exactly."""
        arrays = self._state_arrays()
        missing = sorted(set(arrays) - set(state))
        unexpected = sorted(set(state) - set(arrays))
        if missing or unexpected:
            raise ValueError(f"state dict does not fit this model: missing {missing}, unexpected {unexpected}")
        for name, a in arrays.items():
            value = np.asarray(state[name]) if isinstance(state[name], (list, tuple, np.ndarray)) else state[name]
            if tuple(value.shape) != tuple(a.shape):
                raise ValueError(f"state dict entry {name} has shape {tuple(value.shape)}, the model needs "
                                 f"{tuple(a.shape)}")
        for name, a in arrays.items():
            a[...] = self.backend.asarray(state[name], dtype=a.dtype)
