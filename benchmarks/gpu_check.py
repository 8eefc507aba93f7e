"""One prepared GPU acceptance run: ``python -m benchmarks.gpu_check --out DIR [--dry-run]``.

On a GPU (CuPy + numba-cuda), in one process and within ``--budget`` seconds (default 280, JIT
warm-up included), in this order: the gpu-marked tests (among them the lean launch against numba's,
bit for bit) and the CUDA kernel tests on the device; each fused kernel's achieved bandwidth against a
CuPy device-to-device copy of the same bytes and against PyTorch CUDA's own op, timed in the same run;
host microseconds per launch (median of 10,000), lean and through numba's dispatcher, against a CuPy
elementwise kernel and a PyTorch op; host syncs per training step; the MLP step 784-1024-1024-10 at
batch 256 and 4096 against PyTorch eager CUDA with fused Adam (the bare step, and the step with its
readback against PyTorch's with ``loss.item()``); PCA 1,000,000 x 784 (k=50) against scikit-learn on
the host's cores; ``compute-sanitizer`` memcheck over a kernel test file when time is left. Writes
``gpu_check.json`` and ``summary.md`` into DIR and exits 1 when any section fails (an error or a
failing test; missed speed targets are reported, and fail the run only with ``--strict-targets``).

``--dry-run`` runs the same sections on the CPU: the cudasim backend (its strict CuPy stand-in),
tiny sizes, peers (PyTorch, scikit-learn) and the sanitizer skipped, the tests only collected; there
the stand-in also counts a training step's array operations and allocations. The test suite runs
it, so a Python error here never costs GPU time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness

KERNEL_TESTS = ["tests/test_bias_act.py", "tests/test_bias_act_backward.py", "tests/test_softmax_xent.py",
                "tests/test_losses.py", "tests/test_dropout.py", "tests/test_norm_kernels.py",
                "tests/test_optim_kernels.py", "tests/test_arena.py"]
GPU_TESTS = ["tests/test_backend.py", "tests/test_checkpoint.py", "tests/test_matmul_precision.py",
             "tests/test_gpu_check.py", "tests/test_launch.py"]
COPY_TARGET = 0.85  # elementwise, loss and optimizer kernels: at least this share of copy bandwidth
LAUNCH_TARGET_US = 10.0


class Run:
    """The device, the sizes and the clock of one check; sections record into ``results``."""

    def __init__(self, dry: bool, budget: float) -> None:
        self.dry, self.deadline, self.started = dry, time.perf_counter() + budget, time.perf_counter()
        import gpudnn as gd

        self.gd = gd
        self.b = gd.backend.backend("cudasim" if dry else "cupy")
        self.xp = self.b.xp
        self.torch = None if dry else harness.optional_torch()
        if self.torch is not None and not self.torch.cuda.is_available():
            self.torch = None
        self.results: dict[str, Any] = {"dry_run": dry, "machine": harness.machine(), "sections": {}}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def sync(self) -> None:
        if not self.dry:
            self.xp.cuda.get_current_stream().synchronize()
        if self.torch is not None:
            self.torch.cuda.synchronize()

    def time(self, fns: dict[str, Callable[[], Any]], rounds: int = 7) -> dict[str, float]:
        """Median seconds per call of each variant, interleaved (1 round, no warm-up beyond one call when dry)."""
        return harness.interleaved(fns, rounds=1 if self.dry else rounds, warmup=1 if self.dry else 3, sync=self.sync)

    def section(self, name: str, fn: Callable[[Run], dict[str, Any]], need_s: float) -> None:
        """Run one section, recording its result, its time and whether it failed; skipped when the
        budget has less than ``need_s`` seconds left."""
        entry: dict[str, Any]
        if self.left() < (0 if self.dry else need_s):
            entry = {"status": "skipped", "why": f"{self.left():.0f} s left of the budget, {need_s:.0f} s needed"}
        else:
            t0 = time.perf_counter()
            try:
                entry = {"status": "ok", **fn(self)}
            except Exception as exc:
                entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=8)}
            entry["seconds"] = round(time.perf_counter() - t0, 2)
        self.results["sections"][name] = entry
        print(f"[gpu_check] {name}: {entry['status']} ({entry.get('seconds', 0)} s)"
              + (f" - {entry.get('error') or entry.get('why')}" if entry["status"] != "ok" else ""), flush=True)


# --------------------------------------------------------------------------- sections


def _pytest(run: Run, files: list[str], marker: str | None, timeout: float) -> dict[str, Any]:
    """pytest on the device (NUMBA_ENABLE_CUDASIM=0); when dry, only collects (nothing to run on)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    cmd += ["-m", marker] if marker else []
    if run.dry:
        cmd.append("--collect-only")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1" if run.dry else "0"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    tail = (out.stdout + out.stderr).strip().splitlines()[-15:]
    if out.returncode not in (0, 5):  # 5: nothing collected (no gpu tests in a file)
        raise RuntimeError(f"pytest exited {out.returncode}: " + " | ".join(tail[-5:]))
    return {"command": " ".join(cmd), "tail": tail}


