"""The training surface of fm.MLP: one step worked by hand, fit's history and
reproducibility (repeated runs and 1 vs 2 threads, bitwise), parameter views,
prediction shapes, lazy building, divergence."""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from conftest import TeamProbe


def _params(model):
    return [(lay.W.copy(), lay.b.copy()) for lay in model.layers]


def _blobs(rng, n=300, d=6, k=3):
    centers = rng.normal(scale=3.0, size=(k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.normal(size=(n, d))
    return X, y


def test_one_sgd_step_worked_by_hand():
    # One linear unit, mse (the mean over rows and outputs of (y - t)^2, as
    # torch.nn.MSELoss): dL/dw = 2/n sum_i (y_i - t_i) x_i, dL/db = 2/n sum_i (y_i - t_i).
    m = fm.MLP([2, 1], loss="mse", dtype="float64")
    m.layers[0].W = [[0.5, -1.0]]
    m.layers[0].b = [0.25]
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    t = np.array([1.0, 0.0])
    # outputs: 0.5 - 2 + 0.25 = -1.25 and 1.5 + 1 + 0.25 = 2.75; residuals -2.25 and 2.75
    r = np.array([-2.25, 2.75])
    loss = float(np.mean(r**2))
    dW = 2.0 / 2 * (r @ X)  # [ -2.25 + 8.25, -4.5 - 2.75 ] = [6.0, -7.25]
    db = 2.0 / 2 * r.sum()  # 0.5
    np.testing.assert_allclose(dW, [6.0, -7.25])
    m.compile(optimizer=fm.optim.SGD(lr=0.1))
    assert m.train_step(X, t) == pytest.approx(loss, rel=1e-15)
    np.testing.assert_allclose(m.layers[0].W, [[0.5 - 0.6, -1.0 + 0.725]], rtol=0, atol=4e-16)
    np.testing.assert_allclose(m.layers[0].b, [0.25 - 0.05], rtol=0, atol=4e-16)


def test_gradients_change_nothing(rng):
    X, y = _blobs(rng, n=20)
    m = fm.MLP([6, 8, 3], seed=3)
    before = _params(m)
    g1 = m.gradients(X, y)
    g2 = m.gradients(X, y)
    for (W, b), lay, a, c in zip(before, m.layers, g1, g2):
        np.testing.assert_array_equal(lay.W, W)
        np.testing.assert_array_equal(lay.b, b)
        np.testing.assert_array_equal(a["W"], c["W"])
        assert a["W"].shape == W.shape and a["b"].shape == b.shape
        assert np.abs(a["W"]).sum() > 0


def test_fit_history_and_learning(rng):
    X, y = _blobs(rng)
    m = fm.MLP([6, 16, 3], seed=1).compile(optimizer=fm.optim.SGD(lr=0.05, momentum=0.9))
    h = m.fit(X, y, epochs=12, batch_size=32, validation_split=0.2, verbose=0)
    assert isinstance(h, fm.History)
    assert len(h) == 12 and h.epochs == list(range(1, 13))
    assert set(h.keys()) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time",
                             "grad_norm_0", "grad_norm_1", "dead_relu_0"}
    assert h["lr"] == [0.05] * 12
    assert all(len(v) == 12 for v in h.history.values())
    assert h["loss"][-1] < 0.5 * h["loss"][0]
    assert h["val_accuracy"][-1] >= 0.95
    # a second fit continues the epoch count
    h2 = m.fit(X, y, epochs=2, verbose=0)
    assert h2.epochs == [13, 14]


def test_fit_loss_is_the_mean_over_the_epoch_batches(rng):
    # batch_size larger than n: one full-batch step per epoch, so the epoch's
    # loss is the loss before that step.
    X, y = _blobs(rng, n=50)
    m = fm.MLP([6, 5, 3], dtype="float64", seed=2).compile(optimizer=fm.optim.SGD(lr=0.1))
    expected = m.loss(X, y)
    h = m.fit(X, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
    assert h["loss"][0] == pytest.approx(expected, rel=1e-13)


def test_fit_without_shuffle_equals_train_steps_on_consecutive_batches(rng, dtype):
    X, y = _blobs(rng, n=70)
    a = fm.MLP([6, 7, 3], dtype=dtype, seed=5).compile(optimizer=fm.optim.SGD(lr=0.1, momentum=0.5))
    b = fm.MLP([6, 7, 3], dtype=dtype, seed=5).compile(optimizer=fm.optim.SGD(lr=0.1, momentum=0.5))
    a.fit(X, y, epochs=2, batch_size=32, shuffle=False, verbose=0)
    for _ in range(2):
        for s in range(0, 70, 32):  # the last batch has 6 rows
            b.train_step(X[s:s + 32], y[s:s + 32])
    for (Wa, ba), (Wb, bb) in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


def test_fit_shuffle_follows_the_seeded_permutation(rng):
    X, y = _blobs(rng, n=40)
    a = fm.MLP([6, 4, 3], dtype="float64", seed=9).compile(optimizer=fm.optim.SGD(lr=0.1))
    b = fm.MLP([6, 4, 3], dtype="float64", seed=9).compile(optimizer=fm.optim.SGD(lr=0.1))
    a.fit(X, y, epochs=1, batch_size=16, seed=77, verbose=0)
    perm = fm.ops.permutation(40, 77, 0)
    assert sorted(perm.tolist()) == list(range(40))
    for s in range(0, 40, 16):
        idx = perm[s:s + 16]
        b.train_step(X[idx], y[idx])
    for (Wa, ba), (Wb, bb) in zip(_params(a), _params(b)):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "binary_cross_entropy", "poisson"])
