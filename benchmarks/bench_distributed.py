"""Data parallelism on MPI: gpudnn's gradient allreduce against mpi4py's, and MLP samples/s on 1 and 2 ranks.

- ``allreduce``: the flat gradient arena of the MLP 784-1024-1024-10 (1,863,690 float32 values) summed
  over 2 ranks, by gpudnn (``DataParallel.reduce_gradients``: one allreduce of the whole arena) and by
  mpi4py's raw ``Comm.Allreduce(IN_PLACE, ...)`` on a buffer of the same bytes, interleaved in one run
  (a barrier before each call, so both ranks start together). ``vs_mpi`` is gpudnn's median over
  mpi4py's; ``busbw_gbps`` is NCCL's bus bandwidth convention, bytes * 2 (n - 1) / n per second.
  On the cupy backend with several GPUs the same row measures the NCCL path.
- ``step``: samples per second of the MLP's full training step (Adam, batch 256 in all): one process
  with the machine's default threads and with one BLAS thread, and 2 ranks of batch 128 with one BLAS
  thread each (``init()`` sizes the threads), the ranks' step including the gradient allreduce.

Every measurement runs in processes started by ``mpiexec`` from the Python's folder (MPICH): the
ranks' thread pools then start the way a user's job starts them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness

SIZES = (784, 1024, 1024, 10)
QUICK_SIZES = (64, 32, 10)
GLOBAL_BATCH = 256
COLUMNS = ["kind", "ranks", "blas_threads", "path", "floats", "batch_per_rank", "gpudnn_ms", "mpi_ms", "vs_mpi",
           "busbw_gbps", "samples_per_s"]
ROOT = Path(__file__).resolve().parent.parent


def _model(sizes: tuple[int, ...], batch: int) -> tuple[Any, Any, Any, Any, Any]:
    import gpudnn as gd

    gd.seed(0)
    layers = [gd.Dense(a, c, activation="relu") for a, c in zip(sizes[:-2], sizes[1:-1])]
    model = gd.Sequential(*layers, gd.Dense(sizes[-2], sizes[-1]))
    opt = gd.Adam(model.parameters(), lr=1e-3)
    b = model.backend
    rng = np.random.default_rng(0)
    x = b.asarray(rng.standard_normal((batch, sizes[0])), dtype=np.float32)
    y = b.asarray(rng.integers(0, sizes[-1], batch))
    return model, opt, gd.SoftmaxCrossEntropy(), x, y


def _rank_main(out: str, quick: bool) -> None:
    """What each rank runs: the allreduce comparison (2 ranks or more), then the step."""
    from mpi4py import MPI

    from gpudnn import distributed as dist

    ctx = dist.init()
    comm, sizes = ctx.comm, QUICK_SIZES if quick else SIZES
    rounds = 5 if quick else 41
    batch = GLOBAL_BATCH // ctx.size
    model, opt, loss_fn, x, y = _model(sizes, batch)
    dp = dist.DataParallel(ctx, model, opt, batch * ctx.size) if ctx.size > 1 else None
    rows = []
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or str(ctx.threads.get("blas", "default"))

    def aligned(fn: Any) -> Any:
        def call() -> None:
            comm.Barrier()
            fn()
        return call

    if dp is not None:
        raw = np.zeros_like(dp.collectives.backend.to_numpy(opt.arena.grad))
        samples = harness.interleaved_samples(
            {"gpudnn": aligned(dp.reduce_gradients),
             "mpi": aligned(lambda: comm.Allreduce(MPI.IN_PLACE, raw, op=MPI.SUM)),
             "barrier": aligned(lambda: None)}, rounds=rounds, warmup=3)
        t = harness.medians(samples)
        nbytes = raw.nbytes
        rows.append({"kind": "allreduce", "ranks": ctx.size, "blas_threads": threads, "path": dp.collectives.path,
                     "floats": int(raw.size), "gpudnn_ms": (t["gpudnn"] - t["barrier"]) * 1e3,
                     "mpi_ms": (t["mpi"] - t["barrier"]) * 1e3,
                     "vs_mpi": harness.paired_ratio(samples, "gpudnn", "mpi"),
                     "busbw_gbps": nbytes * 2 * (ctx.size - 1) / ctx.size / (t["gpudnn"] - t["barrier"]) / 1e9})

    def step() -> None:
        logits = model.forward(x, train=True)
        _, dlogits = loss_fn.forward_backward(logits, y)
        model.backward(dlogits, overwrite_dy=True)
        if dp is not None:
            dp.reduce_gradients()
        opt.step(dp.grad_scale if dp is not None else 1.0)
        opt.zero_grad()

    t = harness.interleaved({"step": aligned(step)}, rounds=rounds, warmup=3)["step"]
    rows.append({"kind": "step", "ranks": ctx.size, "blas_threads": threads,
                 "path": dp.collectives.path if dp is not None else "-", "batch_per_rank": batch,
                 "gpudnn_ms": t * 1e3, "samples_per_s": batch * ctx.size / t})
    if ctx.is_main:
        Path(out).write_text(json.dumps(rows))


def _launch(ranks: int, quick: bool, env: dict[str, str]) -> list[dict[str, Any]]:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        raise RuntimeError(f"no mpiexec next to {sys.executable}: pip install 'gpudnn[mpi]'")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        full_env = {**{k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}, **env,
                    "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "mpi4py", "-m", "benchmarks.bench_distributed",
               "--rank", str(out)] + (["--quick"] if quick else [])
        run = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=900)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr}")
        return json.loads(out.read_text())


def run(quick: bool = False) -> dict[str, Any]:
    one_thread = {"OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    rows = _launch(1, quick, {}) + _launch(1, quick, one_thread) + _launch(2, quick, {})
    steps = {(r["ranks"], r["blas_threads"]): r["samples_per_s"] for r in rows if r["kind"] == "step"}
    two = next(v for (n, _), v in steps.items() if n == 2)
    reduce_row = next(r for r in rows if r["kind"] == "allreduce")
    summary = {
        "allreduce: gpudnn over raw mpi4py Allreduce (paired median)": round(reduce_row["vs_mpi"], 3),
        "2 ranks x 1 thread over 1 process, default threads (samples/s)": round(two / steps[1, "default"], 3),
        "2 ranks x 1 thread over 1 process x 1 thread (samples/s)": round(two / steps[1, "1"], 3),
    }
    return {"sizes": list(QUICK_SIZES if quick else SIZES), "global_batch": GLOBAL_BATCH, "rows": rows,
            "load_average_1min": os.getloadavg()[0],  # other work on the machine meanwhile
            "summary": summary, "gpu": harness.gpu_available()}


if __name__ == "__main__":
    if "--rank" in sys.argv:
        _rank_main(sys.argv[sys.argv.index("--rank") + 1], "--quick" in sys.argv)
    else:
        harness.main("distributed", run, COLUMNS,
                     lambda r: f"data parallelism on MPI, MLP {'-'.join(map(str, r['sizes']))}, global batch 256")