def tests_section(run: Run) -> dict[str, Any]:
    gpu = _pytest(run, GPU_TESTS + ["tests/test_train.py"], "gpu", timeout=max(run.left() - 150, 30))
    kernels = _pytest(run, KERNEL_TESTS, None, timeout=max(run.left() - 120, 30))
    return {"gpu_marked": gpu, "kernel_tests": kernels}


def _kernel_cases(run: Run, n: int, m: int) -> dict[str, tuple[Callable[[], Any], int, Callable[[], Any] | None]]:
    """name -> (gpudnn call, bytes it must move, PyTorch's own op or None)."""
    b, rng = run.b, np.random.default_rng(0)
    x = b.asarray(rng.standard_normal((n, m)), dtype=np.float32)
    bias, out = b.asarray(rng.standard_normal(m), dtype=np.float32), b.empty((n, m))
    dy, labels = b.asarray(rng.standard_normal((n, m)), dtype=np.float32), b.asarray(rng.integers(0, m, n))
    target = b.asarray(rng.random((n, m)), dtype=np.float32)
    p, g, mom, v = (b.asarray(rng.standard_normal(n * m), dtype=np.float32) for _ in range(4))
    v, sums = abs(v), b.zeros((4,), np.float64)
    nb = 4 * n * m
    cases: dict[str, Any] = {
        "bias_act relu": (lambda: b.bias_act(x, bias, "relu", out=out), 2 * nb, None),
        "bias_act_backward relu": (lambda: b.bias_act_backward(dy, x, "relu", from_output=True), 3 * nb, None),
        "softmax_xent": (lambda: b.softmax_xent(x, labels, dlogits_out=out, labels_checked=True), 2 * nb, None),
        "mse": (lambda: b.mse(x, target, grad_out=out), 3 * nb, None),
        "bce_logits": (lambda: b.bce_logits(x, target, grad_out=out, targets_checked=True), 3 * nb, None),
        "adam_": (lambda: b.adam_(p, g, mom, v, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, step=2), 7 * nb, None),
        "sgd_ momentum": (lambda: b.sgd_(p, g, mom, lr=0.1, momentum=0.9), 5 * nb, None),
        "rmsprop_": (lambda: b.rmsprop_(p, g, v, lr=1e-3, alpha=0.99, eps=1e-8), 5 * nb, None),
        "arena_sums": (lambda: b.arena_sums(p, g, out=sums), 2 * nb, None),
    }
    torch = run.torch
    if torch is not None:
        tx, tb, tdy = (torch.randn(s, device="cuda") for s in ((n, m), (m,), (n, m)))
        tout, tl = torch.empty(n, m, device="cuda"), torch.randint(0, m, (n,), device="cuda")
        tt = torch.rand(n, m, device="cuda")
        cases["bias_act relu"] = (*cases["bias_act relu"][:2], lambda: torch.relu(torch.add(tx, tb, out=tout), ))
        cases["bias_act_backward relu"] = (*cases["bias_act_backward relu"][:2],
                                           lambda: torch.ops.aten.threshold_backward(tdy, tx, 0.0))
        cases["softmax_xent"] = (*cases["softmax_xent"][:2], lambda: torch.nn.functional.cross_entropy(tx, tl))
        cases["mse"] = (*cases["mse"][:2], lambda: torch.nn.functional.mse_loss(tx, tt))
        cases["bce_logits"] = (*cases["bce_logits"][:2],
                               lambda: torch.nn.functional.binary_cross_entropy_with_logits(tx, tt))
        tp, tg = tx.reshape(-1), tdy.reshape(-1)  # the squared norm and both penalty sums, in float64
        cases["arena_sums"] = (*cases["arena_sums"][:2], lambda: torch.stack(
            [tg.square().sum(dtype=torch.float64), tp.abs().sum(dtype=torch.float64),
             tp.square().sum(dtype=torch.float64)]))
    return cases


