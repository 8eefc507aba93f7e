"""`gpudnn compare`: the same network trained with each optimizer (and each reduction) from the same seed,
as one plot of the curves and one table (test accuracy, time, steps to a target training loss)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..checkpoint import atomic_write
from ..data import load_dataset
from ..files import check_outputs
from ..nn.losses import SoftmaxCrossEntropy
from ..nn.mlp import build_mlp
from ..optim import Optimizer
from ..training import fit
from .plots import check_plot_output, comparison_curves
from .reduction import Reduction
from .train import train_job, write_json

# Named variants: optimizer, its settings, the learning rate used unless --lr is given. The SGD family shares
# one rate, so the curves show what momentum adds; Adam and RMSprop use their usual 1e-3.
VARIANTS: dict[str, tuple[str, dict[str, Any], float]] = {
    "sgd": ("sgd", {}, 0.01),
    "momentum": ("sgd", {"momentum": 0.9}, 0.01),
    "nesterov": ("sgd", {"momentum": 0.9, "nesterov": True}, 0.01),
    "adam": ("adam", {}, 1e-3),
    "adamw": ("adamw", {}, 1e-3),
    "rmsprop": ("rmsprop", {}, 1e-3),
}


def variant_list(text: str) -> list[str]:
    """argparse type: comma-separated optimizer variants, "sgd,momentum,adam,rmsprop"."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"must be comma-separated names from {', '.join(VARIANTS)}, got {text!r}")
    return names


def steps_to_loss(history: Sequence[dict[str, float]], target: float, steps_per_epoch: int) -> int | None:
    """Optimizer steps until the end of the first epoch whose mean training loss is <= ``target`` (None: never)."""
    return next(((i + 1) * steps_per_epoch for i, epoch in enumerate(history) if epoch["loss"] <= target), None)


def _row(label: str, variant: str, reduction: Reduction, summary: dict[str, Any], target: float) -> dict[str, Any]:
    history = summary["history"]
    return {"run": label, "optimizer": variant, "lr": summary["optimizer"]["lr"], "reduce": str(reduction),
            "test_accuracy": summary["test_accuracy"],
            "best_val_accuracy": max((e.get("val_accuracy", float("nan")) for e in history), default=None),
            "final_train_loss": history[-1]["loss"],
            "steps_to_target": steps_to_loss(history, target, summary["steps_per_epoch"]),
            "train_time_s": sum(e["epoch_time"] for e in history), "wall_time_s": summary["wall_time_s"]}


def format_table(rows: list[dict[str, Any]], target: float) -> str:
    """The rows as a Markdown table."""
    head = ["run", "lr", "test accuracy", "best val accuracy", "final train loss", f"steps to loss <= {target:g}",
            "train s", "total s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        steps = "not reached" if r["steps_to_target"] is None else str(r["steps_to_target"])
        cells = [r["run"], f"{r['lr']:g}", f"{r['test_accuracy']:.4f}", f"{r['best_val_accuracy']:.4f}",
                 f"{r['final_train_loss']:.4f}", steps, f"{r['train_time_s']:.1f}", f"{r['wall_time_s']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _compile_kernels(variants: Sequence[str], dataset: str, hidden: Sequence[int], activation: str, dropout: float,
                     batch_size: int) -> None:
    """One step of each variant (and one validation pass) on a copy of the network, so that Numba's compilation
    is timed in no run."""
    started = time.perf_counter()
    data = load_dataset(dataset)
    X, y = data.X_train[:batch_size], data.y_train[:batch_size]
    for variant in variants:
        name, settings, _ = VARIANTS[variant]
        model = build_mlp(data.n_features, list(hidden), data.n_classes, activation, dropout)
        fit(model, SoftmaxCrossEntropy(), Optimizer.named(name)(model.parameters(), lr=1e-3, **settings), X, y,
            epochs=1, batch_size=batch_size, validation_data=(X, y), progress=False)
    print(f"kernels compiled in {time.perf_counter() - started:.1f} s (outside the timed runs)", file=sys.stderr)


def compare_job(*, optimizers: Sequence[str] = ("sgd", "momentum", "adam", "rmsprop"),
                reduce: Sequence[Reduction] = (Reduction("none"),), dataset: str = "digits",
                hidden: Sequence[int] = (256, 128), activation: str = "relu", dropout: float = 0.1,
                epochs: int = 15, batch_size: int = 64, lr: float | None = None, seed: int = 0,
                target_loss: float = 0.1, reduce_epochs: int = 40, reduce_hidden: Sequence[int] = (128,),
                plot: str | None = None, table: str | None = None, metrics_json: str | None = None,
                quiet: bool = False) -> dict[str, Any]:
    """Train one run per (optimizer variant, reduction) with the same seed; print, plot and save the table."""
    check_outputs({"--plot": plot, "--table": table, "--metrics-json": metrics_json})
    if plot:
        check_plot_output("--plot", plot)
    _compile_kernels(optimizers, dataset, hidden, activation, dropout, batch_size)
    runs, rows = [], []
    combos = [(v, r) for r in reduce for v in optimizers]
    for i, (variant, reduction) in enumerate(combos, 1):
        name, settings, default_lr = VARIANTS[variant]
        label = variant if len(reduce) == 1 else f"{variant}, {reduction}"
        print(f"[{i}/{len(combos)}] {label} ({Optimizer.named(name).__name__}"
              f"{''.join(f', {k}={v}' for k, v in settings.items())}, lr {lr or default_lr:g})", file=sys.stderr)
        summary = train_job(dataset=dataset, hidden=hidden, activation=activation, dropout=dropout, optimizer=name,
                            lr=lr or default_lr, epochs=epochs, batch_size=batch_size, seed=seed, reduce=reduction,
                            reduce_epochs=reduce_epochs, reduce_hidden=reduce_hidden, quiet=quiet, **settings)
        runs.append({"label": label, "variant": variant, "reduce": str(reduction), **summary})
        rows.append(_row(label, variant, reduction, summary, target_loss))
    text = format_table(rows, target_loss)
    print(text)
    if table:
        atomic_write(table, lambda f: f.write((text + "\n").encode()))
        print(f"table written to {table}")
    if plot:
        comparison_curves([(run["label"], run["variant"], run["reduce"], run["history"]) for run in runs], plot,
                          title=f"{dataset}: the same MLP ({','.join(map(str, hidden))}) trained each way, seed {seed}",
                          target_loss=target_loss)
        print(f"curves written to {plot}")
    result = {"dataset": dataset, "seed": seed, "epochs": epochs, "target_loss": target_loss, "rows": rows,
              "runs": runs}
    if metrics_json:
        write_json(metrics_json, result)
        print(f"metrics written to {metrics_json}")
    return result
