"""The training engine end to end: optimizers, schedules, regularization,
dropout, batch norm, early stopping, history, weights, save/load, threads."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import fastmlp as fm
from conftest import TeamProbe


def _blobs(rng, n=240, d=6, k=3):
    centers = rng.standard_normal((k, d)) * 3.0
    y = rng.integers(0, k, n)
    X = centers[y] + rng.standard_normal((n, d))
    return X, y


def _model(dtype="float64", **kw):
    args = dict(activation="relu", loss="cross_entropy", dtype=dtype, seed=3)
    args.update(kw)
    return fm.MLP([6, 16, 12, 3], **args)


def _params(model):
    out = []
    for layer in model.layers:
        out += [layer.W.copy(), layer.b.copy()]
        if layer.batch_norm:
            out += [layer.gamma.copy(), layer.beta.copy(),
                    layer.running_mean.copy(), layer.running_var.copy()]
    return out


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


OPTIMIZERS = [
    lambda: fm.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda: fm.optim.Adam(lr=1e-2),
    lambda: fm.optim.AdamW(lr=1e-2, weight_decay=0.05, amsgrad=True),
    lambda: fm.optim.RMSprop(lr=1e-3, momentum=0.5, centered=True),
    lambda: fm.optim.Adagrad(lr=0.05, lr_decay=1e-3),
]


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_bitwise_same_for_1_and_2_threads(rng, make_opt, dtype):
    X, y = _blobs(rng, n=400)
    results, teams = [], []
    for threads in (1, 2):
        fm.set_num_threads(threads)
        try:
            # Wide enough that the GEMMs, the dropout masks, batch norm and
            # the update split over two threads (asserted with the probe).
            m = fm.MLP([6, Dense(512, dropout=0.2, batch_norm=True), Dense(256, dropout=0.1), 3],
                       dtype=dtype, seed=5)
            m.compile(make_opt(), l1=1e-4, l2=1e-3, clip_norm=1.0, clip_value=0.5,
                      lr_schedule=fm.optim.CosineAnnealingLR(T_max=4, warmup_epochs=1))
            with TeamProbe() as probe:
                h = m.fit(X, y, epochs=3, batch_size=100, verbose=0)
            results.append((_params(m), h["loss"]))
            teams.append(probe.largest)
        finally:
            fm.set_num_threads(2)
    if fm._core.have_openmp():
        assert teams == [0, 2]  # the 2-thread run really ran on 2 threads
    assert _same(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]


Dense = fm.Dense


def test_repeated_fit_is_bitwise_identical(rng):
    X, y = _blobs(rng)
    runs = []
    for _ in range(2):
        m = _model(dropout=0.3, batch_norm=True).compile(fm.optim.Adam(1e-2))
        m.fit(X, y, epochs=3, batch_size=32, verbose=0)
        runs.append(_params(m))
    assert _same(*runs)


def test_dropout_changes_training_but_not_eval(rng):
    X, y = _blobs(rng)
    m = _model(dropout=0.5)
    assert np.array_equal(m.forward(X), m.forward(X))            # eval: deterministic
    a = m.forward(X, training=True)
    assert not np.allclose(a, m.forward(X))                       # masks active
    assert np.array_equal(a, m.forward(X, training=True))         # same step, same masks
    m.train_step(X[:32], y[:32])
    assert not np.array_equal(a, m.forward(X, training=True))     # next step, new masks


def test_batch_norm_running_stats_follow_torch_rule(rng):
    X, y = _blobs(rng, n=64)
    m = _model(batch_norm=True).compile(fm.optim.SGD(lr=0.0 + 1e-12))
    layer = m.layers[0]
    z = X @ layer.W.T + layer.b
    m.train_step(X, y)
    mean, var = z.mean(axis=0), z.var(axis=0, ddof=1)
    np.testing.assert_allclose(layer.running_mean, 0.1 * mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(layer.running_var, 0.9 + 0.1 * var, rtol=1e-12)


def test_batch_norm_rejects_single_row_batches(rng):
    X, y = _blobs(rng, n=65)
    m = _model(batch_norm=True)
    with pytest.raises(ValueError, match="batch_size"):
        m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    with pytest.raises(ValueError, match="X"):
        m.train_step(X[:1], y[:1])


def test_history_records_lr_grad_norms_dead_units_accuracy(rng):
    X, y = _blobs(rng)
    m = _model(dropout=0.0).compile(fm.optim.SGD(lr=0.1),
                                    lr_schedule=fm.optim.StepLR(step_size=2, gamma=0.5))
    grads = m.gradients(X, y)
    h = m.fit(X, y, epochs=5, batch_size=X.shape[0], shuffle=False, verbose=0)
    assert h["lr"] == [0.1, 0.1, 0.05, 0.05, 0.025]
    # One batch per epoch: epoch 1's norm is the norm of the gradient at the start.
    for i, g in enumerate(grads):
        expect = np.sqrt(np.sum(g["W"] ** 2) + np.sum(g["b"] ** 2))
        np.testing.assert_allclose(h[f"grad_norm_{i}"][0], expect, rtol=1e-12)
    assert h.grad_norms().shape == (5, 3)
    for key in ("dead_relu_0", "dead_relu_1", "accuracy", "loss", "time"):
        assert len(h[key]) == 5
    assert "dead_relu_2" not in h  # output layer
    assert 0.0 <= min(h["accuracy"]) <= max(h["accuracy"]) <= 1.0


def test_dead_relu_fraction_sees_dead_units(rng):
    X, y = _blobs(rng)
    m = _model()
    b = m.layers[0].b
    b[:8] = -1e6  # these 8 of 16 units can never fire
    h = m.fit(X, y, epochs=1, batch_size=40, verbose=0)
    assert h["dead_relu_0"][0] == 0.5


@pytest.mark.parametrize("threads", [1, 2])
def test_dead_relu_fractions_of_wide_layers_match_numpy(rng, threads):
    # Layers of several cache lines of flags, on one and two threads. The
    # learning rate is
    # too small to move a float32 weight, so every batch sees the initial
    # network: a unit is dead when no sample of the epoch makes it fire,
    # which NumPy computes from that network. Units killed by their bias sit
    # at 64-unit edges (63, 64, 127, 128, 199; 0 and 129 of the second layer).
    fm.set_num_threads(threads)
    X = rng.standard_normal((1024, 20)).astype(np.float32)
    y = rng.integers(0, 3, 1024)
    m = fm.MLP([20, 200, 130, 3], activation="relu", loss="cross_entropy", dtype="float32",
               seed=5).compile(fm.optim.SGD(lr=1e-30))
    b0, b1 = m.layers[0].b, m.layers[1].b
    b0[[63, 64, 127, 128, 199]] = -1e6
    b1[[0, 129]] = -1e6
    m.layers[0].b, m.layers[1].b = b0, b1
    W0, W1 = m.layers[0].W.astype(np.float64), m.layers[1].W.astype(np.float64)
    h0 = np.maximum(X @ W0.T + b0, 0.0)
    h1 = np.maximum(h0 @ W1.T + b1, 0.0)
    h = m.fit(X, y, epochs=1, batch_size=512, shuffle=False, verbose=0)
    assert np.array_equal(m.layers[0].W, W0.astype(np.float32))  # lr moved nothing
    assert h["dead_relu_0"][0] == np.mean(~(h0 > 0).any(axis=0)) >= 5 / 200
    assert h["dead_relu_1"][0] == np.mean(~(h1 > 0).any(axis=0)) >= 2 / 130


def test_early_stopping_restores_best_weights(rng):
    X, y = _blobs(rng, n=300)
    Xv, yv = _blobs(rng, n=100)
    m = _model().compile(fm.optim.Adam(0.05))
    snapshots = []

    class Keep(fm.Callback):
        def on_epoch_end(self, epoch, logs):
            snapshots.append((logs["val_loss"], _params(m)))

    stopper = fm.EarlyStopping(patience=2, restore_best_weights=True)
    h = m.fit(X, y, epochs=200, batch_size=16, validation_data=(Xv, yv), verbose=0,
              callbacks=[Keep()], early_stopping=stopper)
    assert h.stopped_early and len(h) < 200
    best = int(np.argmin(h["val_loss"]))
    assert h.best_epoch == best + 1
    assert _same(_params(m), snapshots[best][1])
    # patience: stopped exactly `patience` epochs after the best one
    assert len(h) == best + 1 + 2


def test_early_stopping_needs_validation_for_val_monitor(rng):
    X, y = _blobs(rng)
    with pytest.raises(ValueError, match="early_stopping"):
        _model().fit(X, y, epochs=2, early_stopping=fm.EarlyStopping("val_loss"), verbose=0)


def test_callback_every_n_batches_and_stop(rng):
    X, y = _blobs(rng, n=320)
    seen = []

    class Every(fm.Callback):
        every_n_batches = 3

        def on_batch_end(self, batch, logs):
            seen.append(batch)
            return batch >= 6

    m = _model()
    h = m.fit(X, y, epochs=5, batch_size=32, verbose=0, callbacks=[Every()])
    assert seen == [3, 6]
    assert len(h) == 1


def test_callbacks_with_different_periods_each_see_their_multiples(rng):
    X, y = _blobs(rng, n=320)  # 10 batches of 32
    seen = {2: [], 3: [], 5: []}

    def every(n):
        class Every(fm.Callback):
            every_n_batches = n

            def on_batch_end(self, batch, logs):
                seen[n].append(batch)
        return Every()

    _model().fit(X, y, epochs=1, batch_size=32, verbose=0,
                 callbacks=[every(3), every(5), every(2)])
    assert seen == {2: [2, 4, 6, 8], 3: [3, 6, 9], 5: [5]}


def test_interrupted_fit_keeps_current_weights_despite_restore_best(rng):
    # The "best" epoch by this monitor is the first one (highest loss), so a
    # restore would visibly roll the model back; Ctrl-C must not do that.
    X, y = _blobs(rng, n=300)
    m = _model().compile(fm.optim.Adam(0.01))
    at_interrupt = []

    class Interrupt(fm.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 4:
                at_interrupt.append(_params(m))
                raise KeyboardInterrupt

    stopper = fm.EarlyStopping("loss", mode="max", patience=100, restore_best_weights=True)
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=10, batch_size=16, verbose=0, callbacks=[Interrupt()],
              early_stopping=stopper)
    assert _same(_params(m), at_interrupt[0])
    # ... while a fit that ends normally does restore the best (first) epoch.
    m2 = _model().compile(fm.optim.Adam(0.01))
    m2.fit(X, y, epochs=3, batch_size=16, verbose=0,
           early_stopping=fm.EarlyStopping("loss", mode="max", patience=100,
                                           restore_best_weights=True))
    m3 = _model().compile(fm.optim.Adam(0.01))
    m3.fit(X, y, epochs=1, batch_size=16, verbose=0)
    assert _same(_params(m2), _params(m3))


def test_validation_loss_ignores_class_weight(rng):
    X, y = _blobs(rng, n=300)
    Xv, yv = _blobs(rng, n=90)
    m = _model()
    h = m.fit(X, y, epochs=2, batch_size=32, verbose=0, validation_data=(Xv, yv),
              class_weight={0: 5.0, 1: 1.0, 2: 0.2})
    assert h["val_loss"][-1] == pytest.approx(m.loss(Xv, yv), rel=1e-13)
    assert h["val_loss"][-1] != pytest.approx(
        m.loss(Xv, yv, class_weight={0: 5.0, 1: 1.0, 2: 0.2}), rel=1e-6)


def test_chunked_epoch_equals_whole_epoch(rng):
    X, y = _blobs(rng, n=320)

    class Every(fm.Callback):
        every_n_batches = 2

    a, b = _model(dropout=0.2), _model(dropout=0.2)
    ha = a.fit(X, y, epochs=2, batch_size=30, verbose=0)
    hb = b.fit(X, y, epochs=2, batch_size=30, verbose=0, callbacks=[Every()])
    assert _same(_params(a), _params(b))
    # The core carries the epoch's sums across chunks: the same numbers added
    # in the same order, so every recorded value is bitwise equal.
    for key in ha.history:
        if key != "time":
            assert ha[key] == hb[key], key


def test_sample_weight_two_equals_double_lr(rng):
    X, y = _blobs(rng)
    a = _model().compile(fm.optim.SGD(lr=0.05))
    b = _model().compile(fm.optim.SGD(lr=0.1))
    a.fit(X, y, epochs=2, batch_size=24, verbose=0, sample_weight=np.full(len(y), 2.0))
    b.fit(X, y, epochs=2, batch_size=24, verbose=0)
    assert _same(_params(a), _params(b))


def test_class_weight_forms(rng):
    X, y = _blobs(rng)
    m = _model()
    base = m.loss(X, y)
    assert m.loss(X, y, class_weight={0: 1.0, 1: 1.0, 2: 1.0}) == pytest.approx(base, rel=1e-14)
    assert m.loss(X, y, class_weight="balanced") != base
    with pytest.raises(ValueError, match="class_weight"):
        m.loss(X, y, class_weight={7: 1.0})
    with pytest.raises(ValueError, match="sample_weight"):
        m.loss(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="class_weight"):
        fm.MLP([6, 4, 1], loss="mse").loss(X, y.astype(float), class_weight=[1.0])


def test_l1_l2_in_loss_and_gradient(rng):
    X, y = _blobs(rng)
    m = _model()
    plain = m.loss(X, y)
    g0 = m.gradients(X, y)
    m.compile(fm.optim.SGD(), l1=1e-3, l2=1e-2)
    pen = sum(1e-3 * np.abs(l.W).sum() + 1e-2 * (l.W ** 2).sum() for l in m.layers)
    assert m.loss(X, y) == pytest.approx(plain + pen, rel=1e-12)
    g1 = m.gradients(X, y)
    for l, a, b in zip(m.layers, g0, g1):
        np.testing.assert_allclose(b["W"], a["W"] + 1e-3 * np.sign(l.W) + 2e-2 * l.W,
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(b["b"], a["b"])


def test_clip_norm_bounds_the_update(rng):
    X, y = _blobs(rng)
    m = _model().compile(fm.optim.SGD(lr=1.0), clip_norm=1e-3)
    before = _params(m)
    m.train_step(X, y)
    delta = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(_params(m), before)))
    assert delta <= 1e-3 * (1 + 1e-9)


def test_divergence_names_epoch_batch_layer_and_keeps_params(rng):
    X, y = _blobs(rng)
    m = fm.MLP([6, 16, 1], activation="relu", loss="mse", dtype="float64", seed=0)
    m.compile(fm.optim.SGD(lr=1e6))
    t = (X[:, 0] * 1e3)
    with pytest.raises(FloatingPointError) as info:
        m.fit(X, t, epochs=50, batch_size=16, verbose=0)
    msg = str(info.value)
    assert "epoch" in msg and "batch" in msg and "learning rate" in msg
    assert "layer" in msg and "clip" in msg
    for layer in m.layers:
        assert np.isfinite(layer.W).all() and np.isfinite(layer.b).all()


@pytest.mark.parametrize("every", [None, 2, 3])
def test_divergence_names_the_batch_it_happened_in(rng, every):
    # float32 MSE against a target of 3e38 overflows the loss in the batch
    # holding row 45 (batch 5 of 10-row batches, unshuffled).
    X = rng.standard_normal((100, 4))
    t = rng.standard_normal(100)
    t[45] = 3e38
    m = fm.MLP([4, 8, 1], loss="mse", dtype="float32", seed=0).compile(fm.optim.SGD(lr=1e-3))
    cbs = []
    if every:
        class Every(fm.Callback):
            every_n_batches = every
        cbs = [Every()]
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 5\b"):
        m.fit(X, t, epochs=1, batch_size=10, shuffle=False, verbose=0, callbacks=cbs)


@pytest.mark.parametrize("opt", ["Adam", "AdamW", "RMSprop", "Adagrad"])
def test_dividing_optimizers_refuse_eps_zero(opt):
    with pytest.raises(ValueError, match="eps"):
        getattr(fm.optim, opt)(eps=0.0)


@pytest.mark.parametrize("make_opt", OPTIMIZERS)
def test_save_load_resumes_bitwise(rng, tmp_path, make_opt):
    X, y = _blobs(rng)
    full = _model(dropout=0.2, batch_norm=True).compile(
        make_opt(), l2=1e-3, clip_norm=5.0, lr_schedule=fm.optim.ExponentialLR(0.9))
    full.fit(X, y, epochs=4, batch_size=32, verbose=0)

    half = _model(dropout=0.2, batch_norm=True).compile(
        make_opt(), l2=1e-3, clip_norm=5.0, lr_schedule=fm.optim.ExponentialLR(0.9))
    half.fit(X, y, epochs=2, batch_size=32, verbose=0)
    path = half.save(tmp_path / "m")
    loaded = fm.load(path)
    assert _same(_params(loaded), _params(half))
    np.testing.assert_array_equal(loaded.predict_proba(X), half.predict_proba(X))
    loaded.fit(X, y, epochs=2, batch_size=32, verbose=0)
    assert _same(_params(loaded), _params(full))


def test_pickle_round_trip(rng):
    X, y = _blobs(rng)
    m = _model(batch_norm=True).compile(fm.optim.Adam(1e-2))
    m.fit(X, y, epochs=2, batch_size=32, verbose=0)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.predict_proba(X), m.predict_proba(X))
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    m2.fit(X, y, epochs=1, batch_size=32, verbose=0)
    assert _same(_params(m), _params(m2))
    unbuilt = pickle.loads(pickle.dumps(fm.MLP([fm.Dense(4), fm.Dense(2)])))
    assert unbuilt.sizes is None


def test_load_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(ValueError, match="path"):
        fm.load(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="path"):
        fm.load(junk)
    with pytest.raises(FileNotFoundError, match="path"):
        fm.load(tmp_path / "missing.npz")


def test_compile_by_name_and_bad_arguments():
    m = fm.MLP([4, 3, 2])
    m.compile("adam")
    assert isinstance(m.optimizer, fm.optim.Adam)
    with pytest.raises(ValueError, match="optimizer"):
        m.compile("nope")
    with pytest.raises(ValueError, match="clip_norm"):
        m.compile(clip_norm=-1.0)
    with pytest.raises(TypeError, match="lr_schedule"):
        m.compile(lr_schedule=3)
    with pytest.raises(ValueError, match="layers"):
        fm.MLP([4, fm.Dense(3), fm.Dense(2, dropout=0.5)])


@pytest.mark.parametrize("tamper, match", [
    (lambda d, m: d.__setitem__("running_var_0", -np.abs(d["running_var_0"]) - 1), "negative"),
    (lambda d, m: d.__setitem__("running_mean_0", np.full_like(d["running_mean_0"], np.nan)), "running_mean_0"),
    (lambda d, m: d.__setitem__("optimizer_state_0", np.full_like(d["optimizer_state_0"], np.inf)),
     "optimizer state 0"),
    (lambda d, m: m.__setitem__("optimizer_steps", -3), "optimizer_steps"),
    (lambda d, m: m.__setitem__("layers", [7]), "corrupt"),
])
def test_load_rejects_tampered_state(rng, tmp_path, tamper, match):
    import json
    X, y = _blobs(rng)
    m = fm.MLP([6, Dense(8, batch_norm=True), 3], seed=1).compile(fm.optim.Adam(1e-2))
    m.fit(X, y, epochs=1, batch_size=32, verbose=0)
    path = m.save(tmp_path / "m")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data.pop("meta")))
    tamper(data, meta)
    bad = tmp_path / "bad.npz"
    np.savez(bad, meta=np.array(json.dumps(meta)), **data)
    with pytest.raises(ValueError, match=match):
        fm.load(bad)


def test_compile_with_an_edited_invalid_optimizer_changes_nothing(rng):
    m = _model().compile(fm.optim.SGD(lr=0.1))
    opt = fm.optim.Adam(1e-2)
    opt.betas = (1.5, 0.9)
    with pytest.raises(ValueError, match="beta1"):
        m.compile(opt)
    assert isinstance(m.optimizer, fm.optim.SGD)


def test_train_epoch_checks_the_permutation_entries_it_reads():
    # The core's epoch loop reads perm[start : start + (max_batches + 1) * bs]
    # (its batches and the next one's prefetch); a bad entry there is refused
    # before anything trains, and an entry outside that range is not read.
    m = _model()
    net = m._net
    X = np.zeros((40, 6))
    y = np.zeros(40, np.int32)
    perm = np.arange(40, dtype=np.int64)
    bad = perm.copy()
    bad[25] = 40
    before = _params(m)
    with pytest.raises(ValueError, match="perm"):
        net.train_epoch(X, y, bad, 10, 0, -1)
    with pytest.raises(ValueError, match="perm"):
        net.train_epoch(X, y, bad, 10, 10, 1)  # batch 10..19, prefetch 20..29
    assert _same(_params(m), before)
    r = net.train_epoch(X, y, bad, 10, 0, 1)  # batch 0..9, prefetch 10..19
    assert r.batches == 1
