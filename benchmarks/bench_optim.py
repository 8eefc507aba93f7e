"""Optimizer steps on one flat float32 arena of 10M parameters: fused kernel vs unfused peers.

Each row times, round-robin in one run: the gpudnn kernel (one pass over the arrays, split over the
cores from 4M elements up) and the unfused NumPy expressions with preallocated temporaries; then
torch.optim when importable, on the same data in a child process (see harness.time_in_child):
Adam/AdamW with ``fused=True``, SGD and RMSprop with their default implementation, at PyTorch's own
thread count, and Adam's fused kernel also on one thread. GB/s counts the minimum bytes a step must
move (Adam reads p, g, m, v and writes p, m, v) over the gpudnn time; ``copy_frac`` is that against a
host copy measured in the same run.
On a GPU (CuPy + a device) the rows run again as CUDA kernel vs CuPy unfused vs torch CUDA, with
the host-side launch overhead of one gpudnn step.

Target: Adam (10M float32) gpudnn time <= 1.1 x torch's fused Adam step, measured in the same run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from benchmarks import harness

SIZE = 10_000_000
QUICK_SIZE = 100_003
LR, BETAS, EPS, STEP, MOMENTUM, ALPHA, WEIGHT_DECAY = 1e-3, (0.9, 0.999), 1e-8, 10, 0.9, 0.99, 1e-2
TARGET = 1.1  # gpudnn Adam time / torch fused Adam time
COLUMNS = ["device", "op", "size", "gpudnn_ms", "numpy_ms", "torch_ms", "torch_1thread_ms", "vs_numpy", "vs_torch",
           "gbps", "copy_frac"]


def _adam_unfused(xp: Any, p: Any, g: Any, state: list[Any], tmp: Any, decay: float = 1.0) -> None:
    """The step as separate array expressions (what one writes without a fused kernel), via ``tmp``."""
    b1, b2 = BETAS
    m, v = state
    if decay != 1.0:
        p *= decay
    m *= b1
    xp.multiply(g, 1 - b1, out=tmp)
    m += tmp
    v *= b2
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - b2
    v += tmp
    xp.sqrt(v, out=tmp)
    tmp *= 1 / math.sqrt(1 - b2**STEP)
    tmp += EPS
    xp.divide(m, tmp, out=tmp)
    tmp *= LR / (1 - b1**STEP)
    p -= tmp


def _adamw_unfused(xp: Any, p: Any, g: Any, state: list[Any], tmp: Any) -> None:
    _adam_unfused(xp, p, g, state, tmp, decay=1 - LR * WEIGHT_DECAY)


def _sgd_unfused(xp: Any, p: Any, g: Any, state: list[Any], tmp: Any) -> None:
    (buf,) = state
    buf *= MOMENTUM
    buf += g
    xp.multiply(buf, LR, out=tmp)
    p -= tmp


def _rmsprop_unfused(xp: Any, p: Any, g: Any, state: list[Any], tmp: Any) -> None:
    (sq,) = state
    sq *= ALPHA
    xp.multiply(g, g, out=tmp)
    tmp *= 1 - ALPHA
    sq += tmp
    xp.sqrt(sq, out=tmp)
    tmp += EPS
    xp.divide(g, tmp, out=tmp)
    tmp *= LR
    p -= tmp


class _Case(NamedTuple):
    op: str  # gpudnn.kernels.optim.<op>_<impl>
    hyper: dict[str, Any]
    n_state: int  # state arrays passed after (param, grad)
    torch_cls: str  # torch.optim.<torch_cls>(**torch_args)
    torch_args: dict[str, Any]
    words: int  # arrays read + written per parameter, the minimum traffic (Adam: p, g, m, v in; p, m, v out)
    unfused: Callable[..., None]


CASES = {
    "adam": _Case("adam_", {"lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "step": STEP}, 2,
                  "Adam", {"lr": LR, "betas": BETAS, "eps": EPS, "fused": True}, 7, _adam_unfused),
    "adamw": _Case("adam_", {"lr": LR, "beta1": BETAS[0], "beta2": BETAS[1], "eps": EPS, "step": STEP,
                             "weight_decay": WEIGHT_DECAY}, 2,
                   "AdamW", {"lr": LR, "betas": BETAS, "eps": EPS, "weight_decay": WEIGHT_DECAY, "fused": True}, 7,
                   _adamw_unfused),
    "sgd_momentum": _Case("sgd_", {"lr": LR, "momentum": MOMENTUM}, 1, "SGD", {"lr": LR, "momentum": MOMENTUM}, 5,
                          _sgd_unfused),
    "rmsprop": _Case("rmsprop_", {"lr": LR, "alpha": ALPHA, "eps": EPS}, 1,
                     "RMSprop", {"lr": LR, "alpha": ALPHA, "eps": EPS}, 5, _rmsprop_unfused),
}


def _variants(name: str, xp: Any, n: int, impl: str, torch: Any) -> dict[str, Callable[[], Any]]:
    """{variant: one step} for a row; every variant updates its own copy of the arena."""
    from gpudnn.kernels import optim

    case = CASES[name]
    rng = np.random.default_rng(0)
    p0, g = (xp.asarray(rng.standard_normal(n, dtype=np.float32)) for _ in range(2))
    fresh = lambda: (p0.copy(), [xp.zeros_like(p0) for _ in range(case.n_state)])  # noqa: E731
    kernel = getattr(optim, f"{case.op}_{impl}")
    p, state = fresh()
    variants: dict[str, Callable[[], Any]] = {"gpudnn": lambda: kernel(p, g, *state, **case.hyper)}
    p_numpy, state_numpy, tmp = *fresh(), xp.empty_like(p0)
    variants["numpy"] = lambda: case.unfused(xp, p_numpy, g, state_numpy, tmp)
    device = "cpu" if xp is np else "cuda"
    if torch is not None and (device == "cpu" or torch.cuda.is_available()):
        tp = torch.as_tensor(p0, device=device).clone().requires_grad_(True)
        tp.grad = torch.as_tensor(g, device=device).clone()
        opt = getattr(torch.optim, case.torch_cls)([tp], **case.torch_args)
        variants["torch"] = opt.step
    return variants


def torch_step(name: str, n: int, threads: int | None) -> Callable[[], Any]:
    """torch.optim's CPU step of row ``name`` (on ``threads`` threads, None: PyTorch's default),
    timed in a child process."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return _variants(name, np, n, "cpu", torch)["torch"]


