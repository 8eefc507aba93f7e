"""gpudnn.sklearn.MLPClassifier against scikit-learn's MLPClassifier at equal settings, in one run.

Datasets: digits (1797 x 64) and MNIST-1D (5000 x 40), standardized on the training split. Both
estimators get the same hidden sizes, Adam with the same learning rate, batch size, alpha and a
fixed number of epochs (``tol=0``, ``n_iter_no_change=max_iter``: neither stops early). Fits are
timed round-robin (harness.interleaved_samples); each call trains from a new seed, so the test
accuracy reported is the mean over every fit of the run (warm-up included) and the fit-time ratio is
the median of gpudnn/scikit-learn per round. gpudnn's estimators train small networks on one BLAS
thread; scikit-learn runs with its default threads, and once more on one BLAS thread
(``sklearn_1thread``) to show how much of the ratio is the thread pool. Targets on digits: fit
time <= 0.5x scikit-learn's and mean test accuracy within 1 point of it.

Run: python -m benchmarks.bench_sklearn  (from the repository root).
"""

from __future__ import annotations

import itertools
import statistics
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import harness

SETTINGS = {"hidden_layer_sizes": (128,), "solver": "adam", "learning_rate_init": 1e-3, "batch_size": 64,
            "alpha": 1e-4, "tol": 0.0}


def _data(name: str) -> tuple[np.ndarray, ...]:
    from gpudnn.data import load_dataset, standardize

    data = load_dataset(name, seed=0)
    X_train, X_test, _, _ = standardize(data.X_train, data.X_test)
    return (X_train.astype(np.float32), data.y_train, X_test.astype(np.float32), data.y_test)


def _variant(make: Callable[[int], Any], data: tuple[np.ndarray, ...], scores: list[float],
             one_thread: bool = False) -> Callable[[], None]:
    """One fit from the next seed per call (on one BLAS thread if ``one_thread``); its test accuracy is
    appended to ``scores``."""
    from threadpoolctl import threadpool_limits

    X_train, y_train, X_test, y_test = data
    seeds = itertools.count()

    def fit_once() -> None:
        with warnings.catch_warnings(), threadpool_limits(limits=1 if one_thread else None, user_api="blas"):
            warnings.simplefilter("ignore")  # ConvergenceWarning: the epochs are fixed on purpose
            model = make(next(seeds)).fit(X_train, y_train)
        scores.append(float(model.score(X_test, y_test)))

    return fit_once


def row(name: str, epochs: int, rounds: int) -> dict[str, Any]:
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    from gpudnn.sklearn import MLPClassifier

    data = _data(name)
    settings = {**SETTINGS, "max_iter": epochs, "n_iter_no_change": epochs}
    scores: dict[str, list[float]] = {"gpudnn": [], "sklearn": [], "sklearn_1thread": []}
    variants = {"gpudnn": _variant(lambda s: MLPClassifier(**settings, random_state=s), data, scores["gpudnn"]),
                "sklearn": _variant(lambda s: SklearnMLP(**settings, random_state=s), data, scores["sklearn"]),
                "sklearn_1thread": _variant(lambda s: SklearnMLP(**settings, random_state=s), data,
                                            scores["sklearn_1thread"], one_thread=True)}
    samples = harness.interleaved_samples(variants, rounds=rounds, warmup=1)
    t = harness.medians(samples)
    acc = {k: statistics.mean(v) for k, v in scores.items()}
    return {"op": f"MLPClassifier fit ({epochs} epochs)", "dataset": name, "shape": f"{data[0].shape}",
            "t_gpudnn_ms": t["gpudnn"] * 1e3, "t_sklearn_ms": t["sklearn"] * 1e3,
            "t_sklearn_1thread_ms": t["sklearn_1thread"] * 1e3,
            "ratio_vs_sklearn": harness.paired_ratio(samples, "gpudnn", "sklearn"),
            "ratio_vs_sklearn_1thread": harness.paired_ratio(samples, "gpudnn", "sklearn_1thread"),
            "acc_gpudnn": acc["gpudnn"], "acc_sklearn": acc["sklearn"],
            "acc_diff_points": 100 * (acc["gpudnn"] - acc["sklearn"]), "fits_each": len(scores["gpudnn"])}


def run(quick: bool = False) -> dict[str, Any]:
    rows = [row("digits", 2 if quick else 30, rounds=1 if quick else 5)]
    if not quick:
        rows.append(row("mnist1d", 30, rounds=3))
    digits = rows[0]
    return {"rows": rows, "settings": SETTINGS, "summary": {
        "digits_fit_ratio_vs_sklearn": digits["ratio_vs_sklearn"],
        "digits_acc_diff_points": digits["acc_diff_points"],
        "digits_fit_ratio_vs_sklearn_1thread": digits["ratio_vs_sklearn_1thread"],
        "target": "on digits: fit time <= 0.5x scikit-learn's, mean test accuracy within 1 point of it",
        "met": digits["ratio_vs_sklearn"] <= 0.5 and abs(digits["acc_diff_points"]) <= 1.0,
    }}


COLUMNS = ["op", "dataset", "shape", "t_gpudnn_ms", "t_sklearn_ms", "t_sklearn_1thread_ms", "ratio_vs_sklearn",
           "ratio_vs_sklearn_1thread", "acc_gpudnn", "acc_sklearn", "acc_diff_points", "fits_each"]

if __name__ == "__main__":
    result = run()
    print(harness.table(result["rows"], COLUMNS))
    print(result["summary"])
    print("saved", harness.save("sklearn", result))
