"""What fit prints while it trains: verbose 0/1/2, the live bar drawn from the
core's batch counter, and that counter itself (read while the epoch runs with
the GIL released)."""

import io
import re
import threading

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def _data(n=600, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    return X, y


def _model(d=8):
    return fm.MLP([d, 16, 2], seed=3).compile(optimizer=fm.optim.Adam(lr=1e-2))


@pytest.mark.parametrize("bad", [3, -1, "yes", 0.5, None])
def test_verbose_refuses_what_it_does_not_know(bad):
    X, y = _data(40)
    with pytest.raises(ValueError, match="verbose"):
        _model().fit(X, y, epochs=1, verbose=bad)


@pytest.mark.parametrize("given,want", [(0, 0), (False, 0), (1, 1), (True, 1), (2, 2),
                                        ("auto", 1), (np.int64(2), 2)])
def test_check_verbose(given, want):
    assert _progress.check_verbose(given) == want


def test_verbose_0_prints_nothing(capsys):
    X, y = _data(40)
    _model().fit(X, y, epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("verbose", [1, 2])
def test_off_a_terminal_one_line_per_epoch(verbose, capsys):
    # pytest's captured stdout is not a terminal: verbose=1 prints as verbose=2.
    X, y = _data(60)
    h = _model().fit(X, y, epochs=3, batch_size=16, verbose=verbose, validation_split=0.2)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for i, line in enumerate(lines):
        assert line.startswith(f"Epoch {i + 1}/3 ")
        loss = float(re.search(r"  loss (\S+)", line).group(1))
        assert loss == pytest.approx(h.history["loss"][i], rel=1e-4)
        assert "val_loss" in line and "\r" not in line


def test_verbose_2_on_a_terminal_is_still_lines(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr("sys.stdout", term)
    X, y = _data(60)
    _model().fit(X, y, epochs=2, batch_size=16, verbose=2)
    out = term.getvalue()
    assert "\r" not in out and out.count("\n") == 2


@pytest.mark.parametrize("use_tqdm", [False, True])
def test_live_bar_on_a_terminal(use_tqdm, monkeypatch):
    if use_tqdm:
        pytest.importorskip("tqdm", reason="tqdm (optional) is not installed")
    term = FakeTerminal()
    monkeypatch.setattr("sys.stdout", term)
    made = []

    def reporter(verbose, net, epochs, n_batches, stream=None):
        bar = _progress.LiveBar(net, epochs, n_batches, term, interval=0.002,
                                use_tqdm=use_tqdm)
        made.append(bar)
        return bar

    monkeypatch.setattr(_progress, "reporter", reporter)
    X, y = _data(3000, d=32)
    m = fm.MLP([32, 256, 256, 2], seed=1).compile(optimizer=fm.optim.Adam(lr=1e-3))
    h = m.fit(X, y, epochs=2, batch_size=8, verbose=1)
    out = term.getvalue()
    n_batches = 3000 // 8
    assert len(made) == 1 and not made[0]._thread.is_alive()
    # Each epoch ends on its own line with all batches done and its metrics.
    finals = [seg for seg in out.split("\r") if seg.endswith("\n")]
    assert len(finals) == 2
    for i, seg in enumerate(finals):
        assert seg.startswith(f"Epoch {i + 1}/2")
        assert f"{n_batches}/{n_batches}" in seg
        assert "ms/step" in seg or "s/step" in seg
        loss = float(re.search(r"  loss ([0-9.e+-]+)", seg).group(1))
        assert loss == pytest.approx(h.history["loss"][i], rel=1e-4)
    # The bar was redrawn in between with partial counts and a running loss.
    if use_tqdm:
        partial = re.findall(r"\| (\d+)/%d \[" % n_batches, out)
    else:
        partial = re.findall(r"  (\d+)/%d \[" % n_batches, out)
    counts = [int(c) for c in partial]
    assert any(0 < c < n_batches for c in counts), out[:2000]


def test_live_bar_ends_its_line_when_fit_is_interrupted(monkeypatch):
    term = FakeTerminal()
    monkeypatch.setattr("sys.stdout", term)
    monkeypatch.setattr(
        _progress, "reporter",
        lambda v, net, e, nb, stream=None: _progress.LiveBar(net, e, nb, term, use_tqdm=False))

    class Stop(fm.callbacks.Callback):
        every_n_batches = 2

        def on_batch_end(self, batch, logs):
            raise KeyboardInterrupt

    X, y = _data(200)
    m = _model()
    with pytest.raises(KeyboardInterrupt):
        m.fit(X, y, epochs=3, batch_size=10, verbose=1, callbacks=[Stop()])
    out = term.getvalue()
    assert out.endswith("\n") and m.history.interrupted
    assert threading.active_count() == 1 or all(
        t.name != "fastmlp-progress" for t in threading.enumerate())


def test_core_counter_is_read_while_the_epoch_runs():
    # The core publishes (batches, rows, loss sum) after each batch; another
    # Python thread reads it while train_epoch runs with the GIL released.
    X, y = _data(20000, d=64)
    m = fm.MLP([64, 256, 256, 2], seed=0).compile(optimizer=fm.optim.SGD(lr=1e-2))
    m.fit(X[:64], y[:64], epochs=1, batch_size=32, verbose=0)  # builds the core network
    net = m._net
    seen = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.append(net.progress())

    t = threading.Thread(target=watch)
    net.reset_progress()
    assert net.progress() == (0, 0, 0.0)
    t.start()
    try:
        h = m.fit(X, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    finally:
        done.set()
        t.join()
    batches = [s[0] for s in seen]
    total = 20000 // 16
    assert batches == sorted(batches)
    assert any(0 < b < total for b in batches)
    final = net.progress()
    assert final[0] == total and final[1] == 20000
    assert final[2] / final[1] == pytest.approx(h.history["loss"][0], rel=1e-12)


def test_estimator_verbose_prints_sklearn_lines(capsys):
    pytest.importorskip("sklearn", reason="scikit-learn (optional) is not installed")
    X, y = _data(200)
    est = fm.MLPClassifier(hidden_layer_sizes=(8,), max_iter=3, verbose=True, random_state=0)
    with pytest.warns(Warning):
        est.fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(",")[0] for ln in lines[:3]] == [f"Iteration {i}" for i in (1, 2, 3)]
    for ln, loss in zip(lines, est.loss_curve_):
        assert float(ln.split("= ")[1]) == pytest.approx(loss, rel=1e-7)
