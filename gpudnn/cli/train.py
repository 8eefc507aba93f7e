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
from .. import distributed
from ..backend import get_backend, selection_reason
from ..checkpoint import CheckpointError, atomic_write, load_checkpoint, read_checkpoint, save_checkpoint
from ..data import load_dataset, load_features, standardize
from ..files import check_outputs
from ..nn.losses import Loss, SoftmaxCrossEntropy
from ..nn.mlp import build_mlp
from ..nn.sequential import Sequential
from ..optim.optimizers import Optimizer
from ..training import EarlyStopping, History, evaluate, fit, predict
from .knobs import build_schedule, check_resumed_settings, optimizer_settings
from .plots import check_plot_output
from .reduction import Reduction, describe, fit_reduction
from .usage import UsageError


def _scaling(extra: dict[str, Any], dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray] | None:
    s = extra.get("standardize")
    return (np.asarray(s["mean"], dtype), np.asarray(s["std"], dtype)) if s else None


def write_json(path: str | Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(payload, indent=2) + "\n").encode()))


def _check_overwrite(save: str) -> None:
    """``--save`` replaces only a gpudnn checkpoint: a typo must not overwrite a dataset or any other file."""
    if not Path(save).exists():
        return
    try:
        read_checkpoint(save)
    except CheckpointError as exc:
        reason = str(exc).removeprefix(f"{save}: ")
        raise UsageError(f"--save {save}: refusing to overwrite a file that is not a gpudnn checkpoint ({reason}); "
                         "remove it or choose another name") from None


