"""Each core kernel (through fm.ops) against its twin in fm.reference.

float64: relative error <= 1e-12 (the kernels round like the reference up to
summation order). float32: the core is compared with the float64 reference
evaluated on the same float32 inputs, within the rigorous bound of a k-term
sum (k * eps * sum of |terms|) plus a few ulps for each elementary function.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rel_error

import fastmlp as fm
from fastmlp import reference as ref

ACTS = ref.ACTIVATIONS
LOSSES = ref.LOSSES


def ulps(dtype, n=8):
    return n * np.finfo(dtype).eps


def assert_derivative_close(dz, expected, dy, dtype):
    """float32 dz = dy * act'(z): act' is a difference of O(1) terms (1 - y^2,
    Phi(z) + z phi(z), y + 1), so it carries an *absolute* error of a few eps,
    not a relative one: |error| <= 16 eps |dy| (+ 16 eps |dz| for the product)."""
    eps = np.finfo(dtype).eps
    bound = 16 * eps * np.abs(dy.astype(np.float64)) + 16 * eps * np.abs(expected) + 1e-30
    err = np.abs(dz.astype(np.float64) - expected)
    assert (err <= bound).all(), f"max err/bound {np.max(err / bound):.3g}"


def pre_activations(rng, shape, dtype):
    z = rng.standard_normal(shape) * 3.0
    z.flat[:6] = [0.0, -0.0, 40.0, -40.0, 1e-8, -1e-8][: min(6, z.size)]
    return z.astype(dtype)


@pytest.mark.parametrize("act", ACTS)
def test_activation_forward(rng, dtype, act):
    z = pre_activations(rng, (37, 29), dtype)
    y = fm.ops.activation_forward(z, act)
    expected = ref.activation_forward(z.astype(np.float64), act)
    assert y.dtype == dtype
    if dtype == np.float64:
        assert rel_error(y, expected) <= 1e-12
        np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-300)
    else:
        np.testing.assert_allclose(y, expected, rtol=ulps(dtype), atol=ulps(dtype) * 1e-3)


@pytest.mark.parametrize("act", ACTS)
def test_activation_backward(rng, dtype, act):
    z = pre_activations(rng, (37, 29), dtype)
    y = fm.ops.activation_forward(z, act)
    dy = rng.standard_normal(z.shape).astype(dtype)
    dz = fm.ops.activation_backward(dy, z, y, act)
    expected = ref.activation_backward(dy.astype(np.float64), z.astype(np.float64),
                                       y.astype(np.float64), act)
    if dtype == np.float64:
        np.testing.assert_allclose(dz, expected, rtol=1e-12, atol=1e-300)
    else:
        assert_derivative_close(dz, expected, dy, dtype)


def test_activations_extreme_inputs_stay_finite(dtype):
    z = np.array([[-1e4, -800.0, -80.0, 0.0, 80.0, 800.0, 1e4]], dtype=dtype)
    for act in ACTS:
        y = fm.ops.activation_forward(z, act)
        dz = fm.ops.activation_backward(np.ones_like(z), z, y, act)
        assert np.isfinite(y).all(), act
        assert np.isfinite(dz).all(), act


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize(("n", "n_in", "n_out"), [(1, 1, 1), (257, 3, 17), (5, 129, 3), (16, 17, 129), (300, 40, 100)])
def test_dense_forward_backward(rng, dtype, act, n, n_in, n_out):
    x = rng.standard_normal((n, n_in)).astype(dtype)
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    z, y = fm.ops.dense_forward(x, w, b, act)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    z_ref, _ = ref.dense_forward(x64, w64, b64, act)
    dy = rng.standard_normal((n, n_out)).astype(dtype)
    dx, dw, db, dz = fm.ops.dense_backward(dy, x, w, z, y, act)
    # The backward reference uses the core's own z and y, so that a relu kink
    # decides the same way on both sides; the forward check covers z and y.
    dx_ref, dw_ref, db_ref, dz_ref = ref.dense_backward(
        dy.astype(np.float64), x64, w64, z.astype(np.float64), y.astype(np.float64), act)
    if dtype == np.float64:
        for got, want in ((z, z_ref), (y, ref.activation_forward(z_ref, act)), (dz, dz_ref),
                          (dw, dw_ref), (db, db_ref), (dx, dx_ref)):
            assert rel_error(got, want) <= 1e-12
        return
    eps = np.finfo(dtype).eps
    # z: an (n_in + 1)-term sum; bound k * eps * sum|terms|.
    bound_z = (n_in + 1) * eps * (np.abs(x64) @ np.abs(w64).T + np.abs(b64))
    assert (np.abs(z - z_ref) <= bound_z + 1e-30).all()
    np.testing.assert_allclose(y, ref.activation_forward(z.astype(np.float64), act),
                               rtol=ulps(dtype), atol=ulps(dtype) * 1e-3)
    assert_derivative_close(dz, dz_ref, dy, dtype)
    dz64 = dz.astype(np.float64)
    bound_dw = n * eps * (np.abs(dz64).T @ np.abs(x64)) + 1e-30
    bound_db = n * eps * np.abs(dz64).sum(axis=0) + 1e-30
    bound_dx = n_out * eps * (np.abs(dz64) @ np.abs(w64)) + 1e-30
    assert (np.abs(dw - dz64.T @ x64) <= bound_dw).all()
    assert (np.abs(db - dz64.sum(axis=0)) <= bound_db).all()
    assert (np.abs(dx - dz64 @ w64) <= bound_dx).all()


def _targets(rng, loss, n, k, dtype, soft=False):
    if loss == "cross_entropy":
        if soft:
            t = rng.random((n, k))
            return (t / t.sum(axis=1, keepdims=True)).astype(dtype)
        return rng.integers(0, k, n).astype(np.int32)
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) if soft else (rng.random((n, k)) > 0.5)).astype(dtype)
    if loss == "poisson":  # counts, or (soft) any non-negative values
        return (rng.random((n, k)) * 3 if soft else rng.poisson(2.0, (n, k))).astype(dtype)
    return rng.standard_normal((n, k)).astype(dtype)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize(("n", "k"), [(1, 1), (1, 3), (257, 10), (33, 129)])
def test_loss_forward_backward(rng, dtype, loss, soft, n, k):
    z = (rng.standard_normal((n, k)) * 4).astype(dtype)
    z.flat[0] = 60.0  # far into saturation
    y = z.copy()  # mse: identity output
    t = _targets(rng, loss, n, k, dtype, soft)
    value, out, d = fm.ops.loss_forward_backward(loss, z, y, t)
    z64 = z.astype(np.float64)
    t64 = t if t.dtype == np.int32 else t.astype(np.float64)
    want_value = ref.loss_forward(z64, z64, t64, loss)
    want_out = ref.output_transform(z64, loss)
    want_d = ref.loss_backward(z64, z64, t64, loss)
    assert d.dtype == dtype
    if dtype == np.float64:
        assert abs(value - want_value) <= 1e-12 * max(1.0, abs(want_value))
        assert rel_error(out, want_out) <= 1e-12
        np.testing.assert_allclose(d, want_d, rtol=1e-12, atol=1e-15 * np.abs(want_d).max())
        return
    eps = np.finfo(dtype).eps
    # float32: each element carries a few ulps (exp, log, the softmax sum of k terms).
    assert abs(value - want_value) <= (k + 8) * eps * max(1.0, abs(want_value))
    np.testing.assert_allclose(out, want_out, rtol=(k + 8) * eps, atol=(k + 8) * eps * 1e-3)
    np.testing.assert_allclose(d, want_d, rtol=(k + 8) * eps,
                               atol=(k + 8) * eps * max(np.abs(want_d).max(), 1e-30))


def test_cross_entropy_extreme_logits_are_stable(dtype):
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], dtype=dtype)
    labels = np.array([1, 2], dtype=np.int32)
    value, out, d = fm.ops.loss_forward_backward("cross_entropy", z, z, labels)
    assert np.isfinite(value)
    assert value == pytest.approx((2000.0 + np.log(3.0)) / 2, rel=1e-6)
    assert np.isfinite(out).all()
    assert np.isfinite(d).all()
    value, _, d = fm.ops.loss_forward_backward("binary_cross_entropy", z, z,
                                                np.ones_like(z))
    assert np.isfinite(value)
    assert np.isfinite(d).all()


@pytest.mark.parametrize(("momentum", "nesterov", "wd"),
                         [(0.0, False, 0.0), (0.0, False, 1e-2), (0.9, False, 0.0),
                          (0.9, True, 5e-3), (0.5, False, 1e-1)])
def test_sgd_step_over_many_steps(rng, dtype, momentum, nesterov, wd):
    p = rng.standard_normal(1000).astype(dtype)
    p_ref = p.astype(np.float64)
    buf = buf_ref = None
    for _ in range(20):
        g = rng.standard_normal(1000).astype(dtype)
        p, buf = fm.ops.sgd_step(p, g, lr=0.05, momentum=momentum, nesterov=nesterov,
                                 weight_decay=wd, buf=buf)
        # Compare one step at a time from the core's own state (no drift).
        p_ref, buf_ref = ref.sgd_step(p_ref, g.astype(np.float64), 0.05, momentum, nesterov, wd,
                                      buf_ref)
        if dtype == np.float64:
            assert rel_error(p, p_ref) <= 1e-12
        else:
            np.testing.assert_allclose(p, p_ref, rtol=1e-5, atol=1e-5)
        p_ref = p.astype(np.float64)
        buf_ref = None if buf is None else buf.astype(np.float64)


def test_permutation_is_a_seeded_permutation():
    p = fm.ops.permutation(1000, seed=3, epoch=0)
    assert np.array_equal(np.sort(p), np.arange(1000))
    assert np.array_equal(p, fm.ops.permutation(1000, seed=3, epoch=0))
    assert not np.array_equal(p, fm.ops.permutation(1000, seed=3, epoch=1))
    assert not np.array_equal(p, fm.ops.permutation(1000, seed=4, epoch=0))
    # Every position is hit by every value with roughly equal frequency.
    counts = np.zeros((5, 5))
    for e in range(2000):
        q = fm.ops.permutation(5, seed=11, epoch=e)
        counts[np.arange(5), q] += 1
    assert np.abs(counts / 2000 - 0.2).max() < 0.05


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dense", [False, True])
def test_network_cross_entropy_reuses_forward_lse_bitwise(dtype, dense):
    # The network keeps each row's log-sum-exp from its forward pass for the
    # loss; its loss must be exactly the standalone kernel's on the same logits.
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((37, 9)) * 4).astype(dtype)
    ids = rng.integers(0, 7, 37)
    y = np.eye(7, dtype=dtype)[ids] * 0.8 + 0.2 / 7 if dense else ids
    m = fm.MLP([9, 7], activation="relu", loss="cross_entropy", dtype=dtype, seed=1)
    lay = m.layers[0]
    z, p = fm.ops.dense_forward(X, lay.W, lay.b, "identity")
    value, _, _ = fm.ops.loss_forward_backward("cross_entropy", z, p, y)
    assert m.loss(X, y) == value


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8"])
@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 1000])
def test_scan_matches_numpy(dtype, n):
    # _core.scan, the one pass behind the input checks: (all finite, min, max).
    from fastmlp import _core

    rng = np.random.default_rng(n)
    a = (rng.standard_normal(n) * 50).astype(dtype) if dtype[0] == "f" else \
        rng.integers(0, 200 if dtype == "uint8" else 10**6, n).astype(dtype)
    finite, lo, hi = _core.scan(a)
    assert finite
    assert (lo, hi) == ((float(a.min()), float(a.max())) if n else (np.inf, -np.inf))
    if dtype[0] == "f" and n:
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[n // 2] = bad
            finite, lo, hi = _core.scan(b)
            rest = np.delete(b, n // 2)
            assert not finite
            if bad != bad:  # NaN is skipped by min/max
                expect = (float(rest.min()), float(rest.max())) if rest.size else (np.inf, -np.inf)
                assert (lo, hi) == expect
    # Layouts and byte orders it does not read are declined (the caller uses NumPy).
    assert _core.scan(np.zeros((4, 4), dtype)[:, ::2]) is None
    if np.dtype(dtype).itemsize > 1:
        assert _core.scan(a.astype(np.dtype(dtype).newbyteorder())) is None
