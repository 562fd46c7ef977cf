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
    but the sample-weight equivalence one, which float32 rounding may fail."""
    from sklearn.utils.estimator_checks import check_estimator

    est = Est(hidden_layer_sizes=(20,), max_iter=100, random_state=0, dtype="float32")
    xfail = expected_failed_checks(est)
    assert list(xfail) == ["check_sample_weight_equivalence_on_dense_data"]
    results = check_estimator(est, expected_failed_checks=xfail, on_fail=None,
                              on_skip=None)
    bad = [(r["check_name"], r["status"], r["exception"]) for r in results
           if r["status"] not in ("passed", "skipped", "xfail")
           and r["check_name"] not in xfail]
    assert bad == []
    assert sum(r["status"] == "passed" for r in results) > 40
