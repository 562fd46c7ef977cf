"""The estimators under scikit-learn's callback API (sklearn.callback, 1.9+):
the fit is the root task, each epoch (each L-BFGS iteration) a subtask, a
callback can stop the fit, and the fitted_estimator it is handed is a frozen
copy of the model at that point."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn (optional) is not installed")
pytest.importorskip("sklearn.callback",
                    reason="this scikit-learn has no sklearn.callback API (1.9+)")

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import fastmlp as fm  # noqa: E402


class Recorder:
    """Records every hook it sees; stops the fit at subtask `stop_at` (0-based)."""

    def __init__(self, stop_at=None):
        self.events = []
        self.snapshots = {}
        self.stop_at = stop_at

    def setup(self, estimator, context):
        self.events.append(("setup", context.task_name))

    def teardown(self, estimator, context):
        self.events.append(("teardown", context.task_name))

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None, metadata=None):
        self.events.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context, *, X=None, y=None, metadata=None,
                        fitted_estimator=None):
        self.events.append(("end", context.task_name))
        if context.parent is not None and fitted_estimator is not None:
            self.snapshots[context.task_id] = fitted_estimator
            self.last_y = y
            self.last_metadata = metadata
        return self.stop_at is not None and context.parent is not None and (
            context.task_id == self.stop_at)


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 6))
    y = np.where(X[:, 0] - X[:, 2] > 0, "yes", "no")
    return X, y


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_hooks_nest_and_pair(solver):
    X, y = _data()
    rec = Recorder()
    w = np.linspace(0.5, 1.5, X.shape[0])
    est = fm.MLPClassifier((8,), solver=solver, max_iter=4, random_state=0)
    est.set_callbacks(rec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, sample_weight=w)
    names = [e[0] for e in rec.events]
    assert names[0] == "setup" and names[-1] == "teardown"
    assert names[1] == "begin" and names[-2] == "end"  # the root task: the fit
    inner = names[2:-2]
    assert inner == ["begin", "end"] * (len(inner) // 2)
    sub = "epoch" if solver == "adam" else "lbfgs iteration"
    assert {e[1] for e in rec.events[2:-2]} == {sub}
    # One subtask per epoch / iteration (L-BFGS: plus the one that never ran).
    assert len(rec.snapshots) == est.n_iter_
    assert len(inner) // 2 == est.n_iter_ + (solver == "lbfgs")
    # The callbacks see the labels and the weights as given.
    assert set(rec.last_y) == {"yes", "no"}
    np.testing.assert_array_equal(rec.last_metadata["sample_weight"], w)
    assert not hasattr(est, "_callback_fit_ctx")


def test_a_callback_stops_the_fit_without_a_convergence_warning():
    X, y = _data()
    est = fm.MLPClassifier((8,), max_iter=50, random_state=0).set_callbacks(Recorder(stop_at=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ == 3 and len(est.loss_curve_) == 3


def test_lbfgs_stops_at_the_callbacks_request():
    X, y = _data()
    est = fm.MLPClassifier((8,), solver="lbfgs", max_iter=50, random_state=0)
    est.set_callbacks(Recorder(stop_at=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est.fit(X, y)
    assert est.n_iter_ == 2


def test_fitted_estimator_is_the_model_at_that_epoch():
    # fastmlp is deterministic: the snapshot after epoch 2 of a 5-epoch fit is
    # the model a 2-epoch fit ends with, bitwise, and later epochs leave it be.
    X, y = _data()
    rec = Recorder()
    full = fm.MLPClassifier((8,), max_iter=5, random_state=0).set_callbacks(rec)
    short = fm.MLPClassifier((8,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        full.fit(X, y)
        short.fit(X, y)
    snap = rec.snapshots[1]
    assert snap.n_iter_ == 2
    np.testing.assert_array_equal(snap.predict_proba(X), short.predict_proba(X))
    for a, b in zip(snap.coefs_, short.coefs_):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(snap.predict_proba(X), full.predict_proba(X))
    np.testing.assert_array_equal(rec.snapshots[4].predict_proba(X), full.predict_proba(X))


def test_scoring_monitor_logs_every_epoch():
    from sklearn.callback import ScoringMonitor

    X, y = _data()
    mon = ScoringMonitor(scoring="accuracy")
    est = fm.MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).set_callbacks(
        ScoringMonitor(scoring="r2"))
    yr = X[:, 0] - X[:, 2]
    clf = fm.MLPClassifier((8,), max_iter=3, random_state=0).set_callbacks(mon)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        est.fit(X, yr)
    rows = [r for r in mon.get_logs().data if r["task_name"] == "epoch"]
    assert len(rows) == 3
    assert rows[-1]["accuracy"] == pytest.approx(clf.score(X, y))


def test_partial_fit_is_one_subtask():
    X, y = _data()
    rec = Recorder()
    est = fm.MLPClassifier((8,), random_state=0).set_callbacks(rec)
    est.partial_fit(X, y, classes=["no", "yes"])
    est.partial_fit(X, y)
    assert [e for e in rec.events if e[1] == "epoch"] == [("begin", "epoch"), ("end", "epoch")] * 2