def bandwidth_section(run: Run) -> dict[str, Any]:
    n, m = (16, 9) if run.dry else (16384, 4096)  # 256 MiB per float32 array on the GPU
    cases = _kernel_cases(run, n, m)
    rows = []
    for name, (call, nbytes, peer) in cases.items():
        src = run.b.empty((nbytes // 8,))  # a copy that moves as many bytes (read + write) as the kernel
        dst = run.b.empty((nbytes // 8,))

        def copy(dst: Any = dst, src: Any = src) -> None:
            dst[...] = src

        fns = {"kernel": call, "copy": copy} | ({"torch": peer} if peer is not None else {})
        t = run.time(fns)
        row = {"op": name, "GB/s": nbytes / t["kernel"] / 1e9, "copy_GB/s": nbytes / t["copy"] / 1e9,
               "of_copy": t["copy"] / t["kernel"]}
        if "torch" in t:
            row["torch_ratio"] = t["kernel"] / t["torch"]
        row["target_met"] = row["of_copy"] >= COPY_TARGET
        rows.append(row)
    return {"rows": rows, "target": f">= {COPY_TARGET:.0%} of the copy", "all_met": all(r["target_met"] for r in rows)}


def _median_us(call: Callable[[], Any], calls: int, sync: Callable[[], None]) -> float:
    """Median host microseconds of ``calls`` single calls, the queue drained every 1,000."""
    call()
    sync()
    times = []
    for i in range(calls):
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
        if i % 1000 == 999:
            sync()
    sync()
    return statistics.median(times) / 1e3


def launch_section(run: Run) -> dict[str, Any]:
    """Host microseconds of one launch of bias_act (4 x 32, nothing to wait for): the launch alone and the
    whole op (argument checks included), lean and through numba's dispatcher, beside a CuPy elementwise
    kernel and a PyTorch op."""
    from gpudnn.kernels import _common, bias_act
    from gpudnn.kernels.activations import activation_code

    from gpudnn import kernels

    b, calls = run.b, 20 if run.dry else 10_000
    x, bias, out = b.zeros((4, 32)), b.zeros((32,)), b.empty((4, 32))
    kernel = bias_act._cuda_kernel(activation_code("relu"), np.dtype(np.float32), False)  # what the op launches
    grid, block, shifts = _common.grid_2d(4, 32)
    alpha = np.float32(0)
    us: dict[str, float] = {}
    before = b.launches
    for path in ("lean", "numba"):
        previous = kernels.use_launch_path(path)
        try:
            us[f"launch ({path})"] = _median_us(lambda: kernels.launch(kernel, grid, block, x, bias, alpha, *shifts,
                                                                       out, out), calls, run.sync)
            us[f"gpudnn bias_act ({path})"] = _median_us(lambda: b.bias_act(x, bias, "relu", out=out), calls, run.sync)
        finally:
            kernels.use_launch_path(previous)
    launches = (b.launches - before) / (4 * (calls + 1))
    if not run.dry:
        add = run.xp.ElementwiseKernel("float32 a, float32 c", "float32 y", "y = a + c", "gpudnn_check_add")
        us["cupy ElementwiseKernel"] = _median_us(lambda: add(x, bias, out), calls, run.sync)
    if run.torch is not None:
        tx, tb, tout = (run.torch.zeros(s, device="cuda") for s in ((4, 32), (32,), (4, 32)))
        us["torch add"] = _median_us(lambda: run.torch.add(tx, tb, out=tout), calls, run.sync)
    return {"host_us_median": us, "launches_per_call": launches, "calls": calls, "launch_path": kernels.launch_path(),
            "target_met": us["launch (lean)"] <= LAUNCH_TARGET_US, "target": f"launch <= {LAUNCH_TARGET_US} us"}


def _mlp(run: Run, batch: int, sizes: tuple[int, ...]) -> tuple[Any, Any, Any, Any]:
    gd, rng = run.gd, np.random.default_rng(0)
    with gd.use_backend(run.b):
        gd.seed(0)
        layers = [gd.Dense(a, c, activation="relu") for a, c in zip(sizes[:-2], sizes[1:-1])]
        model = gd.Sequential(*layers, gd.Dense(sizes[-2], sizes[-1]))
        loss_fn, opt = gd.SoftmaxCrossEntropy(), gd.Adam(model.parameters(), lr=1e-3)
    X = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    return model, loss_fn, opt, (X, rng.integers(0, sizes[-1], batch))


def syncs_section(run: Run) -> dict[str, Any]:
    """Host syncs of fit per step: the stand-in counts them exactly (dry); on the GPU, the calls that
    read device memory back (to_numpy) or wait for the stream (synchronize) are counted. Dry, the
    stand-in also counts a step's array operations (what CuPy launches besides gpudnn's kernels) and
    allocations."""
    counts, launches = [], []
    for steps in (2, 4):
        model, loss_fn, opt, (X, y) = _mlp(run, 8 * steps, (12, 16, 4))
        with run.gd.use_backend(run.b):
            before = run.b.launches
            counts.append(_count_events(run, lambda m=model, f=loss_fn, o=opt, X=X, y=y: run.gd.fit(
                m, f, o, X, y, epochs=1, batch_size=8, progress=False)))
            launches.append(run.b.launches - before)
    per_step = {name: (counts[1][name] - counts[0][name]) / 2 for name in counts[0]}
    per_step["kernel_launches"] = (launches[1] - launches[0]) / 2
    return {"syncs_per_step": per_step["syncs"], "per_step": per_step, "target_met": per_step["syncs"] <= 1,
            "target": "<= 1 sync"}


def _count_events(run: Run, fn: Callable[[], Any]) -> dict[str, int]:
    """Host syncs while fn runs and, on the stand-in, its array operations and allocations."""
    if run.dry:
        from gpudnn.backend.standin import ALLOCATIONS, ARRAY_OPS, SYNCS

        with SYNCS.counting() as syncs, ARRAY_OPS.counting() as ops, ALLOCATIONS.counting() as allocations:
            fn()
        return {"syncs": syncs.count, "array_ops": ops.count, "allocations": allocations.count}
    return {"syncs": _count_syncs(run, fn)}


def _count_syncs(run: Run, fn: Callable[[], Any]) -> int:
    b, count = run.b, [0]
    to_numpy, synchronize = b.to_numpy, b.synchronize

    def counted(f: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return f(*args, **kwargs)
        return wrapper

    b.to_numpy, b.synchronize = counted(to_numpy), counted(synchronize)
    try:
        fn()
    finally:
        del b.to_numpy, b.synchronize
    return count[0]


def mlp_section(run: Run) -> dict[str, Any]:
    """The bare step (forward, loss, backward, Adam) against PyTorch's; then the step as fit runs it, with
    its one readback (the step's summary), against PyTorch's with ``loss.item()``."""
    sizes = (12, 16, 16, 4) if run.dry else (784, 1024, 1024, 10)
    rows = []
    for batch in ((8,) if run.dry else (256, 4096)):
        model, loss_fn, opt, (X, y) = _mlp(run, batch, sizes)
        x, yd = run.b.asarray(X), run.b.asarray(y)
        summary = run.b.zeros((4,), np.float64)

        def step(model: Any = model, loss_fn: Any = loss_fn, opt: Any = opt, x: Any = x, yd: Any = yd,
                 summary: Any = None) -> None:
            logits = model.forward(x, train=True)
            loss, dlogits = loss_fn.forward_backward(logits, yd, checked=True)
            model.backward(dlogits, overwrite_dy=True)
            if summary is not None:  # as fit: the loss and the gradient's norm read back before the update
                run.b.to_numpy(opt.sums(loss, out=summary))
            opt.step()
            opt.zero_grad()

        def step_read(step: Any = step, summary: Any = summary) -> None:
            step(summary=summary)

        before = run.b.launches
        step()
        launches = run.b.launches - before
        fns = {"gpudnn": step, "gpudnn_read": step_read}
        if run.torch is not None:
            from benchmarks.bench_mlp import torch_step

            fns["torch"] = torch_step("cuda", batch, sizes)
            fns["torch_read"] = torch_step("cuda", batch, sizes, read_loss=True)
        t = run.time(fns, rounds=21)
        row = {"batch": batch, "gpudnn_ms": t["gpudnn"] * 1e3, "gpudnn_read_ms": t["gpudnn_read"] * 1e3,
               "launches_per_step": launches}
        if "torch" in t:
            row |= {"torch_ms": t["torch"] * 1e3, "torch_ratio": t["gpudnn"] / t["torch"],
                    "torch_read_ms": t["torch_read"] * 1e3, "read_ratio": t["gpudnn_read"] / t["torch_read"]}
            row["target_met"] = row["torch_ratio"] <= 1.0
        rows.append(row)
    return {"rows": rows, "target": "<= 1.0x PyTorch eager CUDA (fused Adam)"}


def pca_section(run: Run) -> dict[str, Any]:
    n, d, k = (400, 24, 3) if run.dry else (1_000_000, 784, 50)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((n, 64), dtype=np.float32) @ rng.standard_normal((64, d), dtype=np.float32)
         + 0.1 * rng.standard_normal((n, d), dtype=np.float32))
    Xd = run.b.asarray(X)
    with run.gd.use_backend(run.b):
        run.gd.PCA(k).fit(Xd[: min(n, 4096)])  # warm-up: compile and plan on a slice
        run.sync()
        t0 = time.perf_counter()
        ours = run.gd.PCA(k).fit(Xd)
        run.sync()
        seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"shape": [n, d], "k": k, "gpudnn_s": seconds}
    if not run.dry:
        from sklearn.decomposition import PCA as SkPCA

        t0 = time.perf_counter()
        theirs = SkPCA(k).fit(X)
        out["sklearn_s"] = time.perf_counter() - t0
        out["speedup"] = out["sklearn_s"] / seconds
        out["target_met"] = out["speedup"] >= 10
        ratio = run.b.to_numpy(ours.explained_variance_) / theirs.explained_variance_
        out["explained_variance_max_rel_diff"] = float(np.max(np.abs(ratio - 1)))
        if out["explained_variance_max_rel_diff"] > 1e-3:
            raise AssertionError(f"PCA disagrees with scikit-learn: {out}")
    return out


def sanitizer_section(run: Run) -> dict[str, Any]:
    tool = shutil.which("compute-sanitizer")
    if run.dry or tool is None:
        return {"status_detail": "skipped: " + ("dry run" if run.dry else "compute-sanitizer not on PATH")}
    cmd = [tool, "--tool", "memcheck", "--error-exitcode", "3", sys.executable, "-m", "pytest", "-q", "-x",
           "-p", "no:cacheprovider", "tests/test_bias_act.py"]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=max(run.left() - 10, 10), env=env)
    except subprocess.TimeoutExpired:
        return {"status_detail": "stopped at the end of the budget (partial)"}
    if out.returncode != 0:
        raise RuntimeError(f"memcheck exited {out.returncode}: {(out.stdout + out.stderr)[-800:]}")
    return {"command": " ".join(cmd)}


SECTIONS: list[tuple[str, Callable[[Run], dict[str, Any]], float]] = [
    ("tests", tests_section, 150), ("bandwidth", bandwidth_section, 25), ("launch", launch_section, 10),
    ("syncs", syncs_section, 5), ("mlp", mlp_section, 20), ("pca", pca_section, 40),
    ("sanitizer", sanitizer_section, 30),
]


# --------------------------------------------------------------------------- report


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else str(v)


def summary(results: dict[str, Any]) -> str:
    lines = [f"# gpu_check {'(dry run, CPU)' if results['dry_run'] else ''}", "",
             f"machine: {results['machine'].get('gpu') or results['machine'].get('cpu', '?')}", "",
             "| section | status | seconds | figures |", "|---|---|---|---|"]
    for name, entry in results["sections"].items():
        figures = {k: v for k, v in entry.items() if k not in ("status", "seconds", "rows", "traceback", "tail",
                                                                 "gpu_marked", "kernel_tests", "command")}
        lines.append(f"| {name} | {entry['status']} | {entry.get('seconds', '')} | "
                     + ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items()) + " |")
        for row in entry.get("rows", []):
            lines.append("|  |  |  | " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items()) + " |")
    return "\n".join(lines) + "\n"


