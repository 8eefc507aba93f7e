"""LayerNorm and BatchNorm1d, forward and forward + backward: fused kernels vs unfused NumPy vs PyTorch.

Each row times, in one run: the gpudnn kernels writing into preallocated outputs
(``out=``/``mean_out=``/``rstd_out=``, ``dx_out=``/``dgamma_out=``/``dbeta_out=``), the unfused NumPy
expressions a user would write (two-pass statistics, fresh arrays every call), and PyTorch CPU when
importable: ``F.layer_norm`` / ``F.batch_norm`` forward, and forward + ``torch.autograd.grad`` for
x, gamma and beta (one thread, like the single-threaded kernels). BatchNorm runs in training mode and
updates running statistics (momentum 0.1) in every variant. Each peer is timed round-robin against the
gpudnn call alone (see _timed); ``gpudnn_ms`` is the faster of those medians, and each ratio uses the
gpudnn median of its own rounds. GB/s counts the minimum bytes an op must move (each input read once,
each output written once, the saved statistics included) over the gpudnn time; ``copy_frac`` is that
over the host copy bandwidth (read + write) measured in the same run.
On a GPU (CuPy + a device) the same rows run as CUDA kernels vs CuPy unfused (in the ``numpy_*``
columns) vs torch CUDA, against the device copy bandwidth, with the host time of one gpudnn call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness

SHAPES = [(256, 1024), (4096, 1024)]
QUICK_SHAPES = [(64, 257)]
EPS, MOMENTUM = 1e-5, 0.1
CUDA_LAUNCHES = {"layer_norm": 1, "layer_norm+backward": 4, "batch_norm": 4, "batch_norm+backward": 7}
COLUMNS = ["device", "op", "shape", "gpudnn_ms", "numpy_ms", "torch_ms", "vs_numpy", "vs_torch", "gbps",
           "copy_frac", "launches"]


# --------------------------------------------------------------------------- unfused array code


def _numpy_layer_norm(xp: Any, x: Any, gamma: Any, beta: Any) -> tuple[Any, Any, Any]:
    mean = x.mean(axis=1, keepdims=True)
    d = x - mean
    rstd = 1 / xp.sqrt((d * d).mean(axis=1, keepdims=True) + EPS)
    return d * rstd * gamma + beta, mean, rstd


def _numpy_layer_norm_backward(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any) -> tuple[Any, Any, Any]:
    xhat = (x - mean) * rstd
    g = dy * gamma
    dx = rstd * (g - g.mean(axis=1, keepdims=True) - xhat * (g * xhat).mean(axis=1, keepdims=True))
    return dx, (dy * xhat).sum(axis=0), dy.sum(axis=0)


def _numpy_batch_norm(xp: Any, x: Any, gamma: Any, beta: Any, running_mean: Any, running_var: Any):
    n = x.shape[0]
    mean = x.mean(axis=0)
    d = x - mean
    var = (d * d).mean(axis=0)
    running_mean *= 1 - MOMENTUM
    running_mean += MOMENTUM * mean
    running_var *= 1 - MOMENTUM
    running_var += (MOMENTUM * n / (n - 1)) * var
    rstd = 1 / xp.sqrt(var + EPS)
    return d * (rstd * gamma) + beta, mean, rstd


def _numpy_batch_norm_backward(dy: Any, x: Any, gamma: Any, mean: Any, rstd: Any) -> tuple[Any, Any, Any]:
    n = x.shape[0]
    xhat = (x - mean) * rstd
    dbeta, dgamma = dy.sum(axis=0), (dy * xhat).sum(axis=0)
    return gamma * rstd / n * (n * dy - dbeta - xhat * dgamma), dgamma, dbeta


# --------------------------------------------------------------------------- rows


def _cases(xp: Any, shape: tuple[int, int], impl: str) -> list[tuple[str, int, dict[str, Callable[[], Any]]]]:
    """(op, bytes moved, {variant: callable}) for every row, float32 arrays of module ``xp``."""
    from gpudnn.kernels import batch_norm, layer_norm

    rng = np.random.default_rng(0)
    n, m = shape
    x, dy = (xp.asarray(rng.standard_normal(shape, dtype=np.float32)) for _ in range(2))
    gamma = xp.asarray(1 + 0.1 * rng.standard_normal(m, dtype=np.float32))
    beta = xp.asarray(0.1 * rng.standard_normal(m, dtype=np.float32))
    out, dx = xp.empty_like(x), xp.empty_like(x)
    row_mean, row_rstd = xp.empty(n, np.float32), xp.empty(n, np.float32)
    col_mean, col_rstd, dgamma, dbeta = (xp.empty(m, np.float32) for _ in range(4))
    running = {name: (xp.zeros(m, np.float32), xp.ones(m, np.float32)) for name in ("gpudnn", "numpy", "torch")}
    ln, ln_bwd = getattr(layer_norm, f"layer_norm_{impl}"), getattr(layer_norm, f"layer_norm_backward_{impl}")
    bn, bn_bwd = getattr(batch_norm, f"batch_norm_{impl}"), getattr(batch_norm, f"batch_norm_backward_{impl}")

    def gpudnn_ln() -> Any:
        return ln(x, gamma, beta, EPS, out=out, mean_out=row_mean, rstd_out=row_rstd)

    def gpudnn_ln_bwd() -> Any:
        gpudnn_ln()
        return ln_bwd(dy, x, gamma, row_mean, row_rstd, dx_out=dx, dgamma_out=dgamma, dbeta_out=dbeta)

    def gpudnn_bn() -> Any:
        rm, rv = running["gpudnn"]
        return bn(x, gamma, beta, EPS, running_mean=rm, running_var=rv, momentum=MOMENTUM, out=out,
                  mean_out=col_mean, rstd_out=col_rstd)

    def gpudnn_bn_bwd() -> Any:
        gpudnn_bn()
        return bn_bwd(dy, x, gamma, col_mean, col_rstd, dx_out=dx, dgamma_out=dgamma, dbeta_out=dbeta)

    def numpy_ln_bwd() -> Any:
        _, mean, rstd = _numpy_layer_norm(xp, x, gamma, beta)
        return _numpy_layer_norm_backward(dy, x, gamma, mean, rstd)

    def numpy_bn() -> Any:
        return _numpy_batch_norm(xp, x, gamma, beta, *running["numpy"])

    def numpy_bn_bwd() -> Any:
        _, mean, rstd = numpy_bn()
        return _numpy_batch_norm_backward(dy, x, gamma, mean, rstd)

    s, f = n * m, 4  # elements, bytes per element
    cases = [
        ("layer_norm", (2 * s + 2 * m + 2 * n) * f,
         {"gpudnn": gpudnn_ln, "numpy": lambda: _numpy_layer_norm(xp, x, gamma, beta)}),
        ("layer_norm+backward", (5 * s + 5 * m + 4 * n) * f, {"gpudnn": gpudnn_ln_bwd, "numpy": numpy_ln_bwd}),
        ("batch_norm", (2 * s + 8 * m) * f, {"gpudnn": gpudnn_bn, "numpy": numpy_bn}),
        ("batch_norm+backward", (5 * s + 13 * m) * f, {"gpudnn": gpudnn_bn_bwd, "numpy": numpy_bn_bwd}),
    ]
    torch = harness.optional_torch()
    if torch is not None:
        F = torch.nn.functional
        as_t = (lambda a: torch.from_numpy(a)) if xp is np else (lambda a: torch.as_tensor(a, device="cuda"))
        tx, tgamma, tbeta = (as_t(a).requires_grad_() for a in (x, gamma, beta))
        tdy = as_t(dy)
        trm, trv = (as_t(a) for a in running["torch"])
        leaves = (tx, tgamma, tbeta)

        def torch_ln() -> Any:
            with torch.no_grad():
                return F.layer_norm(tx, (m,), tgamma, tbeta, EPS)

        def torch_bn() -> Any:
            with torch.no_grad():
                return F.batch_norm(tx, trm, trv, tgamma, tbeta, training=True, momentum=MOMENTUM, eps=EPS)

        def torch_ln_bwd() -> Any:
            return torch.autograd.grad(F.layer_norm(tx, (m,), tgamma, tbeta, EPS), leaves, tdy)

        def torch_bn_bwd() -> Any:
            y = F.batch_norm(tx, trm, trv, tgamma, tbeta, training=True, momentum=MOMENTUM, eps=EPS)
            return torch.autograd.grad(y, leaves, tdy)

        for case, variant in zip(cases, (torch_ln, torch_ln_bwd, torch_bn, torch_bn_bwd)):
            case[2]["torch"] = variant
    return cases


def _timed(variants: dict[str, Callable[[], Any]], rounds: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median seconds of every variant, each peer timed round-robin against gpudnn alone, and ``<peer>_gpudnn``:
    the gpudnn median of that peer's rounds (the ratio's denominator). In one round with NumPy, whose freed
    temporaries go back to the OS, torch's fresh outputs page-fault on every call (measured: its LayerNorm
    forward at 4096 x 1024 went from 1.4 to 9 ms)."""
    times: dict[str, float] = {}
    for peer in (name for name in variants if name != "gpudnn"):
        pair = harness.interleaved({"gpudnn": variants["gpudnn"], peer: variants[peer]}, rounds=rounds, sync=sync)
        times[peer], times[f"{peer}_gpudnn"] = pair[peer], pair["gpudnn"]
    times["gpudnn"] = min(times[f"{peer}_gpudnn"] for peer in variants if peer != "gpudnn")
    return times


