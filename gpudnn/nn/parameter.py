"""Parameters: named arrays with a gradient, packable into one flat arena.

Packing (``pack``) moves every parameter and gradient into two contiguous buffers and makes
each ``.data``/``.grad`` a view into them, so one fused optimizer launch updates everything.

Gradients follow "zero lazily": ``zero_grad`` only marks a gradient stale; the next
accumulation overwrites instead of adding, and reading ``.grad`` of a stale parameter gives
zeros. That saves a pass over every gradient per step.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape, dtype, backend)."""

    def __init__(self, name: str, data: Any, backend: Any) -> None:
        self.name = name
        self.backend = backend
        self.data = data
        self._grad = backend.zeros(data.shape, data.dtype)
        self._stale = False

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={tuple(self.data.shape)}, dtype={self.data.dtype})"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return int(self.data.size)

    @property
    def grad(self) -> Any:
        """The accumulated gradient (zeros after ``zero_grad`` until the next backward)."""
        if self._stale:
            self._grad[...] = 0
            self._stale = False
        return self._grad

    def zero_grad(self) -> None:
        self._stale = True

    def grad_out(self, scratch: Callable[[], Any]) -> Any:
        """Where the next gradient term should be computed: the gradient itself while it is stale
        (``accumulate`` then has nothing to copy), else the buffer ``scratch()`` gives."""
        return self._grad if self._stale else scratch()

    def accumulate(self, value: Any) -> None:
        """grad += value (grad = value when stale; nothing to copy when value is the gradient itself)."""
        if self._stale:
            if value is not self._grad:
                self._grad[...] = value
            self._stale = False
        else:
            self._grad += value

    def accumulate_matmul(self, a: Any, b: Any, *, transpose_a: bool = False,
                          scratch: Callable[[], Any]) -> None:
        """grad += op(a) @ b, written straight into the gradient when it is stale (no temporary)."""
        self.accumulate(self.backend.matmul(a, b, out=self.grad_out(scratch), transpose_a=transpose_a))


class Arena:
    """Flat buffers holding the data and gradients of a list of parameters, in order."""

    def __init__(self, params: list[Parameter], data: Any, grad: Any) -> None:
        self.params = params
        self.data = data
        self.grad = grad

    def materialize_grads(self) -> None:
        """Zero the gradients still marked stale, so the flat ``grad`` buffer is exact."""
        for p in self.params:
            if p._stale:
                p.grad  # noqa: B018  (the property zeroes it)


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
