"""A strict stand-in for CuPy, so CI without a GPU runs the device paths as a GPU would.

``DeviceArray`` wraps a NumPy array (its "device memory") and behaves like ``cupy.ndarray`` where
host code can go wrong on a GPU:

- no implicit conversion: ``np.asarray(a)`` raises, as CuPy's ``__array__`` does, and there is no
  ``__array_interface__`` (only ``__cuda_array_interface__``);
- a NumPy array mixed into an operation, a function of ``xp`` or ``a[...] = host`` raises TypeError;
- reductions and scalar indexing return 0-d device arrays, not host scalars;
- every read back to the host (``float``, ``int``, ``bool``, ``item``, ``tolist``, ``get``,
  ``asnumpy``, printing, ``synchronize``) is a host sync, counted in ``SYNCS`` with where it happened;
- every new block of device memory (a creation function, the result of an operation; not a view) is
  counted in ``ALLOCATIONS``, so a test can hold a training step to none; every array operation that
  would launch work on a GPU (arithmetic, reductions, copies, fills; not views) in ``ARRAY_OPS``.

``xp`` is a module standing in for ``cupy``, holding only functions CuPy has. The kernels find it
through the arrays' ``__array_namespace__``; numba-cuda's simulator reads their memory through
``__cuda_array_interface__``, as numba does on a GPU.
"""

from __future__ import annotations

import contextlib
import operator
import sys
import types
import weakref
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_HERE = str(Path(__file__).resolve())


class EventCounter:
    """Events so far (``count``) and where they happened (``where``: "file:line kind" -> count)."""

    def __init__(self) -> None:
        self.count = 0
        self.where: Counter[str] = Counter()
        self._scopes: list[EventCounter] = []

    def record(self, kind: str) -> None:
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == _HERE:
            frame = frame.f_back
        place = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}" if frame is not None else "?"
        for counter in (self, *self._scopes):
            counter.count += 1
            counter.where[f"{place} {kind}"] += 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[EventCounter]:
        """A counter of the events inside the ``with`` block alone."""
        scope = EventCounter()
        self._scopes.append(scope)
        try:
            yield scope
        finally:
            self._scopes.remove(scope)


SYNCS = EventCounter()  # reads back to the host
ALLOCATIONS = EventCounter()  # new device memory
ARRAY_OPS = EventCounter()  # array operations: what CuPy would launch kernels (or copies, memsets) for
_VIEWS = frozenset({"reshape", "view", "transpose", "swapaxes", "squeeze", "ravel", "broadcast_to", "empty",
                    "empty_like"})  # no device work
_MEMORY: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()  # id -> storage seen


def _refuse_host(value: Any) -> None:
    raise TypeError(f"Unsupported type {type(value)}: a NumPy array cannot be mixed with a device array; "
                    "transfer it explicitly (xp.asarray)")


def _unwrap(value: Any) -> Any:
    """The NumPy storage behind device arrays, in arguments of any nesting; host arrays refused."""
    if isinstance(value, DeviceArray):
        return value._a
    if isinstance(value, np.ndarray):
        _refuse_host(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, slice):
        return slice(_unwrap(value.start), _unwrap(value.stop), _unwrap(value.step))
    return value


def _wrap(value: Any) -> Any:
    """Results as device arrays (NumPy scalars become 0-d arrays, as CuPy returns)."""
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, np.generic):
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple):
        return tuple(_wrap(v) for v in value)
    return value


