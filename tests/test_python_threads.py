"""Python threads and fastmlp models (network/guard.h).

Every core call releases the GIL, so Python threads really run at once. The
guarantees tested here:
  - different models train independently: two trained at once in two
    threads end bitwise identical to the same trainings one after the other;
  - passes on one model are serialized by a per-network mutex: predict,
    forward and loss from several threads at once equal the serial results;
  - one model trains in one thread at a time: fit, train_step and every other
    training entry point from a second thread raise RuntimeError at once,
    never interleave; the claim is released on exceptions and Ctrl-C;
  - another Python thread makes progress while fit runs.
No timing asserts: only counts, equalities and exceptions. Where two things
must overlap, they are made to (events, a callback that pauses a fit).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

import fastmlp as fm
from fastmlp.callbacks import Callback

BUSY = "already training in another thread"
needs_bf16 = pytest.mark.skipif(not fm.ops.have_bf16_instructions(),
                                reason="this CPU (or OS) lacks AVX512_BF16")


def _data(n=512, d=16, k=4, seed=3, dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, k, n)
    return X, y


def _model(dtype="float32", seed=0, **kw):
    m = fm.MLP([16, 48, 32, 4], dtype=dtype, seed=seed, **kw)
    return m.compile(fm.optim.Adam(lr=1e-3))


def _run_together(*fns):
    """Runs each fn in its own thread, released at once by a barrier; returns
    their results, re-raising the first exception."""
    barrier = threading.Barrier(len(fns))
    out = [None] * len(fns)
    errors = []

    def body(i, fn):
        try:
            barrier.wait()
            out[i] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out


def _state(m):
    return m._net.params_flat().copy(), [s.copy() for s in m._net.optimizer_state()]


def _assert_same_state(a, b):
    pa, sa = _state(a)
    pb, sb = _state(b)
    np.testing.assert_array_equal(pa, pb)
    assert len(sa) == len(sb)
    for x, y in zip(sa, sb):
        np.testing.assert_array_equal(x, y)


# -- (a) different models at once --------------------------------------------

FIT_CASES = {
    "float32": {},
    "float64_dropout": {"dtype": "float64", "dropout": 0.2},
    "batch_norm": {"batch_norm": True},
    "mixed_bfloat16": {"dtype": "mixed_bfloat16"},
}


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=needs_bf16) if c == "mixed_bfloat16" else c for c in FIT_CASES])
def test_two_models_fit_in_two_threads_as_one_after_the_other(case):
    kw = FIT_CASES[case]
    dtype = np.float64 if kw.get("dtype") == "float64" else np.float32
    X1, y1 = _data(seed=1, dtype=dtype)
    X2, y2 = _data(seed=2, dtype=dtype)

    def fit(m, X, y):
        return lambda: m.fit(X, y, epochs=3, batch_size=32, verbose=0).history["loss"]

    serial = [_model(seed=5, **kw), _model(seed=6, **kw)]
    h_serial = [fit(serial[0], X1, y1)(), fit(serial[1], X2, y2)()]
    together = [_model(seed=5, **kw), _model(seed=6, **kw)]
    h_together = _run_together(fit(together[0], X1, y1), fit(together[1], X2, y2))
    assert h_together == h_serial
    for a, b in zip(serial, together):
        _assert_same_state(a, b)
        np.testing.assert_array_equal(a.predict_proba(X1), b.predict_proba(X1))


def test_two_models_train_step_loops_in_two_threads_as_one_after_the_other():
    X1, y1 = _data(seed=1)
    X2, y2 = _data(seed=2)
    y1, y2 = y1.astype(np.int32), y2.astype(np.int32)  # the core's layout: the fast path

    def loop(m, X, y):
        return lambda: [m.train_step(X[i:i + 16], y[i:i + 16]) for i in range(0, 512, 16)]

    serial = [_model(seed=5), _model(seed=6, batch_norm=True)]
    l_serial = [loop(serial[0], X1, y1)(), loop(serial[1], X2, y2)()]
    together = [_model(seed=5), _model(seed=6, batch_norm=True)]
    l_together = _run_together(loop(together[0], X1, y1), loop(together[1], X2, y2))
    assert l_together == l_serial
    for a, b in zip(serial, together):
        _assert_same_state(a, b)


# -- (b) one model, passes from several threads ------------------------------

def test_predict_forward_loss_from_many_threads_equal_serial():
    m = _model(batch_norm=True, dropout=0.1)
    X, y = _data(n=700)
    m.fit(X, y, epochs=1, batch_size=64, verbose=0)
    # Batches of different sizes: the workspace grows while others use it.
    sizes = [1, 7, 64, 700, 33, 300]
    expect = {n: (m.predict(X[:n]), m.forward(X[:n]), m.loss(X[:n], y[:n])) for n in sizes}

    def worker(offset):
        def run():
            got = []
            for r in range(12):
                n = sizes[(r + offset) % len(sizes)]
                got.append((n, m.predict(X[:n]), m.forward(X[:n]), m.loss(X[:n], y[:n])))
            return got
        return run

    for got in _run_together(*(worker(i) for i in range(4))):
        for n, p, f, loss in got:
            np.testing.assert_array_equal(p, expect[n][0])
            np.testing.assert_array_equal(f, expect[n][1])
            assert loss == expect[n][2]


@pytest.mark.parametrize("dtype", ["float32", pytest.param("mixed_bfloat16", marks=needs_bf16)])
def test_core_network_forward_from_many_threads_equals_serial(dtype):
    # The guarantee lives in the core: no Python-level lock is involved here.
    # (Without the pass mutex this size shows mismatches within a few
    # hundred calls: the threads overwrite each other's activations.)
    net = fm.MLP([32, 128, 128, 4], dtype=dtype)._net
    X, _ = _data(n=400, d=32)
    parts = [np.ascontiguousarray(X[:n]) for n in (5, 400, 64, 129)]
    expect = [net.forward(p, False) for p in parts]

    def run():
        return [net.forward(parts[(i * 3) % 4], False) for i in range(150)]

    for got in _run_together(run, run, run):
        for i, out in enumerate(got):
            np.testing.assert_array_equal(out, expect[(i * 3) % 4])


# -- (c) one model, training from two threads --------------------------------

class _Pause(Callback):
    """Pauses fit after its first batch chunk until `resume` is set, with the
    model claimed for training, so that another thread can try to use it."""

    every_n_batches = 4

    def __init__(self):
        self.paused = threading.Event()
        self.resume = threading.Event()

    def on_batch_end(self, batch, logs):
        if not self.paused.is_set():
            self.paused.set()
            assert self.resume.wait(30)


def _fit_paused(m, X, y, attempt, **fit_kw):
    """fit m in a thread, run attempt() in this one while fit is paused after
    its first chunk; returns fit's History."""
    pause = _Pause()
    result = {}

    def fit():
        result["history"] = m.fit(X, y, epochs=2, batch_size=32, verbose=0,
                                  callbacks=[pause], **fit_kw)

    t = threading.Thread(target=fit)
    t.start()
    try:
        assert pause.paused.wait(30)
        attempt()
    finally:
        pause.resume.set()
        t.join()
    return result["history"]


