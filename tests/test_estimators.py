"""fm.MLPClassifier / fm.MLPRegressor: scikit-learn's own estimator checks,
then behaviour against sklearn.neural_network on small data."""

import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

import fastmlp as fm  # noqa: E402
from fastmlp.estimators import MLPClassifier, MLPRegressor, expected_failed_checks  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402


# The checks' small problems do not converge in max_iter epochs, as with
# sklearn's own MLP; the warning itself is tested below.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(
    [MLPClassifier(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
     MLPRegressor(hidden_layer_sizes=(20,), max_iter=100, random_state=0),
     MLPClassifier(hidden_layer_sizes=(20,), solver="lbfgs", max_iter=100, random_state=0),
     MLPRegressor(hidden_layer_sizes=(20,), solver="sgd", max_iter=100, random_state=0,
                  learning_rate="adaptive")],
    expected_failed_checks=expected_failed_checks,
)
def test_sklearn_checks(estimator, check):
    check(estimator)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_sklearn_checks_float32(Est):
    """The fast path (dtype='float32' whatever X's dtype) passes every check
    but the sample-weight equivalence ones (dense and sparse X), which float32
    rounding may fail."""
    from sklearn.utils.estimator_checks import check_estimator

    est = Est(hidden_layer_sizes=(20,), max_iter=100, random_state=0, dtype="float32")
    xfail = expected_failed_checks(est)
    assert sorted(xfail) == ["check_sample_weight_equivalence_on_dense_data",
                             "check_sample_weight_equivalence_on_sparse_data"]
    results = check_estimator(est, expected_failed_checks=xfail, on_fail=None,
                              on_skip=None)
    bad = [(r["check_name"], r["status"], r["exception"]) for r in results
           if r["status"] not in ("passed", "skipped", "xfail")
           and r["check_name"] not in xfail]
    assert bad == []
    assert sum(r["status"] == "passed" for r in results) > 40


# -- behaviour -----------------------------------------------------------------
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

no_convergence_warning = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@no_convergence_warning
def test_digits_accuracy_close_to_sklearn(digits):
    from sklearn.neural_network import MLPClassifier as SkMLP

    X, y = digits
    Xtr, ytr, Xte, yte = X[:1200], y[:1200], X[1200:], y[1200:]
    kw = dict(hidden_layer_sizes=(32,), max_iter=40, random_state=0)
    ours = MLPClassifier(**kw).fit(Xtr, ytr).score(Xte, yte)
    theirs = SkMLP(**kw).fit(Xtr, ytr).score(Xte, yte)
    assert ours > 0.85
    assert abs(ours - theirs) < 0.04


def _sklearn_objective(est, X, Y):
    """sklearn's MLP objective at est's weights, from sklearn's own loss
    functions: loss(Y, out) + 0.5 alpha sum ||W||^2 / n."""
    from sklearn.neural_network._base import ACTIVATIONS, LOSS_FUNCTIONS

    a = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        a = a @ W + b
        act = est.activation if i < len(est.coefs_) - 1 else est.out_activation_
        ACTIVATIONS[act](a)  # in place
    name = {"identity": "squared_error", "softmax": "log_loss",
            "logistic": "binary_log_loss"}[est.out_activation_]
    penalty = sum(float((W ** 2).sum()) for W in est.coefs_)
    return LOSS_FUNCTIONS[name](Y, a) + 0.5 * est.alpha * penalty / X.shape[0]