def _rows(device: str, xp: Any, shape: tuple[int, int], impl: str, rounds: int, copy_gbps: float,
          sync: Callable[[], None]) -> list[dict[str, Any]]:
    rows = []
    cases = _cases(xp, shape, impl)
    for _, _, variants in cases:  # compile, and touch every buffer before any timing starts
        for fn in variants.values():
            fn()
    for op, nbytes, variants in cases:
        times = _timed(variants, rounds, sync)
        row: dict[str, Any] = {"device": device, "op": op, "shape": "x".join(map(str, shape)), "dtype": "float32"}
        row.update({f"{name}_ms": times[name] * 1e3 for name in variants})
        for peer in ("numpy", "torch"):
            if peer in times:
                row[f"vs_{peer}"] = times[peer] / times[f"{peer}_gpudnn"]
        row["gbps"] = nbytes / times["gpudnn"] / 1e9
        row["copy_frac"] = row["gbps"] / copy_gbps
        if device == "gpu":
            row["launches"] = CUDA_LAUNCHES[op]
        rows.append(row)
    return rows


def _launch_overhead_us(xp: Any) -> dict[str, float]:
    """Host microseconds per gpudnn CUDA call on a 32 x 32 array, not waiting for the GPU."""
    from gpudnn.kernels.batch_norm import batch_norm_cuda
    from gpudnn.kernels.layer_norm import layer_norm_cuda

    x, out = xp.ones((32, 32), np.float32), xp.empty((32, 32), np.float32)
    gamma, beta = xp.ones(32, np.float32), xp.zeros(32, np.float32)
    stats = [xp.empty(32, np.float32) for _ in range(2)]
    sync = xp.cuda.get_current_stream().synchronize
    return {
        "layer_norm": harness.host_launch_us(
            lambda: layer_norm_cuda(x, gamma, beta, out=out, mean_out=stats[0], rstd_out=stats[1]), sync),
        "batch_norm": harness.host_launch_us(
            lambda: batch_norm_cuda(x, gamma, beta, out=out, mean_out=stats[0], rstd_out=stats[1]), sync),
    }