def test_second_thread_cannot_train_a_model_that_fits():
    X, y = _data()
    yi = y.astype(np.int32)
    reference = _model()
    h_ref = reference.fit(X, y, epochs=2, batch_size=32, verbose=0)

    m = _model()
    net = m._net
    perm = np.arange(X.shape[0], dtype=np.int64)
    seen = {}

    def attempt():
        calls = {
            "fit": lambda: m.fit(X, y, epochs=1, verbose=0),
            "train_step": lambda: m.train_step(X[:8], yi[:8]),
            "gradients": lambda: m.gradients(X[:8], y[:8]),
            "compile": lambda: m.compile(fm.optim.SGD()),
            "core train_step": lambda: net.train_step(X[:8], yi[:8]),
            "core forward_backward": lambda: net.forward_backward(X[:8], yi[:8]),
            "core finish_step": lambda: net.finish_step(0.5, 8),
            "core compute_gradients": lambda: net.compute_gradients(X[:8], yi[:8]),
            "core train_epoch": lambda: net.train_epoch(X, yi, perm, 32),
            "core set_lr": lambda: net.set_lr(0.5),
        }
        for name, call in calls.items():
            with pytest.raises(RuntimeError, match=BUSY) as e:
                call()
            seen[name] = str(e.value)
        # Passes are not refused: they run between two of fit's chunks.
        seen["predict"] = m.predict(X[:10])

    h = _fit_paused(m, X, y, attempt)
    assert "(fit is running there)" in seen["train_step"]
    assert seen["core train_step"].startswith("train_step: ")
    assert seen["predict"].shape == (10,)
    # Nothing of the refused calls reached the model.
    assert h.history["loss"] == h_ref.history["loss"]
    _assert_same_state(m, reference)
    assert not net.training_claimed


def test_concurrent_fits_on_one_model_one_wins_the_other_is_refused():
    X, y = _data(n=2000)
    m = _model()
    histories = []
    refused = []

    def fit():
        try:
            histories.append(m.fit(X, y, epochs=4, batch_size=16, verbose=0).history["loss"])
        except RuntimeError as e:
            refused.append(str(e))

    # Either the two ran one after the other (no overlap) or one was refused;
    # never two interleaved fits: each History is then one of the serial
    # fits' (interleaved epochs would split them) and the state is theirs.
    _run_together(fit, fit)
    assert len(histories) + len(refused) == 2 and len(histories) >= 1
    assert all(msg.startswith("fit: " ) and BUSY in msg for msg in refused)
    ref = _model()
    expect = [ref.fit(X, y, epochs=4, batch_size=16, verbose=0).history["loss"]
              for _ in histories]
    assert sorted(histories) == sorted(expect)
    _assert_same_state(m, ref)