@no_convergence_warning
@pytest.mark.parametrize("kind", ["regression", "binary", "multiclass", "multilabel"])
def test_lbfgs_minimises_sklearns_objective(kind):
    from sklearn.datasets import make_classification, make_multilabel_classification
    from sklearn.preprocessing import LabelBinarizer

    rng = np.random.RandomState(0)
    if kind == "regression":
        X = rng.normal(size=(80, 5))
        Y = np.c_[X[:, 0] - 2 * X[:, 1], np.sin(X[:, 2])]
        est = MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", alpha=0.1, max_iter=30, random_state=0)
        est.fit(X, Y)
    elif kind == "multilabel":
        X, Y = make_multilabel_classification(80, 5, n_classes=3, random_state=0)
        est = MLPClassifier((8,), solver="lbfgs", alpha=0.1, max_iter=30, random_state=0)
        est.fit(X, Y)
    else:
        X, y = make_classification(80, 5, n_informative=3, n_classes=2 if kind == "binary"
                                   else 3, random_state=0)
        est = MLPClassifier((8,), solver="lbfgs", alpha=0.1, max_iter=30, random_state=0)
        est.fit(X, y)
        Y = LabelBinarizer().fit(est.classes_).transform(y)
    assert est.out_activation_ == {"regression": "identity", "binary": "logistic",
                                   "multiclass": "softmax", "multilabel": "logistic"}[kind]
    # loss_ is sklearn's objective (data loss in sklearn's scale + its penalty)
    np.testing.assert_allclose(est.loss_, _sklearn_objective(est, X, Y), rtol=1e-9)
    assert est.n_iter_ <= 30


@no_convergence_warning
def test_string_labels_partial_fit():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(300, 4, centers=3, random_state=0)
    labels = np.array(["cat", "dog", "emu"])[y]
    est = MLPClassifier((16,), learning_rate_init=0.01, random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        est.partial_fit(X[:50], labels[:50])
    for epoch in range(20):
        for s in range(0, 300, 100):
            est.partial_fit(X[s:s + 100], labels[s:s + 100],
                            classes=np.array(["cat", "dog", "emu"]) if epoch == s == 0 else None)
    assert list(est.classes_) == ["cat", "dog", "emu"]
    assert est.n_iter_ == 1 and est.t_ == 20 * 300
    pred = est.predict(X)
    assert pred.dtype.kind == "U" and set(pred) <= {"cat", "dog", "emu"}
    assert np.mean(pred == labels) > 0.95
    with pytest.raises(ValueError, match="classes not in"):
        est.partial_fit(X[:5], np.array(["cow"] * 5))


@no_convergence_warning
def test_multilabel():
    from sklearn.datasets import make_multilabel_classification

    X, Y = make_multilabel_classification(200, 8, n_classes=4, random_state=1)
    est = MLPClassifier((32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert est.out_activation_ == "logistic" and est.n_outputs_ == 4
    pred = est.predict(X)
    assert pred.shape == Y.shape and set(np.unique(pred)) <= {0, 1}
    proba = est.predict_proba(X)
    assert proba.shape == Y.shape and ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_array_equal(pred, (proba > 0.5).astype(int))
    assert np.mean(pred == Y) > 0.85


@no_convergence_warning
def test_multioutput_regression():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 6))
    Y = X @ rng.normal(size=(6, 3)) + 0.01 * rng.normal(size=(300, 3))
    est = MLPRegressor(hidden_layer_sizes=(32,), max_iter=300, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert est.n_outputs_ == 3 and est.out_activation_ == "identity"
    assert est.predict(X).shape == (300, 3)
    assert est.score(X, Y) > 0.95
    assert [c.shape for c in est.coefs_] == [(6, 32), (32, 3)]


def test_early_stopping_with_given_validation_set(digits):
    X, y = digits
    est = MLPClassifier((16,), max_iter=200, n_iter_no_change=3, random_state=0)
    est.fit(X[:600], y[:600], X_val=X[600:900], y_val=y[600:900])
    assert est.n_iter_ < 200  # stopped early, no ConvergenceWarning
    assert len(est.validation_scores_) == est.n_iter_ == len(est.loss_curve_)
    assert est.best_validation_score_ == max(est.validation_scores_)
    # the best epoch's weights were restored
    assert est.score(X[600:900], y[600:900]) == est.best_validation_score_
    assert est.best_loss_ is None


def test_early_stopping_split_is_stratified_and_seeded(digits):
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), early_stopping=True, max_iter=200,
              n_iter_no_change=5, learning_rate_init=0.01, random_state=3)
    a = MLPClassifier(**kw).fit(X[:500], y[:500])
    b = MLPClassifier(**kw).fit(X[:500], y[:500])
    assert a.validation_scores_ == b.validation_scores_  # bitwise deterministic
    assert a.best_validation_score_ > 0.8
    assert a.n_iter_ < 200 and len(a.validation_scores_) == a.n_iter_


