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
        for i, layer in enumerate(self.layers):  # nothing upstream needs dx of the input; every other dx is used
            if isinstance(layer, Dense):
                layer.needs_input_grad = i > 0
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
        overwrite; the caller's ``dy`` is overwritten only with ``overwrite_dy=True``. Where frozen layers
        lie below every trainable one (a frozen head such as a PCA stage), the layers below the lowest
        trainable one are not run at all, nor is that layer's input gradient, and None is returned.
        """
        original = dy
        lowest = self._lowest_trained_above_frozen()
        if lowest is None:
            return None
        for i in range(len(self.layers) - 1, lowest - 1, -1):
            layer = self.layers[i]
            overwrite = overwrite_dy or dy is not original
            if i == lowest and i > 0:
                return self._last_backward(layer, dy, overwrite)
            dy = layer.backward(dy, overwrite_dy=overwrite)
            if dy is None:
                break
        return dy

    def _lowest_trained_above_frozen(self) -> int | None:
        """Where backward may stop: 0 unless frozen layers lie below every trainable one, else the index of
        the lowest trainable layer (None when nothing trains at all)."""
        lowest = next((i for i, layer in enumerate(self.layers) if layer.trainable), None)
        if lowest is None:
            return None if any(layer.parameters() for layer in self.layers) else 0
        return lowest if any(layer.parameters() for layer in self.layers[:lowest]) else 0

    @staticmethod
    def _last_backward(layer: Layer, dy: Any, overwrite_dy: bool) -> None:
        """Backward of the lowest trainable layer above frozen ones: its parameters' gradients only."""
        needs = getattr(layer, "needs_input_grad", None)
        if needs:
            layer.needs_input_grad = False
        try:
            layer.backward(dy, overwrite_dy=overwrite_dy)
        finally:
            if needs:
                layer.needs_input_grad = True
        return None

    def frozen_parameter_names(self) -> list[str]:
        """Names of the parameters that are not trained (``Layer.freeze``), in model order."""
        return [name for name, p in self._params.items() if not p.trainable]

    def set_frozen(self, names: list[str]) -> None:
        """Freeze exactly the parameters named (every other one trains), e.g. as a checkpoint records them."""
        unknown = sorted(set(names) - set(self._params))
        if unknown:
            raise ValueError(f"no parameters named {unknown} in this model (it has {sorted(self._params)})")
        for name, p in self._params.items():
            p.trainable = name not in names

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
