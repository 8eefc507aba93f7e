"""Weights exchanged with PyTorch: a gpudnn ``Sequential`` <-> the state dict of a ``torch.nn.Sequential``
of the same shape, in memory or as a safetensors file.

The matching PyTorch network has one module per gpudnn layer, except that a Dense with a fused
activation is two modules, ``Linear`` then the activation::

    Dense(4, 8, "relu"), LayerNorm(8), Dropout(0.1), Dense(8, 3)
    nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.LayerNorm(8), nn.Dropout(0.1), nn.Linear(8, 3))

Names follow PyTorch (``"<module index>.weight"``, ``.bias``, ``.running_mean``, ``.running_var``,
``.num_batches_tracked``); a Linear's weight is (out, in), gpudnn's W is (in, out), so it is
transposed both ways. Activations carry no weights: a state dict cannot tell ReLU from GELU, so the
gpudnn model given to ``load_torch_weights`` states the activations. Loading needs only NumPy (and
the ``safetensors`` package for files); ``to_torch`` needs PyTorch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write
from ..nn.layers import Activation, Dense, Dropout, Layer
from ..nn.normalization import BatchNorm1d, LayerNorm
from ..nn.sequential import Sequential

CONFIG_KEY = "gpudnn_config"  # safetensors metadata: the gpudnn architecture, so a file rebuilds the model


def _safetensors() -> Any:
    try:
        import safetensors.numpy
    except ImportError as exc:
        raise ImportError("safetensors files need the safetensors package: pip install 'gpudnn[torch-io]'") from exc
    return safetensors.numpy


def torch_layout(model: Sequential) -> list[tuple[int, Layer, str]]:
    """``(torch module index, gpudnn layer, torch module kind)`` for every weight-carrying or activation
    module of the matching ``torch.nn.Sequential``; kinds: Linear, activation name, Dropout,
    LayerNorm, BatchNorm1d."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a gpudnn Sequential, got {type(model).__name__}")
    layout, index = [], 0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Dense):
            layout.append((index, layer, "Linear"))
            index += 1
            if layer.activation != "identity":
                layout.append((index, layer, layer.activation))
                index += 1
        elif isinstance(layer, Activation):
            layout.append((index, layer, layer.activation))
            index += 1
        elif isinstance(layer, (Dropout, LayerNorm, BatchNorm1d)):
            layout.append((index, layer, type(layer).__name__))
            index += 1
        else:
            raise ValueError(f"layer {i} ({type(layer).__name__}) has no PyTorch counterpart; supported: Dense, "
                             "Activation, Dropout, LayerNorm, BatchNorm1d")
    return layout


def _slots(model: Sequential) -> dict[str, tuple[str, Any, bool]]:
    """torch name -> (description of the gpudnn layer, its array, whether transposed)."""
    slots: dict[str, tuple[str, Any, bool]] = {}
    position = {id(layer): i for i, layer in enumerate(model.layers)}
    for index, layer, kind in torch_layout(model):
        where = f"layer {position[id(layer)]} ({layer!r}, torch module {index})"
        if kind == "Linear":
            slots[f"{index}.weight"] = (where, layer.W.data, True)
            if layer.b is not None:
                slots[f"{index}.bias"] = (where, layer.b.data, False)
        elif kind in ("LayerNorm", "BatchNorm1d"):
            slots[f"{index}.weight"] = (where, layer.gamma.data, False)
            slots[f"{index}.bias"] = (where, layer.beta.data, False)
            if kind == "BatchNorm1d":
                slots[f"{index}.running_mean"] = (where, layer.running_mean, False)
                slots[f"{index}.running_var"] = (where, layer.running_var, False)
    return slots


def torch_state_dict(model: Sequential) -> dict[str, np.ndarray]:
    """The model's weights under PyTorch's names and layout (host NumPy arrays, the model's dtype)."""
    to_numpy = model.backend.to_numpy
    state = {name: np.ascontiguousarray(to_numpy(a).T if transposed else to_numpy(a)).copy()
             for name, (_, a, transposed) in _slots(model).items()}
    for index, _, kind in torch_layout(model):
        if kind == "BatchNorm1d":  # PyTorch keeps a counter; gpudnn's momentum needs none
            state[f"{index}.num_batches_tracked"] = np.zeros((), dtype=np.int64)
    return state


