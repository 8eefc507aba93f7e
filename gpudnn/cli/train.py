"""`gpudnn train`, `evaluate` and `predict`: an MLP classifier on a dataset, and saved models used again.

Each job takes plain keyword arguments (the command's options), prints human-readable progress and
results, and returns a JSON-able summary, so the parser stays thin.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend as backend_module
from ..backend import get_backend, selection_reason
from ..checkpoint import atomic_write, load_checkpoint, save_checkpoint
from ..data import load_dataset, load_features, standardize
from ..nn.losses import Loss, SoftmaxCrossEntropy
from ..nn.mlp import build_mlp
from ..optim.optimizers import Optimizer
from ..training import EarlyStopping, History, evaluate, fit, predict
from .usage import UsageError


def _scaling(extra: dict[str, Any], dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray] | None:
    s = extra.get("standardize")
    return (np.asarray(s["mean"], dtype), np.asarray(s["std"], dtype)) if s else None


def _write_json(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(payload, indent=2) + "\n").encode()))


def train_job(*, dataset: str = "digits", hidden: Sequence[int] = (256, 128), activation: str = "relu",
              dropout: float = 0.1, norm: str = "none", optimizer: str = "adam", lr: float = 1e-3, epochs: int = 30,
              batch_size: int = 64, l1: float = 0.0, l2: float = 0.0, weight_decay: float = 0.0, seed: int = 0,
              val_fraction: float = 0.1, patience: int | None = None, label: str | None = None, save: str | None = None,
              resume: str | None = None, plot: str | None = None, metrics_json: str | None = None,
              on_nonfinite: str = "raise", quiet: bool = False, matmul_precision: str = "highest") -> dict[str, Any]:
    """Train an MLP classifier on a dataset and report test accuracy, wall time and backend."""
    started = time.perf_counter()
    backend_module.set_matmul_precision(matmul_precision)
    backend_module.seed(seed)
    b = get_backend()
    options = {"label": label} if label is not None else {}
    data = load_dataset(dataset, seed=seed, **options)
    if data.n_classes is None or data.n_classes < 2:
        raise UsageError(f"dataset {dataset!r} has no class labels to train a classifier on")
    if not 0 <= val_fraction < 0.5:
        raise UsageError(f"--val-fraction must be in [0, 0.5), got {val_fraction}")
    X_train, X_test, mean, std = standardize(data.X_train, data.X_test)
    n_val = int(round(len(X_train) * val_fraction))
    split = np.random.default_rng(seed).permutation(len(X_train))
    val_idx, fit_idx = split[:n_val], split[n_val:]
    validation = (X_train[val_idx], data.y_train[val_idx]) if n_val else None
    loss_fn = SoftmaxCrossEntropy()
    initial_epoch, history_before = 0, []
    if resume:
        ckpt = load_checkpoint(resume, with_optimizer=True)
        model, opt = ckpt.model, ckpt.optimizer
        if ckpt.model.in_features != data.n_features or ckpt.model.out_features != data.n_classes:
            raise UsageError(f"--resume {resume} was trained for {ckpt.model.in_features} features and "
                             f"{ckpt.model.out_features} classes, not this dataset's {data.n_features} and "
                             f"{data.n_classes}")
        initial_epoch = int(ckpt.epoch or 0)
        history_before = ckpt.extra.get("history", [])
        if not quiet:
            print(f"resumed from {resume} after epoch {initial_epoch}", file=sys.stderr)
    else:
        optimizer_type = Optimizer.named(optimizer)
        model = build_mlp(data.n_features, list(hidden), data.n_classes, activation, dropout, norm)
        regularization = {"l1": l1, "l2": l2}
        if weight_decay or optimizer_type.__name__ == "AdamW":
            regularization["weight_decay"] = weight_decay
        opt = optimizer_type(model.parameters(), lr=lr, **regularization)
    extra = {"dataset": dataset, "seed": seed, "label": label,
             "standardize": {"mean": mean.tolist(), "std": std.tolist()}, "n_classes": data.n_classes}
    epochs_log = list(history_before)

    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        epochs_log.append(metrics)
        if save:
            save_checkpoint(save, model, opt, epoch=epoch + 1, loss=loss_fn, extra={**extra, "history": epochs_log})

    stopper = EarlyStopping("val_loss", patience=patience) if patience is not None and validation else None
    history = fit(model, loss_fn, opt, X_train[fit_idx], data.y_train[fit_idx], epochs=epochs, batch_size=batch_size,
                  validation_data=validation, progress=not quiet, early_stopping=stopper,
                  initial_epoch=initial_epoch, on_epoch_end=on_epoch_end, on_nonfinite=on_nonfinite)
    test = evaluate(model, loss_fn, X_test, data.y_test)
    if save and stopper is not None and stopper.restore_best:  # the restored best weights are what was tested
        save_checkpoint(save, model, opt, epoch=initial_epoch + len(history.epochs), loss=loss_fn,
                        extra={**extra, "history": epochs_log})
    wall = time.perf_counter() - started
    summary = {"dataset": dataset, "test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "epochs_run": len(history.epochs), "wall_time_s": wall, "backend": b.name,
               "backend_reason": selection_reason(b), "model": model.config(),
               "optimizer": {"type": type(opt).__name__, **opt.hyper()}, "history": epochs_log,
               "stopped_early": history.stopped_early, "skipped_steps": history.skipped_steps}
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({len(data.y_test)} samples of {dataset})")
    print(f"wall time {wall:.1f} s  backend {b.name} ({selection_reason(b)})")
    if plot:
        from .plots import training_curves

        training_curves(History(epochs=epochs_log), plot, title=f"gpudnn MLP on {dataset}")
        print(f"curves written to {plot}")
    if metrics_json:
        _write_json(metrics_json, summary)
    return summary


def _checkpoint_dataset(extra: dict[str, Any], dataset: str | None, label: str | None) -> Any:
    """The dataset a checkpoint's model was trained on (or ``dataset``), split with the same seed."""
    name = dataset or extra.get("dataset")
    if not name:
        raise UsageError("--dataset is required: the checkpoint does not record one")
    lab = label if label is not None else extra.get("label")
    return load_dataset(name, seed=int(extra.get("seed", 0)), **({"label": lab} if lab is not None else {}))


