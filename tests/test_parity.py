"""The whole network in the core against fastmlp.reference.Network.

float64, end to end: forward output, loss, every dW and db and one SGD step
agree with the reference to a relative error of 1e-12.

Both dtypes, layer by layer: every kernel inside the network (the forward
GEMM and its epilogue, the loss gradient, the activation derivative, the
three backward products) is checked from the core's own inputs to that
kernel, within the rigorous bound of a k-term sum: |error| <= k * eps *
sum|terms| (Higham's gamma_k, with a factor 2 to spare), plus a few eps for
each elementary function. Checking each kernel from its own inputs keeps the
bound tight (errors do not compound) and lets a relu kink decide the same
way on both sides.

float32, end to end: output and loss within 1e-4 relative. Justification:
each layer adds at most k * eps32 (k <= 257 here: 3e-5) relative to its
absolute sums, and He/Glorot-initialised layers amplify perturbations by
O(1), so three layers stay within 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rel_error

import fastmlp as fm
from fastmlp import reference as ref

# Every check runs on every instruction-set path this CPU supports.
pytestmark = pytest.mark.usefixtures("isa")

ARCHS = [[1, 3, 1], [17, 129, 3], [3, 17, 129, 17]]
BATCHES = [1, 257]


def make_case(rng, arch, act, loss, n, dtype, seed=0):
    model = fm.MLP(arch, activation=act, loss=loss, dtype=dtype, seed=seed)
    # Non-zero biases, so that their path is exercised too.
    for layer in model.layers:
        layer.b[:] = rng.standard_normal(layer.b.shape) * 0.5
    X = rng.standard_normal((n, arch[0])).astype(dtype)
    k = arch[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, k)) > 0.5).astype(dtype)
    elif loss == "poisson":
        y = rng.poisson(1.5, (n, k)).astype(dtype)  # counts, some 0
    else:
        y = rng.standard_normal((n, k)).astype(dtype)
    return model, X, y


def reference_of(model):
    acts = [layer.activation for layer in model.layers]
    return ref.Network([l.W.astype(np.float64) for l in model.layers],
                       [l.b.astype(np.float64) for l in model.layers], acts, model.loss_name)


def ref_target(y, loss):
    if loss == "cross_entropy":
        return y
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y), -1)


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: "-".join(map(str, a)))
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_network_float64_end_to_end(rng, act, loss, n, arch):
    model, X, y = make_case(rng, arch, act, loss, n, np.float64)
    net = reference_of(model)
    t = ref_target(y, loss)
    assert rel_error(model.forward(X), net.forward(X)) <= 1e-12
    want_loss = net.loss(X, t)
    assert abs(model.loss(X, y) - want_loss) <= 1e-12 * max(abs(want_loss), 1e-300)
    grads = model.gradients(X, y)
    _, want = net.backward(X, t)
    for g, w in zip(grads, want):
        assert rel_error(g["W"], w["W"]) <= 1e-12
        assert rel_error(g["b"], w["b"]) <= 1e-12
    # One SGD step moves every parameter by -lr * gradient.
    lr = 0.1
    before = [(l.W.copy(), l.b.copy()) for l in model.layers]
    model.compile(optimizer=fm.optim.SGD(lr=lr))
    model.train_step(X, y)
    for (W0, b0), layer, w in zip(before, model.layers, want):
        assert rel_error(layer.W, W0 - lr * w["W"]) <= 1e-12
        assert rel_error(layer.b, b0 - lr * w["b"]) <= 1e-12


def _gemm_bound(k, abs_sum, dtype):
    return 2 * k * np.finfo(dtype).eps * abs_sum + 1e-300


def _assert_within(got, want, bound, what):
    err = np.abs(np.asarray(got, np.float64) - want)
    assert (err <= bound).all(), f"{what}: max err/bound {np.max(err / bound):.3g}"


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: "-".join(map(str, a)))
@pytest.mark.parametrize("n", BATCHES)
@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_network_layer_by_layer(rng, dtype, act, loss, n, arch):
    model, X, y = make_case(rng, arch, act, loss, n, dtype)
    eps = np.finfo(dtype).eps
    grads = model.gradients(X, y)
    core = model._net
    L = len(model.layers)
    states = [{k: a.astype(np.float64) for k, a in core.layer_state(i).items()}
              for i in range(L)]
    W = [l.W.astype(np.float64) for l in model.layers]
    b = [l.b.astype(np.float64) for l in model.layers]
    acts = [l.activation for l in model.layers]
    xs = [X.astype(np.float64)] + [states[i]["y"] for i in range(L - 1)]

    for i in range(L):
        z, yv = states[i]["z"], states[i]["y"]
        k = W[i].shape[1] + 1
        _assert_within(z, xs[i] @ W[i].T + b[i], _gemm_bound(k, np.abs(xs[i]) @ np.abs(W[i]).T
                                                            + np.abs(b[i]), dtype), f"z[{i}]")
        if i < L - 1 or loss == "mse":
            want_y = ref.activation_forward(z, acts[i])
        else:
            want_y = ref.output_transform(z, loss)
        _assert_within(yv, want_y, 16 * eps * (np.abs(want_y) + 1e-3 * eps) + k * eps * np.abs(want_y),
                       f"y[{i}]")

    # Output layer: the loss gradient from the core's own z and y.
    zL, yL, dzL = states[-1]["z"], states[-1]["y"], states[-1]["d"]
    t = ref_target(y, loss)
    d_out = ref.loss_backward(zL, yL, t, loss)
    k_out = zL.shape[1]
    if loss == "mse":
        want = ref.activation_backward(d_out, zL, yL, acts[-1])
        bound = 16 * eps * (np.abs(d_out) + np.abs(want)) + 1e-300
    else:
        want = d_out
        bound = (k_out + 8) * eps * (np.abs(want) + np.abs(want).max()) + 1e-300
        if loss == "poisson":
            # (exp(z) - t) / (n k) from the rounded exp(z): its few eps of
            # exp(z) survive the cancellation against t.
            bound = bound + 4 * eps * (np.abs(yL) + np.abs(t)) / zL.size
    _assert_within(dzL, want, bound, "dz[out]")

    for i in range(L - 1, -1, -1):
        dz = states[i]["d"]
        nrows = dz.shape[0]
        _assert_within(grads[i]["W"], dz.T @ xs[i], _gemm_bound(nrows, np.abs(dz).T @ np.abs(xs[i]),
                                                                dtype), f"dW[{i}]")
        _assert_within(grads[i]["b"], dz.sum(axis=0), _gemm_bound(nrows, np.abs(dz).sum(axis=0),
                                                                  dtype), f"db[{i}]")
        if i > 0:
            # dz of the layer below = act'(z) * (dz W): the product's rounding
            # (act' <= 1.13 for every activation) plus the derivative's own eps.
            dy = dz @ W[i]
            z_b, y_b, dz_b = (states[i - 1][k] for k in ("z", "y", "d"))
            want = ref.activation_backward(dy, z_b, y_b, acts[i - 1])
            bound = (1.2 * _gemm_bound(W[i].shape[0], np.abs(dz) @ np.abs(W[i]), dtype)
                     + 16 * eps * (np.abs(dy) + np.abs(want)))
            _assert_within(dz_b, want, bound, f"dz[{i - 1}]")


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_network_float32_end_to_end(rng, act, loss):
    model, X, y = make_case(rng, [17, 129, 3], act, loss, 257, np.float32)
    net = reference_of(model)
    X64 = X.astype(np.float64)
    assert rel_error(model.forward(X), net.forward(X64)) <= 1e-4
    want = net.loss(X64, ref_target(y, loss))
    assert abs(model.loss(X, y) - want) <= 1e-4 * max(abs(want), 1e-6)


def test_mse_with_output_activation_float64(rng):
    model = fm.MLP([4, fm.Dense(6, activation="tanh"), fm.Dense(2, activation="sigmoid")],
                   loss="mse", dtype="float64", seed=5)
    X = rng.standard_normal((9, 4))
    y = rng.random((9, 2))
    net = reference_of(model)
    assert rel_error(model.forward(X), net.forward(X)) <= 1e-12
    _, want = net.backward(X, y)
    for g, w in zip(model.gradients(X, y), want):
        assert rel_error(g["W"], w["W"]) <= 1e-12
        assert rel_error(g["b"], w["b"]) <= 1e-12


def test_cross_entropy_with_probability_targets(rng, dtype):
    model = fm.MLP([5, 7, 4], activation="gelu", loss="cross_entropy", dtype=dtype, seed=2)
    X = rng.standard_normal((11, 5)).astype(dtype)
    t = rng.random((11, 4))
    t /= t.sum(axis=1, keepdims=True)
    net = reference_of(model)
    want_loss, want = net.backward(X.astype(np.float64), t)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    assert abs(model.loss(X, t.astype(dtype)) - want_loss) <= tol * abs(want_loss)
    for g, w in zip(model.gradients(X, t.astype(dtype)), want):
        assert rel_error(g["W"], w["W"]) <= tol
    # one-hot rows equal integer labels
    labels = rng.integers(0, 4, 11)
    onehot = np.eye(4, dtype=dtype)[labels]
    assert model.loss(X, onehot) == pytest.approx(model.loss(X, labels), rel=1e-6)