def test_fit_is_bitwise_reproducible_and_thread_count_independent(rng, dtype, loss):
    n, d = 600, 40
    X = rng.normal(size=(n, d))
    if loss == "cross_entropy":
        y, sizes = rng.integers(0, 10, size=n), [d, 96, 64, 10]
    elif loss == "binary_cross_entropy":
        y, sizes = (X[:, 0] > 0).astype(float), [d, 96, 64, 1]
    elif loss == "poisson":
        y, sizes = rng.poisson(np.exp(X[:, :3] * 0.3)).astype(float), [d, 96, 64, 3]
    else:
        y, sizes = X[:, :3] * 0.5, [d, 96, 64, 3]

    def run(threads):
        fm.set_num_threads(threads)
        m = fm.MLP(sizes, activation="tanh", loss=loss, dtype=dtype, seed=11)
        m.compile(optimizer=fm.optim.SGD(lr=0.01, momentum=0.9, nesterov=True))
        with TeamProbe() as probe:
            h = m.fit(X, y, epochs=3, batch_size=128, seed=4, verbose=0)
        if fm._core.have_openmp():
            assert probe.largest == (0 if threads == 1 else 2)
        return _params(m), h["loss"]

    p1, l1 = run(1)
    p2, l2 = run(2)
    p2b, l2b = run(2)
    assert l1 == l2 == l2b
    for (W1, b1), (W2, b2), (W3, b3) in zip(p1, p2, p2b):
        assert W1.tobytes() == W2.tobytes() == W3.tobytes()
        assert b1.tobytes() == b2.tobytes() == b3.tobytes()


def test_different_seeds_give_different_initializations():
    a = fm.MLP([5, 4, 2], seed=0).layers[0].W
    b = fm.MLP([5, 4, 2], seed=1).layers[0].W
    c = fm.MLP([5, 4, 2], seed=0).layers[0].W
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_layer_views_are_zero_copy_and_writable(dtype):
    m = fm.MLP([3, 4, 2], dtype=dtype)
    W = m.layers[0].W
    assert W.dtype == dtype and W.shape == (4, 3) and W.flags.writeable
    assert np.shares_memory(W, m.layers[0].W)
    X = np.ones((1, 3), dtype)
    before = m.forward(X)
    W[:] = 0.0
    m.layers[0].b[:] = 0.0
    after = m.forward(X)
    # hidden layer outputs relu(0) = 0: the output is softmax(b_out) for every row
    z = m.layers[1].b.astype(np.float64)
    np.testing.assert_allclose(after[0], np.exp(z) / np.exp(z).sum(), rtol=1e-6)
    assert not np.array_equal(before, after)
    # the view outlives the model object that handed it out
    del m
    assert W.sum() == 0.0


