"""Gradients against central finite differences, in float64.

Central differences (f(p + h) - f(p - h)) / 2h have truncation error O(h^2)
and rounding error O(eps / h); with h = 1e-6 both are near 1e-10 relative,
far below the 1e-6 we require. The oracle chain: the reference is checked
against finite differences here, the core against finite differences here and
against the reference in test_parity.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref

KINKED = {"relu", "leaky_relu"}


def grad_rel_error(analytic, numeric):
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if scale == 0 else diff / scale


def targets(rng, loss, n, k):
    if loss == "cross_entropy":
        return rng.integers(0, k, n)
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) > 0.5).astype(np.float64)
    if loss == "poisson":
        return rng.poisson(1.5, (n, k)).astype(np.float64)
    return rng.standard_normal((n, k))


def kink_free_inputs(rng, model, act, n):
    """Inputs whose hidden pre-activations stay away from a relu kink, so
    that a step of h never crosses it."""
    for _ in range(200):
        X = rng.standard_normal((n, model.sizes[0]))
        if act not in KINKED:
            return X
        net = ref.Network([l.W.copy() for l in model.layers], [l.b.copy() for l in model.layers],
                          [l.activation for l in model.layers], model.loss_name)
        net.forward(X)
        if min(np.abs(z).min() for z in net.zs[:-1]) > 1e-3:
            return X
    raise AssertionError("could not draw kink-free inputs")


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_core_gradients_match_finite_differences(rng, act, loss):
    model = fm.MLP([4, 5, 4, 3], activation=act, loss=loss, dtype="float64", seed=7)
    for layer in model.layers:
        layer.b[:] = rng.standard_normal(layer.b.shape) * 0.3
    X = kink_free_inputs(rng, model, act, 6)
    y = targets(rng, loss, 6, 3)
    grads = model.gradients(X, y)
    for i, layer in enumerate(model.layers):
        for name in ("W", "b"):
            view = getattr(layer, name)  # a live view: perturbing it perturbs the core
            numeric = ref.numerical_gradient(lambda: model.loss(X, y), view)
            err = grad_rel_error(grads[i][name], numeric)
            assert err <= 1e-6, f"layer {i} {name}: relative error {err:.3g}"


@pytest.mark.parametrize("out_act", ["identity", "sigmoid", "tanh", "softplus"])
def test_mse_output_activation_gradients(rng, out_act):
    model = fm.MLP([3, fm.Dense(4, activation="elu"), fm.Dense(2, activation=out_act)],
                   loss="mse", dtype="float64", seed=1)
    X = rng.standard_normal((5, 3))
    y = rng.standard_normal((5, 2))
    grads = model.gradients(X, y)
    for i, layer in enumerate(model.layers):
        for name in ("W", "b"):
            numeric = ref.numerical_gradient(lambda: model.loss(X, y), getattr(layer, name))
            assert grad_rel_error(grads[i][name], numeric) <= 1e-6


def test_soft_cross_entropy_gradients(rng):
    model = fm.MLP([3, 4, 5], activation="tanh", loss="cross_entropy", dtype="float64", seed=3)
    X = rng.standard_normal((7, 3))
    t = rng.random((7, 5))  # rows deliberately not normalised
    grads = model.gradients(X, t)
    for i, layer in enumerate(model.layers):
        numeric = ref.numerical_gradient(lambda: model.loss(X, t), layer.W)
        assert grad_rel_error(grads[i]["W"], numeric) <= 1e-6


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_reference_gradients_match_finite_differences(rng, act, loss):
    sizes = [3, 4, 2]
    weights = [rng.standard_normal((sizes[i + 1], sizes[i])) for i in range(2)]
    biases = [rng.standard_normal(sizes[i + 1]) * 0.3 for i in range(2)]
    net = ref.Network(weights, biases, [act, "identity"], loss)
    X = rng.standard_normal((5, 3))
    if act in KINKED:
        net.forward(X)
        X = X[np.abs(net.zs[0]).min(axis=1) > 1e-3]
    t = targets(rng, loss, X.shape[0], 2)
    t = t if loss == "cross_entropy" else t.reshape(X.shape[0], 2)
    _, grads = net.backward(X, t)
    for i in range(2):
        for name, p in (("W", net.weights[i]), ("b", net.biases[i])):
            numeric = ref.numerical_gradient(lambda: net.loss(X, t), p)
            assert grad_rel_error(grads[i][name], numeric) <= 1e-6
