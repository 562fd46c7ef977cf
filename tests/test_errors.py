"""Bad input raises ValueError or TypeError naming the argument, and leaves
the model as it was. Each row: what is called, the exception, and a pattern
the message must contain (the argument's name, mostly)."""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm


def _model(**kw):
    return fm.MLP([4, 5, 3], **kw)


X = np.ones((6, 4), np.float32)
Y = np.array([0, 1, 2, 0, 1, 2])

MODEL_CASES = {
    "X 1-D": (lambda m: m.predict(np.ones(4)), ValueError, r"^X: expected a 2-D array"),
    "X 3-D": (lambda m: m.predict(np.ones((2, 2, 4))), ValueError, r"^X: expected a 2-D array"),
    "X wrong width": (lambda m: m.predict(np.ones((3, 5))), ValueError, r"^X: expected 4 features"),
    "X strings": (lambda m: m.predict(np.array([["a"] * 4])), TypeError, r"^X: expected a numeric"),
    "X objects": (lambda m: m.predict(np.array([[object()] * 4])), TypeError, r"^X: expected a numeric"),
    "X complex": (lambda m: m.predict(np.ones((2, 4), complex)), TypeError, r"^X: expected a numeric"),
    "X NaN": (lambda m: m.predict(np.full((2, 4), np.nan)), ValueError, r"^X: contains NaN"),
    "X inf": (lambda m: m.forward(np.full((2, 4), np.inf)), ValueError, r"^X: contains NaN"),
    "X empty": (lambda m: m.predict(np.ones((0, 4))), ValueError, r"^X: expected at least one"),
    "X ragged": (lambda m: m.predict([[1, 2], [1]]), ValueError, r"^X: could not be read"),
    "y too short": (lambda m: m.fit(X, Y[:5], verbose=0), ValueError, r"^y: expected 6 targets"),
    "y class too large": (lambda m: m.fit(X, Y + 1, verbose=0), ValueError, r"^y: class ids must lie in \[0, 3\)"),
    "y class negative": (lambda m: m.train_step(X, Y - 1), ValueError, r"^y: class ids must lie"),
    "y not integer": (lambda m: m.loss(X, Y + 0.5), TypeError, r"^y: expected integer class ids"),
    "y one-hot width": (lambda m: m.gradients(X, np.eye(4)[[0, 1, 2, 3, 0, 1]]), ValueError, r"^y: expected class ids of shape"),
    "y negative probabilities": (lambda m: m.loss(X, -np.eye(3)[Y]), ValueError, r"^y: class probabilities"),
    # train_step with arrays already in the core's layout (float32 X, int32 or
    # int64 ids, float32 2-D targets): checked by the core, same messages.
    "train_step X NaN": (lambda m: m.train_step(np.where(X > 0, np.nan, X), Y), ValueError, r"^X: contains NaN"),
    "train_step X inf": (lambda m: m.train_step(np.full((6, 4), -np.inf, np.float32), Y), ValueError, r"^X: contains NaN"),
    "train_step X no rows": (lambda m: m.train_step(X[:0], Y[:0]), ValueError, r"^X: expected at least one sample"),
    "train_step X wrong width": (lambda m: m.train_step(np.ones((6, 5), np.float32), Y), ValueError, r"^X: expected"),
    "train_step int64 id too large": (lambda m: m.train_step(X, Y + 1), ValueError, r"^y: class ids must lie in \[0, 3\)"),
    "train_step int64 id huge": (lambda m: m.train_step(X, Y + 2**40), ValueError, r"^y: class ids must lie in \[0, 3\)"),
    "train_step int32 id negative": (lambda m: m.train_step(X, (Y - 1).astype(np.int32)), ValueError, r"^y: class ids must lie"),
    "train_step y too short": (lambda m: m.train_step(X, Y[:5]), ValueError, r"^y: expected"),
    "train_step probabilities negative": (lambda m: m.train_step(X, -np.eye(3, dtype=np.float32)[Y]), ValueError, r"^y: class probabilities"),
    "train_step probabilities NaN": (lambda m: m.train_step(X, np.full((6, 3), np.nan, np.float32)), ValueError, r"^y: contains NaN"),
    "epochs negative": (lambda m: m.fit(X, Y, epochs=-1), ValueError, r"^epochs:"),
    "epochs float": (lambda m: m.fit(X, Y, epochs=1.5), TypeError, r"^epochs:"),
    "batch_size 0": (lambda m: m.fit(X, Y, batch_size=0), ValueError, r"^batch_size:"),
    "batch_size bool": (lambda m: m.fit(X, Y, batch_size=True), TypeError, r"^batch_size:"),
    "validation_split 1": (lambda m: m.fit(X, Y, validation_split=1.0), ValueError, r"^validation_split:"),
    "validation_split on one row": (lambda m: m.fit(X[:1], Y[:1], validation_split=0.5, verbose=0), ValueError, r"^validation_split:"),
    "validation_data not a pair": (lambda m: m.fit(X, Y, validation_data=X), TypeError, r"^validation_data:"),
    "validation_data width": (lambda m: m.fit(X, Y, validation_data=(X[:, :3], Y)), ValueError, r"^validation_data\[0\]:"),
    "validation_data and split": (lambda m: m.fit(X, Y, validation_data=(X, Y), validation_split=0.5), ValueError, r"^validation_split:"),
    "fit seed negative": (lambda m: m.fit(X, Y, seed=-3), ValueError, r"^seed:"),
    "optimizer an unknown name": (lambda m: m.compile(optimizer="adamm"), ValueError, r"^optimizer:"),
    "optimizer a number": (lambda m: m.compile(optimizer=3), TypeError, r"^optimizer:"),
    "W wrong shape": (lambda m: setattr(m.layers[0], "W", np.ones((3, 3))), ValueError, r"^layers\[0\]\.W: expected shape \(5, 4\)"),
    "W NaN": (lambda m: setattr(m.layers[1], "W", np.full((3, 5), np.nan)), ValueError, r"^layers\[1\]\.W: contains NaN"),
    "b strings": (lambda m: setattr(m.layers[0], "b", np.array(["x"] * 5)), TypeError, r"^layers\[0\]\.b:"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES), ids=list(MODEL_CASES))
