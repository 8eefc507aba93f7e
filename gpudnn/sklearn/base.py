"""The shared part of gpudnn's scikit-learn estimators: parameters, training by ``gpudnn.fit``, pickling.

A fitted estimator holds a ``Sequential`` (``model_``) on the backend that was current at ``fit``
and trains it with ``gpudnn.fit``, so it runs on the GPU where there is one. Parameters keep
scikit-learn's ``MLPClassifier`` names where the meaning is the same; ``alpha`` is the L2 penalty
``alpha / 2 * ||w||^2 / batch_size`` added to the mean batch loss, as in scikit-learn (applied here
to every parameter, biases included).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from .. import checks
from ..backend import get_backend
from ..nn.losses import Loss
from ..nn.mlp import NORMS, build_mlp
from ..nn.sequential import Sequential
from ..optim.optimizers import Optimizer
from ..training import EarlyStopping, fit, predict

SOLVERS = {"adam": "Adam", "sgd": "SGD"}
# Training steps whose largest GEMM has at most this many multiply-adds run on one BLAS thread: on
# small networks a thread hand-off costs more than the GEMM (digits, 64 x 64 x 128 per step: a fit
# took 0.65-1.0 s on one thread against 10-19 s on two, on a loaded 2-core machine).
SMALL_GEMM = 2**22
DTYPES = ("float32", "float64")


@contextlib.contextmanager
def seeded(random_state: Any) -> Iterator[None]:
    """Draw weights, shuffles and dropout masks from ``random_state`` (None: the backend's own generator)."""
    b = get_backend()
    if random_state is None:
        yield
        return
    if isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(0, 2**31 - 1))
    saved, b.rng = b.rng, np.random.default_rng(checks.seed("random_state", random_state))
    try:
        yield
    finally:
        b.rng = saved


