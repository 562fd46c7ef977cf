"""Batch normalization: core against fastmlp.reference, reference against
finite differences, core against torch.nn.BatchNorm1d.

float64: relative error <= 1e-12 (the two sides differ only in summation
order, n terms at ~1e-16 each). float32: the core accumulates every column
statistic in double and rounds each result to float32 once, so against the
float64 reference on the same float32 inputs each element is within one
float32 rounding (eps32 / 2 relative) plus the float64 error of the
computation (covered by 1e-12 of the largest value); we allow eps32.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TeamProbe, rel_error, zip_same

import fastmlp as fm
from fastmlp import _core
from fastmlp import reference as ref

SHAPES = [(2, 1), (7, 3), (64, 17), (300, 257), (1000, 33)]


def grad_rel_error(analytic, numeric):
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if scale == 0 else diff / scale


def batch(rng, shape, dtype):
    # Columns with their own offset and spread, away from zero mean: the
    # normalization has real work to do, and a one-pass variance would lose
    # digits here.
    n, f = shape
    loc = rng.uniform(-5, 5, f)
    scale = rng.uniform(0.2, 3.0, f)
    return (loc + scale * rng.standard_normal((n, f))).astype(dtype)


def affine(rng, f, dtype):
    return (rng.uniform(0.5, 2.0, f).astype(dtype), rng.standard_normal(f).astype(dtype))


def assert_one_rounding(got, want, what):
    """float32 got against float64 want: within eps32 |want| + 1e-12 max|want|."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    bound = np.finfo(np.float32).eps * np.abs(want) + 1e-12 * max(np.abs(want).max(), 1e-300)
    err = np.abs(got - want)
    assert (err <= bound).all(), f"{what}: max err/bound {np.max(err / bound):.3g}"


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_train_and_running_update_match_reference(rng, dtype, shape):
    x = batch(rng, shape, dtype)
    gamma, beta = affine(rng, shape[1], dtype)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    y, cache = fm.ops.batch_norm_forward(x, gamma, beta, eps=1e-5, running_mean=rm,
                                         running_var=rv, momentum=0.2)
    assert y.dtype == dtype
    # The inputs are not modified; the updated statistics are copies.
    assert cache["running_mean"] is not rm and not np.shares_memory(cache["running_mean"], rm)
    x64, g64, b64, rm64, rv64 = (a.astype(np.float64) for a in (x, gamma, beta, rm, rv))
    y_ref, c_ref, rm_ref, rv_ref = ref.batch_norm_forward(x64, g64, b64, eps=1e-5,
                                                          running_mean=rm64, running_var=rv64,
                                                          momentum=0.2)
    pairs = [(y, y_ref, "y"), (cache["xhat"], c_ref["xhat"], "xhat"),
             (cache["mean"], c_ref["mean"], "mean"), (cache["var"], c_ref["var"], "var"),
             (cache["invstd"], c_ref["invstd"], "invstd")]
    if dtype == np.float64:
        for got, want, what in pairs:
            assert rel_error(got, want) <= 1e-12, what
        assert rel_error(cache["running_mean"], rm_ref) <= 1e-12
        assert rel_error(cache["running_var"], rv_ref) <= 1e-12
        return
    for got, want, what in pairs:
        assert_one_rounding(got, want, what)
    # The running update reads the core's own float32 mean and var.
    rm_want, rv_want = (
        0.8 * rm64 + 0.2 * cache["mean"].astype(np.float64),
        0.8 * rv64 + 0.2 * cache["var"].astype(np.float64) * (shape[0] / (shape[0] - 1)),
    )
    assert_one_rounding(cache["running_mean"], rm_want, "running_mean")
    assert_one_rounding(cache["running_var"], rv_want, "running_var")


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_eval_matches_reference(rng, dtype, shape):
    x = batch(rng, shape, dtype)
    gamma, beta = affine(rng, shape[1], dtype)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    y, cache = fm.ops.batch_norm_forward(x, gamma, beta, eps=1e-3, training=False,
                                         running_mean=rm, running_var=rv)
    assert cache is None
    y_ref, c_ref, rm_same, _ = ref.batch_norm_forward(
        *(a.astype(np.float64) for a in (x, gamma, beta)), eps=1e-3, training=False,
        running_mean=rm.astype(np.float64), running_var=rv.astype(np.float64))
    assert np.array_equal(rm_same, rm)
    assert not c_ref["training"]
    if dtype == np.float64:
        assert rel_error(y, y_ref) <= 1e-12
    else:
        assert_one_rounding(y, y_ref, "y")


