"""Hyperparameter search on Dask: the estimators under
``joblib.parallel_config(backend="dask")`` with a dask.distributed
LocalCluster of two worker processes. Skips where dask.distributed or
scikit-learn is not installed (``pip install 'fastmlp[dask]'``)."""

import numpy as np
import pytest

import fastmlp as fm

pytest.importorskip("sklearn", reason="scikit-learn not installed")
distributed = pytest.importorskip("distributed", reason="dask.distributed not installed")
joblib = pytest.importorskip("joblib", reason="joblib not installed")

from sklearn.model_selection import GridSearchCV  # noqa: E402


def _threads():
    import fastmlp

    return fastmlp.get_num_threads()


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=40) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


def _search(n_jobs):
    # Loose tolerance: every fit stops before max_iter (no ConvergenceWarning,
    # which the test settings turn into errors in the workers too).
    est = fm.MLPClassifier(max_iter=300, tol=1e-2, n_iter_no_change=3, random_state=0,
                           learning_rate_init=1e-2,
                           dtype="float32")
    grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-1]}
    return GridSearchCV(est, grid, cv=3, n_jobs=n_jobs)


def test_workers_use_the_threads_they_are_given(client):
    # One thread per worker: fastmlp inside it uses one, not every core.
    assert set(client.run(_threads).values()) == {1}


def test_grid_search_on_a_local_cluster_equals_the_serial_one(client):
    X, y = _data()
    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask"):
            on_dask = _search(-1).fit(X, y)
    workers = {t["worker"] for t in stream.data}
    assert stream.data  # the 4 candidates x 3 folds ran on the cluster (joblib batches them)
    assert workers <= set(client.scheduler_info()["workers"])
    serial = _search(1).fit(X, y)
    assert on_dask.best_params_ == serial.best_params_
    # Bitwise: the same fits, whatever the process or thread count.
    np.testing.assert_array_equal(on_dask.cv_results_["mean_test_score"],
                                  serial.cv_results_["mean_test_score"])
    assert on_dask.best_score_ > 0.7