class BaseMLP(BaseEstimator):
    """A multi-layer perceptron trained by ``gpudnn.fit``; subclasses set the loss and the targets."""

    def __init__(self, hidden_layer_sizes: tuple[int, ...] = (100,), activation: str = "relu", *,
                 solver: str = "adam", alpha: float = 1e-4, batch_size: int | str = "auto",
                 learning_rate_init: float = 1e-3, max_iter: int = 200, shuffle: bool = True,
                 random_state: Any = None, tol: float = 1e-4, verbose: bool = False, momentum: float = 0.9,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, early_stopping: bool = False,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10, dropout: float = 0.0,
                 norm: str = "none", optimizer: str | None = None, l1: float = 0.0, weight_decay: float = 0.0,
                 dtype: str = "float32") -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.momentum = momentum
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.dropout = dropout
        self.norm = norm
        self.optimizer = optimizer
        self.l1 = l1
        self.weight_decay = weight_decay
        self.dtype = dtype

    # ---------------------------------------------------------------- what subclasses give

    def _loss(self) -> Loss:
        raise NotImplementedError

    def _encode_targets(self, y: Any, first: bool, classes: Any = None) -> np.ndarray:
        """Targets as the loss takes them; ``first`` (re)learns their encoding."""
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    # ---------------------------------------------------------------- checks

    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        sizes = [sizes] if checks.is_integer(sizes) else list(sizes)
        return [checks.positive_int("hidden_layer_sizes", s) for s in sizes]

    def _check_params(self) -> None:
        self._hidden()
        checks.choice("solver", self.solver, SOLVERS)
        checks.choice("norm", self.norm, NORMS)
        checks.choice("dtype", self.dtype, DTYPES)
        checks.real("alpha", self.alpha, low=0)
        checks.real("learning_rate_init", self.learning_rate_init, low=0, low_open=True)
        checks.integer("max_iter", self.max_iter, low=1)
        checks.integer("n_iter_no_change", self.n_iter_no_change, low=1)
        checks.real("tol", self.tol, low=0)
        checks.fraction("validation_fraction", self.validation_fraction)
        if self.batch_size != "auto":
            checks.positive_int("batch_size", self.batch_size)
        if self.optimizer is not None:
            Optimizer.named(self.optimizer)

    def _batch(self, n: int) -> int:
        return min(200, n) if self.batch_size == "auto" else min(int(self.batch_size), n)

    def _make_optimizer(self, model: Sequential, batch: int) -> Optimizer:
        name = self.optimizer or SOLVERS[self.solver]
        kind = Optimizer.named(name)
        options: dict[str, Any] = {"lr": self.learning_rate_init, "l1": self.l1, "l2": self.alpha / batch}
        if self.weight_decay or kind.__name__ == "AdamW":
            options["weight_decay"] = self.weight_decay
        if kind.__name__ in ("Adam", "AdamW"):
            options.update(betas=(self.beta_1, self.beta_2), eps=self.epsilon)
        elif kind.__name__ == "SGD":
            options["momentum"] = self.momentum
        return kind(model.parameters(), **options)

    # ---------------------------------------------------------------- training

    def fit(self, X: Any, y: Any) -> BaseMLP:
        """Train a fresh network for up to ``max_iter`` epochs on X (n_samples, n_features) and y."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.dtype(self.dtype), multi_output=True, y_numeric=False)
        return self._train(X, y, first=True, epochs=self.max_iter)

    def _partial_fit(self, X: Any, y: Any, classes: Any = None) -> BaseMLP:
        first = not hasattr(self, "model_")
        if first:
            self._check_params()
        X, y = validate_data(self, X, y, reset=first, dtype=np.dtype(self.dtype), multi_output=True)
        return self._train(X, y, first=first, epochs=1, classes=classes)

    def _train(self, X: np.ndarray, y: Any, *, first: bool, epochs: int, classes: Any = None) -> BaseMLP:
        targets = self._encode_targets(y, first, classes)
        batch = self._batch(len(X))
        with seeded(self.random_state if first else None), self._blas_threads(X.shape[1], batch):
            if first:
                self.model_ = build_mlp(X.shape[1], self._hidden(), self._n_outputs(), self.activation,
                                        self.dropout, self.norm)
                if self.dtype == "float64":
                    self.model_ = _in_float64(self.model_)
                self.optimizer_ = self._make_optimizer(self.model_, batch)
                self.loss_curve_: list[float] = []
                self.n_iter_ = 0
            elif getattr(self, "optimizer_", None) is None:  # unpickled: a fresh optimizer state
                self.optimizer_ = self._make_optimizer(self.model_, batch)
            validation, stopper = None, None
            if epochs > 1:
                X, targets, validation, stopper = self._stopping(X, targets)
            history = fit(self.model_, self._loss(), self.optimizer_, X, targets, epochs=epochs, batch_size=batch,
                          shuffle=self.shuffle, validation_data=validation, early_stopping=stopper,
                          progress=bool(self.verbose))
        self.loss_curve_ += history["loss"]
        self.loss_ = self.loss_curve_[-1]
        self.n_iter_ += len(history.epochs)
        if validation is not None:  # validation accuracy (classifier, higher is better) or MSE (regressor)
            self.validation_scores_ = history[stopper.monitor]
            self.best_validation_score_ = (max if stopper.sign < 0 else min)(self.validation_scores_)
        self.best_loss_ = min(self.loss_curve_)
        if epochs > 1 and not history.stopped_early:
            warnings.warn(f"{type(self).__name__}: max_iter={self.max_iter} reached and the optimization has not "
                          "converged yet", ConvergenceWarning, stacklevel=3)
        return self

    def _blas_threads(self, n_in: int, batch: int) -> Any:
        """One BLAS thread for small networks on the CPU (see SMALL_GEMM); the library's default otherwise."""
        widths = [n_in, *self._hidden(), self._n_outputs()]
        macs = batch * max(a * b for a, b in zip(widths, widths[1:]))
        if get_backend().xp is not np or macs > SMALL_GEMM:
            return contextlib.nullcontext()
        return threadpool_limits(limits=1, user_api="blas")

    def _stopping(self, X: np.ndarray, targets: np.ndarray) -> tuple[Any, Any, Any, EarlyStopping]:
        """Split off validation data for early_stopping; the stopping rule (scikit-learn's: no gain over
        ``tol`` for ``n_iter_no_change`` epochs, on the validation score or the training loss)."""
        patience = int(self.n_iter_no_change) - 1
        if not self.early_stopping:
            return X, targets, None, EarlyStopping("loss", patience, float(self.tol), restore_best=False)
        n_val = max(1, int(round(len(X) * float(self.validation_fraction))))
        if n_val >= len(X):
            raise ValueError(f"validation_fraction={self.validation_fraction} leaves no training samples "
                             f"out of {len(X)}")
        order = get_backend().rng.permutation(len(X))
        val, train = order[:n_val], order[n_val:]
        monitor = "val_accuracy" if self._loss().classification else "val_loss"
        stopper = EarlyStopping(monitor, patience, float(self.tol), restore_best=True)
        return X[train], targets[train], (X[val], targets[val]), stopper

    def _outputs(self, X: Any) -> np.ndarray:
        """The network's raw outputs (n_samples, n_outputs) for X, checked against the fit."""
        check_is_fitted(self, "model_")
        return predict(self.model_, validate_data(self, X, reset=False, dtype=np.dtype(self.dtype)))

    # ---------------------------------------------------------------- pickling

    def __getstate__(self) -> dict[str, Any]:
        """Plain data only: the network as its config and host arrays (the optimizer state is dropped)."""
        state = dict(self.__dict__)
        model = state.pop("model_", None)
        state.pop("optimizer_", None)
        if model is not None:
            state["_model_config"], state["_model_state"] = model.config(), model.state_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        config, arrays = state.pop("_model_config", None), state.pop("_model_state", None)
        self.__dict__.update(state)
        if config is not None:
            self.model_ = Sequential.from_config(config)
            self.model_.load_state_dict(arrays)
            self.optimizer_ = None


def _in_float64(model: Sequential) -> Sequential:
    """The same network with float64 parameters."""
    config = model.config()
    for layer in config["layers"]:
        if "dtype" in layer:
            layer["dtype"] = "float64"
    rebuilt = Sequential.from_config(config)
    rebuilt.load_state_dict(model.state_dict())
    return rebuilt
