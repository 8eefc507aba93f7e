"""Loss kernels: softmax cross-entropy (+ softmax, log-softmax), BCE on logits, MSE, and the exp32 helper.

Each row times, round-robin in one run: the gpudnn kernel writing into a preallocated gradient
(``dlogits_out=``/``grad_out=``/``out=``) and the unfused NumPy expression a user would write (fresh
arrays every call); then PyTorch CPU when importable, on the same data in a child process (see
harness.time_in_child): ``F.cross_entropy`` / ``F.binary_cross_entropy_with_logits`` / ``F.mse_loss``
forward + ``backward()`` on a leaf tensor with ``requires_grad``, with PyTorch's own thread count (the
gpudnn CPU kernels split rows over the cores from 4M elements up). GB/s counts the minimum bytes an op must
move (inputs read once, outputs written once) over the gpudnn time; ``copy_frac`` compares it with
a host memory copy measured in the same run. The ``exp`` row times a Numba loop calling
``fast_math.exp32`` against the same loop calling ``math.exp`` (``numba_math_ms``) and ``np.exp``.
On a GPU (CuPy + a device) the loss rows run again as CUDA kernel vs CuPy unfused vs torch CUDA.

Target: softmax cross-entropy forward + gradient, 8192 x 1000 float32, at most 0.5x the time of
PyTorch's forward + backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness

XENT_SHAPE, QUICK_XENT_SHAPE = (8192, 1000), (256, 100)
ELEMENTWISE_SHAPE, QUICK_ELEMENTWISE_SHAPE = (4096, 4096), (256, 257)
XENT_TARGET = 0.5  # gpudnn time / torch time
COLUMNS = ["device", "op", "shape", "gpudnn_ms", "numpy_ms", "torch_ms", "numba_math_ms", "vs_numpy", "vs_torch",
           "torch_ratio", "gbps", "copy_frac", "vs_math_exp"]


def _numpy_xent(xp: Any, x: Any, y: Any) -> Callable[[], Any]:
    rows = xp.arange(x.shape[0])

    def run() -> Any:
        z = x - x.max(axis=1, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = (xp.log(s[:, 0]) - z[rows, y]).mean()
        g = e / s
        g[rows, y] -= 1
        g /= x.shape[0]
        return loss, g

    return run


def _numpy_softmax(xp: Any, x: Any) -> Any:
    e = xp.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _numpy_log_softmax(xp: Any, x: Any) -> Any:
    z = x - x.max(axis=1, keepdims=True)
    return z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))


def _numpy_bce(xp: Any, x: Any, t: Any) -> Callable[[], Any]:
    def run() -> Any:
        e = xp.exp(-xp.abs(x))
        loss = (xp.maximum(x, 0) - x * t + xp.log1p(e)).mean()
        return loss, (xp.where(x >= 0, 1, e) / (1 + e) - t) / x.size

    return run


def _numpy_mse(p: Any, t: Any) -> Callable[[], Any]:
    def run() -> Any:
        d = p - t
        return (d * d).mean(), 2 * d / p.size

    return run


def _torch_fwd_bwd(torch: Any, loss_fn: Callable[..., Any], x: Any, *rest: Any) -> Callable[[], None]:
    """forward + backward of ``loss_fn(leaf, *rest)`` with a fresh gradient each call."""
    leaf = x.detach().clone().requires_grad_(True)

    def run() -> None:
        leaf.grad = None
        loss_fn(leaf, *rest).backward()

    return run


def _cases(xp: Any, impl: str, xent_shape: tuple[int, int], shape: tuple[int, int]
           ) -> list[tuple[str, tuple[int, int], int, dict[str, Callable[[], Any]]]]:
    """(op, shape, bytes moved, {variant: callable}) for every loss row, on arrays of module ``xp``."""
    from gpudnn.kernels import losses, softmax_xent

    rng = np.random.default_rng(0)
    n, k = xent_shape
    logits = xp.asarray(rng.standard_normal(xent_shape, dtype=np.float32) * 3)
    labels = xp.asarray(rng.integers(0, k, n))
    dlogits, rows_out = xp.empty_like(logits), xp.empty_like(logits)
    x = xp.asarray(rng.standard_normal(shape, dtype=np.float32) * 3)
    t01 = xp.asarray(rng.random(shape, dtype=np.float32))
    target = xp.asarray(rng.standard_normal(shape, dtype=np.float32))
    grad = xp.empty_like(x)

    def get(name: str) -> Callable[..., Any]:
        return getattr(softmax_xent if "softmax" in name else losses, f"{name}_{impl}")

    xent_bytes, rows_bytes, elementwise_bytes = 2 * logits.nbytes + labels.nbytes, 2 * logits.nbytes, 3 * x.nbytes
    cases = [
        ("softmax_xent", xent_shape, xent_bytes,
         {"gpudnn": lambda: get("softmax_xent")(logits, labels, dlogits_out=dlogits),
          "numpy": _numpy_xent(xp, logits, labels)}),
        ("softmax", xent_shape, rows_bytes,
         {"gpudnn": lambda: get("softmax")(logits, out=rows_out),
          "numpy": lambda: _numpy_softmax(xp, logits)}),
        ("log_softmax", xent_shape, rows_bytes,
         {"gpudnn": lambda: get("log_softmax")(logits, out=rows_out),
          "numpy": lambda: _numpy_log_softmax(xp, logits)}),
        ("bce_logits", shape, elementwise_bytes,
         {"gpudnn": lambda: get("bce_logits")(x, t01, grad_out=grad), "numpy": _numpy_bce(xp, x, t01)}),
        ("mse", shape, elementwise_bytes,
         {"gpudnn": lambda: get("mse")(x, target, grad_out=grad), "numpy": _numpy_mse(x, target)}),
    ]
    torch = harness.optional_torch()
    if torch is not None:
        as_t = (lambda a: torch.from_numpy(a)) if xp is np else (lambda a: torch.as_tensor(a, device="cuda"))
        F = torch.nn.functional
        tl, ty, tx, tt01, ttarget = (as_t(a) for a in (logits, labels, x, t01, target))
        torch_variants = [_torch_fwd_bwd(torch, F.cross_entropy, tl, ty),
                          lambda: torch.softmax(tl, dim=1), lambda: torch.log_softmax(tl, dim=1),
                          _torch_fwd_bwd(torch, F.binary_cross_entropy_with_logits, tx, tt01),
                          _torch_fwd_bwd(torch, F.mse_loss, tx, ttarget)]
        for case, variant in zip(cases, torch_variants):
            case[3]["torch"] = variant
    return cases


def _row(device: str, op: str, shape: tuple[int, ...], nbytes: int, times: dict[str, float],
         copy_gbps: float) -> dict[str, Any]:
    row: dict[str, Any] = {"device": device, "op": op, "shape": "x".join(map(str, shape)), "dtype": "float32"}
    row.update({f"{name}_ms": t * 1e3 for name, t in times.items()})
    for peer in ("numpy", "torch"):
        if peer in times:
            row[f"vs_{peer}"] = times[peer] / times["gpudnn"]  # > 1: gpudnn is faster
    if "torch" in times:
        row["torch_ratio"] = times["gpudnn"] / times["torch"]  # the target's direction: <= 0.5 wanted
    row["gbps"] = nbytes / times["gpudnn"] / 1e9
    row["copy_frac"] = row["gbps"] / copy_gbps
    return row


def torch_variant(index: int, xent_shape: list[int], shape: list[int]) -> Callable[[], Any]:
    """The PyTorch CPU variant of case ``index``, on the same data (timed in a child process)."""
    return _cases(np, "cpu", tuple(xent_shape), tuple(shape))[index][3]["torch"]


def _loss_rows(device: str, xp: Any, impl: str, xent_shape: tuple[int, int], shape: tuple[int, int], rounds: int,
               copy_gbps: float, sync: Callable[[], None]) -> list[dict[str, Any]]:
    rows = []
    for index, (op, op_shape, nbytes, variants) in enumerate(_cases(xp, impl, xent_shape, shape)):
        on_cpu_torch = device == "cpu" and variants.pop("torch", None) is not None
        times = harness.interleaved(variants, rounds=rounds, sync=sync)
        if on_cpu_torch:
            times["torch"] = harness.time_in_child("benchmarks.bench_losses:torch_variant", index, list(xent_shape),
                                                   list(shape), rounds=rounds)
        rows.append(_row(device, op, op_shape, nbytes, times, copy_gbps))
    return rows


def _exp_row(size: int, rounds: int, copy_gbps: float) -> dict[str, Any]:
    """exp over ``size`` float32 values: a Numba loop with exp32, the same loop with math.exp, np.exp."""
    from gpudnn.kernels import _common as c
    from gpudnn.kernels.fast_math import exp32
    from numba import njit

    @njit(**c.NJIT_OPTIONS)
    def with_exp32(x, y):
        for i in range(x.size):
            y[i] = exp32(x[i])

    @njit(**c.NJIT_OPTIONS)
    def with_math_exp(x, y):
        for i in range(x.size):
            y[i] = math.exp(x[i])

    x = np.random.default_rng(0).uniform(-80, 0, size).astype(np.float32)
    y = np.empty_like(x)
    times = harness.interleaved({"gpudnn": lambda: with_exp32(x, y), "numba_math": lambda: with_math_exp(x, y),
                                 "numpy": lambda: np.exp(x, out=y)}, rounds=rounds)
    row = _row("cpu", "exp (exp32 loop)", (size,), 2 * x.nbytes, times, copy_gbps)
    row["vs_math_exp"] = times["numba_math"] / times["gpudnn"]
    return row


def _launch_overhead_us(xp: Any) -> float:
    """Host time per softmax_xent_cuda call on 32 x 10 logits, including the label-range check's device sync."""
    from gpudnn.kernels.softmax_xent import softmax_xent_cuda

    x, y, g = xp.zeros((32, 10), np.float32), xp.zeros(32, np.int64), xp.empty((32, 10), np.float32)
    return harness.host_launch_us(lambda: softmax_xent_cuda(x, y, dlogits_out=g),
                                  xp.cuda.get_current_stream().synchronize)


