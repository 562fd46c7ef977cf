"""fastmlp's threads under threadpoolctl and joblib (fastmlp/_threadpool.py).

threadpool_info() lists the core, threadpool_limits() limits it, joblib's
workers give each fit its share of the cores, and because fastmlp's results
do not depend on the thread count, a parallel search gives bitwise the same
scores as a serial one.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import fastmlp as fm

threadpoolctl = pytest.importorskip("threadpoolctl")


def _fastmlp_entries():
    return [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "fastmlp"]


def test_threadpool_info_lists_the_core():
    entries = _fastmlp_entries()
    assert len(entries) == 1
    info = entries[0]
    assert info["user_api"] == "openmp"
    assert info["num_threads"] == fm.get_num_threads()
    assert info["version"] == fm.__version__
    assert info["filepath"].endswith(fm._core.__file__.rsplit("/", 1)[-1])


def test_threadpool_limits_limits_the_core_and_restores_it():
    before = fm.get_num_threads()
    fm.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(1):
            assert fm.get_num_threads() == 1
            assert _fastmlp_entries()[0]["num_threads"] == 1
        assert fm.get_num_threads() == 2
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            assert fm.get_num_threads() == 1
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            assert fm.get_num_threads() == 2  # not a BLAS
    finally:
        fm.set_num_threads(before)


def test_register_without_threadpoolctl_is_a_no_op(monkeypatch):
    from fastmlp import _threadpool

    monkeypatch.setitem(sys.modules, "threadpoolctl", None)
    assert _threadpool.register() is False


def test_joblib_workers_get_their_share_of_the_cores():
    joblib = pytest.importorskip("joblib")
    got = joblib.Parallel(n_jobs=2)(joblib.delayed(fm.get_num_threads)() for _ in range(4))
    assert got == [max(joblib.cpu_count() // 2, 1)] * 4


@pytest.fixture(scope="module")
def digits():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_parallel_search_equals_serial_bitwise(digits):
    ms = pytest.importorskip("sklearn.model_selection")
    from joblib.externals.loky import get_reusable_executor

    # Fresh workers: under the sanitizers (.ci/sanitize) this search, run on
    # the reusable executor that the previous test's joblib call left behind,
    # waited forever with no worker alive (alone, or after a shutdown, it
    # passes). Without sanitizers it never hung.
    get_reusable_executor().shutdown(wait=True)
    X, y = digits
    est = fm.MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=30,
                           random_state=0)
    serial = ms.cross_val_score(est, X, y, cv=3, n_jobs=1)
    parallel = ms.cross_val_score(est, X, y, cv=3, n_jobs=2)
    np.testing.assert_array_equal(parallel, serial)
    assert (serial > 0.5).all()
    grid = {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(8,), (16,)]}
    g1 = ms.GridSearchCV(est, grid, cv=3, n_jobs=1).fit(X, y)
    g2 = ms.GridSearchCV(est, grid, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(g2.cv_results_["mean_test_score"],
                                  g1.cv_results_["mean_test_score"])
    assert g2.best_params_ == g1.best_params_
    np.testing.assert_array_equal(g2.predict_proba(X), g1.predict_proba(X))
