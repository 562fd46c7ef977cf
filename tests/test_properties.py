"""Property-based checks (hypothesis): random shapes, transposes, leading
sizes and dtypes for the GEMM, and random small networks for the gradients."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp as fm
from fastmlp import reference as ref

dims = st.integers(min_value=1, max_value=70)


@settings(max_examples=60, deadline=None)
@given(m=dims, n=dims, k=st.integers(min_value=0, max_value=300), ta=st.booleans(),
       tb=st.booleans(), f32=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_matmul_property(m, n, k, ta, tb, f32, seed):
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    c = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
    opa = (a.T if ta else a).astype(np.float64)
    opb = (b.T if tb else b).astype(np.float64)
    bound = max(k, 1) * np.finfo(dtype).eps * (np.abs(opa) @ np.abs(opb)) + 1e-300
    assert (np.abs(c - opa @ opb) <= bound).all()


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 9), min_size=2, max_size=4),
       act=st.sampled_from(ref.ACTIVATIONS), loss=st.sampled_from(ref.LOSSES),
       n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_network_gradients_property(sizes, act, loss, n, seed):
    rng = np.random.default_rng(seed)
    model = fm.MLP(sizes, activation=act, loss=loss, dtype="float64", seed=seed)
    X = rng.standard_normal((n, sizes[0]))
    k = sizes[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
        t = y
    else:
        if loss == "binary_cross_entropy":
            y = (rng.random((n, k)) > 0.5).astype(float)
        elif loss == "poisson":
            y = rng.poisson(1.5, (n, k)).astype(float)
        else:
            y = rng.standard_normal((n, k))
        t = y
    net = ref.Network([l.W.copy() for l in model.layers], [l.b.copy() for l in model.layers],
                      [l.activation for l in model.layers], loss)
    want_loss, want = net.backward(X, t)
    assert abs(model.loss(X, y) - want_loss) <= 1e-12 * max(1.0, abs(want_loss))
    for g, w in zip(model.gradients(X, y), want):
        scale = max(1.0, float(np.abs(w["W"]).max()))
        assert np.abs(g["W"] - w["W"]).max() <= 1e-12 * scale
        assert np.abs(g["b"] - w["b"]).max() <= 1e-12 * max(1.0, float(np.abs(w["b"]).max()))
