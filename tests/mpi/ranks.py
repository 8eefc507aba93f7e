"""Scenarios that the data-parallel tests run on every rank under ``mpiexec -n 2 python -m mpi4py``.

    python -m mpi4py tests/mpi/ranks.py SCENARIO OUT_DIR [BACKEND]

Each rank writes what it saw to OUT_DIR/<scenario>.rank<r>.npz (arrays) or .json (messages).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

import gpudnn as gd
from gpudnn import distributed as dist

B, STEPS_PER_EPOCH, EPOCHS = 8, 10, 3  # 30 Adam steps with 2 ranks x batch B
MARK, POISONED = 1e3, 37  # the sample whose training forward turns NaN (see Poison)


class Poison(gd.Layer):
    """Passes x on, except rows whose first feature is MARK, which become NaN in a training forward (the
    data itself must be finite, so this is how a NaN reaches the loss and gradients of one batch)."""

    def forward(self, x, train=False):
        out = x.copy()
        if train:
            out[x[:, 0] == MARK] = np.nan
        return out

    def backward(self, dy, *, overwrite_dy=False):
        return None

    def config(self):
        return {"type": "Poison"}


def problem(seed: int = 0, width: int = 16, n: int | None = None, poison: bool = False) -> tuple:
    """A small float64 MLP (no dropout), its Adam optimizer and a classification data set; with
    ``poison``, sample POISONED makes its batch's loss and gradients NaN."""
    gd.seed(seed)
    layers = [gd.Dense(5, width, "tanh", dtype=np.float64), gd.Dense(width, 3, dtype=np.float64)]
    model = gd.Sequential(*([Poison()] if poison else []), *layers)
    opt = gd.Adam(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(1)
    n = 2 * B * STEPS_PER_EPOCH if n is None else n
    X, y = rng.normal(size=(n, 5)), rng.integers(0, 3, n)
    if poison:
        X[POISONED, 0] = MARK
    return model, opt, X, y


def equivalence_run(backend: str) -> tuple[int, int, gd.Loss, bool]:
    """(epochs, samples, loss, one-hot targets) of the equivalence check: 30 steps of softmax
    cross-entropy; 6 steps of binary cross-entropy in the CUDA simulator, whose kernels run thread by
    thread in Python (softmax cross-entropy takes seconds a launch there)."""
    if backend == "cudasim":
        return 2, 2 * B * 3, gd.BinaryCrossEntropy(), True
    return EPOCHS, 2 * B * STEPS_PER_EPOCH, gd.SoftmaxCrossEntropy(), False


def train_equivalence(backend: str, batch_size: int) -> tuple[gd.Sequential, gd.History]:
    """The model of the equivalence check trained with ``batch_size`` per process."""
    epochs, n, loss, one_hot = equivalence_run(backend)
    model, opt, X, y = problem(n=n)
    history = gd.fit(model, loss, opt, X, np.eye(3)[y] if one_hot else y, epochs=epochs, batch_size=batch_size,
                     progress=dist.is_main())
    return model, history


def weights(model: gd.Sequential) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in model.state_dict().items()}


def write(out: Path, name: str, rank: int, **what: object) -> None:
    if all(isinstance(v, np.ndarray) for v in what.values()):
        np.savez(out / f"{name}.rank{rank}.npz", **what)
    else:
        (out / f"{name}.rank{rank}.json").write_text(json.dumps(what))


def caught(fn: object) -> dict[str, str]:
    try:
        fn()
    except Exception as exc:
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "none", "message": ""}


def main(scenario: str, out: Path, backend: str = "numpy") -> None:
    gd.set_backend(backend)
    if scenario == "init_after_fit":
        model, opt, X, y = problem()
        gd.fit(model, gd.SoftmaxCrossEntropy(), opt, X, y, epochs=1, batch_size=B, progress=False)
        write(out, scenario, int(os.environ.get("PMI_RANK", "0")), **caught(dist.init))
        return
    ctx = dist.init()
    loss = gd.SoftmaxCrossEntropy()
    if scenario == "crash":
        if ctx.rank == 1:
            raise ValueError("rank 1 fails on purpose")
        model, opt, X, y = problem()
        gd.fit(model, loss, opt, X, y, epochs=EPOCHS, batch_size=B, progress=False)
        return
    if scenario == "nan_raise":
        model, opt, X, y = problem(poison=True)
        result = caught(lambda: gd.fit(model, loss, opt, X, y, epochs=1, batch_size=B, shuffle=False,
                                       progress=False))
        write(out, scenario, ctx.rank, **result)
        raise gd.NonFiniteError(result["message"])  # uncaught: the job must end, non-zero
    if scenario == "equivalence":
        model, history = train_equivalence(backend, B)
        write(out, "collectives", ctx.rank, path=ctx.collectives().path)
        write(out, scenario, ctx.rank, loss=np.array(history["loss"]), accuracy=np.array(history["accuracy"]),
              **weights(model))
        return
    if scenario == "suite":  # several checks in one launch (each launch compiles the kernels anew)
        model, opt, X, y = problem(poison=True)
        history = gd.fit(model, loss, opt, X, y, epochs=1, batch_size=B, shuffle=False, on_nonfinite="skip",
                         progress=False)
        write(out, "nan_skip", ctx.rank, skipped=np.array(history.skipped_steps), **weights(model))
        model, opt, X, y = problem(width=16 + ctx.rank)
        write(out, "models_differ", ctx.rank, **caught(lambda: gd.fit(model, loss, opt, X, y, epochs=1,
                                                                       batch_size=B, progress=False)))
        model, opt, X, y = problem(n=2 * B * STEPS_PER_EPOCH - ctx.rank)
        write(out, "lengths_differ", ctx.rank, **caught(lambda: gd.fit(model, loss, opt, X, y, epochs=1,
                                                                        batch_size=B, progress=False)))
        model, opt, X, y = problem()

        def disk_full_on_rank_0(epoch: int, metrics: dict) -> None:
            if ctx.rank == 0:
                raise OSError(28, "No space left on device")

        history = gd.fit(model, loss, opt, X, y, epochs=3, batch_size=B, progress=False,
                         on_epoch_end=disk_full_on_rank_0)
        write(out, "save_failed", ctx.rank, epochs=len(history.epochs), stopped_by=str(history.stopped_by))
        gd.seed(5)
        norm = gd.Sequential(gd.Dense(5, 8, dtype=np.float64), gd.BatchNorm1d(8, dtype=np.float64),
                             gd.Activation("relu"), gd.Dropout(0.5), gd.Dense(8, 3, dtype=np.float64))
        _, _, X, y = problem()
        gd.fit(norm, loss, gd.Adam(norm.parameters()), X, y, epochs=2, batch_size=B, progress=False)
        drop = next(layer for layer in norm.layers if isinstance(layer, gd.Dropout))
        probe = np.ones((64, 8))
        mask = np.asarray(drop.forward(gd.get_backend().asarray(probe), train=True)) != 0
        a = np.arange(6, dtype=np.float64) * (ctx.rank + 1)
        dist.allreduce_(a)
        c = np.full(4, float(ctx.rank))
        dist.broadcast_(c)
        write(out, "buffers", ctx.rank, mask=mask, summed=a, broadcast=c, **weights(norm))
        return
    raise SystemExit(f"unknown scenario {scenario!r}")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:])