def run(quick: bool = False) -> dict[str, Any]:
    xent_shape = QUICK_XENT_SHAPE if quick else XENT_SHAPE
    shape = QUICK_ELEMENTWISE_SHAPE if quick else ELEMENTWISE_SHAPE
    rounds = 3 if quick else 9
    copy_gbps = harness.host_copy_gbps(rounds=3 if quick else 7)
    rows = _loss_rows("cpu", np, "cpu", xent_shape, shape, rounds, copy_gbps, lambda: None)
    exp_row = _exp_row(shape[0] * shape[1] // 2, rounds, copy_gbps)
    rows.append(exp_row)
    torch = harness.optional_torch()
    result: dict[str, Any] = {"dtype": "float32", "host_copy_gbps": copy_gbps,
                              "torch_threads": torch.get_num_threads() if torch else None, "rows": rows}
    if harness.gpu_available():
        import cupy

        sync = harness.device_sync(torch)

        device_gbps = harness.device_copy_gbps()
        rows += _loss_rows("gpu", cupy, "cuda", xent_shape, shape, rounds, device_gbps, sync)
        result.update(device_copy_gbps=device_gbps, launch_overhead_us=_launch_overhead_us(cupy))
    xent = next(r for r in rows if r["device"] == "cpu" and r["op"] == "softmax_xent")
    summary: dict[str, Any] = {"exp32 loop vs math.exp loop": round(exp_row["vs_math_exp"], 2)}
    if "torch_ratio" in xent:
        summary["softmax_xent cpu time / torch fwd+bwd"] = {"ratio": round(xent["torch_ratio"], 3),
                                                            "target": XENT_TARGET,
                                                            "met": xent["torch_ratio"] <= XENT_TARGET}
    result["summary"] = summary
    return result


def main() -> None:
    harness.main('losses', run, COLUMNS, lambda result: (
        f"float32, host copy {result['host_copy_gbps']:.1f} GB/s, torch threads {result['torch_threads']}"))


if __name__ == "__main__":
    main()
