"""1 thread against 2 threads, proven to be 2.

DESIGN.md promises bitwise identical training for any thread count. A test of
that promise passes trivially when the problem is so small that the core
(threads_for in csrc/common/parallel.h) runs every region on the calling
thread, so every 2-thread run here is watched by the core's thread-count
probe (_core._threads_probe: the largest team that ran a parallel region) and
must show a team of 2, while the 1-thread run must show none.

Sizes: threads_for splits work of w multiply-adds over min(nt, w / 262144)
threads (w / 65536 for the parameter-sized loops), so a batch of 128 through
a 256 -> 512 layer (16.8M multiply-adds) splits every GEMM; the dropout mask
(128 * 512 elements at 16 units each) and the batch-norm passes over
128 x 512 split too; the ~270k parameters split the optimizer's update even
for SGD (1 unit per element). A second check isolates the update: a 2-row
train_step, whose products, masks and batch-norm passes are all far below
the thresholds, must still show a team of 2.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from conftest import TeamProbe, require_openmp, zip_same

SIZES = [256, 512, 256, 10]
N, BATCH = 256, 128

OPTIMIZERS = {
    "sgd_momentum": lambda: fm.optim.SGD(lr=0.01, momentum=0.9, weight_decay=1e-4),
    "sgd_nesterov": lambda: fm.optim.SGD(lr=0.01, momentum=0.9, nesterov=True),
    "adam": lambda: fm.optim.Adam(lr=1e-3, weight_decay=1e-4),
    "adamw_amsgrad": lambda: fm.optim.AdamW(lr=1e-3, weight_decay=0.05, amsgrad=True),
    "rmsprop_centered_momentum": lambda: fm.optim.RMSprop(lr=1e-3, momentum=0.5, centered=True),
    "adagrad": lambda: fm.optim.Adagrad(lr=0.01, lr_decay=1e-3, initial_accumulator_value=0.1),
}

FEATURES = {
    "dropout": {"dropout": 0.3},
    "batch_norm": {"batch_norm": True},
}


def _data(dtype):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((N, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], N)
    return X, y


def _state(model):
    out = []
    for layer in model.layers:
        out += [layer.W.copy(), layer.b.copy()]
        if layer.batch_norm:
            out += [layer.gamma.copy(), layer.beta.copy(), layer.running_mean.copy(),
                    layer.running_var.copy()]
    return out


def _train(threads, make_opt, feature, dtype):
    """fit (2 epochs, shuffled, clip_norm) and then one 2-row train_step.
    Returns (state, history losses, probe of the fit, probe of the 2-row step)."""
    fm.set_num_threads(threads)
    X, y = _data(dtype)
    model = fm.MLP(SIZES, activation="relu", loss="cross_entropy", dtype=dtype, seed=3,
                   **FEATURES[feature])
    model.compile(make_opt(), clip_norm=5.0)
    with TeamProbe() as fit_probe:
        h = model.fit(X, y, epochs=2, batch_size=BATCH, verbose=0)
    with TeamProbe() as step_probe:
        last = model.train_step(X[:2], y[:2])
    return _state(model), [*h["loss"], last], fit_probe.largest, step_probe.largest


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("feature", list(FEATURES))
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_fit_one_and_two_threads_bitwise_identical(opt, feature, dtype):
    require_openmp()
    s1, l1, fit1, step1 = _train(1, OPTIMIZERS[opt], feature, dtype)
    s2, l2, fit2, step2 = _train(2, OPTIMIZERS[opt], feature, dtype)
    # The 1-thread run opened no team; the 2-thread run did, both in fit and
    # in the 2-row step (where only the parameter-sized loops are big enough).
    assert (fit1, step1) == (0, 0)
    assert fit2 == 2, "fit with 2 threads ran every parallel region on one thread"
    assert step2 == 2, "the optimizer update of a 2-row step did not run on 2 threads"
    assert l1 == l2
    for i, (a, b) in enumerate(zip_same(s1, s2)):
        assert a.dtype == np.dtype(dtype)
        assert a.tobytes() == b.tobytes(), f"state array {i} differs between 1 and 2 threads"
    # Training moved the parameters (not a comparison of two initial states).
    fresh = fm.MLP(SIZES, activation="relu", loss="cross_entropy", dtype=dtype, seed=3,
                   **FEATURES[feature])
    fresh.forward(np.zeros((1, SIZES[0]), dtype))
    assert not np.array_equal(s1[0], fresh.layers[0].W)


def test_probe_sees_the_team_of_a_split_product():
    require_openmp()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 256)).astype(np.float32)
    fm.set_num_threads(1)
    with TeamProbe() as probe:
        fm.ops.matmul(a, a)
    assert probe.largest == 0
    fm.set_num_threads(2)
    with TeamProbe() as probe:
        c = fm.ops.matmul(a, a)
    assert probe.largest == 2
    # A product far below the threshold runs on the calling thread.
    with TeamProbe() as probe:
        fm.ops.matmul(a[:4, :4], a[:4, :4])
    assert probe.largest == 0
    np.testing.assert_allclose(c, a.astype(np.float64) @ a, rtol=0, atol=1e-3)