def test_training_writes_through_the_views(rng):
    m = fm.MLP([3, 4, 2], loss="mse", dtype="float64").compile(optimizer=fm.optim.SGD(lr=0.1))
    W = m.layers[1].W
    old = W.copy()
    m.train_step(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)))
    assert not np.array_equal(W, old)
    np.testing.assert_array_equal(W, m.layers[1].W)


@pytest.mark.parametrize("loss,k,pred_shape,proba_shape", [
    ("cross_entropy", 4, (7,), (7, 4)),
    ("binary_cross_entropy", 1, (7,), (7, 1)),
    ("binary_cross_entropy", 3, (7, 3), (7, 3)),
    ("mse", 1, (7,), None),
    ("mse", 2, (7, 2), None),
])
def test_predict_shapes(loss, k, pred_shape, proba_shape):
    m = fm.MLP([5, 6, k], loss=loss)
    X = np.random.default_rng(0).normal(size=(7, 5))
    p = m.predict(X)
    assert p.shape == pred_shape
    if loss == "cross_entropy":
        assert p.dtype.kind == "i" and ((0 <= p) & (p < k)).all()
        proba = m.predict_proba(X)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    elif loss == "binary_cross_entropy":
        assert set(np.unique(p)) <= {0, 1}
    if proba_shape is not None:
        assert m.predict_proba(X).shape == proba_shape


def test_score_is_accuracy_or_r2(rng):
    X, y = _blobs(rng, n=60)
    clf = fm.MLP([6, 3])
    assert clf.score(X, y) == pytest.approx(np.mean(clf.predict(X) == y))
    reg = fm.MLP([6, 2], loss="mse", dtype="float64")
    t = rng.normal(size=(60, 2))
    pred = reg.predict(X)
    r2 = 1 - ((t - pred) ** 2).sum() / ((t - t.mean(axis=0)) ** 2).sum()
    assert reg.score(X, t) == pytest.approx(r2, rel=1e-12)


def test_lazy_build_from_dense_list(rng):
    m = fm.MLP([fm.Dense(8, activation="tanh"), fm.Dense(3)], seed=4)
    assert m.sizes is None and "?" in repr(m)
    X, y = _blobs(rng, n=30)
    m.fit(X, y, epochs=1, verbose=0)
    assert m.sizes == [6, 8, 3]
    assert [lay.activation for lay in m.layers] == ["tanh", "identity"]
    eager = fm.MLP([6, fm.Dense(8, activation="tanh"), fm.Dense(3)], seed=4)
    fresh = fm.MLP([fm.Dense(8, activation="tanh"), fm.Dense(3)], seed=4)
    fresh.forward(X)  # builds without training
    for a, b in zip(eager.layers, fresh.layers):
        np.testing.assert_array_equal(a.W, b.W)


def test_divergence_raises_and_keeps_finite_parameters():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 4)) * 1e3
    y = rng.normal(size=(64, 1)) * 1e3
    m = fm.MLP([4, 32, 1], loss="mse", dtype="float32").compile(optimizer=fm.optim.SGD(lr=10.0))
    with pytest.raises(FloatingPointError, match=r"diverged at epoch \d+, batch \d+"):
        m.fit(X, y, epochs=50, batch_size=8, verbose=0)
    for lay in m.layers:
        assert np.isfinite(lay.W).all() and np.isfinite(lay.b).all()


def test_verbose_fit_prints_one_line_per_epoch(rng, capsys):
    X, y = _blobs(rng, n=40)
    fm.MLP([6, 3]).fit(X, y, epochs=3, verbose=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3") and "loss" in lines[0]


def test_zero_epochs_changes_nothing(rng):
    X, y = _blobs(rng, n=10)
    m = fm.MLP([6, 3])
    before = _params(m)
    h = m.fit(X, y, epochs=0, verbose=0)
    assert len(h) == 0
    for (W, b), lay in zip(before, m.layers):
        np.testing.assert_array_equal(lay.W, W)
