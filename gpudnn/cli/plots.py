"""PNG plots with matplotlib's Agg backend (the optional "plot" extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_write


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError("plotting needs matplotlib: pip install 'gpudnn[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "jpg", "jpeg", "tif", "tiff", "webp", "eps", "ps")


def check_plot_output(option: str, path: str | Path) -> None:
    """Before any work: matplotlib is installed and ``path`` ends in a format it writes."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise ValueError(f"{option} {path}: give a file name ending in an image format ({', '.join(PLOT_FORMATS)})")
    _pyplot()


def _save(fig: Any, path: str | Path) -> Path:
    """Write the figure atomically (a full disk leaves the previous file, never a torn image)."""
    path = Path(path)
    fig.tight_layout()
    try:
        atomic_write(path, lambda f: fig.savefig(f, format=path.suffix.lower().lstrip(".") or "png", dpi=110),
                     what="plot")
    finally:
        _pyplot().close(fig)
    return path


def training_curves(history: Any, path: str | Path, title: str = "") -> Path:
    """Loss and (when present) accuracy per epoch, training and validation."""
    plt = _pyplot()
    keys = history.keys()
    panels = ["loss"] + (["accuracy"] if "accuracy" in keys else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    epochs = np.arange(1, len(history.epochs) + 1)
    for ax, metric in zip(axes[0], panels):
        ax.plot(epochs, history[metric], marker="o", ms=3, label=f"train {metric}")
        if f"val_{metric}" in keys:
            ax.plot(epochs, history[f"val_{metric}"], marker="s", ms=3, label=f"validation {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def comparison_curves(runs: list[tuple[str, str, str, list[dict[str, float]]]], path: str | Path, title: str = "",
                      target_loss: float | None = None) -> Path:
    """Runs given as (label, colour group, line-style group, epochs): training loss (log scale) and validation
    accuracy per epoch, one line per run, a colour per colour group (e.g. the optimizer) and a line style
    per line-style group (e.g. the reduction)."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(12.5, 4.8))
    colours = {c: f"C{i}" for i, c in enumerate(dict.fromkeys(run[1] for run in runs))}
    styles = {s: ("-", "--", ":", "-.")[i % 4] for i, s in enumerate(dict.fromkeys(run[2] for run in runs))}
    for label, colour, style, epochs in runs:
        x = np.arange(1, len(epochs) + 1)
        look = {"color": colours[colour], "ls": styles[style], "marker": "o", "ms": 2.5, "label": label}
        loss_ax.plot(x, [e["loss"] for e in epochs], **look)
        if epochs and "val_accuracy" in epochs[0]:
            acc_ax.plot(x, [e["val_accuracy"] for e in epochs], **look)
    if target_loss is not None:
        loss_ax.axhline(target_loss, color="grey", ls="--", lw=1, label=f"target loss {target_loss:g}")
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("training loss (log scale)")
    acc_ax.set_ylabel("validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3, which="both")
    # the accuracy panel's lower right stays empty once the curves rise: the legend of both panels goes there
    acc_ax.legend(*loss_ax.get_legend_handles_labels(), fontsize=7, ncol=2 if len(runs) > 6 else 1, loc="lower right")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def scatter_2d(points: np.ndarray, labels: np.ndarray, path: str | Path, title: str, axis_names=("1", "2")) -> Path:
    """A 2-D embedding coloured by class."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=9, alpha=0.8)
    ax.legend(*sc.legend_elements(), title="class", loc="best", fontsize=8)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def reconstructions(originals: np.ndarray, recons: np.ndarray, path: str | Path, title: str,
                    image_shape: tuple[int, int] | None = None) -> Path:
    """Originals (top row) above their reconstructions (bottom row); 1-D signals drawn as lines."""
    plt = _pyplot()
    n = len(originals)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.0), squeeze=False)
    for i in range(n):
        for row, data in enumerate((originals, recons)):
            ax = axes[row][i]
            if image_shape is not None:
                ax.imshow(data[i].reshape(image_shape), cmap="gray_r")
            else:
                ax.plot(data[i])
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0][0].set_ylabel("original")
    axes[1][0].set_ylabel("reconstructed")
    fig.suptitle(title)
    return _save(fig, path)