def failed(results: dict[str, Any], strict_targets: bool) -> list[str]:
    bad = [n for n, e in results["sections"].items() if e["status"] == "failed"]
    if strict_targets:
        for name, entry in results["sections"].items():
            rows = entry.get("rows", []) + [entry]
            if any(r.get("target_met") is False for r in rows):
                bad.append(f"{name} (target)")
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for gpu_check.json and summary.md")
    parser.add_argument("--dry-run", action="store_true", help="the same run on the CPU: stand-in, tiny sizes")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for the whole run (default 280)")
    parser.add_argument("--strict-targets", action="store_true", help="exit 1 when a speed target is missed too")
    parser.add_argument("--only", nargs="*", default=None, help="run only these sections")
    args = parser.parse_args(argv)
    if args.dry_run and os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"  # before numba is imported (Run imports gpudnn)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Run(args.dry_run, args.budget)
    for name, fn, need_s in SECTIONS:
        if args.only is None or name in args.only:
            run.section(name, fn, need_s)
    run.results["total_seconds"] = round(time.perf_counter() - run.started, 2)
    (out / "gpu_check.json").write_text(json.dumps(run.results, indent=2, default=str))
    (out / "summary.md").write_text(summary(run.results))
    print(summary(run.results))
    bad = failed(run.results, args.strict_targets)
    if bad:
        print(f"[gpu_check] FAILED: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