def train_job(*, dataset: str = "digits", hidden: Sequence[int] = (256, 128), activation: str = "relu",
              dropout: float = 0.1, norm: str = "none", optimizer: str = "adam", lr: float = 1e-3, epochs: int = 30,
              batch_size: int = 64, l1: float = 0.0, l2: float = 0.0, weight_decay: float = 0.0, seed: int = 0,
              val_fraction: float = 0.1, patience: int | None = None, label: str | None = None,
              save: str | None = None, resume: str | None = None, plot: str | None = None,
              metrics_json: str | None = None, on_nonfinite: str = "raise", quiet: bool = False,
              matmul_precision: str = "highest", momentum: float | None = None, nesterov: bool | None = None,
              dampening: float | None = None, betas: Sequence[float] | None = None, eps: float | None = None,
              alpha: float | None = None, centered: bool | None = None, max_grad_norm: float | None = None,
              schedule: str | None = None, warmup: float | None = None, step_every: float | None = None,
              step_gamma: float | None = None, reduce: Reduction | None = None, reduce_epochs: int = 40,
              reduce_hidden: Sequence[int] = (128,), fine_tune: int = 0) -> dict[str, Any]:
    """Train an MLP classifier on a dataset (behind a reduction fitted on the training rows, with
    ``reduce``) and report test accuracy, wall time and backend.

    Under ``mpiexec`` (after gpudnn.distributed.init()) every rank trains its shard with
    ``batch_size`` samples a step; rank 0 alone prints, saves and writes files.
    """
    check_outputs({"--save": save, "--plot": plot, "--metrics-json": metrics_json})
    if save:
        _check_overwrite(save)
    if plot:
        check_plot_output("--plot", plot)
    started = time.perf_counter()
    main = distributed.is_main()
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
    knobs = {"momentum": momentum, "nesterov": nesterov, "dampening": dampening, "betas": betas, "eps": eps,
             "alpha": alpha, "centered": centered, "max_grad_norm": max_grad_norm}
    plan = {"reduce": str(reduce or Reduction("none")), "fine_tune": fine_tune, "base_lr": lr,
            "schedule": schedule or "constant", "warmup": warmup or 0.0, "step_every": step_every,
            "step_gamma": 0.1 if step_gamma is None else step_gamma}
    if fine_tune < 0:
        raise UsageError(f"--fine-tune must be a number of epochs >= 0, got {fine_tune}")
    if fine_tune and plan["reduce"] == "none":
        raise UsageError("--fine-tune unfreezes a reduction: it needs --reduce pca:K or autoencoder:K")
    initial_epoch, history_before, reduction_report = 0, [], None
    if resume:
        ckpt = load_checkpoint(resume, with_optimizer=True)
        model, opt = ckpt.model, ckpt.optimizer
        if ckpt.model.in_features != data.n_features or ckpt.model.out_features != data.n_classes:
            raise UsageError(f"--resume {resume} was trained for {ckpt.model.in_features} features and "
                             f"{ckpt.model.out_features} classes, not this dataset's {data.n_features} and "
                             f"{data.n_classes}")
        check_resumed_settings(opt, knobs)
        plan = _resumed_plan(ckpt.extra.get("plan", {}), plan, {"reduce": reduce, "fine_tune": fine_tune or None,
                                                                "schedule": schedule, "warmup": warmup,
                                                                "step_every": step_every, "step_gamma": step_gamma})
        reduction_report = ckpt.extra.get("reduction")
        initial_epoch = int(ckpt.epoch or 0)
        history_before = ckpt.extra.get("history", [])
        if not quiet and main:
            print(f"resumed from {resume} after epoch {initial_epoch}", file=sys.stderr)
    else:
        optimizer_type = Optimizer.named(optimizer)
        settings = optimizer_settings(optimizer_type, knobs)
        head: list[Any] = []
        if reduce is not None and reduce.kind != "none":
            X_val = None if validation is None else validation[0]
            head, reduction_report = fit_reduction(reduce, X_train[fit_idx], X_val, seed=seed, epochs=reduce_epochs,
                                                   hidden=reduce_hidden, batch_size=batch_size, quiet=quiet)
        n_in = reduction_report["components"] if head else data.n_features
        mlp = build_mlp(n_in, list(hidden), data.n_classes, activation, dropout, norm)
        model = Sequential(*head, *mlp.layers) if head else mlp
        regularization = {"l1": l1, "l2": l2}
        if weight_decay or optimizer_type.__name__ == "AdamW":
            regularization["weight_decay"] = weight_decay
        opt = optimizer_type(model.parameters(), lr=lr, **regularization, **settings)
    if reduction_report is not None and main:
        print(describe(reduction_report))
    total_epochs = epochs + plan["fine_tune"]
    plan.setdefault("schedule_epochs", total_epochs)  # a resumed run keeps the first run's horizon
    lr_schedule = build_schedule(plan["schedule"], warmup=plan["warmup"], epochs=plan["schedule_epochs"],
                                 step_every=plan["step_every"], step_gamma=plan["step_gamma"])
    extra = {"dataset": dataset, "seed": seed, "label": label,
             "standardize": {"mean": mean.tolist(), "std": std.tolist()}, "n_classes": data.n_classes,
             "plan": plan, "reduction": reduction_report}
    epochs_log = list(history_before)

    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> None:
        epochs_log.append(metrics)
        if save and main:
            save_checkpoint(save, model, opt, epoch=epoch + 1, loss=loss_fn, extra={**extra, "history": epochs_log})

    epochs_run, stopped_early, skipped, stopped_by = 0, False, 0, None
    for end, fine_tuning in ((epochs, False), (total_epochs, True)):
        if initial_epoch >= end:
            continue
        if fine_tuning and model.frozen_parameter_names():
            model.set_frozen([])
            opt = type(opt).from_hyper(model.parameters(), {**opt.hyper(), "lr": plan["base_lr"]})
            if not quiet and main:
                print(f"fine-tuning the reduction with the classifier for {plan['fine_tune']} epochs", file=sys.stderr)
        opt.lr = plan["base_lr"]  # the schedule scales the base rate; a checkpoint holds the last scaled one
        stopper = EarlyStopping("val_loss", patience=patience) if patience is not None and validation else None
        history = fit(model, loss_fn, opt, X_train[fit_idx], data.y_train[fit_idx], epochs=end,
                      batch_size=batch_size, validation_data=validation, progress=not quiet, schedule=lr_schedule,
                      early_stopping=stopper, initial_epoch=initial_epoch, on_epoch_end=on_epoch_end,
                      on_nonfinite=on_nonfinite)
        epochs_run += len(history.epochs)
        stopped_early, skipped = stopped_early or history.stopped_early, skipped + history.skipped_steps
        initial_epoch = end
        stopped_by = history.stopped_by
        if stopped_by is not None:  # a save failed: the previous checkpoint stands, training ends here
            break
        if save and main and stopper is not None and stopper.restore_best:  # the restored best weights are tested
            save_checkpoint(save, model, opt, epoch=end, loss=loss_fn, extra={**extra, "history": epochs_log})
    test = evaluate(model, loss_fn, X_test, data.y_test)
    wall = time.perf_counter() - started
    summary = {"dataset": dataset, "test_accuracy": test["accuracy"], "test_loss": test["loss"],
               "epochs_run": epochs_run, "wall_time_s": wall, "backend": b.name,
               "backend_reason": selection_reason(b), "model": model.config(),
               "optimizer": {"type": type(opt).__name__, **opt.hyper(), "lr": plan["base_lr"]}, "plan": plan,
               "reduction": reduction_report, "steps_per_epoch": -(-len(fit_idx) // batch_size),
               "history": epochs_log, "stopped_early": stopped_early, "skipped_steps": skipped,
               "stopped_by": None if stopped_by is None else str(stopped_by),
               "ranks": distributed.rank_and_size()[1]}
    if not main:
        return summary
    print(f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
          f"({len(data.y_test)} samples of {dataset})")
    print(f"wall time {wall:.1f} s  backend {b.name} ({selection_reason(b)})")
    if plot:
        from .plots import training_curves

        training_curves(History(epochs=epochs_log), plot, title=f"gpudnn MLP on {dataset}")
        print(f"curves written to {plot}")
    if metrics_json:
        write_json(metrics_json, summary)
    if stopped_by is not None:
        raise stopped_by
    return summary


def _resumed_plan(saved: dict[str, Any], fresh: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's training plan (reduction, fine-tuning, schedule, base rate); a setting given on the
    command line with another value is refused."""
    plan = {**fresh, **saved}
    for key, value in given.items():
        if value is not None and str(value) != str(plan[key]):
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{flag} {value} differs from the resumed checkpoint's {plan[key]}: --resume keeps the "
                             f"saved plan")
    return plan


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
    check_outputs({"--output": output})
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
