"""Bias + activation forward, activation + bias gradient backward, dropout: fused kernel vs unfused peers.

Each row times, round-robin in one run: the gpudnn kernel writing into preallocated outputs
(``out=``, ``dz_out=``/``db_out=``), the unfused NumPy expression a user would write (fresh arrays
every call) and a copy of one operand into a preallocated array; then the same expression in
PyTorch CPU when importable, on the same data in a child process with PyTorch's own thread count
(see harness.time_in_child; the gpudnn kernels split rows over the cores from 4M elements up).
GB/s counts the minimum bytes an op must move
(read inputs once, write outputs once) over the gpudnn time; ``copy_frac`` is that against the
copy's GB/s (bytes read + written) from the same rounds, so machine noise hits both alike.
On a GPU (CuPy + a device) the same rows run as CUDA kernel vs CuPy unfused (in the ``numpy_*``
columns) vs torch CUDA, with the host-side launch overhead of the gpudnn call.

Targets (4096 x 4096 float32): bias + relu forward >= 5x NumPy, relu backward + bias grad >= 3x NumPy.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness

SHAPE = (4096, 4096)
QUICK_SHAPE = (256, 257)
DROPOUT_P = 0.5
TARGETS = {("bias_act", "relu"): 5.0, ("bias_act_backward", "relu"): 3.0}
COLUMNS = ["device", "op", "activation", "shape", "gpudnn_ms", "in_place_ms", "numpy_ms", "torch_ms", "copy_ms",
           "vs_numpy", "vs_torch", "gbps", "copy_frac"]


def _erf(xp: Any) -> Callable[[Any], Any] | None:
    """erf for the unfused GELU expression (NumPy has none: SciPy's, or CuPy's)."""
    try:
        if xp is np:
            from scipy.special import erf
        else:
            from cupyx.scipy.special import erf
    except ImportError:
        return None
    return erf


def _cases(xp: Any, shape: tuple[int, int], impl: str) -> list[tuple[str, str, int, dict[str, Callable[[], Any]]]]:
    """(op, activation, bytes moved, {variant: callable}) for every row, on arrays of module ``xp``."""
    from gpudnn.kernels import bias_act, bias_act_backward, dropout

    rng = np.random.default_rng(0)
    n, m = shape
    x, dy = (xp.asarray(rng.standard_normal(shape, dtype=np.float32)) for _ in range(2))
    b = xp.asarray(rng.standard_normal(m, dtype=np.float32))
    out, dz, db = xp.empty_like(x), xp.empty_like(x), xp.empty_like(b)
    dy_in_place = dy.copy()  # relu's backward is idempotent in place: dz = dy * (y > 0) again
    y_relu = xp.maximum(x, 0)
    y_sigmoid = 1 / (1 + xp.exp(-x))
    fwd = getattr(bias_act, f"bias_act_{impl}")
    bwd = getattr(bias_act_backward, f"bias_act_backward_{impl}")
    drop = getattr(dropout, f"dropout_{impl}")
    itemsize, size = 4, n * m
    erf = _erf(xp)

    def np_relu_bwd():
        d = dy * (y_relu > 0)
        return d, d.sum(axis=0)

    def np_sigmoid_bwd():
        d = dy * y_sigmoid * (1 - y_sigmoid)
        return d, d.sum(axis=0)

    unfused_gelu = (lambda: (lambda z: 0.5 * z * (1 + erf(z * (1 / math.sqrt(2)))))(x + b)) if erf else None
    draw = np.random.default_rng(1).random if xp is np else xp.random.random

    def np_dropout():
        return x * (draw(shape, dtype=np.float32) >= DROPOUT_P) * np.float32(1 / (1 - DROPOUT_P))

    copy_to = xp.empty_like(x)
    cases = [
        ("bias_act", "relu", 2 * size * itemsize,
         {"gpudnn": lambda: fwd(x, b, "relu", out=out), "numpy": lambda: xp.maximum(x + b, 0)}),
        ("bias_act", "sigmoid", 2 * size * itemsize,
         {"gpudnn": lambda: fwd(x, b, "sigmoid", out=out), "numpy": lambda: 1 / (1 + xp.exp(-(x + b)))}),
        ("bias_act", "gelu", 2 * size * itemsize,
         {"gpudnn": lambda: fwd(x, b, "gelu", out=out), **({"numpy": unfused_gelu} if erf else {})}),
        ("bias_act_backward", "relu", 3 * size * itemsize,
         {"gpudnn": lambda: bwd(dy, y_relu, "relu", dz_out=dz, db_out=db), "numpy": np_relu_bwd,
          "in_place": lambda: bwd(dy_in_place, y_relu, "relu", dz_out=dy_in_place, db_out=db)}),
        ("bias_act_backward", "sigmoid", 3 * size * itemsize,
         {"gpudnn": lambda: bwd(dy, y_sigmoid, "sigmoid", dz_out=dz, db_out=db), "numpy": np_sigmoid_bwd}),
        ("dropout", "", 2 * size * itemsize,
         {"gpudnn": lambda: drop(x, DROPOUT_P, 12345, out=out), "numpy": np_dropout}),
    ]
    torch = harness.optional_torch()
    if torch is not None:
        as_t = (lambda a: torch.from_numpy(a)) if xp is np else (lambda a: torch.as_tensor(a, device="cuda"))
        tx, tb, tdy, ty_relu, ty_sig = (as_t(a) for a in (x, b, dy, y_relu, y_sigmoid))
        F = torch.nn.functional

        def torch_relu_bwd():
            d = tdy * (ty_relu > 0)
            return d, d.sum(0)

        def torch_sigmoid_bwd():
            d = tdy * ty_sig * (1 - ty_sig)
            return d, d.sum(0)

        torch_variants = [lambda: torch.relu(tx + tb), lambda: torch.sigmoid(tx + tb), lambda: F.gelu(tx + tb),
                          torch_relu_bwd, torch_sigmoid_bwd, lambda: F.dropout(tx, DROPOUT_P, training=True)]
        for case, variant in zip(cases, torch_variants):
            case[3]["torch"] = variant
    for case in cases:
        case[3]["copy"] = lambda: xp.copyto(copy_to, x)
    return cases


def torch_variant(index: int, shape: list[int]) -> Callable[[], Any]:
    """The PyTorch CPU variant of case ``index``, on the same data (timed in a child process)."""
    return _cases(np, tuple(shape), "cpu")[index][3]["torch"]


def _rows(device: str, xp: Any, shape: tuple[int, int], impl: str, rounds: int,
          sync: Callable[[], None]) -> list[dict[str, Any]]:
    rows = []
    cases = _cases(xp, shape, impl)
    for _, _, _, variants in cases:  # compile, and touch every buffer before any timing starts
        for fn in variants.values():
            fn()
    for index, (op, activation, nbytes, variants) in enumerate(cases):
        on_cpu_torch = device == "cpu" and variants.pop("torch", None) is not None
        times = harness.interleaved(variants, rounds=rounds, sync=sync)
        if on_cpu_torch:
            times["torch"] = harness.time_in_child("benchmarks.bench_activations:torch_variant", index, list(shape),
                                                   rounds=rounds)
        row: dict[str, Any] = {"device": device, "op": op, "activation": activation, "shape": "x".join(map(str, shape)),
                               "dtype": "float32"}
        row.update({f"{name}_ms": t * 1e3 for name, t in times.items()})
        for peer in ("numpy", "torch"):
            if peer in times:
                row[f"vs_{peer}"] = times[peer] / times["gpudnn"]
        if "in_place" in times:
            row["in_place_vs_numpy"] = times["numpy"] / times["in_place"]
        row["gbps"] = nbytes / times["gpudnn"] / 1e9
        row["copy_gbps"] = 2 * int(np.prod(shape)) * 4 / times["copy"] / 1e9
        row["copy_frac"] = row["gbps"] / row["copy_gbps"]
        rows.append(row)
    return rows


def _launch_overhead_us(xp: Any) -> float:
    """Host time per gpudnn CUDA call (bias + relu on a 32 x 32 array), not waiting for the GPU."""
    from gpudnn.kernels.bias_act import bias_act_cuda

    x = xp.ones((32, 32), np.float32)
    b, out = xp.zeros(32, np.float32), xp.empty((32, 32), np.float32)
    sync = xp.cuda.get_current_stream().synchronize
    return harness.host_launch_us(lambda: bias_act_cuda(x, b, "relu", out=out), sync)


def run(quick: bool = False) -> dict[str, Any]:
    shape = QUICK_SHAPE if quick else SHAPE
    rounds = 3 if quick else 15
    torch = harness.optional_torch()
    rows = _rows("cpu", np, shape, "cpu", rounds, lambda: None)
    result: dict[str, Any] = {"dtype": "float32", "host_copy_gbps": harness.host_copy_gbps(rounds=3 if quick else 7),
                              "torch_threads_cpu": torch.get_num_threads() if torch else None, "rows": rows}
    if harness.gpu_available():
        import cupy

        sync = harness.device_sync(torch)

        device_gbps = harness.device_copy_gbps()
        rows += _rows("gpu", cupy, shape, "cuda", rounds, sync)
        result.update(device_copy_gbps=device_gbps, launch_overhead_us=_launch_overhead_us(cupy))
    summary = {}
    for (op, activation), target in TARGETS.items():
        row = next(r for r in rows if r["device"] == "cpu" and r["op"] == op and r["activation"] == activation)
        summary[f"{op}[{activation}] vs numpy"] = {"ratio": round(row["vs_numpy"], 2), "target": target,
                                                   "met": row["vs_numpy"] >= target}
        if "in_place_vs_numpy" in row:
            summary[f"{op}[{activation}] in place (dz_out=dy) vs numpy"] = round(row["in_place_vs_numpy"], 2)
    result["summary"] = summary
    return result


def main() -> None:
    harness.main('activations', run, COLUMNS, lambda result: (
        f"float32, host copy {result['host_copy_gbps']:.1f} GB/s, torch CPU threads {result['torch_threads_cpu']}"))


if __name__ == "__main__":
    main()
