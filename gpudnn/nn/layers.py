"""Layers: Dense, Activation, Dropout and Sequential, written only against the Backend.

A layer's ``forward(x, train=True)`` keeps what its ``backward`` needs; ``backward(dy)``
accumulates parameter gradients and returns dx. ``backward(dy, overwrite_dy=True)`` lets the
layer reuse dy's memory for its own work (Sequential does so for arrays it owns). Arrays returned in training mode are workspaces
reused by the layer's next call (copy them to keep them); inference (``train=False``) returns
fresh arrays.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ..backend import ACTIVATION_NAMES as NAMES
from ..backend import FROM_OUTPUT, activation_code, check_finite_scalar, get_backend
from .initializers import INITS, default_init, initial_weights
from .parameter import Parameter
from .workspace import Workspace


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class Layer:
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
        """JSON-able constructor arguments (checkpoints rebuild models from these)."""
        raise NotImplementedError

    def _input(self, x: Any, width: int | None = None) -> Any:
        self.backend.check("x", x)
        if x.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects x of shape (batch, features), got {tuple(x.shape)}")
        if width is not None and x.shape[1] != width:
            raise ValueError(f"{type(self).__name__} expects {width} input features, got x of shape {tuple(x.shape)}")
        return x

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
        self.in_features = _positive_int("in_features", in_features)
        self.out_features = _positive_int("out_features", out_features)
        self.code = activation_code(activation)
        self.activation = NAMES[self.code]
        self.alpha = check_finite_scalar("alpha", alpha)
        self.init = init or default_init(self.activation)
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        dtype = self._parameter_dtype(dtype)
        w = initial_weights(self.backend, self.in_features, self.out_features, self.init, dtype)
        self.W = Parameter("W", w, self.backend)
        if not isinstance(bias, (bool, np.bool_)):
            raise TypeError(f"bias must be True or False, got {bias!r}")
        self._params = {"W": self.W}
        self.b: Parameter | None = None
        if bias:
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
            return b.bias_act(h, bias, self.code, self.alpha, out=h)
        h = b.matmul(x, self.W.data, out=self.ws.get(b, "h", (n, self.out_features), dtype))
        if self.code in FROM_OUTPUT:  # derivative from y: keep only y, computed in place
            y = b.bias_act(h, bias, self.code, self.alpha, out=h)
            self._act_saved = y
        else:
            y = b.bias_act(h, bias, self.code, self.alpha,
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
        db_scratch = self.ws.later(b, "db", (self.out_features,), dy.dtype)
        dz, db = b.bias_act_backward(
            dy, saved, self.code, self.alpha, from_output=self.code in FROM_OUTPUT,
            dz_out=dz_out, db_out=db_scratch() if self.b is None else self.b.grad_out(db_scratch))
        self.W.accumulate_matmul(x, dz, transpose_a=True, scratch=self.ws.later(b, "dW", self.W.shape, dy.dtype))
        if self.b is not None:
            self.b.accumulate(db)
        if not self.needs_input_grad:
            return None
        return b.matmul(dz, self.W.data, out=self.ws.get(b, "dx", x.shape, dy.dtype), transpose_b=True)


class Activation(Layer):
    """An activation on its own: ``y = f(x)`` (no parameters)."""

    def __init__(self, activation: str, *, alpha: float = 0.01) -> None:
        super().__init__()
        self.code = activation_code(activation)
        self.activation = NAMES[self.code]
        self.alpha = check_finite_scalar("alpha", alpha)
        self._saved_value = None

    def __repr__(self) -> str:
        return f"Activation({self.activation!r})"

    def config(self) -> dict[str, Any]:
        return {"type": "Activation", "activation": self.activation, "alpha": self.alpha}

    def forward(self, x: Any, train: bool = False) -> Any:
        x = self._input(x)
        b = self.backend
        if not train:
            return b.bias_act(x, None, self.code, self.alpha)
        y = b.bias_act(x, None, self.code, self.alpha, out=self.ws.get(b, "y", x.shape, x.dtype))
        self._saved_value = y if self.code in FROM_OUTPUT else x
        return y

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        b, saved = self.backend, self._saved(self._saved_value)
        dx, _ = b.bias_act_backward(dy, saved, self.code, self.alpha, from_output=self.code in FROM_OUTPUT,
                                    dz_out=dy if overwrite_dy else self.ws.get(b, "dx", dy.shape, dy.dtype),
                                    db_out=self.ws.get(b, "db", (dy.shape[1],), dy.dtype))
        return dx


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest
    by 1/(1-p); identity in inference. The mask is hashed from a per-call seed, never stored."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"p must be a probability in [0, 1), got {p!r}")
        self.p = float(p)
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
        return b.dropout_backward(dy, self.p, seed, out=dy if overwrite_dy else self.ws.get(b, "dx", dy.shape, dy.dtype))

