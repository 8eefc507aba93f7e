"""Every CUDA kernel the backend can launch, with the argument types it is launched with.

``cuda_variants()`` calls every op of OP_MODULES through its cuda implementation, for every dtype,
activation and variant the op has (the calls are listed in ``_CALLS``, one entry per op), on small
NumPy arrays inside ``_common.recording_launches``: nothing runs, and each launch the op would make is
recorded with its kernel and arguments. Each kernel declares the one signature it is compiled for
(_launch.cuda_kernel); the Numba types of the recorded arguments (what numba-cuda would infer for the
same arguments on CuPy arrays) are kept beside it, and the test suite holds the two equal. Needs the
real numba.cuda (not the simulator), no GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from . import OP_MODULES, op
from ._common import FLOAT_DTYPES, recording_launches
from .activations import FROM_OUTPUT, NAMES

# Row lengths that give each block size of _common.row_launch (32, 128, 256 threads).
_ROW_LENGTHS = (5, 100, 3000)
_ROWS = 3
_LABEL_DTYPES = (np.int32, np.int64)


class CudaVariant(NamedTuple):
    """One CUDA kernel as the backend launches it.

    op: the first op (in OP_MODULES order) that launches it; variant: what picks it ("float32 relu
    keep_z", ...); kind: "elementwise" (grid-stride loop, one element per iteration), "optimizer"
    (elementwise over the parameter arena), "reduction" (grid-stride loop plus a block reduction),
    "arena" (the same, three float64 sums over the parameter arena),
    "row" (a block per row) or "column" (column strips of (32, 8) blocks); name: the kernel's name in
    the kernel module; kernel: the _launch.CudaKernel; signature: the Numba types it declares; inferred:
    the Numba types of the arguments the op passed it.
    """

    op: str
    variant: str
    kind: str
    name: str
    kernel: Any
    signature: tuple[Any, ...]
    inferred: tuple[Any, ...]

    @property
    def label(self) -> str:
        """A name unique among the variants: ``op/name variant, argument types``."""
        return f"{self.op}/{self.name} {self.variant} ({', '.join(map(str, self.signature))})"


# Each kernel function (module, name) and its kind.
KINDS: dict[tuple[str, str], str] = {
    ("bias_act", "kernel"): "elementwise",
    ("dropout", "kernel"): "elementwise",
    ("optim_math", "kernel"): "optimizer",
    ("losses", "kernel"): "reduction",
    ("arena", "kernel"): "arena",
    ("softmax_xent", "xent"): "row",
    ("softmax_xent", "rows"): "row",
    ("layer_norm", "layer_norm"): "row",
    ("layer_norm", "layer_norm_backward"): "row",
    ("bias_act_backward", "kernel"): "column",
    ("_norm_common", "dgamma_dbeta"): "column",
    ("batch_norm", "batch_norm_stats"): "column",
    ("batch_norm", "batch_norm"): "column",
    ("batch_norm", "batch_norm_backward"): "column",
}

Call = tuple[str, Callable[[], Any]]  # (variant label, a call of the op's cuda implementation)


def _bias_act(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for code, name in NAMES.items():
        for keep_z in (False, True):
            x = np.zeros((_ROWS, 7), dtype)

            def call(x=x, code=code, keep_z=keep_z):
                return f(x, np.zeros(7, dtype), code, 0.1, z_out=np.zeros_like(x) if keep_z else None)

            yield f"{name}{' keep_z' if keep_z else ''}", call


def _bias_act_backward(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for code, name in NAMES.items():
        for from_output in (True, False) if code in FROM_OUTPUT else (False,):
            for with_db in (True, False):
                x = np.zeros((_ROWS, 7), dtype)
                label = f"{name} from_{'y' if from_output else 'z'}{'' if with_db else ' without db'}"
                yield label, lambda x=x, c=code, o=from_output, d=with_db: f(x, x.copy(), c, 0.1, o, with_db=d)


def _softmax_xent(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for k in _ROW_LENGTHS:
        for labels in _LABEL_DTYPES:
            for hits in (np.float64, np.int64):  # float64: also where no hits are asked for
                yield (f"k={k} labels {np.dtype(labels).name} hits {np.dtype(hits).name}",
                       lambda k=k, labels=labels, hits=hits: f(np.zeros((_ROWS, k), dtype), np.zeros(_ROWS, labels),
                                                               0.1, hits_out=np.zeros(1, hits)))


def _rows(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for k in _ROW_LENGTHS:
        yield f"k={k}", lambda k=k: f(np.zeros((_ROWS, k), dtype))


def _pair(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    yield "", lambda: f(np.zeros((_ROWS, 7), dtype), np.zeros((_ROWS, 7), dtype))


def _dropout(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    yield "", lambda: f(np.zeros((_ROWS, 7), dtype), 0.5, 1)


def _vectors(dtype: np.dtype, count: int, m: int = 7) -> list[np.ndarray]:
    return [np.ones(m, dtype) for _ in range(count)]


def _layer_norm(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for m in _ROW_LENGTHS:
        yield f"m={m}", lambda m=m: f(np.zeros((_ROWS, m), dtype), *_vectors(dtype, 2, m))


def _layer_norm_backward(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for m in _ROW_LENGTHS:
        x = np.zeros((_ROWS, m), dtype)
        yield f"m={m}", lambda x=x, m=m: f(x, x.copy(), *_vectors(dtype, 1, m), *_vectors(dtype, 2, _ROWS))


def _batch_norm(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    yield "training", lambda: f(np.zeros((_ROWS, 7), dtype), *_vectors(dtype, 2))
    yield "running", lambda: f(np.zeros((_ROWS, 7), dtype), *_vectors(dtype, 2), training=False,
                               running_mean=np.zeros(7, dtype), running_var=np.ones(7, dtype))


def _batch_norm_backward(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    x = np.zeros((_ROWS, 7), dtype)
    yield "", lambda: f(x, x.copy(), *_vectors(dtype, 3))


def _sgd(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    yield "plain", lambda: f(*_vectors(dtype, 2), None, lr=0.1)
    for nesterov in (False, True):
        for first in (False, True):
            label = f"momentum{' nesterov' if nesterov else ''}{' first_step' if first else ''}"
            yield label, lambda n=nesterov, s=first: f(*_vectors(dtype, 3), lr=0.1, momentum=0.9, nesterov=n,
                                                        first_step=s)


def _adam(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    yield "", lambda: f(*_vectors(dtype, 4), lr=0.1, step=1)


def _rmsprop(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for centered in (False, True):
        for momentum in (0.0, 0.9):
            label = f"{'centered' if centered else 'plain'}{' momentum' if momentum else ''}"
            yield label, lambda c=centered, mo=momentum: f(*_vectors(dtype, 3), lr=0.1, centered=c, momentum=mo,
                                                            momentum_buf=np.zeros(7, dtype),
                                                            grad_avg=np.zeros(7, dtype))


def _arena_sums(f: Callable, dtype: np.dtype) -> Iterator[Call]:
    for with_param in (True, False):
        yield "" if with_param else "without param", lambda w=with_param: f(*_vectors(dtype, 2),
                                                                            np.zeros((), dtype), with_param=w)


# Every op's variants: calls of its cuda implementation ``f`` for one dtype.
_CALLS: dict[str, Callable[[Callable, np.dtype], Iterable[Call]]] = {
    "bias_act": _bias_act,
    "bias_act_backward": _bias_act_backward,
    "softmax_xent": _softmax_xent,
    "softmax": _rows,
    "log_softmax": _rows,
    "bce_logits": _pair,
    "mse": _pair,
    "dropout": _dropout,
    "dropout_backward": _dropout,
    "layer_norm": _layer_norm,
    "layer_norm_backward": _layer_norm_backward,
    "batch_norm": _batch_norm,
    "batch_norm_backward": _batch_norm_backward,
    "sgd_": _sgd,
    "adam_": _adam,
    "rmsprop_": _rmsprop,
    "arena_sums": _arena_sums,
}


def _kernel_name(kernel: Any) -> tuple[str, str]:
    fn = kernel.py_func
    return fn.__module__.rsplit(".", 1)[-1], fn.__name__


def cuda_variants(ops: Iterable[str] | None = None) -> list[CudaVariant]:
    """Every distinct (kernel, signature) that the cuda implementations of ``ops`` (default: all of
    OP_MODULES) launch, for every dtype and variant, in OP_MODULES order. Imports the kernel modules
    and numba.cuda, compiles nothing; needs no GPU, but not the simulator."""
    import numba

    names = list(OP_MODULES) if ops is None else list(ops)
    missing = [name for name in names if name not in _CALLS]
    if missing and ops is None:
        raise RuntimeError(f"ops without an entry in kernels.variants._CALLS: {missing}")
    if missing:
        raise ValueError(f"ops must be among {sorted(_CALLS)}, got {missing}")
    seen: set[tuple[int, tuple[Any, ...]]] = set()
    found: list[CudaVariant] = []
    for name in names:
        for dtype in FLOAT_DTYPES:
            for label, call in _CALLS[name](op(name).cuda, np.dtype(dtype)):
                with recording_launches() as launches:
                    call()
                for launch in launches:
                    inferred = tuple(numba.typeof(a) for a in launch.args)
                    if (id(launch.kernel), inferred) in seen:
                        continue
                    seen.add((id(launch.kernel), inferred))
                    module, kernel_name = _kernel_name(launch.kernel)
                    variant = " ".join(filter(None, (np.dtype(dtype).name, label)))
                    found.append(CudaVariant(name, variant, KINDS[module, kernel_name], kernel_name, launch.kernel,
                                             launch.kernel.signature, inferred))
    return found