class _Pointer:
    """What ``cupy.ndarray.data`` offers: the device address."""

    __slots__ = ("ptr",)

    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class DeviceArray:
    """An array in (simulated) device memory; see the module docstring for how strict it is."""

    __slots__ = ("_a",)
    __array_ufunc__ = None  # NumPy ufuncs and operators on a host array refuse, deferring to ours
    __array_function__ = None

    def __init__(self, storage: np.ndarray) -> None:
        self._a = storage
        if storage.base is None and _MEMORY.get(id(storage)) is not storage:  # memory no device array had
            _MEMORY[id(storage)] = storage
            ALLOCATIONS.record(f"{storage.shape} {storage.dtype}")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use `.get()` to construct "
                        "a NumPy array explicitly.")

    def __array_namespace__(self, api_version: Any = None) -> types.ModuleType:
        return xp

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        a = self._a
        return {"shape": a.shape, "typestr": a.dtype.str, "data": (a.ctypes.data, False), "version": 3,
                "strides": None if a.flags.c_contiguous else a.strides}

    # ----------------------------------------------------------------- attributes (no data read)

    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: DeviceArray(self._a.T))
    data = property(lambda self: _Pointer(self._a.ctypes.data))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[DeviceArray]:
        return (DeviceArray(self._a[i]) for i in range(len(self._a)))

    def __getitem__(self, index: Any) -> DeviceArray:
        if isinstance(index, np.ndarray):
            index = np.asarray(index)  # CuPy takes host index arrays (it copies them over)
        elif isinstance(index, tuple):
            index = tuple(v if isinstance(v, np.ndarray) else _unwrap(v) for v in index)
        else:
            index = _unwrap(index)
        return _wrap(self._a[index])

    def __setitem__(self, index: Any, value: Any) -> None:
        ARRAY_OPS.record("setitem")
        self._a[_unwrap(index)] = _unwrap(value)

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        """Copy a host array of the same shape and dtype in, as cupy.ndarray.set does."""
        if not isinstance(arr, np.ndarray) or arr.shape != self._a.shape or arr.dtype != self._a.dtype:
            raise ValueError("set takes a host array of the same shape and dtype")
        np.copyto(self._a, arr)

    # ----------------------------------------------------------------- reads back to the host: syncs

    def get(self, stream: Any = None, order: str = "C", out: np.ndarray | None = None) -> np.ndarray:
        """Copy to the host, as cupy.ndarray.get does (into ``out`` when given: same shape and dtype)."""
        SYNCS.record("get")
        if out is None:
            return self._a.copy(order=order)
        if not isinstance(out, np.ndarray) or out.shape != self._a.shape or out.dtype != self._a.dtype:
            raise ValueError("out must be a host array of the same shape and dtype")
        np.copyto(out, self._a)
        return out

    def item(self) -> Any:
        SYNCS.record("item")
        return self._a.item()

    def tolist(self) -> Any:
        SYNCS.record("tolist")
        return self._a.tolist()

    def __float__(self) -> float:
        SYNCS.record("float")
        return float(self._a)

    def __int__(self) -> int:
        SYNCS.record("int")
        return int(self._a)

    def __index__(self) -> int:
        SYNCS.record("index")
        return operator.index(self._a)

    def __bool__(self) -> bool:
        SYNCS.record("bool")
        return bool(self._a)

    def __complex__(self) -> complex:
        SYNCS.record("complex")
        return complex(self._a)

    def __repr__(self) -> str:
        SYNCS.record("repr")
        return f"device_{self._a!r}"

    def __str__(self) -> str:
        SYNCS.record("str")
        return str(self._a)

    def __format__(self, spec: str) -> str:
        SYNCS.record("format")
        return format(self._a.item() if self._a.ndim == 0 else self._a, spec)

    def __reduce__(self) -> Any:
        raise TypeError("a device array cannot be pickled; copy it to the host first (.get())")


def _method(name: str) -> Any:
    def method(self: DeviceArray, *args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):  # CuPy warns of no overflow or invalid value
            result = getattr(self._a, name)(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        if name not in _VIEWS and not (name == "astype" and result is self._a):
            ARRAY_OPS.record(name)
        out = kwargs.get("out")
        if isinstance(out, DeviceArray) and result is out._a:
            return out
        return self if result is self._a else _wrap(result)

    method.__name__ = name
    return method


_METHODS = ("reshape", "astype", "ravel", "copy", "view", "transpose", "swapaxes", "squeeze", "flatten", "sum",
            "mean", "max", "min", "argmax", "argmin", "all", "any", "prod", "std", "var", "cumsum", "dot", "clip",
            "fill", "take", "repeat", "conj", "round", "sort", "argsort", "diagonal", "trace", "nonzero")
_OPERATORS = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and", "or", "xor", "lshift",
              "rshift")
