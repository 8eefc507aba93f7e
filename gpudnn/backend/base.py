"""The Backend interface: array creation, transfer, BLAS, randomness and the fused ops.

A backend names its array module (``xp``) and which kernel implementation serves its ops
(``kernel_impl``: "ref", "cpu" or "cuda"). Every fused op is written once here and dispatched
to ``gpudnn.kernels.<module>.<op>_<kernel_impl>``, so all backends share one signature per op.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np

DEFAULT_DTYPE = np.dtype(np.float32)


@functools.cache
def _kernel_function(module: str, op: str, impl: str):
    """``gpudnn.kernels.<module>.<op>_<impl>``, looked up once (ops run between GEMMs, where every
    microsecond of Python shows)."""
    return getattr(importlib.import_module(f"gpudnn.kernels.{module}"), f"{op}_{impl}")


class Backend:
    name: str = "base"
    kernel_impl: str = "ref"

    def __init__(self, xp: Any, seed: int | None = None) -> None:
        self.xp = xp
        self.dtype = DEFAULT_DTYPE
        self.launches = 0  # fused-kernel calls made through this backend (for profiling)
        self.seed(seed)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} dtype={self.dtype}>"

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

    def next_seed(self) -> int:
        """A 63-bit seed for kernels that draw their own random numbers (dropout masks)."""
        return int(self.rng.integers(0, 2**63 - 1))

    def permutation(self, n: int) -> Any:
        """A random permutation of range(n) on this backend (drawn on the host)."""
        return self.asarray(self.rng.permutation(n))

    # ----------------------------------------------------------------- fused ops

    def _kernel(self, module: str, op: str):
        self.launches += 1
        return _kernel_function(module, op, self.kernel_impl)

    def bias_act(self, x: Any, b: Any, activation: str | int = "relu", alpha: float = 0.0,
                 out: Any = None, z_out: Any = None) -> Any:
        """``y = f(x + b)`` (see kernels.bias_act)."""
        self.check("x", x)
        return self._kernel("bias_act", "bias_act")(x, b, activation, alpha, out=out, z_out=z_out)

    def bias_act_backward(self, dy: Any, saved: Any, activation: str | int = "relu", alpha: float = 0.0,
                          from_output: bool = True, dz_out: Any = None, db_out: Any = None) -> tuple[Any, Any]:
        """``dz = dy * f'(z)`` and ``db = dz.sum(0)`` in one pass; ``saved`` is y (from_output) or z."""
        self.check("dy", dy)
        return self._kernel("bias_act_backward", "bias_act_backward")(
            dy, saved, activation, alpha, from_output=from_output, dz_out=dz_out, db_out=db_out)

    def softmax_xent(self, logits: Any, labels: Any, smoothing: float = 0.0,
                     dlogits_out: Any = None) -> tuple[Any, Any]:
        """Mean softmax cross-entropy over integer labels and its gradient (0-d loss array, dlogits)."""
        self.check("logits", logits)
        return self._kernel("softmax_xent", "softmax_xent")(logits, labels, smoothing, dlogits_out=dlogits_out)

    def softmax(self, x: Any, out: Any = None) -> Any:
        self.check("x", x)
        return self._kernel("softmax_xent", "softmax")(x, out=out)

    def log_softmax(self, x: Any, out: Any = None) -> Any:
        self.check("x", x)
        return self._kernel("softmax_xent", "log_softmax")(x, out=out)

    def bce_logits(self, logits: Any, targets: Any, grad_out: Any = None) -> tuple[Any, Any]:
        """Mean binary cross-entropy on logits and its gradient (0-d loss array, dlogits)."""
        self.check("logits", logits)
        return self._kernel("losses", "bce_logits")(logits, targets, grad_out=grad_out)

    def mse(self, pred: Any, target: Any, grad_out: Any = None) -> tuple[Any, Any]:
        """Mean squared error over all elements and its gradient (0-d loss array, dpred)."""
        self.check("pred", pred)
        return self._kernel("losses", "mse")(pred, target, grad_out=grad_out)

    def dropout(self, x: Any, p: float, seed: int, out: Any = None) -> Any:
        """Inverted dropout with a mask hashed from (seed, index): the same mask on every backend."""
        self.check("x", x)
        return self._kernel("dropout", "dropout")(x, p, seed, out=out)

    def dropout_backward(self, dy: Any, p: float, seed: int, out: Any = None) -> Any:
        self.check("dy", dy)
        return self._kernel("dropout", "dropout_backward")(dy, p, seed, out=out)

    def layer_norm(self, x: Any, gamma: Any, beta: Any, eps: float = 1e-5, out: Any = None,
                   mean_out: Any = None, rstd_out: Any = None) -> tuple[Any, Any, Any]:
        """Normalize each row of x, then scale and shift: (out, row means, row 1/std) (see kernels.layer_norm)."""
        self.check("x", x)
        return self._kernel("layer_norm", "layer_norm")(x, gamma, beta, eps, out=out, mean_out=mean_out,
                                                        rstd_out=rstd_out)

    def layer_norm_backward(self, dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                            dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
        """(dx, dgamma, dbeta) of layer_norm from the saved row statistics."""
        self.check("dy", dy)
        return self._kernel("layer_norm", "layer_norm_backward")(dy, x, gamma, mean, rstd, dx_out=dx_out,
                                                                 dgamma_out=dgamma_out, dbeta_out=dbeta_out)

    def batch_norm(self, x: Any, gamma: Any, beta: Any, eps: float = 1e-5, *, training: bool = True,
                   running_mean: Any = None, running_var: Any = None, momentum: float = 0.1, out: Any = None,
                   mean_out: Any = None, rstd_out: Any = None) -> tuple[Any, Any, Any]:
        """Normalize each column of x by batch (training) or running statistics: (out, means, 1/stds)."""
        self.check("x", x)
        return self._kernel("batch_norm", "batch_norm")(x, gamma, beta, eps, training=training,
                                                        running_mean=running_mean, running_var=running_var,
                                                        momentum=momentum, out=out, mean_out=mean_out,
                                                        rstd_out=rstd_out)

    def batch_norm_backward(self, dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any, dx_out: Any = None,
                            dgamma_out: Any = None, dbeta_out: Any = None) -> tuple[Any, Any, Any]:
        """(dx, dgamma, dbeta) of training-mode batch_norm from the saved column statistics."""
        self.check("dy", dy)
        return self._kernel("batch_norm", "batch_norm_backward")(dy, x, gamma, mean, rstd, dx_out=dx_out,
                                                                 dgamma_out=dgamma_out, dbeta_out=dbeta_out)

    def sgd_(self, param: Any, grad: Any, momentum_buf: Any, **hyper: Any) -> None:
        """In-place SGD step over flat arrays (formula: kernels.optim)."""
        self.check("param", param)
        self._kernel("optim", "sgd_")(param, grad, momentum_buf, **hyper)

    def adam_(self, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any, **hyper: Any) -> None:
        """In-place Adam/AdamW step over flat arrays (formula: kernels.optim)."""
        self.check("param", param)
        self._kernel("optim", "adam_")(param, grad, exp_avg, exp_avg_sq, **hyper)

    def rmsprop_(self, param: Any, grad: Any, square_avg: Any, **hyper: Any) -> None:
        """In-place RMSprop step over flat arrays (formula: kernels.optim)."""
        self.check("param", param)
        self._kernel("optim", "rmsprop_")(param, grad, square_avg, **hyper)
