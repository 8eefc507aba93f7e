"""Timing harness shared by the benchmarks: interleaved repeats, medians, copy bandwidth, JSON.

Machines are shared and noisy, so variants are timed round-robin (one run of each per round)
and the median per variant is reported; ratios between variants of one run are what to trust.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def interleaved_samples(variants: dict[str, Callable[[], Any]], rounds: int = 7, warmup: int = 2,
                        sync: Callable[[], None] = lambda: None, pause: float = 0.0) -> dict[str, list[float]]:
    """Seconds per call of each variant in each round, timed round-robin after ``warmup`` calls each,
    with an untimed ``pause`` (seconds) before each call."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
        sync()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            if pause:
                time.sleep(pause)
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - t0)
    return samples


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int = 7, warmup: int = 2,
                sync: Callable[[], None] = lambda: None, pause: float = 0.0) -> dict[str, float]:
    """Median seconds per call for each variant (see interleaved_samples)."""
    return medians(interleaved_samples(variants, rounds, warmup, sync, pause))


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """The median of each variant's samples."""
    return {name: statistics.median(ts) for name, ts in samples.items()}


def paired_ratio(samples: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of numerator/denominator timed in the same round: a machine slowdown
    that lasts a round hits both, so the ratio stays steadier than a ratio of medians."""
    return statistics.median(a / b for a, b in zip(samples[numerator], samples[denominator]))


def time_in_child(builder: str, *args: Any, rounds: int = 7, warmup: int = 2) -> float:
    """Median seconds per call of ``builder(*args)()``, built and timed in a fresh Python process.

    ``builder`` is "module:function" (e.g. "benchmarks.bench_losses:torch_variant"); ``args`` are
    JSON-able. CPU peers with their own thread pools run alone this way: in one process PyTorch's
    OpenMP threads and NumPy's OpenBLAS threads (and Numba kernels split over the cores) keep
    spinning after their calls and slow each other's next call, and memory one library frees
    changes whether the other's fresh outputs page-fault.
    """
    spec = json.dumps({"builder": builder, "args": args, "rounds": rounds, "warmup": warmup})
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    code = "import sys; from benchmarks import harness; harness._child_main(sys.argv[1])"
    out = subprocess.run([sys.executable, "-c", code, spec], capture_output=True, text=True, env=env, cwd=root)
    if out.returncode != 0:
        raise RuntimeError(f"timing {builder}{tuple(args)} in a child process failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def _child_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    module, name = spec["builder"].split(":")
    fn = getattr(importlib.import_module(module), name)(*spec["args"])
    print(interleaved({"peer": fn}, rounds=spec["rounds"], warmup=spec["warmup"])["peer"])


def host_copy_gbps(nbytes: int = 256 * 2**20, rounds: int = 7) -> float:
    """Achieved host memory-copy bandwidth (bytes read + written per second, in GB/s)."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    t = interleaved({"copy": lambda: np.copyto(dst, src)}, rounds=rounds)["copy"]
    return 2 * nbytes / t / 1e9


def device_copy_gbps(nbytes: int = 1024 * 2**20, rounds: int = 11) -> float:
    """Achieved device-to-device copy bandwidth on the current CuPy device (read + write, GB/s)."""
    import cupy

    src = cupy.ones(nbytes // 8)
    dst = cupy.empty_like(src)
    sync = cupy.cuda.get_current_stream().synchronize
    t = interleaved({"copy": lambda: cupy.copyto(dst, src)}, rounds=rounds, sync=sync)["copy"]
    return 2 * nbytes / t / 1e9


def host_launch_us(call: Callable[[], Any], sync: Callable[[], None], calls: int = 1000) -> float:
    """Host microseconds per ``call`` (a kernel launch), measured without waiting for the device."""
    for _ in range(10):
        call()
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        call()
    elapsed = time.perf_counter() - t0
    sync()
    return elapsed / calls * 1e6


def device_sync(torch: Any = None) -> Callable[[], None]:
    """Waits for CuPy's current stream, and for torch's CUDA work when torch is given."""
    import cupy

    stream_sync = cupy.cuda.get_current_stream().synchronize

    def sync() -> None:
        stream_sync()
        if torch is not None:
            torch.cuda.synchronize()

    return sync


def optional_torch() -> Any:
    """The torch module when installed, else None (its rows are then left out)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def gpu_available() -> bool:
    """Whether CuPy and numba-cuda can run on a real GPU here."""
    try:
        from gpudnn.backend import cupy_status

        return bool(cupy_status()[0])
    except Exception:
        return False


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    for mod in ("numba", "torch", "sklearn", "cupy"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    return info


def save(name: str, payload: dict[str, Any]) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the machine description attached."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **payload},
                               indent=2) + "\n")
    return path


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain-text table of ``rows`` restricted to ``columns``."""
    def fmt(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def report(result: dict[str, Any], columns: list[str], header: str | None = None) -> None:
    """Print a benchmark result: an optional header line, its rows as a table, its summary lines."""
    if header:
        print(header)
    print(table(result.get("rows", []), columns))
    for key, value in result.get("summary", {}).items():
        print(f"{key}: {value}")


def main(name: str, run: Callable[..., dict[str, Any]], columns: list[str],
         header: Callable[[dict[str, Any]], str]) -> None:
    """A benchmark module's command line: run (``--quick`` for small shapes), print, save unless quick."""
    quick = "--quick" in sys.argv
    result = run(quick=quick)
    report(result, columns, header(result))
    if not quick:
        print(f"saved {save(name, result)}")