def run(quick: bool = False) -> dict[str, Any]:
    shapes = QUICK_SHAPES if quick else SHAPES
    rounds = 3 if quick else 15
    torch = harness.optional_torch()
    threads = torch.get_num_threads() if torch else None
    host_gbps = harness.host_copy_gbps(rounds=3 if quick else 7)
    rows: list[dict[str, Any]] = []
    if torch:
        torch.set_num_threads(1)  # the CPU kernels are single-threaded
    try:
        for shape in shapes:
            rows += _rows("cpu", np, shape, "cpu", rounds, host_gbps, lambda: None)
    finally:
        if torch:
            torch.set_num_threads(threads)
    result: dict[str, Any] = {"dtype": "float32", "host_copy_gbps": host_gbps,
                              "torch_threads_cpu": 1 if torch else None, "rows": rows}
    if harness.gpu_available():
        import cupy

        sync = harness.device_sync(torch)
        device_gbps = harness.device_copy_gbps()
        for shape in shapes:
            rows += _rows("gpu", cupy, shape, "cuda", rounds, device_gbps, sync)
        result.update(device_copy_gbps=device_gbps, launch_overhead_us=_launch_overhead_us(cupy))
    largest = "x".join(map(str, shapes[-1]))
    ratios = ("vs_numpy", "vs_torch", "copy_frac")
    result["summary"] = {f"{r['device']} {r['op']} {largest}": {k: round(r[k], 2) for k in ratios if k in r}
                         for r in rows if r["shape"] == largest}
    return result


def main() -> None:
    harness.main("norm", run, COLUMNS, lambda result: (f"float32, host copy {result['host_copy_gbps']:.1f} GB/s, "
                                                      f"torch CPU threads {result['torch_threads_cpu']}"))


if __name__ == "__main__":
    main()