def test_bad_model_input_raises_and_changes_nothing(case):
    call, exc, pattern = MODEL_CASES[case]
    m = _model()
    m.compile(optimizer=fm.optim.SGD(lr=0.5, momentum=0.9))
    before = [(lay.W.copy(), lay.b.copy()) for lay in m.layers]
    with pytest.raises(exc, match=pattern):
        call(m)
    for (W, b), lay in zip(before, m.layers):
        np.testing.assert_array_equal(lay.W, W)
        np.testing.assert_array_equal(lay.b, b)
    # and the model still works
    assert m.predict(X).shape == (6,)


CONSTRUCTION_CASES = {
    "seed negative": (lambda: fm.MLP([2, 2], seed=-1), ValueError, r"^seed:"),
    "seed float": (lambda: fm.MLP([2, 2], seed=1.0), TypeError, r"^seed:"),
    "seed too large": (lambda: fm.MLP([2, 2], seed=2**64), ValueError, r"^seed:"),
    "activation unknown": (lambda: fm.MLP([2, 2], activation="swish"), ValueError, r"^activation:"),
    "loss unknown": (lambda: fm.MLP([2, 2], loss="hinge"), ValueError, r"^loss:"),
    "dtype int": (lambda: fm.MLP([2, 2], dtype="int32"), ValueError, r"^dtype:"),
    "dtype float16": (lambda: fm.MLP([2, 2], dtype=np.float16), ValueError, r"^dtype:"),
    "dtype nonsense": (lambda: fm.MLP([2, 2], dtype=object()), TypeError, r"^dtype:"),
    "layers empty": (lambda: fm.MLP([]), ValueError, r"^layers:"),
    "layers input only": (lambda: fm.MLP([3]), ValueError, r"^layers:"),
    "layers zero units": (lambda: fm.MLP([3, 0]), ValueError, r"^layers\[1\]:"),
    "layers a string": (lambda: fm.MLP("3,4"), TypeError, r"^layers:"),
    "layers float size": (lambda: fm.MLP([3, 2.5]), TypeError, r"^layers\[1\]:"),
    "Dense zero units": (lambda: fm.Dense(0), ValueError, r"^units:"),
    "Dense dropout 1": (lambda: fm.Dense(3, dropout=1.0), ValueError, r"^dropout:"),
    "init unknown": (lambda: fm.MLP([2, 2], init="orthogonal"), ValueError, r"^init:"),
    "softmax output with activation": (lambda: fm.MLP([2, fm.Dense(2, activation="relu")]), ValueError, r"^layers: the output layer"),
    "lr zero": (lambda: fm.optim.SGD(lr=0), ValueError, r"^lr:"),
    "lr NaN": (lambda: fm.optim.SGD(lr=float("nan")), ValueError, r"^lr:"),
    "lr string": (lambda: fm.optim.SGD(lr="0.1"), TypeError, r"^lr:"),
    "momentum negative": (lambda: fm.optim.SGD(momentum=-1), ValueError, r"^momentum:"),
    "weight_decay negative": (lambda: fm.optim.SGD(weight_decay=-1e-3), ValueError, r"^weight_decay:"),
    "nesterov without momentum": (lambda: fm.optim.SGD(nesterov=True), ValueError, r"^nesterov:"),
    "threads 0": (lambda: fm.set_num_threads(0), ValueError, r"^n:"),
    "threads string": (lambda: fm.set_num_threads("2"), TypeError, r"^n:"),
    "layers before build": (lambda: fm.MLP([fm.Dense(3)]).layers, RuntimeError, r"not built yet"),
    "binary target out of range": (
        lambda: fm.MLP([2, 1], loss="binary_cross_entropy").fit(np.ones((2, 2)), [0, 2], verbose=0),
        ValueError, r"^y: binary_cross_entropy targets"),
    "poisson target negative": (
        lambda: fm.MLP([2, 1], loss="poisson").fit(np.ones((3, 2)), [0, -1, 2], verbose=0),
        ValueError, r"^y: poisson targets must be >= 0, got -1$"),
    "poisson target NaN": (
        lambda: fm.MLP([2, 1], loss="poisson").loss(np.ones((2, 2)), [1.0, np.nan]),
        ValueError, r"^y: contains NaN"),
    "poisson target inf": (
        lambda: fm.MLP([2, 1], loss="poisson").fit(np.ones((2, 2)), [1.0, np.inf], verbose=0),
        ValueError, r"^y: contains NaN"),
    "poisson validation target negative": (
        lambda: fm.MLP([2, 1], loss="poisson").fit(
            np.ones((2, 2)), [1.0, 2.0], validation_data=(np.ones((1, 2)), [-0.5]), verbose=0),
        ValueError, r"poisson targets must be >= 0, got -0.5$"),
    "poisson class_weight": (
        lambda: fm.MLP([2, 1], loss="poisson").fit(np.ones((2, 2)), [1.0, 2.0],
                                                  class_weight=[1.0, 2.0], verbose=0),
        ValueError, r"^class_weight: not defined for the poisson loss"),
    "poisson output activation": (
        lambda: fm.MLP([2, fm.Dense(1, activation="softplus")], loss="poisson").predict(
            np.ones((2, 2))),
        ValueError, r"^layers: .*'poisson', which applies exp"),
    "predict_proba of a poisson regressor": (
        lambda: fm.MLP([2, 1], loss="poisson").predict_proba(np.ones((2, 2))),
        AttributeError, r"^predict_proba:"),
    "mse target width": (
        lambda: fm.MLP([2, 3], loss="mse").loss(np.ones((2, 2)), np.ones((2, 2))),
        ValueError, r"^y: expected shape"),
    "predict_proba of a regressor": (
        lambda: fm.MLP([2, 1], loss="mse").predict_proba(np.ones((2, 2))),
        AttributeError, r"^predict_proba:"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTION_CASES), ids=list(CONSTRUCTION_CASES))
