"""The Backend interface: array creation, transfer, BLAS, randomness and the fused ops.

A backend names its array module (``xp``) and which kernel implementation serves its ops
(``kernel_impl``: "ref", "cpu" or "cuda"). Its fused ops come from one place, the kernels' op
tables (``gpudnn.kernels.OP_MODULES``): ``backend.bias_act(...)`` is ``kernels.bias_act``'s
``bias_act_<kernel_impl>``, with its signature and docstring, after a check that the first array
belongs to this backend.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from ..kernels import LAUNCHES, OP_MODULES
from ..kernels import op as kernel_op

DEFAULT_DTYPE = np.dtype(np.float32)


class Backend:
    name: str = "base"
    kernel_impl: str = "ref"

    def __init__(self, xp: Any, seed: int | None = None) -> None:
        self.xp = xp
        self.dtype = DEFAULT_DTYPE
        self.seed(seed)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dtype={self.dtype}>"

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickled as its kind: unpickling gives this process's backend of that kind (so models pickle)."""
        from .select import backend

        return backend, (self.name,)

    # ----------------------------------------------------------------- arrays

    def is_array(self, a: Any) -> bool:
        """True when ``a`` is an array of this backend's array module."""
        return isinstance(a, self.xp.ndarray)

    def check(self, name: str, a: Any) -> Any:
        """Return ``a`` if it belongs to this backend; otherwise a TypeError that says how to transfer it."""
        if not self.is_array(a):
            raise TypeError(
                f"{name} is a {type(a).__module__}.{type(a).__name__}, but the current backend is "
                f"{self.name!r}; transfer it explicitly with backend.asarray({name})"
            )
        return a

    def asarray(self, a: Any, dtype: Any = None) -> Any:
        """Explicit transfer to this backend (host data, lists, or arrays of another backend)."""
        if not isinstance(a, self.xp.ndarray) and hasattr(a, "__cuda_array_interface__") and hasattr(a, "get"):
            a = a.get()  # a CuPy array coming to the host
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host NumPy copy (or the array itself when it already is one)."""
        return np.asarray(a)

    def empty(self, shape: Any, dtype: Any = None) -> Any:
        return self.xp.empty(shape, dtype=dtype or self.dtype)

    def zeros(self, shape: Any, dtype: Any = None) -> Any:
        return self.xp.zeros(shape, dtype=dtype or self.dtype)

    def matmul(self, a: Any, b: Any, out: Any = None, *, transpose_a: bool = False,
               transpose_b: bool = False) -> Any:
        """``op(a) @ op(b)`` through the BLAS of the array module; ``out`` is reused when given."""
        self.check("a", a)
        self.check("b", b)
        a = a.T if transpose_a else a
        b = b.T if transpose_b else b
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"matmul shapes do not match: {tuple(a.shape)} @ {tuple(b.shape)}")
        if out is None:
            return self.xp.matmul(a, b)
        return self.xp.matmul(a, b, out=out)

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on the CPU)."""

    def free_memory(self) -> None:
        """Return cached device memory to the driver (no-op on the CPU)."""

    def is_out_of_memory(self, exc: BaseException) -> bool:
        """Whether ``exc`` is this backend running out of (device) memory."""
        return isinstance(exc, MemoryError)

    # ----------------------------------------------------------------- linear algebra
    # xp-generic references; a backend overrides them where its array library offers better routines.

    def gram(self, a: Any) -> Any:
        """``a^T a`` (d, d) of ``a`` (n, d), in a's dtype; only its upper triangle is meant to be read."""
        return self.matmul(a, a, transpose_a=True)

    def top_eigh(self, c: Any, k: int | None, dtype: Any) -> tuple[Any, Any]:
        """Eigenvalues (m,) in descending order and eigenvectors (d, m) as columns of the symmetric
        float64 ``c`` (d, d), which may be overwritten.

        m = k when the backend computes the top ``k`` pairs alone, else d (here: always d).
        ``dtype`` is that of the data behind ``c``: the accuracy the eigenvectors need.
        """
        w, v = self.xp.linalg.eigh(c)
        return w[::-1], v[:, ::-1]

    def svd(self, a: Any) -> tuple[Any, Any, Any]:
        """Thin SVD of ``a`` (n, d) in a's dtype: U (n, m), S (m,) descending, Vt (m, d), m = min(n, d)."""
        return self.xp.linalg.svd(a, full_matrices=False)

    def orthonormal_basis(self, a: Any) -> Any:
        """Orthonormal columns (n, m) spanning the columns of ``a`` (n, m), n >= m, in a's dtype."""
        return self.xp.linalg.qr(a)[0]

    def well_conditioned_basis(self, a: Any) -> Any:
        """Well-conditioned columns (n, m), not necessarily orthonormal, spanning those of ``a`` (n, m),
        n >= m, in a's dtype: all that the power iterations of a randomized SVD need."""
        return self.orthonormal_basis(a)

    # ----------------------------------------------------------------- randomness

    def seed(self, seed: int | None) -> None:
        """Reseed this backend's generator (``None``: fresh entropy).

        All randomness (initial weights, shuffles, dropout seeds) is drawn from this one host
        NumPy generator and moved to the device, so a seed gives the same run on every backend
        and the generator state can be saved in a checkpoint.
        """
        self.rng = np.random.default_rng(seed)
        self.seed_stream = getattr(self, "seed_stream", 0)

    def next_seed(self) -> int:
        """A 63-bit seed for kernels that draw their own random numbers (dropout masks).

        The ranks of a data-parallel job keep ``rng`` in step and set ``seed_stream`` to their rank,
        which is mixed into the seed, so their dropout masks differ (stream 0 draws as a single process).
        """
        seed = int(self.rng.integers(0, 2**63 - 1))
        if self.seed_stream:
            seed = int(np.random.SeedSequence([seed, self.seed_stream]).generate_state(1, np.uint64)[0] >> np.uint64(1))
        return seed

    def permutation(self, n: int) -> Any:
        """A random permutation of range(n) on this backend (drawn on the host)."""
        return self.asarray(self.rng.permutation(n))

    # ----------------------------------------------------------------- fused ops

    @property
    def launches(self) -> int:
        """Kernel launches so far by every backend whose ops run this one's kernels (``kernel_impl``):
        compiled CPU kernel calls or CUDA launches (kernels.LAUNCHES); the ref kernels launch none."""
        return LAUNCHES[self.kernel_impl]

    def _bind(self, name: str) -> Callable[..., Any]:
        """The op ``name`` as this backend runs it, kept on the instance so later calls find it at once."""
        kernel = getattr(kernel_op(name), self.kernel_impl)
        first = next(iter(inspect.signature(kernel).parameters))
        array_type = self.xp.ndarray

        def op(a: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(a, array_type):
                self.check(first, a)
            return kernel(a, *args, **kwargs)

        op.__name__ = op.__qualname__ = name
        op.__doc__, op.__signature__ = kernel.__doc__, inspect.signature(kernel)  # type: ignore[attr-defined]
        self.__dict__[name] = op
        return op


def _fused_op(name: str) -> Callable[..., Any]:
    def method(self: Backend, *args: Any, **kwargs: Any) -> Any:
        return self._bind(name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"The fused op kernels.{OP_MODULES[name]}.{name} on this backend's arrays (see its docstring)."
    return method


for _name in OP_MODULES:
    setattr(Backend, _name, _fused_op(_name))
