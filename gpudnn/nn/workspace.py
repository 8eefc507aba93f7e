"""Reusable buffers: fresh large allocations cost 3-10x a reused buffer, so hot paths keep theirs."""

from __future__ import annotations

from typing import Any


class Workspace:
    """Named buffers of a backend, reallocated only when the requested shape or dtype changes."""

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def get(self, backend: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
        buf = self._buffers.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype or not backend.is_array(buf):
            buf = backend.empty(tuple(shape), dtype)
            self._buffers[name] = buf
        return buf
