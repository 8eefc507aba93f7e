"""The training loop: ``fit``, ``evaluate``, ``predict`` and early stopping.

``fit`` validates the data once and moves it to the backend once (host data is checked on the host;
data already on the device is checked there, with one flag read back), then shuffles and slices
batches there into reused buffers. Every step reads back, in one host sync, its summary: the loss, the
number of right predictions, the squared gradient norm (which also tells whether every gradient is
finite) and the sums of the L1/L2 penalty (kernels.arena). A non-finite step stops training with the
epoch and step (or is skipped, on request) before it can touch the parameters. The epoch's metrics
then add up on the host; ``evaluate`` sums on the device and reads back once.
"""

from __future__ import annotations

import functools
import math
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from .. import checks
from ..distributed import DataParallel, data_parallel
from ..nn.losses import Loss
from ..nn.sequential import Sequential
from ..nn.workspace import Workspace
from ..optim.optimizers import Optimizer
from ..optim.schedules import Schedule
from .history import EarlyStopping, History
from .progress import ProgressBar


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or Inf loss or gradient."""


class DeviceMemoryError(MemoryError):
    """The backend ran out of memory during training."""


def _refuse_foreign_device_array(name: str, a: Any, model: Sequential) -> None:
    """A device array of another backend (a CuPy array given to a NumPy-backend model) is refused with how
    to move it."""
    b = model.backend
    if not b.is_array(a) and not isinstance(a, np.ndarray) and hasattr(a, "__cuda_array_interface__"):
        raise TypeError(f"{name} is a {type(a).__module__}.{type(a).__name__} in GPU memory, but the model runs on "
                        f"the {b.name!r} backend: copy it to the host first ({name}.get() or cupy.asnumpy({name})), "
                        "or build and train the model under gpudnn.use_backend('cupy')")


def _on_device(a: Any, model: Sequential) -> bool:
    """Whether ``a`` is an array of the model's backend in device memory (not a NumPy array)."""
    return model.backend.is_array(a) and not isinstance(a, np.ndarray)


def _host_features(name: str, X: Any, model: Sequential) -> np.ndarray:
    _refuse_foreign_device_array(name, X, model)
    X = model.backend.to_numpy(X) if _on_device(X, model) else X
    return checks.features(name, X, width=model.in_features, dtype=model.parameters()[0].data.dtype)


def _device_features(name: str, X: Any, model: Sequential) -> Any:
    """Device features in the model's dtype, their shape and dtype checked as checks.features does (their
    values are checked by the caller, on the device)."""
    checks.feature_shape(name, X, width=model.in_features)
    return model.backend.xp.ascontiguousarray(X.astype(model.parameters()[0].data.dtype, copy=False))


def _check_length(name: str, X: Any, y_name: str, y: Any) -> None:
    if y.ndim == 0 or len(y) != len(X):
        raise ValueError(f"{y_name} must have one target per sample: {name} has {len(X)} rows, {y_name} has "
                         f"{tuple(y.shape)}")


def prepare_data(model: Sequential, loss_fn: Loss, X: Any, y: Any, name: str = "X") -> tuple[Any, Any]:
    """Validate features and targets and move them to the model's backend once. Host data is checked on
    the host; when X is already on the device, X and y are checked there with one flag read back (and
    only when that flag says something is wrong are they copied to the host, where the checks say what)."""
    y_name = name.replace("X", "y")
    _refuse_foreign_device_array(name, X, model)
    _refuse_foreign_device_array(y_name, y, model)
    b, dtype = model.backend, model.parameters()[0].data.dtype
    if _on_device(X, model):
        Xd, yd = _device_features(name, X, model), b.asarray(y)  # host targets join X on the device
        _check_length(name, Xd, y_name, yd)
        yd, targets_ok = loss_fn.device_targets(yd, model.out_features, dtype, y_name)
        if all(b.to_numpy(b.xp.stack([b.xp.isfinite(Xd).all(), targets_ok]))):  # the one readback
            return Xd, yd
        X = b.to_numpy(X)  # something is wrong: the host checks say what
    Xh = _host_features(name, X, model)
    yh = b.to_numpy(y) if _on_device(y, model) else np.asarray(y)
    _check_length(name, Xh, y_name, yh)
    yh = loss_fn.check_targets(yh, model.out_features, y_name)
    return b.asarray(Xh, dtype=dtype), b.asarray(yh, dtype=yh.dtype if yh.dtype.kind in "iu" else dtype)


