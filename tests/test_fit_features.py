"""fit's options, each checked against values computed here independently:
class_weight="balanced", validation_split, validation_data with sample
weights, early_stopping as an int, EarlyStopping(min_delta, mode,
restore_best_weights), ReduceLROnPlateau driven by fit."""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm


def _data(rng, n, d=6, k=3, probs=None):
    centers = rng.standard_normal((k, d)) * 2.0
    y = rng.choice(k, size=n, p=probs)
    X = centers[y] + rng.standard_normal((n, d)) * 1.5
    return X, y


def _model(seed=3, sizes=(6, 16, 3)):
    return fm.MLP(list(sizes), activation="tanh", loss="cross_entropy", dtype="float64",
                  seed=seed)


def _params(model):
    return [a.copy() for layer in model.layers for a in (layer.W, layer.b)]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _nll(model, X, y):
    """Per-row cross entropy -log p[i, y_i] from the model's probabilities."""
    p = model.forward(X)
    return -np.log(p[np.arange(len(y)), y])


# ---------------------------------------------------------------------------
# class_weight="balanced"
# ---------------------------------------------------------------------------


def _balanced(y, k):
    counts = np.bincount(y, minlength=k)
    return len(y) / (k * counts)


def test_balanced_class_weight_values_in_the_loss(rng):
    X, y = _data(rng, 300, probs=[0.6, 0.3, 0.1])
    m = _model().compile(fm.optim.Adam(0.01))
    m.fit(X, y, epochs=1, batch_size=50, verbose=0)  # not at initialisation
    c = _balanced(y, 3)
    assert len(set(np.round(c, 6))) == 3  # imbalanced: three different weights
    nll = _nll(m, X, y)
    # torch's CrossEntropyLoss(weight=c): sum_i c_{y_i} l_i / sum_i c_{y_i}.
    want = float(np.sum(c[y] * nll) / np.sum(c[y]))
    assert m.loss(X, y, class_weight="balanced") == pytest.approx(want, rel=1e-12)
    assert m.loss(X, y) == pytest.approx(float(nll.mean()), rel=1e-12)
    assert abs(want - float(nll.mean())) > 1e-3 * want  # the weights matter here


def test_balanced_class_weight_in_fit_is_n_over_classes_times_count(rng):
    X, y = _data(rng, 300, probs=[0.6, 0.3, 0.1])
    a = _model().compile(fm.optim.SGD(0.1))
    b = _model().compile(fm.optim.SGD(0.1))
    c = _model().compile(fm.optim.SGD(0.1))
    ha = a.fit(X, y, epochs=2, batch_size=32, verbose=0, class_weight="balanced")
    hb = b.fit(X, y, epochs=2, batch_size=32, verbose=0, class_weight=list(_balanced(y, 3)))
    c.fit(X, y, epochs=2, batch_size=32, verbose=0)
    assert _same(_params(a), _params(b))
    assert ha["loss"] == hb["loss"]
    assert not _same(_params(a), _params(c))


def test_balanced_class_weight_counts_only_the_training_rows(rng):
    X, y = _data(rng, 200, probs=[0.5, 0.3, 0.2])
    y[150:] = 0  # the held-out rows are all class 0: counting them changes the weights
    cut = 150
    a = _model().compile(fm.optim.SGD(0.1))
    b = _model().compile(fm.optim.SGD(0.1))
    a.fit(X, y, epochs=2, batch_size=25, verbose=0, validation_split=0.25,
          class_weight="balanced")
    b.fit(X[:cut], y[:cut], epochs=2, batch_size=25, verbose=0,
          validation_data=(X[cut:], y[cut:]), class_weight=list(_balanced(y[:cut], 3)))
    assert _same(_params(a), _params(b))


# ---------------------------------------------------------------------------
# validation_split and validation_data
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "split"), [(200, 0.25), (97, 0.3)])
def test_validation_split_holds_out_the_last_rows_before_shuffling(rng, n, split):
    X, y = _data(rng, n)
    cut = int(n * (1 - split))
    a = _model().compile(fm.optim.Adam(0.01))
    b = _model().compile(fm.optim.Adam(0.01))
    ha = a.fit(X, y, epochs=3, batch_size=16, verbose=0, shuffle=True, validation_split=split)
    hb = b.fit(X[:cut], y[:cut], epochs=3, batch_size=16, verbose=0, shuffle=True,
               validation_data=(X[cut:], y[cut:]))
    assert _same(_params(a), _params(b))
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert ha[key] == hb[key], key
    # The validation rows are exactly the last n - cut: val_loss recomputed here.
    assert ha["val_loss"][-1] == pytest.approx(float(_nll(a, X[cut:], y[cut:]).mean()),
                                               rel=1e-12)


