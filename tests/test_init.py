"""Initializers against their closed-form distributions, without torch.

torch.nn.init defines (fan_in = in, fan_out = out for a (out, in) weight):

    he_uniform      U(-a, a), a = sqrt(6 / fan_in)          variance 2 / fan_in
    he_normal       N(0, 2 / fan_in)
    glorot_uniform  U(-a, a), a = sqrt(6 / (fan_in + fan_out))  variance 2 / (fan_in + fan_out)
    glorot_normal   N(0, 2 / (fan_in + fan_out))
    lecun_normal    N(0, 1 / fan_in)

and init="auto" is He-uniform for the ReLU family (relu, leaky_relu, elu,
gelu) and Glorot-uniform for every other layer, the output layer included.
Biases start at 0.

Tolerances come from the sample size n of a weight matrix (entries are
independent draws). For w with variance s2 and kurtosis K = E w^4 / s2^2
(9/5 uniform, 3 normal):

    mean(w)     has standard deviation sqrt(s2 / n)
    mean(w^2)   estimates s2 with standard deviation s2 sqrt((K - 1) / n)
    mean(w^4)   estimates K s2^2 with standard deviation s2^2 sqrt((M8 - K^2) / n),
                M8 = E w^8 / s2^4 (81/9 = 9 uniform, 105 normal)
    lag-1 correlation of the flattened draws: standard deviation 1 / sqrt(n)

and every check allows SIGMA = 6 standard deviations (a false alarm about
once in 5e8 checks). A wrong variance (He for Glorot: 40% off here, or a
factor 3 from confusing a with the standard deviation) is hundreds of
standard deviations away. Uniform draws also satisfy max|w| <= a and, with
n draws, max|w| > a (1 - 20 / n) except with probability exp(-20).
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm

SIGMA = 6.0
SIZES = [400, 300, 200]  # W0: 300 x 400 (120000 draws), W1: 200 x 300 (60000)

SCHEMES = {  # name: (variance(fan_in, fan_out), distribution)
    "he_uniform": (lambda fi, fo: 2.0 / fi, "uniform"),
    "he_normal": (lambda fi, fo: 2.0 / fi, "normal"),
    "glorot_uniform": (lambda fi, fo: 2.0 / (fi + fo), "uniform"),
    "glorot_normal": (lambda fi, fo: 2.0 / (fi + fo), "normal"),
    "lecun_normal": (lambda fi, fo: 1.0 / fi, "normal"),
}
KURTOSIS = {"uniform": 9.0 / 5.0, "normal": 3.0}
EIGHTH = {"uniform": 9.0, "normal": 105.0}  # E w^8 / s2^4

RELU_FAMILY = ("relu", "leaky_relu", "elu", "gelu")
OTHERS = ("identity", "sigmoid", "tanh", "softplus")


def assert_distribution(W, var, dist, what):
    w = np.asarray(W, dtype=np.float64).ravel()
    n = w.size
    k, m8 = KURTOSIS[dist], EIGHTH[dist]
    mean = w.mean()
    assert abs(mean) <= SIGMA * np.sqrt(var / n), f"{what}: mean {mean:.3g}"
    m2 = np.mean(w * w)
    assert abs(m2 - var) <= SIGMA * var * np.sqrt((k - 1.0) / n), (
        f"{what}: variance {m2:.6g}, expected {var:.6g}")
    m4 = np.mean(w**4) / var**2
    assert abs(m4 - k) <= SIGMA * np.sqrt((m8 - k * k) / n), (
        f"{what}: kurtosis {m4:.4g}, expected {k} ({dist})")
    r = np.sum(w[1:] * w[:-1]) / (n * var)
    assert abs(r) <= SIGMA / np.sqrt(n), f"{what}: lag-1 correlation {r:.3g}"
    if dist == "uniform":
        a = np.sqrt(3.0 * var)
        top = np.abs(w).max()
        assert top <= a * (1 + 1e-6), f"{what}: max|w| {top:.8g} above the bound {a:.8g}"
        assert top > a * (1 - 20.0 / n), f"{what}: max|w| {top:.8g} far below the bound {a:.8g}"


def _model(init, dtype, activation="relu", loss="cross_entropy", seed=0):
    m = fm.MLP(SIZES, activation=activation, loss=loss, init=init, dtype=dtype, seed=seed)
    m.forward(np.zeros((1, SIZES[0]), dtype))  # builds (and initialises) the network
    return m


@pytest.mark.parametrize("seed", [0, 12345])
@pytest.mark.parametrize("init", list(SCHEMES))
def test_scheme_has_its_closed_form_distribution(init, dtype, seed):
    var_of, dist = SCHEMES[init]
    model = _model(init, dtype, seed=seed)
    for i, layer in enumerate(model.layers):
        fo, fi = layer.W.shape
        assert layer.W.dtype == dtype
        assert_distribution(layer.W, var_of(fi, fo), dist, f"{init} layer {i} ({fo}x{fi})")
        assert np.all(layer.b == 0)


@pytest.mark.parametrize("activation", RELU_FAMILY + OTHERS)
def test_auto_is_he_uniform_for_the_relu_family_else_glorot_uniform(activation):
    model = _model("auto", np.float64, activation=activation)
    hidden, output = model.layers
    fo, fi = hidden.W.shape
    if activation in RELU_FAMILY:
        assert_distribution(hidden.W, 2.0 / fi, "uniform", f"auto hidden {activation}")
    else:
        assert_distribution(hidden.W, 2.0 / (fi + fo), "uniform", f"auto hidden {activation}")
    # The output layer (identity: logits) is never ReLU-like.
    fo, fi = output.W.shape
    assert_distribution(output.W, 2.0 / (fi + fo), "uniform", "auto output")


def test_seed_and_layer_give_independent_draws():
    a = _model("he_normal", np.float64, seed=1).layers[0].W.ravel()
    b = _model("he_normal", np.float64, seed=2).layers[0].W.ravel()
    again = _model("he_normal", np.float64, seed=1).layers[0].W.ravel()
    np.testing.assert_array_equal(a, again)
    r = np.corrcoef(a, b)[0, 1]
    assert abs(r) <= SIGMA / np.sqrt(a.size)
