"""Layers: the Layer base, Dense, Activation and Dropout, written only against the Backend.

A layer's ``forward(x, train=True)`` keeps what its ``backward`` needs; ``backward(dy)`` accumulates
parameter gradients and returns dx. ``backward(dy, overwrite_dy=True)`` lets the layer reuse dy's
memory for its own work (Sequential does so for arrays it owns). Arrays returned in training mode are
workspaces reused by the layer's next call (copy them to keep them); inference (``train=False``)
returns fresh arrays. Every public Layer subclass is in ``Layer.registry`` by class name, which is
how configs and checkpoints name layers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import checks
from ..backend import ACTIVATION_NAMES, FROM_OUTPUT, activation_code, get_backend
from ..registry import Registered
from .initializers import INITS, default_init, initial_weights
from .parameter import Parameter
from .workspace import Workspace


class Layer(Registered, family="layer"):
    """Base class: parameters, buffers (saved but not trained state), train/eval forward, backward.

    ``in_features``/``out_features`` are the widths a layer needs and gives (None: any width).
    """

    in_features: int | None = None
    out_features: int | None = None

    def __init__(self) -> None:
        self.backend = get_backend()
        self.ws = Workspace()
        self._params: dict[str, Parameter] = {}
        self._buffers: dict[str, Any] = {}

    def parameters(self) -> list[Parameter]:
        return list(self._params.values())

    def trainable_parameters(self) -> list[Parameter]:
        """The parameters an optimizer should update (the frozen ones left out)."""
        return [p for p in self._params.values() if p.trainable]

    @property
    def trainable(self) -> bool:
        """Whether any parameter of the layer is trained (False for a frozen or parameter-free layer)."""
        return any(p.trainable for p in self._params.values())

    def freeze(self) -> Layer:
        """Stop training every parameter of the layer: no gradients, no optimizer state, no updates.
        Optimizers read frozenness when they are built, so freeze before building one. Returns self."""
        for p in self._params.values():
            p.trainable = False
        return self

    def unfreeze(self) -> Layer:
        """Train every parameter of the layer again (build a new optimizer to include them). Returns self."""
        for p in self._params.values():
            p.trainable = True
        return self

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for name, p in self._params.items():
            yield prefix + name, p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """Arrays the layer keeps between calls without training them (e.g. running statistics)."""
        for name, buf in self._buffers.items():
            yield prefix + name, buf

    def forward(self, x: Any, train: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any) -> Any:
        return self.forward(x, train=False)

    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments with the class name as "type" (see from_config)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        """A layer (fresh weights) rebuilt from ``config()``, of the registered class it names."""
        if not isinstance(config, dict) or not isinstance(config.get("type"), str):
            raise ValueError(f"a layer config is a dict with a 'type', got {config!r}")
        spec = dict(config)
        kind = Layer.named(spec.pop("type"))
        if not issubclass(kind, cls):
            raise ValueError(f"config describes a {kind.__name__}, not a {cls.__name__}")
        return kind._from_spec(spec)

    @classmethod
    def _from_spec(cls, spec: dict[str, Any]) -> Layer:
        """This class built from its config without "type" (the constructor's keyword arguments)."""
        return cls(**spec)

    def _input(self, x: Any, width: int | None = None) -> Any:
        self.backend.check("x", x)
        if x.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects x of shape (batch, features), got {tuple(x.shape)}")
        if width is not None and x.shape[1] != width:
            raise ValueError(f"{type(self).__name__} expects {width} input features, got x of shape {tuple(x.shape)}")
        return x

    def _set_activation(self, activation: str | int | None, alpha: float) -> None:
        """The activation as a name, its kernel code and whether backward needs only the output y."""
        self.activation_code = activation_code(activation)
        self.activation = ACTIVATION_NAMES[self.activation_code]
        self.grad_from_output = self.activation_code in FROM_OUTPUT
        self.alpha = checks.real("alpha", alpha)

    def _parameter_dtype(self, dtype: Any) -> np.dtype:
        """The float dtype asked for the layer's parameters (None: the backend's default)."""
        dtype = np.dtype(dtype or self.backend.dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        return dtype

    def _saved(self, value: Any) -> Any:
        if value is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward(x, train=True)")
        return value


class Dense(Layer):
    """``y = f(x @ W + b)``: one GEMM and one fused bias+activation forward; backward is one fused
    activation-gradient/bias-gradient pass and two GEMMs. W: (in_features, out_features).
    ``bias=False`` drops b (e.g. before a BatchNorm1d, whose mean subtraction cancels it)."""

    def __init__(self, in_features: int, out_features: int, activation: str | None = None, *,
                 alpha: float = 0.01, init: str | None = None, bias: bool = True, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = checks.positive_int("in_features", in_features)
        self.out_features = checks.positive_int("out_features", out_features)
        self._set_activation(activation, alpha)
        self.init = checks.choice("init", init or default_init(self.activation), INITS)
        dtype = self._parameter_dtype(dtype)
        w = initial_weights(self.backend, self.in_features, self.out_features, self.init, dtype)
        self.W = Parameter("W", w, self.backend)
        self._params = {"W": self.W}
        self.b: Parameter | None = None
        if checks.flag("bias", bias):
            self.b = self._params["b"] = Parameter("b", self.backend.zeros((self.out_features,), dtype), self.backend)
        self._x = self._act_saved = None
        self.needs_input_grad = True  # Sequential turns it off for its first layer

    def __repr__(self) -> str:
        return f"Dense({self.in_features}, {self.out_features}, activation={self.activation!r})"

    def config(self) -> dict[str, Any]:
        return {"type": "Dense", "in_features": self.in_features, "out_features": self.out_features,
                "activation": self.activation, "alpha": self.alpha, "init": self.init, "bias": self.b is not None,
                "dtype": str(self.W.data.dtype)}

    def forward(self, x: Any, train: bool = False) -> Any:
        x = self._input(x, self.in_features)
        b, n, dtype = self.backend, x.shape[0], self.W.data.dtype
        if x.dtype != dtype:
            raise TypeError(f"x is {x.dtype} but the layer's weights are {dtype}; convert x first")
        bias = None if self.b is None else self.b.data
        if not train:
            h = b.matmul(x, self.W.data)
            return b.bias_act(h, bias, self.activation_code, self.alpha, out=h)
        h = b.matmul(x, self.W.data, out=self.ws.get(b, "h", (n, self.out_features), dtype))
        if self.grad_from_output:  # keep only y, computed in place
            y = b.bias_act(h, bias, self.activation_code, self.alpha, out=h)
            self._act_saved = y
        else:
            y = b.bias_act(h, bias, self.activation_code, self.alpha,
                           out=self.ws.get(b, "y", h.shape, dtype), z_out=h)
            self._act_saved = h
        self._x = x
        return y

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        b, x, saved = self.backend, self._saved(self._x), self._act_saved
        dy = b.check("dy", dy)
        if dy.shape != saved.shape:
            raise ValueError(f"dy must have shape {tuple(saved.shape)} (the forward output), got {tuple(dy.shape)}")
        dz_out = dy if overwrite_dy and dy.dtype == saved.dtype else self.ws.get(b, "dz", dy.shape, dy.dtype)
        db_out = None if self.b is None else self.b.grad_target(self.ws, "db")
        dz, db = b.bias_act_backward(dy, saved, self.activation_code, self.alpha, from_output=self.grad_from_output,
                                     dz_out=dz_out, db_out=db_out, with_db=self.b is not None)
        self.W.accumulate_matmul(x, dz, self.ws, "dW", transpose_a=True)
        if self.b is not None:
            self.b.accumulate(db)
        if not self.needs_input_grad:
            return None
        return b.matmul(dz, self.W.data, out=self.ws.get(b, "dx", x.shape, dy.dtype), transpose_b=True)


class Activation(Layer):
    """An activation on its own: ``y = f(x)`` (no parameters)."""

    def __init__(self, activation: str, *, alpha: float = 0.01) -> None:
        super().__init__()
        self._set_activation(activation, alpha)
        self._saved_value = None

    def __repr__(self) -> str:
        return f"Activation({self.activation!r})"

    def config(self) -> dict[str, Any]:
        return {"type": "Activation", "activation": self.activation, "alpha": self.alpha}

    def forward(self, x: Any, train: bool = False) -> Any:
        x = self._input(x)
        b = self.backend
        if not train:
            return b.bias_act(x, None, self.activation_code, self.alpha)
        y = b.bias_act(x, None, self.activation_code, self.alpha, out=self.ws.get(b, "y", x.shape, x.dtype))
        self._saved_value = y if self.grad_from_output else x
        return y

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        b, saved = self.backend, self._saved(self._saved_value)
        dx, _ = b.bias_act_backward(dy, saved, self.activation_code, self.alpha, from_output=self.grad_from_output,
                                    dz_out=dy if overwrite_dy else self.ws.get(b, "dx", dy.shape, dy.dtype),
                                    with_db=False)
        return dx


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest
    by 1/(1-p); identity in inference. The mask is hashed from a per-call seed, never stored."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = checks.real("p", p, low=0.0, high=1.0, high_open=True)
        self._seed: int | None = None

    def __repr__(self) -> str:
        return f"Dropout({self.p})"

    def config(self) -> dict[str, Any]:
        return {"type": "Dropout", "p": self.p}

    def forward(self, x: Any, train: bool = False) -> Any:
        x = self._input(x)
        if not train or self.p == 0.0:
            self._seed = -1
            return x
        b = self.backend
        self._seed = b.next_seed()
        return b.dropout(x, self.p, self._seed, out=self.ws.get(b, "y", x.shape, x.dtype))

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        seed = self._saved(self._seed)
        if seed < 0:
            return dy
        b = self.backend
        out = dy if overwrite_dy else self.ws.get(b, "dx", dy.shape, dy.dtype)
        return b.dropout_backward(dy, self.p, seed, out=out)

