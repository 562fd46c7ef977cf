"""Poisson regression (loss="poisson"): what the generic loss suites do not
cover. The loss is torch.nn.PoissonNLLLoss(log_input=True, full=False),
L = mean over n*k of exp(z) - t z, with the network's output exp(z)
(csrc/nn/losses.h); core vs reference, finite differences and torch are in
test_kernels, test_loss_weights, test_parity, test_gradcheck,
test_torch_oracle and test_engine_reference."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref


def test_exp_overflows_to_inf_and_underflows_to_zero(dtype):
    # Past the dtype's range exp(z) is inf (no clamp): the loss is inf, which
    # the engine treats as divergence. Far below it exp(z) is 0 and the loss
    # is exactly -t z.
    big, low = (100.0, -200.0) if dtype == np.float32 else (1000.0, -1000.0)
    z = np.array([[big, 0.0], [low, 1.0]], dtype=dtype)
    t = np.array([[1.0, 2.0], [3.0, 0.0]], dtype=dtype)
    value, out, d = fm.ops.loss_forward_backward("poisson", z, z, t)
    assert value == np.inf and ref.poisson_loss(z, t) == np.inf
    assert out[0, 0] == np.inf and d[0, 0] == np.inf
    assert out[1, 0] == 0.0
    assert d[1, 0] == dtype(-3.0 / 4)
    assert np.isfinite(d[1:]).all()
    zf = z[1:]
    value, _, _ = fm.ops.loss_forward_backward("poisson", zf, zf, t[1:])
    assert value == pytest.approx((-3.0 * low + np.e) / 2, rel=1e-6)
    # Subnormal means keep their value (no clamp at the normal range).
    sub = np.array([[-100.0]], dtype=np.float32)
    out = fm.ops.loss_forward_backward("poisson", sub, sub, np.zeros_like(sub))[1]
    assert out[0, 0] == np.exp(sub[0, 0]) > 0


def test_float32_loss_is_accurate_near_the_optimum(rng):
    # z = log t: exp(z) - t z = t (1 - log t) is a difference of two large
    # terms. The core sums each element in double from the float32 exp(z),
    # so the error is that of exp(z) alone (~1 ulp of t), not of a float32
    # sum of n k such terms.
    t = rng.integers(1, 5000, (512, 4)).astype(np.float32)
    z = np.log(t)
    value, _, _ = fm.ops.loss_forward_backward("poisson", z, z, t)
    want = ref.poisson_loss(z.astype(np.float64), t.astype(np.float64))
    assert abs(value - want) <= 2 * np.finfo(np.float32).eps * t.astype(np.float64).mean()


def test_relation_to_sklearns_half_poisson_deviance(rng):
    # sklearn's MLPRegressor(loss="poisson") minimises, per output, the
    # s-weighted mean over rows of t log(t / mu) - t + mu, summed over the k
    # outputs: (n k / sum s) L + sum_ij s_i (t log t - t) / sum s
    # (reference.poisson_loss documents it).
    base = pytest.importorskip("sklearn.neural_network._base")
    poisson_loss = getattr(base, "poisson_loss", None)
    if poisson_loss is None:
        pytest.skip("this scikit-learn has no neural_network._base.poisson_loss")
    n, k = 40, 3
    z = rng.standard_normal((n, k))
    t = rng.poisson(2.0, (n, k)).astype(float)
    s = rng.uniform(0.1, 2.0, n)
    from scipy.special import xlogy

    for w in (None, s):
        sw = np.ones(n) if w is None else w
        ours = ref.poisson_loss(z, t, sample_weight=w)
        core, _, _ = fm.ops.loss_forward_backward("poisson", z, z, t, sample_weight=w)
        const = (sw[:, None] * (xlogy(t, t) - t)).sum() / sw.sum()
        want = poisson_loss(t, np.exp(z), sample_weight=w)
        assert n * k / sw.sum() * ours + const == pytest.approx(want, rel=1e-12)
        assert n * k / sw.sum() * core + const == pytest.approx(want, rel=1e-12)


def _counts(rng, n=400, d=5):
    X = rng.standard_normal((n, d))
    w = np.array([0.6, -0.4, 0.3, 0.0, 0.2])
    rate = np.exp(0.5 + X @ w + 0.3 * np.sin(2 * X[:, 0]))
    return X, rng.poisson(rate).astype(float), rate


def test_fit_learns_the_rates_of_count_data(rng, dtype):
    X, y, rate = _counts(rng)
    m = fm.MLP([5, 16, 1], activation="tanh", loss="poisson", dtype=dtype, seed=3)
    m.compile(optimizer=fm.optim.Adam(lr=1e-2))
    assert not m.is_classifier
    h = m.fit(X, y, epochs=40, batch_size=32, verbose=0)
    losses = h["loss"]
    assert losses[-1] < losses[0] - 0.1
    pred = m.predict(X)
    assert pred.shape == (len(X),) and (pred > 0).all()
    np.testing.assert_array_equal(pred, m.forward(X)[:, 0])  # the means exp(z)
    assert np.corrcoef(pred, rate)[0, 1] > 0.9
    # The fitted mean loss is near that of the true rates (the best possible).
    best = ref.poisson_loss(np.log(rate)[:, None], y[:, None])
    assert m.loss(X, y) < best + 0.1
    assert 0.0 < m.score(X, y) <= 1.0  # R^2, as MLPRegressor.score


def test_save_load_and_pickle_round_trip(rng, tmp_path):
    X, y, _ = _counts(rng, n=64)
    m = fm.MLP([5, 8, 1], activation="relu", loss="poisson", dtype="float64", seed=1)
    m.compile(optimizer=fm.optim.SGD(lr=0.01, momentum=0.9))
    m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    path = tmp_path / "poisson.npz"
    m.save(path)
    copies = [fm.load(path), pickle.loads(pickle.dumps(m))]
    for m2 in copies:
        assert m2.loss_name == "poisson"
        np.testing.assert_array_equal(m2.predict(X), m.predict(X))
        assert m2.loss(X, y) == m.loss(X, y)
    # Training continues from the same state, step for step.
    want = m.train_step(X[:16], y[:16])
    for m2 in copies:
        assert m2.train_step(X[:16], y[:16]) == want
        np.testing.assert_array_equal(m2.layers[0].W, m.layers[0].W)