def test_first_fits_on_an_unbuilt_model_build_it_once():
    # The input size is unknown until the first fit builds the core network.
    # Two first fits at once must build one network, not one each (the second
    # replacing the first while it trains). _build is slowed so that, without
    # the lock, both threads surely find no network; the counts decide.
    X, y = _data(n=2000)
    m = fm.MLP([fm.Dense(48), fm.Dense(4)], seed=0).compile(fm.optim.Adam(lr=1e-3))
    builds = []
    entered = threading.Event()
    build = m._build

    def slow_build(n_inputs):
        builds.append(n_inputs)
        entered.set()
        # Let the other thread reach _ensure_built while this one builds.
        threading.Event().wait(0.3)
        build(n_inputs)

    m._build = slow_build
    histories, refused = [], []

    def fit():
        try:
            histories.append(m.fit(X, y, epochs=2, batch_size=16, verbose=0).history["loss"])
        except RuntimeError as e:
            refused.append(str(e))

    _run_together(fit, fit)
    assert entered.is_set()
    assert builds == [X.shape[1]]
    assert len(histories) + len(refused) == 2 and len(histories) >= 1
    assert all(msg.startswith("fit: ") and BUSY in msg for msg in refused)
    # The model is the one network that was built and trained: as serial fits.
    ref = fm.MLP([16, 48, 4], seed=0).compile(fm.optim.Adam(lr=1e-3))
    expect = [ref.fit(X, y, epochs=2, batch_size=16, verbose=0).history["loss"]
              for _ in histories]
    assert sorted(histories) == sorted(expect)
    _assert_same_state(m, ref)


def test_core_claim_refuses_another_thread_and_nests_in_its_own():
    m = _model()
    net = m._net
    X, y = _data(n=32)
    y = y.astype(np.int32)
    with net.training("my loop"):
        assert net.training_claimed
        net.train_step(X, y)  # this thread: passes
        msg = []

        def other():
            try:
                net.train_step(X, y)
            except RuntimeError as e:
                msg.append(str(e))
            msg.append(net.forward(X, False).shape)  # a pass: runs

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert msg[0].startswith("train_step: this model is already training in another thread")
        assert "(my loop is running there)" in msg[0]
        assert msg[1] == (32, 4)
    assert not net.training_claimed
    t = threading.Thread(target=lambda: net.train_step(X, y))
    t.start()
    t.join()


class _Raise(Callback):
    every_n_batches = 2

    def __init__(self, exc):
        self.exc = exc

    def on_batch_end(self, batch, logs):
        raise self.exc


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ValueError],
                         ids=["KeyboardInterrupt", "ValueError"])
def test_claim_released_when_fit_raises(exc):
    X, y = _data()
    m = _model()
    with pytest.raises(exc):
        m.fit(X, y, epochs=1, batch_size=32, verbose=0, callbacks=[_Raise(exc("stop"))])
    assert not m._net.training_claimed
    # Another thread can train it now.
    _run_together(lambda: m.fit(X, y, epochs=1, verbose=0))


def test_claim_and_pass_released_when_core_call_fails():
    m = _model()
    net = m._net
    X, y = _data(n=16)
    with pytest.raises(ValueError, match="^y: class ids"):
        net.train_step(X, (y + 10).astype(np.int32))
    with pytest.raises(ValueError, match="finish_step: no forward_backward"):
        net.finish_step(0.1, 16)
    assert not net.training_claimed
    out = _run_together(lambda: m.train_step(X, y), lambda: m.predict(X))
    assert np.isfinite(out[0]) and out[1].shape == (16,)


def test_keyboard_interrupt_inside_the_core_releases_the_claim():
    # A SIGINT while the core runs the epoch, seen by its poll between two
    # batches (fit runs in the main thread, which receives it).
    import _thread

    X, y = _data(n=4096)
    m = _model()
    net = m._net
    net.reset_progress()

    def interrupt():
        while net.progress()[0] == 0:
            pass
        _thread.interrupt_main()

    t = threading.Thread(target=interrupt)
    t.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            m.fit(X, y, epochs=50, batch_size=8, verbose=0)
    finally:
        t.join()
    assert not net.training_claimed
    _run_together(lambda: m.train_step(X[:8], y[:8]))


# -- (d) the GIL is released during fit ----------------------------------------

def test_other_thread_runs_while_fit_runs():
    X, y = _data(n=4000, d=16)
    m = _model()
    net = m._net
    net.reset_progress()
    n_batches = 4000 // 16
    done = threading.Event()
    counts = {"during": 0, "total": 0}

    def count():
        # Counts only while the core is inside an epoch (its progress is past
        # the first batch and short of the last): Python code running then
        # ran while fit held no GIL.
        while not done.is_set():
            b = net.progress()[0]
            counts["total"] += 1
            if 0 < b < n_batches:
                counts["during"] += 1

    class UntilCounted(Callback):
        # Epochs of a few tens of ms each, until the other thread has been
        # seen running during one (at most 100: a GIL held would fail).
        def on_epoch_end(self, epoch, logs):
            return counts["during"] > 0

    t = threading.Thread(target=count)
    t.start()
    try:
        m.fit(X, y, epochs=100, batch_size=16, shuffle=False, verbose=0,
                  callbacks=[UntilCounted()])
    finally:
        done.set()
        t.join()
    assert counts["during"] > 0