@pytest.mark.parametrize("shape", SHAPES)
def test_backward_matches_reference(rng, dtype, shape):
    x = batch(rng, shape, dtype)
    gamma, beta = affine(rng, shape[1], dtype)
    _, cache = fm.ops.batch_norm_forward(x, gamma, beta)
    dy = rng.standard_normal(shape).astype(dtype)
    dx, dgamma, dbeta = fm.ops.batch_norm_backward(dy, cache)
    assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
    # The reference reads the core's own cache, so that both sides start from
    # the same xhat and invstd; the forward test covers those.
    cache64 = {"training": True, "gamma": gamma.astype(np.float64),
               "xhat": cache["xhat"].astype(np.float64),
               "invstd": cache["invstd"].astype(np.float64)}
    want = ref.batch_norm_backward(dy.astype(np.float64), cache64)
    for got, w, what in zip_same((dx, dgamma, dbeta), want, ("dx", "dgamma", "dbeta")):
        if dtype == np.float64:
            assert rel_error(got, w) <= 1e-12, what
        else:
            assert_one_rounding(got, w, what)


def test_single_row_normalizes_to_beta(dtype):
    # n = 1: the variance is 0, xhat is 0 and y is beta (torch raises here in
    # training mode; the kernel defines it, the running update refuses it).
    x = np.array([[3.0, -2.0, 7.5]], dtype=dtype)
    gamma, beta = np.array([2.0, 3.0, 4.0], dtype), np.array([0.5, -1.0, 2.0], dtype)
    y, cache = fm.ops.batch_norm_forward(x, gamma, beta)
    assert np.array_equal(y[0], beta)
    assert np.array_equal(cache["xhat"], np.zeros_like(x))
    with pytest.raises(ValueError, match=r"^n:"):
        fm.ops.batch_norm_forward(x, gamma, beta, running_mean=np.zeros(3, dtype),
                                  running_var=np.ones(3, dtype))


@pytest.mark.parametrize("training", [True, False])
def test_reference_backward_matches_finite_differences(rng, training):
    n, f = 6, 4
    x = batch(rng, (n, f), np.float64)
    gamma, beta = affine(rng, f, np.float64)
    rm, rv = rng.standard_normal(f), rng.uniform(0.5, 2.0, f)
    w = rng.standard_normal((n, f))

    def objective():
        y, _, _, _ = ref.batch_norm_forward(x, gamma, beta, eps=1e-3, training=training,
                                            running_mean=rm, running_var=rv)
        return float(np.sum(w * y))

    _, cache, _, _ = ref.batch_norm_forward(x, gamma, beta, eps=1e-3, training=training,
                                            running_mean=rm, running_var=rv)
    dx, dgamma, dbeta = ref.batch_norm_backward(w, cache)
    for analytic, p in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        numeric = ref.numerical_gradient(objective, p)
        # Central differences, h = 1e-6: truncation ~h^2, rounding ~1e-16/h.
        assert grad_rel_error(analytic, numeric) <= 1e-7
    if training:
        # Normalization cannot see a shift of a column: dx sums to 0 per column.
        assert np.abs(dx.sum(axis=0)).max() <= 1e-12 * np.abs(dx).max() * n


@pytest.mark.parametrize(("eps", "momentum"), [(1e-5, 0.1), (1e-3, 0.3)])
def test_core_matches_torch_batchnorm1d(rng, eps, momentum):
    torch = pytest.importorskip("torch")
    f = 19
    bn = torch.nn.BatchNorm1d(f, eps=eps, momentum=momentum, dtype=torch.float64)
    gamma, beta = affine(rng, f, np.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.from_numpy(gamma))
        bn.bias.copy_(torch.from_numpy(beta))
    rm, rv = np.zeros(f), np.ones(f)
    bn.train()
    for n in (8, 33, 2, 100):
        x = batch(rng, (n, f), np.float64)
        w = rng.standard_normal((n, f))
        xt = torch.from_numpy(x).requires_grad_(True)
        bn.zero_grad()
        yt = bn(xt)
        yt.backward(torch.from_numpy(w))
        y, cache = fm.ops.batch_norm_forward(x, gamma, beta, eps=eps, running_mean=rm,
                                             running_var=rv, momentum=momentum)
        rm, rv = cache["running_mean"], cache["running_var"]
        dx, dgamma, dbeta = fm.ops.batch_norm_backward(w, cache)
        assert rel_error(y, yt.detach().numpy()) <= 1e-12
        assert rel_error(rm, bn.running_mean.numpy()) <= 1e-12
        assert rel_error(rv, bn.running_var.numpy()) <= 1e-12
        assert rel_error(dx, xt.grad.numpy()) <= 1e-12
        assert rel_error(dgamma, bn.weight.grad.numpy()) <= 1e-12
        assert rel_error(dbeta, bn.bias.grad.numpy()) <= 1e-12
    bn.eval()
    x = batch(rng, (25, f), np.float64)
    y, _ = fm.ops.batch_norm_forward(x, gamma, beta, eps=eps, training=False, running_mean=rm,
                                     running_var=rv)
    with torch.no_grad():
        assert rel_error(y, bn(torch.from_numpy(x)).numpy()) <= 1e-12