def _rows(device: str, xp: Any, n: int, impl: str, rounds: int, copy_gbps: float,
          sync: Callable[[], None]) -> list[dict[str, Any]]:
    torch = harness.optional_torch()
    rows = []
    for name, case in CASES.items():
        variants = _variants(name, xp, n, impl, torch)
        on_cpu_torch = device == "cpu" and variants.pop("torch", None) is not None
        times = harness.interleaved(variants, rounds=rounds, warmup=5, sync=sync)  # fresh 40 MB arrays settle
        if on_cpu_torch:
            for peer, threads in [("torch", None)] + ([("torch_1thread", 1)] if name == "adam" else []):
                times[peer] = harness.time_in_child("benchmarks.bench_optim:torch_step", name, n, threads,
                                                    rounds=rounds)
        row: dict[str, Any] = {"device": device, "op": name, "size": n, "dtype": "float32"}
        row.update({f"{variant}_ms": t * 1e3 for variant, t in times.items()})
        for peer in ("numpy", "torch", "torch_1thread"):
            if peer in times:
                row[f"vs_{peer}"] = times[peer] / times["gpudnn"]
        row["gbps"] = case.words * 4 * n / times["gpudnn"] / 1e9
        row["copy_frac"] = row["gbps"] / copy_gbps
        rows.append(row)
    return rows


def _launch_overhead_us(xp: Any) -> float:
    """Host time per gpudnn CUDA Adam step on a 1024-element arena, not waiting for the GPU."""
    from gpudnn.kernels.optim import adam__cuda

    p, g, m, v = (xp.zeros(1024, np.float32) for _ in range(4))
    return harness.host_launch_us(lambda: adam__cuda(p, g, m, v, lr=LR, step=STEP),
                                  xp.cuda.get_current_stream().synchronize)


def run(quick: bool = False) -> dict[str, Any]:
    n = QUICK_SIZE if quick else SIZE
    rounds = 3 if quick else 11
    copy_gbps = harness.host_copy_gbps(rounds=3 if quick else 7)
    rows = _rows("cpu", np, n, "cpu", rounds, copy_gbps, lambda: None)
    torch = harness.optional_torch()
    result: dict[str, Any] = {"dtype": "float32", "size": n, "host_copy_gbps": copy_gbps,
                              "torch_threads": torch.get_num_threads() if torch else None, "rows": rows}
    if harness.gpu_available():
        import cupy

        stream_sync = cupy.cuda.get_current_stream().synchronize

        def sync() -> None:
            stream_sync()
            if torch is not None and torch.cuda.is_available():
                torch.cuda.synchronize()

        device_gbps = harness.device_copy_gbps()
        rows += _rows("gpu", cupy, n, "cuda", rounds, device_gbps, sync)
        result.update(device_copy_gbps=device_gbps, launch_overhead_us=_launch_overhead_us(cupy))
    adam = next(r for r in rows if r["device"] == "cpu" and r["op"] == "adam")
    summary: dict[str, Any] = {}
    if "torch_ms" in adam:
        ratio = adam["gpudnn_ms"] / adam["torch_ms"]
        summary["adam time / torch fused Adam time"] = {
            "ratio": round(ratio, 3), "target": TARGET, "met": ratio <= TARGET,
            "torch_threads": result["torch_threads"],
            "ratio vs torch fused on 1 thread": round(adam["gpudnn_ms"] / adam["torch_1thread_ms"], 3)}
    summary["adam vs unfused numpy (speed-up)"] = round(adam["vs_numpy"], 2)
    result["summary"] = summary
    return result


def main() -> None:
    harness.main('optim', run, COLUMNS, lambda result: (
        f"float32, {result['size']} parameters, host copy {result['host_copy_gbps']:.1f} GB/s, "
        f"torch threads {result['torch_threads']}"))


if __name__ == "__main__":
    main()