def _host(value: Any, name: str) -> np.ndarray:
    """A torch tensor (any device) or array-like as a NumPy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise TypeError(f"state dict entry {name!r} is not an array ({type(value).__name__})") from exc


def read_state(source: Mapping[str, Any] | str | os.PathLike) -> dict[str, np.ndarray]:
    """A state dict as NumPy arrays, from a mapping (of torch tensors or arrays) or a safetensors file."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"no safetensors file at {path}")
        try:
            return dict(_safetensors().load_file(str(path)))
        except ImportError:
            raise
        except Exception as exc:
            raise ValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    if not isinstance(source, Mapping):
        raise TypeError(f"expected a state dict (mapping of name -> tensor) or a safetensors path, got "
                        f"{type(source).__name__}")
    return {str(k): _host(v, str(k)) for k, v in source.items()}


def load_torch_weights(model: Sequential, source: Mapping[str, Any] | str | os.PathLike) -> Sequential:
    """Copy the weights of a ``torch.nn.Sequential`` (its ``state_dict()``, or a safetensors file) into
    ``model``, which must have the matching layers (see the module docstring). Names and every shape
    are checked before anything is copied; a mismatch names the layer and the shapes. Returns model."""
    state = read_state(source)
    slots = _slots(model)
    counters = {f"{i}.num_batches_tracked" for i, _, kind in torch_layout(model) if kind == "BatchNorm1d"}
    missing = [name for name in slots if name not in state]
    unexpected = sorted(set(state) - set(slots) - counters)
    if missing or unexpected:
        raise ValueError(f"the state dict does not fit this model ({len(model)} gpudnn layers, torch layout "
                         f"{[kind for _, _, kind in torch_layout(model)]}): missing {missing}, unexpected "
                         f"{unexpected}")
    for name, (where, a, transposed) in slots.items():
        want = tuple(a.shape[::-1]) if transposed else tuple(a.shape)
        if tuple(state[name].shape) != want:
            raise ValueError(f"{name} has shape {tuple(state[name].shape)}, but {where} needs {want}")
        if not np.issubdtype(state[name].dtype, np.floating):
            raise TypeError(f"{name} is {state[name].dtype}, expected floating-point weights")
    for name, (_, a, transposed) in slots.items():
        value = state[name].T if transposed else state[name]
        a[...] = model.backend.asarray(np.ascontiguousarray(value), dtype=a.dtype)
    return model


def save_safetensors(model: Sequential, path: str | os.PathLike) -> Path:
    """Write the model's weights under PyTorch's names as a safetensors file (atomically), with the gpudnn
    architecture in its metadata so ``load_safetensors`` can rebuild the model. Returns the path."""
    data = _safetensors().save(torch_state_dict(model), metadata={CONFIG_KEY: json.dumps(model.config())})
    atomic_write(path, lambda f: f.write(data))
    return Path(path)


def load_safetensors(path: str | os.PathLike, model: Sequential | None = None) -> Sequential:
    """The model of a safetensors file: into ``model`` when given, else rebuilt from the gpudnn architecture
    that ``save_safetensors`` stored (a file written by PyTorch has none: pass the matching model)."""
    if model is None:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            config = (f.metadata() or {}).get(CONFIG_KEY)
        if config is None:
            raise ValueError(f"{path} holds no gpudnn architecture (it was not written by gpudnn); pass the "
                             "matching gpudnn model: load_safetensors(path, model)")
        model = Sequential.from_config(json.loads(config))
    return load_torch_weights(model, path)


def to_torch(model: Sequential) -> Any:
    """A ``torch.nn.Sequential`` equal to ``model`` (float64 parameters stay float64), with its weights."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError("to_torch needs PyTorch (pip install torch)") from exc
    nn, modules = torch.nn, []
    activations = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU, "softplus": nn.Softplus,
                   "gelu": nn.GELU, "identity": nn.Identity}
    for _, layer, kind in torch_layout(model):
        if kind == "Linear":
            modules.append(nn.Linear(layer.in_features, layer.out_features, bias=layer.b is not None))
        elif kind == "Dropout":
            modules.append(nn.Dropout(layer.p))
        elif kind == "LayerNorm":
            modules.append(nn.LayerNorm(layer.num_features, eps=layer.eps))
        elif kind == "BatchNorm1d":
            modules.append(nn.BatchNorm1d(layer.num_features, eps=layer.eps, momentum=layer.momentum))
        elif kind == "leaky_relu":
            modules.append(nn.LeakyReLU(layer.alpha))
        elif kind == "gelu_tanh":
            modules.append(nn.GELU(approximate="tanh"))
        else:
            modules.append(activations[kind]())
    net = nn.Sequential(*modules)
    state = torch_state_dict(model)
    dtype = torch.float64 if next(iter(state.values())).dtype == np.float64 else torch.float32
    net = net.to(dtype)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    return net.eval()
