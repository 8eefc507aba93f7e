"""Parameters: named arrays with a gradient, packable into one flat arena.

Packing (``pack``) moves every parameter and gradient into two contiguous buffers and makes each
``.data`` and gradient a view into them, so one fused optimizer launch updates everything.

The gradient protocol. ``zero_grad()`` only declares the gradient zero (nothing is written): the next
term is then computed straight into the gradient (``grad_target``) or copied over it (``accumulate``)
instead of added, which saves a pass over every gradient per step. Where the buffer itself must hold
the zeros (the optimizer reads the flat arena), ``write_pending_zero()`` writes them; the ``grad``
property does so before it returns the buffer.

Frozen parameters (``trainable = False``, see ``Layer.freeze``) take no gradient: ``accumulate`` skips
them and ``grad_target`` hands out a workspace buffer, so a layer's backward runs unchanged while the
gradient stays zero, and optimizers leave them out of their arena.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .workspace import Workspace


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape, dtype, backend)."""

    def __init__(self, name: str, data: Any, backend: Any) -> None:
        self.name = name
        self.backend = backend
        self.data = data
        self._grad = backend.zeros(data.shape, data.dtype)
        self._zero_pending = False
        self.trainable = True

    def __repr__(self) -> str:
        frozen = "" if self.trainable else ", frozen"
        return f"Parameter({self.name!r}, shape={tuple(self.data.shape)}, dtype={self.data.dtype}{frozen})"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def grad(self) -> Any:
        """The accumulated gradient buffer (zeros after ``zero_grad`` until the next backward)."""
        self.write_pending_zero()
        return self._grad

    def zero_grad(self) -> None:
        """Declare the gradient zero, writing nothing (see the module docstring)."""
        self._zero_pending = True

    def write_pending_zero(self) -> None:
        """Write the zeros that ``zero_grad`` declared into the gradient buffer (nothing if none are pending)."""
        if self._zero_pending:
            self._grad[...] = 0
            self._zero_pending = False

    def grad_target(self, ws: Workspace, name: str) -> Any:
        """Where the next gradient term should be computed: the gradient buffer itself while its zero is
        pending (``accumulate`` then has nothing to copy), else the workspace buffer ``name`` (always
        for a frozen parameter, whose gradient is never written)."""
        if self._zero_pending and self.trainable:
            return self._grad
        return ws.get(self.backend, name, self.shape, self.data.dtype)

    def accumulate(self, value: Any) -> None:
        """grad += value (grad = value while the zero is pending; nothing to copy when value is the
        gradient buffer itself). Nothing for a frozen parameter."""
        if not self.trainable:
            return
        if self._zero_pending:
            if value is not self._grad:
                self._grad[...] = value
            self._zero_pending = False
        else:
            self._grad += value

    def accumulate_matmul(self, a: Any, b: Any, ws: Workspace, name: str, *, transpose_a: bool = False) -> None:
        """grad += op(a) @ b, written straight into the gradient while its zero is pending (no temporary);
        no GEMM at all for a frozen parameter."""
        if self.trainable:
            self.accumulate(self.backend.matmul(a, b, out=self.grad_target(ws, name), transpose_a=transpose_a))


class Arena:
    """Flat buffers holding the data and gradients of a list of parameters, in order."""

    def __init__(self, params: list[Parameter], data: Any, grad: Any) -> None:
        self.params = params
        self.data = data
        self.grad = grad

    def write_pending_zeros(self) -> None:
        """Write every pending zero gradient, so the flat ``grad`` buffer is exact."""
        for p in self.params:
            p.write_pending_zero()


def pack(params: Iterable[Parameter]) -> Arena:
    """Move ``params`` into one flat data buffer and one flat grad buffer (views rebound in place)."""
    params = list(params)
    if not params:
        raise ValueError("params is empty: nothing to optimise")
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"parameter names must be unique, got duplicates in {names}")
    if not all(isinstance(p, Parameter) for p in params):
        raise TypeError("params must be Parameter objects (model.parameters())")
    backend, dtype = params[0].backend, params[0].data.dtype
    for p in params:
        if p.backend is not backend:
            raise TypeError(f"parameter {p.name} lives on backend {p.backend.name}, others on {backend.name}")
        if p.data.dtype != dtype:
            raise TypeError(f"parameter {p.name} is {p.data.dtype}, others {dtype}: one arena needs one dtype")
    total = sum(p.size for p in params)
    data, grad = backend.empty((total,), dtype), backend.zeros((total,), dtype)
    offset = 0
    for p in params:
        view = slice(offset, offset + p.size)
        data[view] = p.data.reshape(-1)
        grad[view] = p.grad.reshape(-1)
        p.data = data[view].reshape(p.shape)
        p._grad = grad[view].reshape(p.shape)
        offset += p.size
    return Arena(params, data, grad)
