"""Ctrl-C during fit stops between two batches, with the model intact."""

from __future__ import annotations

import os
import signal
import sys
import threading

import numpy as np
import pytest

import fastmlp as fm


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_stops_fit_cleanly(rng):
    X = rng.standard_normal((20000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 20000)
    model = fm.MLP([64, 256, 256, 10], activation="relu", seed=0)
    # A process started in the background by a non-interactive shell (as CI
    # may start this suite) inherits SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler: install it here, as an interactive run has.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, epochs=10_000, batch_size=32, verbose=0)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert model._epochs_done < 10_000  # stopped long before the end
    for layer in model.layers:
        assert np.isfinite(layer.W).all()
        assert np.isfinite(layer.b).all()
    # Still usable, and it trains on.
    before = model.loss(X[:256], y[:256])
    model.fit(X[:256], y[:256], epochs=3, batch_size=32, verbose=0)
    assert model.loss(X[:256], y[:256]) < before