def test_convergence_warning():
    X = np.random.RandomState(0).normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(3\) reached"):
        MLPClassifier((4,), max_iter=3, random_state=0).fit(X, y)


@no_convergence_warning
def test_fitted_attributes_and_views():
    X = np.random.RandomState(0).normal(size=(50, 6))
    y = np.arange(50) % 3
    est = MLPClassifier((7, 5), max_iter=5, random_state=0).fit(X, y)
    assert [c.shape for c in est.coefs_] == [(6, 7), (7, 5), (5, 3)]
    assert [b.shape for b in est.intercepts_] == [(7,), (5,), (3,)]
    assert est.n_layers_ == 4 and est.n_outputs_ == 3 and est.n_features_in_ == 6
    assert est.n_iter_ == 5 and len(est.loss_curve_) == 5 and est.t_ == 250
    assert est.loss_ == est.loss_curve_[-1] and est.best_loss_ == min(est.loss_curve_)
    assert est.validation_scores_ is None and est.best_validation_score_ is None
    assert est.coefs_[0].dtype == np.float64  # float64 X -> float64 model, as sklearn
    # coefs_ are views of the weights predict uses
    before = est.predict_proba(X)
    est.coefs_[-1][:] = 0
    est.intercepts_[-1][:] = 0
    np.testing.assert_allclose(est.predict_proba(X), 1 / 3)
    assert not np.allclose(before, 1 / 3)
    est32 = MLPClassifier((7,), max_iter=2, random_state=0).fit(X.astype(np.float32), y)
    assert est32.coefs_[0].dtype == np.float32


