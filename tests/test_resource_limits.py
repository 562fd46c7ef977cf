"""Sizes too large for memory or for a 64-bit count (common/memory.h).

The core computes every buffer's size with overflow checks and compares the
whole request with the memory this process may use before it allocates
anything: MemoryError names the buffer and the bytes, OverflowError the
argument, and the model that a failed call was made on is left as it was.
FASTMLP_MEMORY_LIMIT (bytes) lowers the limit, so that the failure of a
buffer that would fit this machine can be tested too. Memory stays flat over
thousands of create / fit / save / load / failed-call cycles.
"""

from __future__ import annotations

import gc
import os

import numpy as np
import pytest

import fastmlp as fm


def _xy(n, d, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.integers(0, k, n)


@pytest.mark.parametrize("dtype, nbytes", [("float32", 8000008000000), ("float64", 16000016000000)])
def test_layer_too_large_for_memory(dtype, nbytes):
    with pytest.raises(MemoryError, match=(
            r"^parameters \(1000001000000 float(32|64) values and as many gradients\): needs "
            rf"\d+(\.\d+)? TiB \({nbytes} bytes\), more than the .* of memory this process may use")):
        fm.MLP([10**6, 10**6], dtype=dtype)


@pytest.mark.parametrize("layers, match", [
    ([2**40, 2**40], r"^layers: layer 0 has 1099511627776 x 1099511627776 weights, more than a "
                     r"64-bit count holds"),
    ([4, 2**62, 2], r"^layers: layer 0 has 4611686018427387904 x 4 weights"),
    ([2**31, 2**31], r"^parameters: the size does not fit a 64-bit count"),
    ([2**70, 2], r"^layers\[0\] \(the input size\): 1180591620717411303424 does not fit"),
    ([4, 2**64], r"^layers\[1\]: 18446744073709551616 does not fit a 64-bit count"),
])
def test_sizes_that_overflow_a_count_are_refused(layers, match):
    with pytest.raises(OverflowError, match=match):
        fm.MLP(layers)


def test_dense_units_that_overflow_are_refused():
    with pytest.raises(OverflowError, match=r"^units: "):
        fm.Dense(2**63)


def test_batch_too_large_for_memory_leaves_the_model_usable():
    m = fm.MLP([1, 10**6, 1], loss="mse", activation="tanh")
    X = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    before = m.predict(X)
    params = m._net.params_flat().copy()
    big = np.zeros((10**6, 1), np.float32)  # 4 MB of input, ~11 TiB of activations
    with pytest.raises(MemoryError, match=(
            r"^workspace for a batch of 1000000 rows: needs \d+(\.\d+)? TiB \(\d+ bytes\)")):
        m.predict(big)
    with pytest.raises(MemoryError, match=r"^workspace for a batch of 1000000 rows"):
        m.train_step(big, np.zeros(10**6, np.float32))
    np.testing.assert_array_equal(m._net.params_flat(), params)
    np.testing.assert_array_equal(m.predict(X), before)
    assert np.isfinite(m.train_step(X, X[:, 0]))


def _limit(monkeypatch, nbytes):
    monkeypatch.setenv("FASTMLP_MEMORY_LIMIT", str(nbytes))


def test_workspace_over_the_limit_leaves_the_model_as_it_was(monkeypatch):
    X, y = _xy(20000, 4)
    m = fm.MLP([4, 64, 3]).compile("adam")
    ref = fm.MLP([4, 64, 3]).compile("adam")
    m.train_step(X[:32], y[:32])
    ref.train_step(X[:32], y[:32])
    _limit(monkeypatch, 2_000_000)
    with pytest.raises(MemoryError, match=r"^workspace for a batch of 20000 rows: needs .*MiB"):
        m.predict(X)
    with pytest.raises(MemoryError, match=r"^workspace for a batch of 20000 rows"):
        m.fit(X, y, epochs=1, batch_size=20000, verbose=0)
    # Same model, same next step as one that never saw the failures.
    assert m.train_step(X[32:64], y[32:64]) == ref.train_step(X[32:64], y[32:64])
    np.testing.assert_array_equal(m._net.params_flat(), ref._net.params_flat())
    np.testing.assert_array_equal(m.predict(X[:100]), ref.predict(X[:100]))


def test_optimizer_state_over_the_limit_keeps_the_previous_optimizer(monkeypatch):
    X, y = _xy(8, 100, k=10)  # a small workspace: only the optimizer is over the limit
    m = fm.MLP([100, 1000, 10])
    ref = fm.MLP([100, 1000, 10])
    n = m._net.params_flat().size  # Adam needs two buffers of this many floats
    _limit(monkeypatch, 6 * n)
    with pytest.raises(MemoryError, match=(
            rf"^optimizer state \(2 buffers of {n} float32 values\): needs .* KiB \(\d+ bytes\)")):
        m.compile(fm.optim.Adam())
    assert isinstance(m.optimizer, fm.optim.SGD)
    assert m._net.optimizer_config().kind == ref._net.optimizer_config().kind
    assert m.train_step(X, y) == ref.train_step(X, y)
    np.testing.assert_array_equal(m._net.params_flat(), ref._net.params_flat())
    monkeypatch.delenv("FASTMLP_MEMORY_LIMIT")
    m.compile(fm.optim.Adam())  # fits now
    assert len(m._net.optimizer_state()) == 2


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_memory_stays_flat_over_many_cycles(tmp_path):
    X, y = _xy(64, 8)
    bad_X = X.copy()
    bad_X[3, 2] = np.nan
    path = tmp_path / "m.npz"

    def cycle(i):
        m = fm.MLP([8, 16, 3], seed=i).compile("adam")
        m.fit(X, y, epochs=1, batch_size=16, verbose=0)
        m2 = fm.load(m.save(path))
        m2.predict(X)
        with pytest.raises(ValueError):
            m2.predict(X[:, :5])
        with pytest.raises(ValueError):
            m2.train_step(bad_X, y)
        with pytest.raises(MemoryError):
            fm.MLP([10**6, 10**6])
        with pytest.raises(OverflowError):
            fm.MLP([2**40, 2**40])
        with pytest.raises(MemoryError):
            wide.predict(big)  # a workspace that cannot fit
        with pytest.raises(ValueError):
            fm.load(hostile)

    wide = fm.MLP([1, 10**6, 1], loss="mse")
    big = np.zeros((10**6, 1), np.float32)
    hostile = _hostile_file(tmp_path, 10**6, 10**6)
    for i in range(200):  # warm-up: allocator pools, caches, lazy imports
        cycle(i)
    gc.collect()
    start = _rss()
    for i in range(1500):
        cycle(i)
    gc.collect()
    grown = _rss() - start
    assert grown < 2 * 2**20, f"RSS grew by {grown / 2**20:.1f} MiB over 1500 cycles"


def _hostile_file(tmp_path, inputs, units):
    """A valid model file of MLP([4, 8, 3]) whose description declares a first
    layer of `inputs` x `units` instead."""
    import json

    path = fm.MLP([4, 8, 3]).save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    meta = json.loads(str(entries["meta"]))
    meta["inputs"] = inputs
    meta["layers"][0]["units"] = units
    entries["meta"] = np.array(json.dumps(meta))
    out = tmp_path / "hostile.npz"
    np.savez(out, **entries)
    return out


@pytest.mark.parametrize("inputs, units", [(10**6, 10**6), (2**40, 2**40), (4, 10**5)])
def test_model_file_declaring_sizes_it_does_not_hold_is_refused_before_building(
        tmp_path, inputs, units):
    with pytest.raises(ValueError, match=(
            r"^path: the parameter buffer does not match the architecture \(it declares "
            r"\d+ parameters, the file holds 96\)")):
        fm.load(_hostile_file(tmp_path, inputs, units))


def test_file_that_is_not_a_zip_archive_is_refused_with_value_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not a zip archive")
    with pytest.raises(ValueError, match=r"^path: not a readable fastmlp model file"):
        fm.load(bad)