class _Metrics:
    """Loss and accuracy over an epoch or an evaluation pass. fit adds each step's numbers as host floats
    (from the step's one readback); evaluate adds device arrays, which ``result`` reads back at once."""

    def __init__(self, b: Any, loss_fn: Loss) -> None:
        self.b, self.loss_fn, self.xp = b, loss_fn, b.xp
        self.loss_sum: Any = 0.0
        self.hits: Any = 0.0
        self.count = 0

    def add(self, loss: Any, hits: Any, n: int) -> None:
        """Add a batch of ``n`` samples: its mean loss and its hits, host floats or 0-d backend arrays."""
        device = not isinstance(loss, float)
        self.loss_sum = self.loss_sum + (loss.astype(np.float64) if device else loss) * n
        if self.loss_fn.classification:
            self.hits = self.hits + hits
        self.count += n

    def merge_ranks(self, dp: DataParallel) -> None:
        """Sum loss, count and hits over the ranks of a data-parallel job."""
        loss_sum, hits = self._host_sums()
        self.loss_sum, count, self.hits = dp.sum(loss_sum, self.count, hits)
        self.count = int(count)

    def _host_sums(self) -> tuple[float, float]:
        """(loss sum, hits) as host numbers: read back in one host sync where they are device arrays."""
        if isinstance(self.loss_sum, float) and isinstance(self.hits, float):
            return self.loss_sum, self.hits
        both = self.xp.stack([self.xp.asarray(v, dtype=np.float64).reshape(()) for v in (self.loss_sum, self.hits)])
        loss_sum, hits = (float(v) for v in self.b.to_numpy(both))
        return loss_sum, hits

    def result(self, prefix: str = "") -> dict[str, float]:
        loss_sum, hits = self._host_sums()
        out = {f"{prefix}loss": loss_sum / max(self.count, 1)}
        if self.loss_fn.classification:
            out[f"{prefix}accuracy"] = round(hits) / max(self.count, 1)
        return out


class _Step:
    """What one training step reads back, in its one host sync (see ``read``)."""

    def __init__(self, b: Any, optimizer: Optimizer, classification: bool) -> None:
        self.b, self.optimizer = b, optimizer
        self.summary = b.zeros((5,), np.float64)  # loss, sum g^2, sum |p|, sum p^2 (kernels.arena), hits
        self.hits = self.summary[4:] if classification else None  # where the loss writes the batch's hits

    def read(self, loss: Any) -> tuple[float, float, bool, float | None]:
        """(the loss with the optimizer's penalty, the batch's hits, whether the loss and every gradient are
        finite, the global gradient norm when the optimizer clips, else None) after the backward pass."""
        optimizer = self.optimizer
        optimizer.sums(loss, out=self.summary[:4])
        loss_value, squares, abs_sum, square_sum, hits = (float(v) for v in self.b.to_numpy(self.summary))
        loss_value += optimizer.penalty_of(abs_sum, square_sum)
        finite = math.isfinite(loss_value) and math.isfinite(squares)
        if math.isfinite(loss_value) and not finite:  # a float64 gradient beyond 1e154 also overflows squares
            finite = bool(self.b.xp.isfinite(optimizer.arena.grad).all())
        norm = math.sqrt(squares) if optimizer.max_grad_norm is not None and finite else None
        return loss_value, hits, finite, norm


def _explain_out_of_memory(fn: Callable[..., History]) -> Callable[..., History]:
    """Turn a backend's out-of-memory error inside ``fit`` into one that suggests a smaller batch."""

    @functools.wraps(fn)
    def wrapper(model: Sequential, *args: Any, **kwargs: Any) -> History:
        try:
            return fn(model, *args, **kwargs)
        except Exception as exc:
            if not model.backend.is_out_of_memory(exc):
                raise
            raise DeviceMemoryError(
                f"out of {model.backend.name} memory while training with batch_size={kwargs.get('batch_size', 128)}: "
                f"try a smaller batch size (gpudnn.backend.free_memory() releases cached blocks); cause: {exc}"
            ) from exc

    return wrapper