_COMPARISONS = ("lt", "le", "eq", "ne", "gt", "ge")
_UNARY = ("neg", "pos", "abs", "invert")

for _name in _METHODS:
    setattr(DeviceArray, _name, _method(_name))
for _name in _OPERATORS:
    for _form in (f"__{_name}__", f"__r{_name}__", f"__i{_name}__"):
        setattr(DeviceArray, _form, _method(_form))
for _name in _COMPARISONS + _UNARY:
    setattr(DeviceArray, f"__{_name}__", _method(f"__{_name}__"))
DeviceArray.__hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- the module standing in for cupy


def _function(fn: Any, name: str) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if name not in _VIEWS:
            ARRAY_OPS.record(name)
        with np.errstate(all="ignore"):
            result = fn(*_unwrap(args), **{k: _unwrap(v) for k, v in kwargs.items()})
        out = kwargs.get("out")
        return out if isinstance(out, DeviceArray) and result is out._a else _wrap(result)  # CuPy returns out

    wrapped.__name__ = name
    return wrapped


def asarray(a: Any, dtype: Any = None, order: Any = None) -> DeviceArray:
    """Host data (or a device array) as a device array: a transfer, not a sync."""
    if isinstance(a, DeviceArray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    ARRAY_OPS.record("host to device")
    return DeviceArray(np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a: Any, dtype: Any = None, copy: bool = True, order: Any = None) -> DeviceArray:
    out = asarray(a, dtype, order)
    return out.copy() if copy and isinstance(a, DeviceArray) and out is a else out


def ascontiguousarray(a: Any, dtype: Any = None) -> DeviceArray:
    out = asarray(a, dtype)
    if out.flags.c_contiguous:
        return out
    ARRAY_OPS.record("ascontiguousarray")
    return DeviceArray(np.ascontiguousarray(out._a))


def asnumpy(a: Any) -> np.ndarray:
    """A host copy: a sync."""
    if isinstance(a, DeviceArray):
        return a.get()
    return np.asarray(a)


def synchronize() -> None:
    """Stands for ``cupy.cuda.get_current_stream().synchronize()``: a host sync."""
    SYNCS.record("synchronize")


_FUNCTIONS = ("empty", "zeros", "ones", "full", "empty_like", "zeros_like", "ones_like", "full_like", "arange",
              "linspace", "eye", "take", "stack", "concatenate", "where", "maximum", "minimum", "exp", "expm1",
              "log", "log1p", "sqrt", "abs", "tanh", "sign", "clip", "isfinite", "isnan", "matmul", "dot", "sum",
              "mean", "argmax", "sort", "argsort", "cumsum", "diag", "outer", "einsum", "may_share_memory", "square",
              "multiply", "add", "subtract", "divide", "negative", "round", "greater", "less", "equal",
              "count_nonzero", "flip", "triu", "copyto", "broadcast_to", "vdot", "ravel", "reshape", "trace")
_TYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint32", "uint64", "bool_",
          "dtype", "finfo", "iinfo", "newaxis", "pi", "inf", "nan")

xp = types.ModuleType("gpudnn_cupy_standin", "A module standing in for cupy: only functions CuPy has.")
for _name in _FUNCTIONS:
    setattr(xp, _name, _function(getattr(np, _name), _name))
for _name in _TYPES:
    setattr(xp, _name, getattr(np, _name))
xp.ndarray = DeviceArray
xp.asarray, xp.array, xp.ascontiguousarray, xp.asnumpy = asarray, array, ascontiguousarray, asnumpy
xp.linalg = types.ModuleType("gpudnn_cupy_standin.linalg")
for _name in ("eigh", "svd", "qr", "norm", "cholesky", "solve", "inv", "slogdet"):
    setattr(xp.linalg, _name, _function(getattr(np.linalg, _name), _name))
