"""Property-based fuzzing of the whole network against fastmlp.reference.

Hypothesis draws an architecture (1-4 layers, widths 1-40, an activation per
hidden layer), a loss, a dtype, a batch size (1, sizes that are no multiple
of any GEMM tile such as 13 and 37, or anything up to 64) and the memory
layout of X (C order, Fortran order, a strided view, reversed rows, another
dtype that the model converts once). The core's forward output, loss and
gradients must equal the reference's computed in float64 from the same
(converted) input and the same parameters.

Tolerance: conftest.assert_close, c * sqrt(k) * eps(dtype) * max(1, max|expected|),
norm-wise per array. k is the longest chain of roundings an entry goes
through: a forward entry sums over every layer's fan-in in turn (sum of the
widths), a gradient entry also sums over the batch (dW, db) and back through
every layer again, hence k = n + 2 * sum(sizes). c = 8 is the suite's
default (conftest), covering the few elementary functions (exp, tanh, erf,
log1p) applied after each sum and the growth of an error through up to four
layers. Measured over 1500 draws: the largest error is 0.2 of this bound
(float32 dW), ~0.05 elsewhere. A float64 core is held to the same rule with
its own eps, ~1e-14.

relu and leaky_relu have a kink at 0: where the core (float32) and the
reference (float64) put a pre-activation within rounding of 0 on different
sides, their derivatives differ by 1 (or 0.99), not by a rounding. Such draws
(about one float32 draw in eight: some hidden |z| within the forward
tolerance of 0) say nothing about the core and are discarded with assume().
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastmlp as fm
from fastmlp import reference as ref

from conftest import assert_close, tolerance, zip_same

C = 8.0
KINKED = ("relu", "leaky_relu")

LAYOUTS = ("c", "fortran", "strided", "reversed", "other_dtype")


def _layout(X, layout):
    """X (already in the model's dtype, values fixed) in the requested memory layout."""
    if layout == "fortran":
        return np.asfortranarray(X)
    if layout == "strided":
        # Every other row and column of a larger array: neither C- nor F-contiguous.
        big = np.zeros((2 * X.shape[0], 3 * X.shape[1]), dtype=X.dtype)
        big[::2, ::3] = X
        return big[::2, ::3]
    if layout == "reversed":
        return np.ascontiguousarray(X[::-1])[::-1]
    if layout == "other_dtype":
        # The test keeps X's values representable in both, so the model's one
        # conversion is exact.
        return X.astype(np.float64 if X.dtype == np.float32 else np.float32)
    return np.ascontiguousarray(X)


@st.composite
def cases(draw):
    n_layers = draw(st.integers(1, 4))
    sizes = draw(st.lists(st.integers(1, 40), min_size=n_layers + 1, max_size=n_layers + 1))
    loss = draw(st.sampled_from(ref.LOSSES))
    if loss == "cross_entropy" and sizes[-1] == 1:
        sizes[-1] = 2
    acts = [draw(st.sampled_from(ref.ACTIVATIONS)) for _ in range(n_layers - 1)]
    return {
        "sizes": sizes,
        "acts": acts,
        "loss": loss,
        "dtype": draw(st.sampled_from(("float32", "float64"))),
        "n": draw(st.one_of(st.sampled_from((1, 13, 37)), st.integers(1, 64))),
        "layout": draw(st.sampled_from(LAYOUTS)),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def _targets(rng, loss, n, k):
    if loss == "cross_entropy":
        return rng.integers(0, k, n)
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) < 0.5).astype(np.float64)
    if loss == "poisson":
        return rng.poisson(1.5, (n, k)).astype(np.float64)
    return rng.standard_normal((n, k))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(case=cases())
def test_core_equals_reference_on_random_networks(case):
    sizes, acts, loss, n = case["sizes"], case["acts"], case["loss"], case["n"]
    dtype = np.dtype(case["dtype"])
    rng = np.random.default_rng(case["seed"])
    layers = [sizes[0]] + [fm.Dense(u, activation=a) for u, a in zip_same(sizes[1:-1], acts)]
    layers.append(fm.Dense(sizes[-1]))
    model = fm.MLP(layers, loss=loss, dtype=case["dtype"], seed=case["seed"])
    X = rng.standard_normal((n, sizes[0])).astype(np.float32).astype(dtype)
    y = _targets(rng, loss, n, sizes[-1])
    if loss != "cross_entropy":
        y = y.astype(dtype)
    Xin = _layout(X, case["layout"])
    assert np.array_equal(Xin, X)

    net = ref.Network([layer.W.astype(np.float64) for layer in model.layers],
                      [layer.b.astype(np.float64) for layer in model.layers],
                      [layer.activation for layer in model.layers], loss)
    X64 = X.astype(np.float64)
    y64 = y if loss == "cross_entropy" else y.astype(np.float64)
    want_out = net.forward(X64)
    want_loss, want_grads = net.backward(X64, y64)
    if dtype == np.float32:
        z_tol = tolerance(dtype, sum(sizes), max(1.0, max(float(np.abs(z).max()) for z in net.zs)), C)
        for z, act in zip_same(net.zs[:-1], acts):
            assume(act not in KINKED or not (np.abs(z) < z_tol).any())

    k_fwd = sum(sizes)
    k_grad = n + 2 * sum(sizes)
    assert_close(model.forward(Xin), want_out, dtype, k_fwd, C, "forward")
    assert_close(np.array(model.loss(Xin, y)), np.array(want_loss), dtype, k_grad, C, "loss")
    got_grads = model.gradients(Xin, y)
    for i, (g, w) in enumerate(zip_same(got_grads, want_grads)):
        assert_close(g["W"], w["W"], dtype, k_grad, C, f"layer {i} dW")
        assert_close(g["b"], w["b"], dtype, k_grad, C, f"layer {i} db")
    # The converted copy is the model's own business: X is left as it was.
    assert np.array_equal(Xin, X)


@pytest.mark.parametrize("where", ["X", "y", "sample_weight"])
def test_float64_beyond_float32_is_a_value_error_not_a_warning(where):
    # Found by fuzz/fuzz_load.py: 1e300 cast to float32 warned "overflow
    # encountered in cast" (an error under -W error) and was then called NaN
    # or infinity, which the caller never gave.
    model = fm.MLP([2, 3, 1], loss="mse", seed=0)
    X, y, w = np.ones((4, 2)), np.ones(4), np.ones(4)
    {"X": X, "y": y, "sample_weight": w}[where][1] = 1e300
    with pytest.raises(ValueError, match=f"^{where}: " + ("weights must be finite" if where ==
                                                          "sample_weight" else "values beyond")):
        model.loss(X, y, sample_weight=w)


def test_loss_kernel_refuses_class_ids_int32_cannot_hold_and_complex_targets():
    # Found by fuzz/fuzz_load.py: fm.ops.loss_forward_backward cast int64 ids
    # to int32 unchecked (2**32 became class 0) and complex targets to real.
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"^target: class ids must lie in \[0, 3\)"):
        fm.ops.loss_forward_backward("cross_entropy", z, z, np.array([2**32, 0]))
    with pytest.raises(TypeError, match="^target: expected a numeric array"):
        fm.ops.loss_forward_backward("mse", z, z, z + 1j)
