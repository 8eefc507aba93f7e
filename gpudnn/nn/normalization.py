"""Normalization layers: LayerNorm (over each sample's features) and BatchNorm1d (over the batch).

Both learn a scale ``gamma`` (ones) and a shift ``beta`` (zeros) per feature and run one fused
kernel forward and one backward (kernels.layer_norm, kernels.batch_norm). BatchNorm1d also keeps
running statistics, buffers that are saved in ``state_dict`` and checkpoints but are not trained;
like PyTorch it normalizes with batch statistics in training and with the running ones in
inference, and updates them as

    running_mean = (1 - momentum) * running_mean + momentum * batch_mean
    running_var  = (1 - momentum) * running_var  + momentum * batch_var * n / (n - 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import checks
from .layers import Layer
from .parameter import Parameter


class _Norm(Layer):
    """Shared parts: per-feature gamma/beta, width checks, workspaces for the saved statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, *, dtype: Any = None) -> None:
        super().__init__()
        self.num_features = checks.positive_int("num_features", num_features)
        self.in_features = self.out_features = self.num_features
        self.eps = checks.real("eps", eps, low=0, low_open=True)
        dtype = self._parameter_dtype(dtype)
        self.gamma = Parameter("gamma", self.backend.asarray(np.ones(self.num_features), dtype=dtype), self.backend)
        self.beta = Parameter("beta", self.backend.zeros((self.num_features,), dtype), self.backend)
        self._params = {"gamma": self.gamma, "beta": self.beta}
        self._saved_values: tuple[Any, Any, Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.num_features})"

    def config(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "num_features": self.num_features, "eps": self.eps,
                "dtype": str(self.gamma.data.dtype)}

    def _checked(self, x: Any) -> Any:
        x = self._input(x, self.num_features)
        if x.dtype != self.gamma.data.dtype:
            raise TypeError(f"x is {x.dtype} but the layer's parameters are {self.gamma.data.dtype}; convert x first")
        return x

    def _stats_out(self, rows: int) -> dict[str, Any]:
        """Workspaces for the saved statistics: one per row (LayerNorm) or per feature (BatchNorm1d)."""
        b, dtype = self.backend, self.gamma.data.dtype
        return {"mean_out": self.ws.get(b, "mean", (rows,), dtype), "rstd_out": self.ws.get(b, "rstd", (rows,), dtype)}

    def _backward(self, op: Any, dy: Any, overwrite_dy: bool) -> Any:
        b = self.backend
        x, mean, rstd = self._saved(self._saved_values)
        dy = b.check("dy", dy)
        if dy.shape != x.shape:
            raise ValueError(f"dy must have shape {tuple(x.shape)} (the forward output), got {tuple(dy.shape)}")
        dtype = self.gamma.data.dtype
        dx_out = dy if overwrite_dy and dy.dtype == dtype else self.ws.get(b, "dx", dy.shape, dtype)
        dx, dgamma, dbeta = op(dy, x, self.gamma.data, mean, rstd, dx_out=dx_out,
                               dgamma_out=self.gamma.grad_target(self.ws, "dgamma"),
                               dbeta_out=self.beta.grad_target(self.ws, "dbeta"))
        self.gamma.accumulate(dgamma)
        self.beta.accumulate(dbeta)
        return dx


class LayerNorm(_Norm):
    """``y = (x - mean) / sqrt(var + eps) * gamma + beta`` with mean and (biased) var over each row's features."""

    def forward(self, x: Any, train: bool = False) -> Any:
        x, b = self._checked(x), self.backend
        if not train:
            return b.layer_norm(x, self.gamma.data, self.beta.data, self.eps)[0]
        y, mean, rstd = b.layer_norm(x, self.gamma.data, self.beta.data, self.eps,
                                     out=self.ws.get(b, "y", x.shape, x.dtype), **self._stats_out(x.shape[0]))
        self._saved_values = (x, mean, rstd)
        return y

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        return self._backward(self.backend.layer_norm_backward, dy, overwrite_dy)


class BatchNorm1d(_Norm):
    """Per-feature normalization over the batch (PyTorch's BatchNorm1d on (batch, features) input)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *, dtype: Any = None) -> None:
        super().__init__(num_features, eps, dtype=dtype)
        self.momentum = checks.real("momentum", momentum, low=0, high=1)
        dtype = self.gamma.data.dtype
        self.running_mean = self.backend.zeros((self.num_features,), dtype)
        self.running_var = self.backend.asarray(np.ones(self.num_features), dtype=dtype)
        self._buffers = {"running_mean": self.running_mean, "running_var": self.running_var}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "momentum": self.momentum}

    def forward(self, x: Any, train: bool = False) -> Any:
        x, b = self._checked(x), self.backend
        stats = {"running_mean": self.running_mean, "running_var": self.running_var}
        if not train:
            return b.batch_norm(x, self.gamma.data, self.beta.data, self.eps, training=False, **stats)[0]
        y, mean, rstd = b.batch_norm(x, self.gamma.data, self.beta.data, self.eps, training=True,
                                     momentum=self.momentum, out=self.ws.get(b, "y", x.shape, x.dtype),
                                     **stats, **self._stats_out(self.num_features))
        self._saved_values = (x, mean, rstd)
        return y

    def backward(self, dy: Any, *, overwrite_dy: bool = False) -> Any:
        return self._backward(self.backend.batch_norm_backward, dy, overwrite_dy)