def test_validation_data_sample_weights_give_the_weighted_val_loss(rng):
    X, y = _data(rng, 200)
    Xv, yv = _data(rng, 60)
    sv = rng.uniform(0.0, 3.0, len(yv))
    m = _model().compile(fm.optim.Adam(0.01))
    h = m.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_data=(Xv, yv, sv))
    nll = _nll(m, Xv, yv)
    # Keras' sample-weighted mean: sum_i s_i l_i / n.
    want = float(np.sum(sv * nll) / len(yv))
    assert h["val_loss"][-1] == pytest.approx(want, rel=1e-12)
    assert abs(want - float(nll.mean())) > 1e-3 * want
    # The weights do not enter the accuracy.
    acc = float(np.mean(m.predict(Xv) == yv))
    assert h["val_accuracy"][-1] == acc


# ---------------------------------------------------------------------------
# early stopping
# ---------------------------------------------------------------------------


def expected_stop(values, patience, min_delta=0.0, mode="min"):
    """Keras' rule, written out: an epoch improves when it beats the best so
    far by more than min_delta; training stops after `patience` epochs in a
    row without improvement. Returns (epochs run, index of the best epoch)."""
    sign = 1.0 if mode == "min" else -1.0
    best, best_i, wait = np.inf, None, 0
    for i, v in enumerate(values):
        if sign * v < best - min_delta:
            best, best_i, wait = sign * v, i, 0
        else:
            wait += 1
            if wait >= patience:
                return i + 1, best_i
    return len(values), best_i


class Snapshots(fm.Callback):
    """The parameters at the end of every epoch (runs before fit's stopper)."""

    def __init__(self):
        self.params = []

    def on_epoch_end(self, epoch, logs):
        self.params.append(_params(self.model))
        return False

    def on_train_begin(self, model):
        self.model = model


def _overfitting_run(rng, early_stopping, epochs=150):
    """Noise labels on few rows: the training loss keeps falling while the
    validation loss turns up, so early stopping must act."""
    X = rng.standard_normal((40, 6))
    y = rng.integers(0, 3, 40)
    Xv = rng.standard_normal((60, 6))
    yv = rng.integers(0, 3, 60)
    m = _model(sizes=(6, 32, 3)).compile(fm.optim.Adam(0.02))
    snaps = Snapshots()
    h = m.fit(X, y, epochs=epochs, batch_size=20, verbose=0, validation_data=(Xv, yv),
              early_stopping=early_stopping, callbacks=[snaps])
    return m, h, snaps, (Xv, yv)


def test_early_stopping_int_is_patience_on_val_loss(rng):
    m, h, snaps, (Xv, yv) = _overfitting_run(rng, early_stopping=3)
    ran, best = expected_stop(h["val_loss"], patience=3)
    assert h.stopped_early
    assert len(h["val_loss"]) == ran < 150
    # It watched val_loss, not loss: the training loss was still improving.
    assert h["loss"][-1] < min(h["loss"][:-1])
    # An int restores the best epoch's weights, as EarlyStopping's default does.
    assert _same(_params(m), snaps.params[best])
    assert m.loss(Xv, yv) == pytest.approx(min(h["val_loss"]), rel=1e-12)


def test_early_stopping_int_without_validation_watches_the_training_loss(rng):
    X, y = _data(rng, 64)
    m = _model().compile(fm.optim.SGD(lr=1e-30))  # too small to change any parameter
    before = _params(m)
    h = m.fit(X, y, epochs=50, batch_size=16, shuffle=False, verbose=0, early_stopping=4)
    # The same parameters give the same loss every epoch: no improvement
    # after the first epoch, so 1 + patience epochs run.
    assert len(set(h["loss"])) == 1
    assert len(h["loss"]) == 5
    assert h.stopped_early
    # (the biases, 0 at the start, did move by ~1e-31; the weights not at all)
    assert all(np.array_equal(a, b) for a, b in zip(_params(m)[::2], before[::2]))