def test_bad_construction_raises(case):
    call, exc, pattern = CONSTRUCTION_CASES[case]
    with pytest.raises(exc, match=pattern):
        call()


OPS_CASES = {
    "matmul inner": (lambda: fm.ops.matmul(np.ones((2, 3)), np.ones((4, 5))), ValueError, r"^b: inner dimensions"),
    "matmul inner transposed": (lambda: fm.ops.matmul(np.ones((2, 3)), np.ones((4, 5)), trans_a=True), ValueError, r"^b: inner"),
    "matmul 1-D": (lambda: fm.ops.matmul(np.ones(3), np.ones((3, 5))), ValueError, r"^a: expected a 2-D"),
    "matmul strings": (lambda: fm.ops.matmul(np.array([["a"]]), np.ones((1, 1))), TypeError, r"^a: expected a numeric"),
    "matmul out dtype": (lambda: fm.ops.matmul(np.ones((2, 3)), np.ones((3, 5)), out=np.ones((2, 5), np.float32)), TypeError, r"^out:"),
    "matmul out shape": (lambda: fm.ops.matmul(np.ones((2, 3)), np.ones((3, 5)), out=np.ones((2, 4))), ValueError, r"^out: expected shape"),
    "matmul out not contiguous": (lambda: fm.ops.matmul(np.ones((2, 3)), np.ones((3, 5)), out=np.ones((5, 2)).T), ValueError, r"^out:"),
    "matmul out a list": (lambda: fm.ops.matmul(np.ones((2, 3)), np.ones((3, 5)), out=[[0.0] * 5] * 2), TypeError, r"^out:"),
    "matmul out is a": (lambda: (lambda a: fm.ops.matmul(a, np.ones((3, 3)), out=a))(np.ones((3, 3))), ValueError, r"^out: shares memory"),
    "matmul out inside b": (lambda: (lambda b: fm.ops.matmul(np.ones((2, 6), np.float32), b, out=b[:2]))(np.ones((6, 6), np.float32)), ValueError, r"^out: shares memory"),
    "matmul_bf16 out is b": (lambda: (lambda b: fm.ops.matmul_bf16(np.ones((4, 4), np.float32), b, out=b))(np.ones((4, 4), np.float32)), ValueError, r"^out: shares memory"),
    "matmul flag ambiguous": (lambda: fm.ops.matmul(np.ones((2, 2)), np.ones((2, 2)), trans_a=np.ones(2)), ValueError, r"truth value"),
    "dense_forward x width": (lambda: fm.ops.dense_forward(np.ones((2, 3)), np.ones((4, 2)), np.ones(4), "relu"), ValueError, r"^x:"),
    "dense_forward b length": (lambda: fm.ops.dense_forward(np.ones((2, 3)), np.ones((4, 3)), np.ones(3), "relu"), ValueError, r"^b:"),
    "dense_forward activation": (lambda: fm.ops.dense_forward(np.ones((2, 3)), np.ones((4, 3)), np.ones(4), "swish"), ValueError, r"^act:"),
    "dense_backward y shape": (
        lambda: fm.ops.dense_backward(np.ones((2, 4)), np.ones((2, 3)), np.ones((4, 3)), np.ones((2, 4)), np.ones((3, 4)), "relu"),
        ValueError, r"^y:"),
    "activation_backward z shape": (
        lambda: fm.ops.activation_backward(np.ones((2, 3)), np.ones((2, 4)), np.ones((2, 3)), "tanh"), ValueError, r"^z:"),
    "loss target shape": (
        lambda: fm.ops.loss_forward_backward("mse", np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 4))), ValueError, r"^target:"),
    "loss class id range": (
        lambda: fm.ops.loss_forward_backward("cross_entropy", np.ones((2, 3)), np.ones((2, 3)), np.array([0, 5])),
        ValueError, r"^target: class id 5"),
    "loss class ids with mse": (
        lambda: fm.ops.loss_forward_backward("mse", np.ones((2, 3)), np.ones((2, 3)), np.array([0, 1])), ValueError, r"^target:"),
    "sgd gradient length": (lambda: fm.ops.sgd_step(np.ones(3), np.ones(4), 0.1), ValueError, r"^g:"),
    "sgd buffer length": (lambda: fm.ops.sgd_step(np.ones(3), np.ones(3), 0.1, momentum=0.9, buf=np.ones(2)), ValueError, r"^buf:"),
    "permutation negative": (lambda: fm.ops.permutation(-1, 0), ValueError, r"^n:"),
}