@_explain_out_of_memory
def fit(model: Sequential, loss_fn: Loss, optimizer: Optimizer, X: Any, y: Any, *, epochs: int = 10,
        batch_size: int = 128, validation_data: tuple[Any, Any] | None = None, shuffle: bool = True,
        progress: bool = True, schedule: Schedule | None = None, early_stopping: EarlyStopping | None = None,
        on_nonfinite: str = "raise", initial_epoch: int = 0,
        on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
        stream: TextIO | None = None) -> History:
    """Train ``model`` on (X, y) with minibatches; returns the per-epoch History.

    on_nonfinite: "raise" stops with NonFiniteError naming the epoch and step (parameters and
    buffers such as BatchNorm's running statistics keep their last finite values); "skip" drops
    the offending batch, with what its forward pass did to the buffers, and goes on.
    on_epoch_end(epoch, metrics) runs after each epoch (e.g. to save a checkpoint); an OSError from it
    (a full disk, a read-only folder) stops training cleanly: that epoch stays in the History, a line
    with its metrics and the error goes to ``stream`` (stderr), and ``History.stopped_by`` holds the error.
    After gpudnn.distributed.init() in a job of several ranks, every rank calls fit with the same
    arguments and they train one model data-parallel (gpudnn.distributed.data_parallel):
    ``batch_size`` is per rank, the metrics are over all ranks, only rank 0 shows progress, and
    on_epoch_end runs on every rank (write files where gpudnn.distributed.is_main()); when it fails
    on one rank, every rank stops after that epoch.
    The training loss includes the optimizer's L1/L2 penalty (see optimizers); the validation
    loss is the data loss alone. Running out of (GPU) memory raises DeviceMemoryError.
    """
    batch_size = checks.positive_int("batch_size", batch_size)
    epochs = checks.integer("epochs", epochs, low=0)
    initial_epoch = checks.integer("initial_epoch", initial_epoch, low=0, high=epochs)
    on_nonfinite = checks.choice("on_nonfinite", on_nonfinite, ("raise", "skip"))
    stale = [p.name for p in optimizer.params if not p.trainable]
    if stale:
        raise ValueError(f"parameters {stale} were frozen after the optimizer was built: build it again")
    b = model.backend
    Xd, yd = prepare_data(model, loss_fn, X, y)
    val = prepare_data(model, loss_fn, *validation_data, name="X_val") if validation_data is not None else None
    n = Xd.shape[0]
    dp = data_parallel(model, optimizer, n)
    if dp is not None:
        dp.start({"X": Xd, "y": yd, "X_val": val and val[0], "y_val": val and val[1]},
                 {"samples": n, "batch_size": batch_size, "epochs": epochs, "initial_epoch": initial_epoch,
                  "shuffle": shuffle, "on_nonfinite": on_nonfinite, "schedule": schedule is not None,
                  "early_stopping": early_stopping is not None})
        progress = progress and dp.is_main
    world, n_local = (dp.size, dp.samples_per_rank) if dp is not None else (1, n)
    steps_per_epoch = -(-n_local // batch_size)
    ws, base_lr, history = Workspace(), optimizer.lr, History()
    buffers = [buf for _, buf in model.named_buffers()]  # a training forward updates them in place
    last_finite = [b.xp.empty_like(buf) for buf in buffers]
    step_summary = _Step(b, optimizer, loss_fn.classification)
    optimizer.zero_grad()  # gradients left from before fit must not leak into the first step
    for epoch in range(initial_epoch, epochs):
        order = b.permutation(n) if shuffle else b.xp.arange(n)
        order = dp.shard(order) if dp is not None else order
        bar = ProgressBar(epoch + 1, epochs, n_local * world, stream=stream, enabled=progress)
        metrics = _Metrics(b, loss_fn)
        for step in range(steps_per_epoch):
            idx = order[step * batch_size:(step + 1) * batch_size]
            xb = b.xp.take(Xd, idx, axis=0, out=ws.get(b, "x", (len(idx),) + Xd.shape[1:], Xd.dtype))
            yb = b.xp.take(yd, idx, axis=0, out=ws.get(b, "y", (len(idx),) + yd.shape[1:], yd.dtype))
            if schedule is not None:
                optimizer.lr = base_lr * schedule(epoch + step / steps_per_epoch)
            for kept, buf in zip(last_finite, buffers):
                kept[...] = buf
            logits = model.forward(xb, train=True)
            loss, dlogits = loss_fn.forward_backward(logits, yb, checked=True, hits_out=step_summary.hits)
            model.backward(dlogits, overwrite_dy=True)
            if dp is not None:
                dp.reduce_gradients()
            loss_value, hits, finite, grad_norm = step_summary.read(loss)
            if dp is not None:
                finite, bad_ranks = dp.agree(loss_value, finite, buffers)
            if not finite:
                where = f"epoch {epoch + 1}, step {step + 1} of {steps_per_epoch}"
                if dp is not None:
                    where += f" (loss on rank(s) {bad_ranks})" if bad_ranks else " (in the summed gradients)"
                optimizer.zero_grad()
                for kept, buf in zip(last_finite, buffers):
                    buf[...] = kept
                if on_nonfinite == "raise":
                    raise NonFiniteError(f"non-finite loss or gradient at {where} (loss={loss_value}); "
                                         "parameters and buffers keep their last finite values")
                history.skipped_steps += 1
                continue
            step_args: dict[str, float] = {} if grad_norm is None else {"grad_norm": grad_norm}
            if dp is not None:
                step_args["grad_scale"] = dp.grad_scale  # the 1/size of the mean over the ranks
            optimizer.step(**step_args)  # plain step() otherwise, as wrappers of step() expect
            optimizer.zero_grad()
            metrics.add(loss_value, hits, len(idx))
            bar.update(metrics.count * world, metrics.result)
        if dp is not None:
            metrics.merge_ranks(dp)
        result = {**metrics.result(), "lr": optimizer.lr}
        if val is not None:
            validate = functools.partial(evaluate, model, loss_fn, prepared=True, prefix="val_")
            result.update(dp.evaluate(validate, *val) if dp is not None else validate(*val))
        bar.close(metrics.count, {k: v for k, v in result.items() if k != "lr"})
        result["epoch_time"] = time.perf_counter() - bar.start
        history.epochs.append(result)
        if on_epoch_end is not None:
            try:
                on_epoch_end(epoch, result)
            except OSError as exc:  # e.g. a checkpoint that cannot be written: stop, this epoch kept
                history.stopped_by = exc
                shown = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if k not in ("lr", "epoch_time"))
                (stream or sys.stderr).write(f"training stopped after epoch {epoch + 1} ({shown}): {exc}\n")
            if dp is not None and dp.sum(float(history.stopped_by is not None))[0] and history.stopped_by is None:
                history.stopped_by = OSError(f"another rank's on_epoch_end failed after epoch {epoch + 1}")
            if history.stopped_by is not None:
                break
        if early_stopping is not None and early_stopping.update(epoch, result, model):
            history.stopped_early = True
            break
    if early_stopping is not None:
        history.best_epoch = early_stopping.best_epoch
        if early_stopping.restore_best and early_stopping.best_state is not None:
            model.load_state_dict(early_stopping.best_state)
    return history


