"""scipy.sparse X: trained on block by block, never densified whole, and
bitwise the same model as the same X given dense."""

import tracemalloc

import numpy as np
import pytest

import fastmlp as fm
import fastmlp.model as fm_model

sp = pytest.importorskip("scipy.sparse", reason="scipy (optional) is not installed")


def _data(n=700, d=30, k=3, seed=0, density=0.2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[rng.random(X.shape) > density] = 0.0
    y = rng.integers(0, k, n)
    return X, y


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few batches, so that an epoch takes several of them."""
    monkeypatch.setattr(fm_model, "_SPARSE_BLOCK_BYTES", 30 * 8 * 100)


def _params(m):
    return [a.copy() for lay in m.layers for a in (lay.W, lay.b)]


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_fit_equals_dense_bitwise(fmt, dtype, small_blocks):
    X, y = _data()
    w = np.random.default_rng(1).random(X.shape[0])

    class Every3(fm.callbacks.Callback):
        every_n_batches = 3

        def __init__(self):
            self.seen = []

        def on_batch_end(self, batch, logs):
            self.seen.append((batch, logs["loss"]))

    def run(Xin, Xval):
        m = fm.MLP([30, 16, 3], dtype=dtype, seed=2, dropout=0.1, batch_norm=True)
        m.compile(optimizer=fm.optim.Adam(lr=1e-2), l2=1e-4)
        cb = Every3()
        h = m.fit(Xin, y, epochs=3, batch_size=32, sample_weight=w, callbacks=[cb],
                  validation_data=(Xval, y[:150]), verbose=0)
        return m, h, cb.seen

    md, hd, seen_d = run(X, X[:150])
    ms, hs, seen_s = run(sp.csr_matrix(X).asformat(fmt), sp.csr_matrix(X[:150]))
    for a, b in zip(_params(md), _params(ms)):
        np.testing.assert_array_equal(a, b)
    assert hd.history["loss"] == hs.history["loss"]
    assert seen_d == seen_s and len(seen_d) > 3
    # The validation set went through in blocks: the same up to rounding.
    np.testing.assert_allclose(hs.history["val_loss"], hd.history["val_loss"], rtol=1e-5)
    assert hs.history["val_accuracy"] == hd.history["val_accuracy"]
    Xs = sp.csr_matrix(X)
    np.testing.assert_array_equal(md.predict_proba(X), ms.predict_proba(Xs))
    np.testing.assert_array_equal(md.predict(X), ms.predict(Xs))


def test_no_block_larger_than_asked(small_blocks, monkeypatch):
    X, y = _data(n=1000)
    sizes = []
    real = fm_model.dense_rows

    def spy(X, rows, dtype):
        out = real(X, rows, dtype)
        sizes.append(out.shape[0])
        return out

    monkeypatch.setattr(fm_model, "dense_rows", spy)
    m = fm.MLP([30, 8, 3], seed=0)
    m.fit(sp.csr_matrix(X), y, epochs=1, batch_size=32, verbose=0)
    m.predict(sp.csr_matrix(X))
    rows_per_block = fm_model._SPARSE_BLOCK_BYTES // (30 * m.dtype.itemsize)
    assert sizes and max(sizes) <= rows_per_block < X.shape[0]
    assert sum(sizes) == 2 * X.shape[0]


def test_a_matrix_too_big_to_densify_trains_in_little_memory():
    # Dense, this X would take 320 MB (float64; 160 MB as the model's
    # float32); the blocks take 8 MiB. tracemalloc sees NumPy's allocations.
    n, d = 10_000, 4_000
    X = sp.random(n, d, density=0.0005, format="csr", random_state=0, dtype=np.float64)
    y = (np.asarray(X.sum(axis=1)).ravel() > 0).astype(np.int64)
    m = fm.MLP([d, 4, 2], seed=0)
    tracemalloc.start()
    try:
        m.fit(X, y, epochs=1, batch_size=500, verbose=0)
        pred = m.predict(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pred.shape == (n,)
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_bad_sparse_input_is_refused_by_name():
    X, y = _data(50)
    m = fm.MLP([30, 4, 3])
    bad = sp.csr_matrix(X)
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN"):
        m.fit(bad, y, epochs=1, verbose=0)
    with pytest.raises(TypeError, match="X: expected a numeric"):
        m.fit(sp.csr_matrix(X.astype(np.complex128)), y, epochs=1, verbose=0)
    m.fit(sp.csr_matrix(X), y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="X: expected 30 features"):
        m.predict(sp.csr_matrix(X[:, :20]))
    with pytest.raises(ValueError, match=r"validation_data\[0\]: contains NaN"):
        m.fit(sp.csr_matrix(X), y, epochs=1, verbose=0, validation_data=(bad, y))


def test_divergence_names_the_same_batch_as_dense(small_blocks):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(640, 30)) * 1e3
    y = rng.normal(size=(640, 1)) * 1e3
    msgs = []
    for Xin in (X, sp.csr_matrix(X)):
        m = fm.MLP([30, 32, 1], loss="mse", seed=0).compile(optimizer=fm.optim.SGD(lr=10.0))
        with pytest.raises(FloatingPointError) as e:
            m.fit(Xin, y, epochs=50, batch_size=8, verbose=0)
        msgs.append(str(e.value).split(":")[1])
    assert msgs[0] == msgs[1]


def test_single_batch_calls_take_sparse():
    X, y = _data(64)
    a = fm.MLP([30, 8, 3], seed=0)
    b = fm.MLP([30, 8, 3], seed=0)
    la = a.train_step(X, y)
    lb = b.train_step(sp.csr_matrix(X), y)
    assert la == lb
    assert a.loss(X, y) == b.loss(sp.csr_matrix(X), y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimators_take_sparse(solver, small_blocks):
    pytest.importorskip("sklearn", reason="scikit-learn (optional) is not installed")
    X, y = _data(n=600)
    yr = X @ np.linspace(-1, 1, X.shape[1])
    for Est, target in ((fm.MLPClassifier, y), (fm.MLPRegressor, yr)):
        kw = dict(hidden_layer_sizes=(12,), solver=solver, max_iter=25, random_state=0)
        a = Est(**kw).fit(X, target)
        b = Est(**kw).fit(sp.csr_matrix(X), target)
        if solver == "lbfgs":
            # The loss and gradient are sums over blocks: equal up to rounding.
            np.testing.assert_allclose(b.loss_curve_ if hasattr(b, "loss_curve_") else b.loss_,
                                       a.loss_curve_ if hasattr(a, "loss_curve_") else a.loss_,
                                       rtol=1e-6)
        else:
            assert a.loss_curve_ == b.loss_curve_
            np.testing.assert_array_equal(a.predict(X), b.predict(sp.csc_matrix(X)))
        assert b.score(sp.csr_matrix(X), target) == pytest.approx(a.score(X, target), rel=1e-6)


def test_lbfgs_batch_norm_needs_dense_X():
    pytest.importorskip("sklearn", reason="scikit-learn (optional) is not installed")
    X, y = _data(n=100)
    est = fm.MLPClassifier(hidden_layer_sizes=(4,), solver="lbfgs", batch_norm=True)
    with pytest.raises(ValueError, match="batch_norm"):
        est.fit(sp.csr_matrix(X), y)
