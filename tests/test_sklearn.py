"""gpudnn.sklearn's estimators and gd.PCA under scikit-learn: its own estimator checks, pipelines and
grid searches, labels of any kind, multi-output regression, and clear errors on bad input."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="scikit-learn is not installed (pip install 'gpudnn[sklearn]')")

from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import gpudnn as gd  # noqa: E402
from gpudnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

# Small networks and few epochs keep scikit-learn's ~50 checks per estimator quick; float64 because
# check_methods_subset_invariance compares predictions on a subset to 1e-7, which float32 GEMMs on
# different row counts miss by rounding (~2e-7).
QUICK = {"hidden_layer_sizes": (16,), "learning_rate_init": 0.01, "max_iter": 50, "random_state": 0,
         "dtype": "float64"}


@parametrize_with_checks([MLPClassifier(**QUICK), MLPRegressor(**QUICK), gd.PCA()])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def _blobs(n=240, seed=0):
    return make_blobs(n_samples=n, centers=3, n_features=5, cluster_std=0.6, random_state=seed)


@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([3, 7, 10])])
def test_any_labels_come_back_as_given(labels):
    X, k = _blobs()
    y = labels[k]
    clf = MLPClassifier((32,), max_iter=60, random_state=0, learning_rate_init=0.01).fit(X, y)
    assert list(clf.classes_) == sorted(labels.tolist()) and clf.n_features_in_ == 5
    pred = clf.predict(X)
    assert pred.dtype == y.dtype and (pred == y).mean() == 1.0  # well separated blobs
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba, rtol=1e-10)
    assert clf.score(X, y) == 1.0


def test_multi_output_regression_matches_least_squares():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 6))
    Y = X @ rng.standard_normal((6, 3)) + rng.standard_normal(3)
    reg = MLPRegressor((16,), activation="identity", max_iter=300, learning_rate_init=0.01, alpha=0.0,
                       random_state=0, dtype="float64", tol=0.0).fit(X, Y)
    expected = LinearRegression().fit(X, Y).predict(X)
    assert reg.predict(X).shape == (400, 3)
    np.testing.assert_allclose(reg.predict(X), expected, atol=0.05 * np.abs(expected).max())
    flat = MLPRegressor((8,), max_iter=5, random_state=0).fit(X, Y[:, 0])
    assert flat.predict(X).shape == (400,)


def test_pipeline_with_pca_in_a_grid_search_on_digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
    pipe = Pipeline([("pca", gd.PCA(30)), ("mlp", MLPClassifier((64,), max_iter=50, random_state=0))])
    search = GridSearchCV(pipe, {"mlp__alpha": [1e-4, 1e-2], "pca__whiten": [False, True]}, cv=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X_train, y_train)
    assert set(search.best_params_) == {"mlp__alpha", "pca__whiten"}
    assert search.score(X_test, y_test) > 0.9
    assert search.best_estimator_.named_steps["pca"].n_components_ == 30


def test_clone_pickle_and_random_state():
    X, y = _blobs()
    clf = MLPClassifier((8,), max_iter=5, random_state=3, dropout=0.1, norm="layer", optimizer="adamw")
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "model_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a, b = clf.fit(X, y).predict_proba(X), twin.fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(X), a)
    restored.partial_fit(X, y)  # a restored model goes on training
    assert restored.n_iter_ == clf.n_iter_ + 1


def test_partial_fit_trains_epoch_by_epoch():
    X, y = _blobs()
    clf = MLPClassifier((16,), random_state=0, learning_rate_init=0.01)
    for _ in range(30):
        clf.partial_fit(X, y, classes=[0, 1, 2])
    assert clf.n_iter_ == 30 and len(clf.loss_curve_) == 30 and clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X, y) > 0.95
    reg = MLPRegressor((8,), random_state=0).partial_fit(X, y.astype(float))
    assert reg.n_iter_ == 1 and reg.n_outputs_ == 1


def test_early_stopping_uses_a_validation_split():
    X, y = _blobs(600)
    clf = MLPClassifier((16,), early_stopping=True, n_iter_no_change=3, max_iter=200, random_state=0).fit(X, y)
    assert clf.n_iter_ < 200 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    reg = MLPRegressor((8,), early_stopping=True, n_iter_no_change=3, max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X, y.astype(float))
    assert reg.best_validation_score_ == min(reg.validation_scores_)  # a validation MSE: lower is better


def test_bad_input_is_named():
    X, y = _blobs()
    with pytest.raises(NotFittedError):
        MLPClassifier().predict(X)
    with pytest.raises(NotFittedError):
        MLPRegressor().predict(X)
    with pytest.raises(NotFittedError):
        gd.PCA().transform(X)
    clf = MLPClassifier((4,), max_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    with pytest.raises(ValueError, match="X has 4 features, but MLPClassifier is expecting 5 features"):
        clf.predict(X[:, :4])
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPClassifier().fit(Xn, y)
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(Xn)
    with pytest.raises(ValueError, match="classes="):
        MLPClassifier().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes_"):
        clf.partial_fit(X[:2], [0, 7])
    with pytest.raises(ValueError, match="solver must be one of"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(8, 0)).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