def evaluate_job(*, model: str, dataset: str | None = None, label: str | None = None,
                 split: str = "test") -> dict[str, Any]:
    """Accuracy and loss of a saved model on a dataset split, with the model's own preprocessing."""
    ckpt = load_checkpoint(model, restore_rng=False)
    extra = ckpt.extra
    data = _checkpoint_dataset(extra, dataset, label)
    X, y = (data.X_test, data.y_test) if split == "test" else (data.X_train, data.y_train)
    scaling = _scaling(extra)
    if scaling is not None:
        X = (X - scaling[0]) / scaling[1]
    loss_cfg = dict(ckpt.meta.get("loss") or {"type": "SoftmaxCrossEntropy"})
    loss_fn = Loss.named(loss_cfg.pop("type"))(**loss_cfg)
    result = evaluate(ckpt.model, loss_fn, X, y)
    print(f"{split} accuracy {result.get('accuracy', float('nan')):.4f}  {split} loss {result['loss']:.4f}  "
          f"({len(y)} samples of {data.name})")
    return {"dataset": data.name, "split": split, **result}


def predict_job(*, model: str, input: str, output: str | None = None, label: str | None = None) -> np.ndarray:
    """Class predictions of a saved model for the samples in a file (.npz X, .csv, .npy)."""
    ckpt = load_checkpoint(model, restore_rng=False)
    extra = ckpt.extra
    X = load_features(input, label=label)
    scaling = _scaling(extra)
    if scaling is not None:
        if X.shape[1] != len(scaling[0]):
            raise UsageError(f"--input {input} has {X.shape[1]} features, the model expects {len(scaling[0])}")
        X = (X - scaling[0]) / scaling[1]
    classes = predict(ckpt.model, X).argmax(axis=1)
    if output:
        atomic_write(output, lambda f: f.write(("\n".join(map(str, classes)) + "\n").encode()))
        print(f"{len(classes)} predictions written to {output}")
    else:
        print("\n".join(map(str, classes)))
    return classes