def evaluate(model: Sequential, loss_fn: Loss, X: Any, y: Any, *, batch_size: int = 1024,
             prepared: bool = False, prefix: str = "") -> dict[str, float]:
    """Mean loss (and accuracy for classification losses) over (X, y), in inference mode."""
    batch_size = checks.positive_int("batch_size", batch_size)
    Xd, yd = (X, y) if prepared else prepare_data(model, loss_fn, X, y)
    b = model.backend
    metrics = _Metrics(b, loss_fn)
    hits = b.zeros((1,), np.float64) if loss_fn.classification else None
    for start in range(0, Xd.shape[0], batch_size):
        xb, yb = Xd[start:start + batch_size], yd[start:start + batch_size]
        logits = model.forward(xb, train=False)
        loss, _ = loss_fn.forward_backward(logits, yb, checked=True, hits_out=hits)
        metrics.add(loss, hits, xb.shape[0])  # summed on the device: one host sync for the whole pass
    return metrics.result(prefix)


def predict(model: Sequential, X: Any, *, batch_size: int = 1024) -> np.ndarray:
    """Model outputs for X (host NumPy), computed in inference mode batch by batch. Device X stays on the
    device (its finiteness read back once) and the outputs come back in one copy."""
    batch_size = checks.positive_int("batch_size", batch_size)
    b = model.backend
    if _on_device(X, model):
        Xd = _device_features("X", X, model)
        if not bool(b.to_numpy(b.xp.isfinite(Xd).all())):
            _host_features("X", b.to_numpy(X), model)  # raises, saying where
        outs = [model.forward(Xd[s:s + batch_size], train=False) for s in range(0, len(Xd), batch_size)]
        return b.to_numpy(b.xp.concatenate(outs))
    Xh = _host_features("X", X, model)
    dtype = model.parameters()[0].data.dtype
    outs = [b.to_numpy(model.forward(b.asarray(Xh[s:s + batch_size], dtype=dtype), train=False))
            for s in range(0, len(Xh), batch_size)]
    return np.concatenate(outs)