def test_one_and_two_threads_bitwise_identical(rng, dtype):
    if not _core.have_openmp():
        pytest.skip("built without OpenMP")
    # Enough work (n * f * passes) that the core splits the features over two
    # threads, with a feature count that is not a multiple of the split unit.
    x = batch(rng, (600, 1001), dtype)
    gamma, beta = affine(rng, 1001, dtype)
    rm, rv = np.zeros(1001, dtype), np.ones(1001, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    results, teams = [], []
    for threads in (1, 2):
        fm.set_num_threads(threads)
        with TeamProbe() as probe:
            y, cache = fm.ops.batch_norm_forward(x, gamma, beta, running_mean=rm, running_var=rv)
            y_eval, _ = fm.ops.batch_norm_forward(x, gamma, beta, training=False,
                                                  running_mean=cache["running_mean"],
                                                  running_var=cache["running_var"])
            grads = fm.ops.batch_norm_backward(dy, cache)
        teams.append(probe.largest)
        results.append([y, y_eval, *grads] + [cache[k] for k in
                                               ("xhat", "mean", "var", "invstd", "running_mean",
                                                "running_var")])
    assert teams == [0, 2]  # the 2-thread run did split the features
    for a, b in zip_same(*results):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(2), np.zeros(3)),
         ValueError, r"^gamma:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(4)),
         ValueError, r"^beta:"),
        (lambda: fm.ops.batch_norm_forward(np.ones(4), np.ones(4), np.zeros(4)),
         ValueError, r"^x:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((0, 3)), np.ones(3), np.zeros(3)),
         ValueError, r"^x:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3), eps=-1.0),
         ValueError, r"^eps:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3),
                                           running_mean=np.zeros(3)), ValueError, r"^running_var:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3),
                                           training=False), ValueError, r"^running_mean:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3),
                                           running_mean=np.zeros(2), running_var=np.ones(3)),
         ValueError, r"^running_mean:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3),
                                           running_mean=np.zeros(3), running_var=np.ones(3),
                                           momentum=1.5), ValueError, r"^momentum:"),
        (lambda: fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(3),
                                           training=False, running_mean=np.zeros(3),
                                           running_var=-np.ones(3)), ValueError, r"^running_var:"),
        (lambda: fm.ops.batch_norm_backward(np.ones((4, 3)), None), TypeError, r"^cache:"),
        (lambda: fm.ops.batch_norm_backward(
            np.ones((4, 2)), fm.ops.batch_norm_forward(np.ones((4, 3)), np.ones(3),
                                                       np.zeros(3))[1]), ValueError, r"^xhat:"),
        (lambda: _core.batchnorm_forward_train(np.ones((4, 3)), np.ones(3, np.float32),
                                               np.zeros(3), 1e-5), TypeError, r"^gamma:"),
        (lambda: _core.batchnorm_forward_train(np.ones((4, 3), np.int64), np.ones(3),
                                               np.zeros(3), 1e-5), TypeError, r"^x:"),
        (lambda: _core.batchnorm_forward_train(np.ones((3, 4)).T, np.ones(3), np.zeros(3), 1e-5),
         ValueError, r"^x:"),
        (lambda: _core.batchnorm_backward(np.ones((4, 3)), np.ones((4, 3)), np.ones(3),
                                          np.ones(2)), ValueError, r"^invstd:"),
        (lambda: ref.batch_norm_forward(np.ones((4, 3)), np.ones(3), np.zeros(2)),
         ValueError, r"^beta:"),
        (lambda: ref.batch_norm_backward(np.ones((4, 2)), ref.batch_norm_forward(
            np.ones((4, 3)), np.ones(3), np.zeros(3))[1]), ValueError, r"^dy:"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_running_update_refuses_read_only_statistics():
    rm = np.zeros(3)
    rm.flags.writeable = False
    with pytest.raises(ValueError, match=r"^running_mean:"):
        _core.batchnorm_update_running(rm, np.ones(3), np.zeros(3), np.ones(3), 4, 0.1)