@no_convergence_warning
def test_warm_start_continues():
    X = np.random.RandomState(0).normal(size=(100, 4))
    y = X[:, 0] * 2 - X[:, 1]
    est = MLPRegressor(hidden_layer_sizes=(16,), max_iter=5, warm_start=True, random_state=0)
    est.fit(X, y)
    first = [c.copy() for c in est.coefs_]
    est.fit(X, y)
    assert len(est.loss_curve_) == 10 and est.n_iter_ == 5
    assert est.loss_curve_[9] < est.loss_curve_[4] < est.loss_curve_[0]
    assert not np.array_equal(first[0], est.coefs_[0])
    cold = MLPRegressor(hidden_layer_sizes=(16,), max_iter=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(cold.coefs_[0], first[0])  # same seed, same start


@no_convergence_warning
def test_grid_search_and_cross_val_score(digits):
    from sklearn.model_selection import GridSearchCV, cross_val_score

    X, y = digits[0][:300], digits[1][:300]
    scores = cross_val_score(MLPClassifier((16,), max_iter=50, learning_rate_init=0.01,
                                                   random_state=0), X, y, cv=3)
    assert scores.shape == (3,) and scores.mean() > 0.8
    gs = GridSearchCV(MLPClassifier((16,), max_iter=50, learning_rate_init=0.01,
                                    random_state=0),
                      {"alpha": [1e-4, 1.0], "solver": ["adam", "sgd"]}, cv=2, n_jobs=1)
    gs.fit(X, y)
    assert gs.best_params_["solver"] == "adam"
    assert gs.best_score_ > 0.8


@no_convergence_warning
def test_pickle_round_trip():
    X = np.random.RandomState(0).normal(size=(60, 5))
    y = np.where(X[:, 0] > 0, "yes", "no")
    for est in (MLPClassifier((8,), max_iter=10, random_state=0).fit(X, y),
                MLPRegressor(hidden_layer_sizes=(8,), max_iter=10, random_state=0, dtype="float32").fit(X, X[:, 1])):
        back = pickle.loads(pickle.dumps(est))
        np.testing.assert_array_equal(back.predict(X), est.predict(X))
        for a, b in zip(back.coefs_, est.coefs_):
            np.testing.assert_array_equal(a, b)
        back.coefs_[0][:] = 0  # still views of the unpickled model
        assert not np.array_equal(back.predict(X), est.predict(X))


@no_convergence_warning
def test_solvers_and_schedules():
    X = np.random.RandomState(0).normal(size=(120, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    for solver in ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"):
        est = MLPClassifier((8,), solver=solver, max_iter=60, random_state=0,
                            learning_rate_init=0.01).fit(X, y)
        assert est.score(X, y) > 0.85, solver
    est = MLPClassifier((8,), solver="sgd", learning_rate="invscaling", power_t=0.5,
                        learning_rate_init=0.1, max_iter=4, random_state=0).fit(X, y)
    assert est.t_ == 480
    np.testing.assert_allclose(est._model._net.optimizer_config().lr, 0.1 / 481 ** 0.5)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")


@no_convergence_warning
def test_adaptive_divides_by_five():
    X = np.random.RandomState(0).normal(size=(50, 3))
    y = X[:, 0]
    est = MLPRegressor(hidden_layer_sizes=(4,), solver="sgd", learning_rate="adaptive", learning_rate_init=1e-3,
                       tol=1e9, n_iter_no_change=2, max_iter=7, random_state=0)
    est.fit(X, y)  # no epoch improves by tol: the rate drops every 3rd epoch
    assert est.n_iter_ == 7
    np.testing.assert_allclose(est._lr, 1e-3 / 25)


@no_convergence_warning
def test_verbose_prints_sklearns_lines(capsys):
    X = np.random.RandomState(0).normal(size=(30, 3))
    MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, verbose=True, random_state=0).fit(X, X[:, 0])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Iteration 1, loss = ") and lines[1].startswith("Iteration 2, ")


@no_convergence_warning
def test_extras_and_class_weight():
    X = np.random.RandomState(0).normal(size=(200, 4))
    y = (X[:, 0] > 1.0).astype(int)  # ~16% positives
    plain = MLPClassifier((8,), max_iter=30, random_state=0).fit(X, y)
    balanced = MLPClassifier((8,), max_iter=30, random_state=0, class_weight="balanced",
                             dropout=0.1, l1=1e-4, clip_norm=5.0, n_threads=1).fit(X, y)
    assert balanced.predict(X).sum() > plain.predict(X).sum()
    assert fm.get_num_threads() >= 1


def test_import_without_sklearn():
    import subprocess
    import sys

    code = ("import sys; sys.modules['sklearn'] = None\n"
            "import fastmlp as fm\n"
            "try:\n    fm.MLPClassifier\nexcept ImportError:\n    print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "ok"


@pytest.mark.skipif("poisson" not in fm._enums.LOSSES, reason="the core has no poisson loss yet")
@no_convergence_warning
def test_poisson_regression():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = rng.poisson(np.exp(0.5 * X[:, 0]))
    est = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=100,
                       learning_rate_init=0.01, random_state=0).fit(X, y)
    assert est.out_activation_ == "exp"
    pred = est.predict(X)
    assert (pred > 0).all()
    assert np.corrcoef(pred, np.exp(0.5 * X[:, 0]))[0, 1] > 0.8


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fitted_estimator_keeps_no_training_rows():
    # The labels, the weights and the data of a fit pass through it; a fitted
    # (and pickled) estimator holds the network and its attributes only.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 4))
    y = np.where(X[:, 0] > 0, "a", "b")
    est = MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0,
                        class_weight="balanced").fit(X, y)
    sizes = [getattr(v, "shape", (0,))[:1] for v in vars(est).values()]
    assert (3000,) not in sizes
