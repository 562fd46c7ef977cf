"""The training step in its phases (csrc/network/trainer.h lists them).

Network.forward_backward runs phases 1-3 (forward, loss, backward) and leaves
the data gradient in the flat gradient buffer; finish_step runs phases 4-5
(penalty, norms, finiteness, clipping; optimizer update, running statistics,
counters). A data-parallel step all-reduces the buffer in between. These tests
prove that the two calls are train_step, bitwise, and that what lies in the
buffer between them is exactly what the update then uses.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm

OPTIMIZERS = [
    fm.optim.SGD(lr=0.05, momentum=0.9, nesterov=True),
    fm.optim.Adam(lr=1e-2),
    fm.optim.AdamW(lr=1e-2, amsgrad=True),
    fm.optim.RMSprop(lr=1e-2, centered=True, momentum=0.5),
    fm.optim.Adagrad(lr=0.1),
]


def _model(opt, dtype, **kw):
    model = fm.MLP([6, 16, 12, 3], dtype=dtype, dropout=0.2, batch_norm=True, seed=3, **kw)
    return model.compile(optimizer=opt, l1=1e-4, l2=1e-3, clip_norm=0.5)


def _state(model):
    net = model._net
    out = [net.params_flat().copy()] + [s.copy() for s in net.optimizer_state()]
    out += [v.copy() for v in model._running_stats().values()]
    return out


@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: type(o).__name__)
def test_phases_are_train_step_bitwise(rng, dtype, opt):
    a, b = _model(opt, dtype), _model(opt, dtype)
    for _ in range(4):
        X = rng.standard_normal((24, 6)).astype(dtype)
        y = rng.integers(0, 3, 24).astype(np.int32)
        la = a._net.train_step(X, y, None, None)
        loss = b._net.forward_backward(X, y, None, None)
        lb = b._net.finish_step(loss, 24)
        assert (la.loss, la.ok, la.bad_layer) == (lb.loss, lb.ok, lb.bad_layer)
        for sa, sb in zip(_state(a), _state(b)):
            np.testing.assert_array_equal(sa, sb)
    assert a._net.step_count == b._net.step_count == 4


def test_the_update_uses_the_buffer_as_left_between_the_phases(rng):
    # Zero the data gradient between the phases: the SGD update is then the
    # L2 penalty's alone, p -= lr * 2 * l2 * W on the weights, nothing on biases.
    model = fm.MLP([5, 7, 2], dtype="float64", seed=1).compile(fm.optim.SGD(lr=0.1), l2=0.25)
    X = rng.standard_normal((9, 5))
    y = rng.integers(0, 2, 9).astype(np.int32)
    W = [layer.W.copy() for layer in model.layers]
    b = [layer.b.copy() for layer in model.layers]
    loss = model._net.forward_backward(X, y, None, None)
    data_grads = model._net.grads_flat().copy()
    assert np.abs(data_grads).max() > 0
    model._net.grads_flat()[...] = 0.0
    r = model._net.finish_step(loss, 9)
    assert r.ok
    for layer, w0, b0 in zip(model.layers, W, b):
        np.testing.assert_allclose(layer.W, w0 - 0.1 * 2 * 0.25 * w0, rtol=1e-15, atol=0)
        np.testing.assert_array_equal(layer.b, b0)
    # the loss handed on carries the penalty once
    assert r.loss == pytest.approx(loss + 0.25 * sum((w ** 2).sum() for w in W), rel=1e-14)


def test_forward_backward_leaves_the_data_gradient(rng):
    # With a penalty on: forward_backward leaves the data term alone (what
    # gradients() gives for the same model without the penalty).
    model = fm.MLP([4, 8, 3], dtype="float64").compile(fm.optim.SGD(), l1=0.5, l2=0.25)
    plain = fm.MLP([4, 8, 3], dtype="float64").compile(fm.optim.SGD())
    X = rng.standard_normal((10, 4))
    y = rng.integers(0, 3, 10).astype(np.int32)
    want = plain.gradients(X, y)
    with_penalty = model.gradients(X, y)
    model._net.forward_backward(X, y, None, None)
    flat = model._net.grads_flat()
    for i, g in enumerate(want):
        np.testing.assert_array_equal(model._net.grad(i, "W"), g["W"])
        np.testing.assert_array_equal(model._net.grad(i, "b"), g["b"])
        assert not np.array_equal(with_penalty[i]["W"], g["W"])
    assert np.shares_memory(flat, model._net.grad(0, "W"))


def test_forward_backward_checks_the_batch_as_train_step_does(rng):
    net = fm.MLP([4, 5, 2], dtype="float64", batch_norm=True)._net
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 2, 6).astype(np.int32)
    bad = X.copy()
    bad[1, 2] = np.nan
    for call in (net.train_step, net.forward_backward):
        with pytest.raises(ValueError, match="^X: contains NaN or infinity"):
            call(bad, y, None, None)
        with pytest.raises(ValueError, match="^X: expected at least one sample"):
            call(X[:0], y[:0], None, None)
        with pytest.raises(ValueError, match="^y: class ids must lie in"):
            call(X, y + 2, None, None)
        with pytest.raises(ValueError, match="^X: batch normalization in training needs at least 2"):
            call(X[:1], y[:1], None, None)


def test_finish_step_needs_its_own_forward_backward(rng):
    model = fm.MLP([4, 5, 2], dtype="float64")
    net = model._net
    X = rng.standard_normal((6, 4))
    y = rng.integers(0, 2, 6).astype(np.int32)
    before = net.params_flat().copy()
    with pytest.raises(ValueError, match="^finish_step: no forward_backward"):
        net.finish_step(0.5, 6)
    loss = net.forward_backward(X, y, None, None)
    with pytest.raises(ValueError, match=r"^rows: expected the 6 rows"):
        net.finish_step(loss, 5)
    model.forward(X)  # another pass in between
    with pytest.raises(ValueError, match="^finish_step: no forward_backward"):
        net.finish_step(loss, 6)
    model.gradients(X, y)  # penalty already added: not a step to finish
    with pytest.raises(ValueError, match="^finish_step: no forward_backward"):
        net.finish_step(loss, 6)
    np.testing.assert_array_equal(net.params_flat(), before)
    loss = net.forward_backward(X, y, None, None)
    assert net.finish_step(loss, 6).ok
    with pytest.raises(ValueError, match="^finish_step: no forward_backward"):
        net.finish_step(loss, 6)  # once per step