@pytest.mark.parametrize("case", list(OPS_CASES), ids=list(OPS_CASES))
def test_bad_ops_input_raises(case):
    call, exc, pattern = OPS_CASES[case]
    with pytest.raises(exc, match=pattern):
        call()


def test_lazy_model_checks_later_inputs_against_the_first():
    m = fm.MLP([fm.Dense(4), fm.Dense(2)])
    m.fit(np.ones((8, 3)), np.zeros(8, int), epochs=1, verbose=0)
    assert m.sizes == [3, 4, 2]
    with pytest.raises(ValueError, match=r"^X: expected 3 features"):
        m.predict(np.ones((2, 5)))


def test_lazy_model_rejects_1d_first_input_without_building():
    m = fm.MLP([fm.Dense(4), fm.Dense(2)])
    with pytest.raises(ValueError, match=r"^X: expected a 2-D"):
        m.fit(np.ones(8), np.zeros(8, int), verbose=0)
    assert m.sizes is None


@pytest.mark.parametrize("loss, bad, pattern", [
    ("binary_cross_entropy", 1.5, r"^y: binary_cross_entropy targets must lie in \[0, 1\]"),
    ("binary_cross_entropy", -0.1, r"^y: binary_cross_entropy targets must lie"),
    ("mse", np.nan, r"^y: contains NaN"),
    ("mse", np.inf, r"^y: contains NaN"),
    ("poisson", -1.0, r"^y: poisson targets must be >= 0, got -1$"),
    ("poisson", -np.finfo(np.float32).tiny, r"^y: poisson targets must be >= 0"),
    ("poisson", np.nan, r"^y: contains NaN"),
])
def test_train_step_dense_targets_checked_by_the_core(loss, bad, pattern):
    m = fm.MLP([4, 5, 2], loss=loss, dtype="float32").compile(fm.optim.SGD(lr=0.5))
    before = [lay.W.copy() for lay in m.layers]
    t = np.full((6, 2), 0.5, np.float32)
    t[3, 1] = bad
    with pytest.raises(ValueError, match=pattern):
        m.train_step(X, t)
    for W, lay in zip(before, m.layers):
        np.testing.assert_array_equal(lay.W, W)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_core_layout_and_converted_inputs_step_alike(dtype):
    rng = np.random.default_rng(4)
    Xf = rng.standard_normal((16, 4))
    ids = rng.integers(0, 3, 16)
    models = [fm.MLP([4, 8, 3], dtype=dtype, seed=2).compile(fm.optim.Adam(1e-2)) for _ in range(4)]
    inputs = [
        (Xf.astype(dtype), ids.astype(np.int64)),   # core layout, int64 ids
        (Xf.astype(dtype), ids.astype(np.int32)),   # core layout, int32 ids
        (Xf.tolist(), ids.tolist()),                # converted in Python
        (np.asfortranarray(Xf), ids.astype(np.uint8)),
    ]
    losses = [[m.train_step(x, y) for _ in range(3)] for m, (x, y) in zip(models, inputs)]
    assert all(l == losses[0] for l in losses)
    for m in models[1:]:
        for a, b in zip(m.layers, models[0].layers):
            np.testing.assert_array_equal(a.W, b.W)


@pytest.mark.parametrize("dtype", [">i8", ">i4", "<i8", ">f8"])
def test_class_ids_in_any_byte_order(dtype):
    m = fm.MLP([4, 5, 3], seed=0).compile(fm.optim.SGD(lr=0.1))
    ids = np.array([0, 1, 2, 0, 1, 2]).astype(dtype)
    ref = fm.MLP([4, 5, 3], seed=0).compile(fm.optim.SGD(lr=0.1))
    assert m.train_step(X, ids) == ref.train_step(X, Y)
    assert m.loss(X, ids) == ref.loss(X, Y)
    with pytest.raises(ValueError, match=r"^y: class ids must lie in \[0, 3\) .* got values in \[1(\.0)?, 3(\.0)?\]"):
        m.fit(X, (ids + 1).astype(dtype), verbose=0)