@pytest.mark.parametrize("min_delta", [0.0, 0.02])
def test_early_stopping_min_delta(rng, min_delta):
    stopper = fm.EarlyStopping("val_loss", patience=3, min_delta=min_delta,
                               restore_best_weights=True)
    m, h, snaps, _ = _overfitting_run(rng, early_stopping=stopper)
    ran, best = expected_stop(h["val_loss"], patience=3, min_delta=min_delta)
    assert len(h["val_loss"]) == ran
    assert stopper.best_epoch == best + 1  # History epochs count from 1
    assert _same(_params(m), snaps.params[best])
    if min_delta > 0:  # the threshold made a difference in this run
        assert ran != expected_stop(h["val_loss"], patience=3)[0] or \
            best != expected_stop(h["val_loss"], patience=3)[1]


def test_early_stopping_mode_max_on_val_accuracy(rng):
    stopper = fm.EarlyStopping("val_accuracy", patience=4, mode="max",
                               restore_best_weights=True)
    m, h, snaps, (Xv, yv) = _overfitting_run(rng, early_stopping=stopper)
    ran, best = expected_stop(h["val_accuracy"], patience=4, mode="max")
    assert len(h["val_accuracy"]) == ran < 150
    assert _same(_params(m), snaps.params[best])
    assert float(np.mean(m.predict(Xv) == yv)) == max(h["val_accuracy"])


def test_early_stopping_without_restore_keeps_the_last_weights(rng):
    stopper = fm.EarlyStopping("val_loss", patience=3, restore_best_weights=False)
    m, h, snaps, _ = _overfitting_run(rng, early_stopping=stopper)
    assert h.stopped_early
    assert _same(_params(m), snaps.params[-1])
    assert not _same(_params(m), snaps.params[expected_stop(h["val_loss"], 3)[1]])


# ---------------------------------------------------------------------------
# ReduceLROnPlateau inside fit
# ---------------------------------------------------------------------------


def test_plateau_in_fit_drops_the_rate_after_patience_bad_epochs(rng):
    X, y = _data(rng, 64)
    Xv, yv = _data(rng, 32)
    lr = 1e-30  # the parameters never change: every epoch after the first is bad
    m = _model().compile(fm.optim.SGD(lr=lr), lr_schedule=fm.optim.ReduceLROnPlateau(
        patience=2, factor=0.5, eps=0.0))
    h = m.fit(X, y, epochs=10, batch_size=16, shuffle=False, verbose=0,
              validation_data=(Xv, yv))
    # Epoch 0 sets the best; epochs 1, 2, 3 are bad, and after the third (more
    # than patience = 2) the rate halves for epoch 4; again after 4, 5, 6.
    want = [lr] * 4 + [lr / 2] * 3 + [lr / 4] * 3
    np.testing.assert_allclose(h["lr"], want, rtol=1e-15, atol=0)


def test_plateau_in_fit_watches_val_loss(rng):
    # Recompute the rates from the recorded val_loss with torch's rule
    # (threshold 0: better means strictly lower; patience 2, factor 0.5).
    m2 = _model(sizes=(6, 32, 3)).compile(
        fm.optim.Adam(0.02),
        lr_schedule=fm.optim.ReduceLROnPlateau(patience=2, factor=0.5, threshold=0.0))
    rng2 = np.random.default_rng(5)
    X = rng2.standard_normal((40, 6))
    y = rng2.integers(0, 3, 40)
    Xv = rng2.standard_normal((60, 6))
    yv = rng2.integers(0, 3, 60)
    h = m2.fit(X, y, epochs=40, batch_size=20, verbose=0, validation_data=(Xv, yv))
    lr, best, bad, want = 0.02, np.inf, 0, []
    for v in h["val_loss"]:
        want.append(lr)
        if v < best:
            best, bad = v, 0
        else:
            bad += 1
            if bad > 2:
                lr, bad = lr * 0.5, 0
    np.testing.assert_allclose(h["lr"], want, rtol=1e-15, atol=0)
    assert min(h["lr"]) < 0.02  # the validation loss did plateau
