"""dtype="mixed_bfloat16": float32 master weights, bf16 GEMM operands.

The oracle is fastmlp.reference.Network in float32 with
gemm_round=reference.round_bf16: the same network maths with both operands
of every layer's three products (forward x W^T, dW = dZ^T x, dX = dZ W)
rounded to bfloat16, everything else (bias, activation, batch norm,
dropout, softmax, the loss, db, the optimizer) unrounded float32.

Tolerance. The core and the reference differ only in the order of their
float32 sums (the core's k order, NumPy's BLAS its own) and in what that
does downstream: (1) a k-term float32 sum is within k * 2**-24 * sum|terms|
of the exact one; (2) an operand of a later GEMM that differs in its last
float32 bit may round to the neighbouring bf16 value, moving one product
term by up to 2**-8 relative. A value lies within 2**-24 relative of a bf16
rounding boundary with probability ~2**-24 / 2**-8 = 2**-16 per operand, so
over the ~1e5 operands of these networks a few such flips happen, each
moving a sum by at most 2**-8 * |term| <= 2**-8 * max|a| max|b|, i.e. at
most ~1e-3 of a k >= 8 sum's scale and far less in norm over a whole array.
Arrays are compared norm-wise (conftest.rel_error, max|a - e| / max|e|)
against RTOL = 2e-3, which also covers (1) (k * 2**-24 <= 1e-4 for the
k <= 256 here); observed: most arrays below 1e-6, the largest 2.5e-4 (a
dW0 with a flip). The bound is discriminating: the same core output
against the *unrounded* float32 reference differs by bf16's own error,
2.4e-3 .. 8.5e-2 norm-wise (observed), and the test
asserts that it does (at least 5x farther), so a core that ignored the
switch, or rounded fewer operands, would fail.

The Adam step is checked in two parts: the gradients against the
reference (above), then the parameters after train_step against
reference.adam_step applied to the core's own gradients (to float32
rounding): a step near a gradient's sign change turns any difference in g
into up to 2 * lr in the parameter, which says nothing about either
implementation.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref

from conftest import rel_error, zip_same

HAVE_BF16 = fm.ops.have_bf16_instructions()
needs_bf16 = pytest.mark.skipif(not HAVE_BF16, reason="this CPU (or OS) lacks AVX512_BF16")

RTOL = 2e-3          # core vs the bf16-rounded reference (module docstring)
FARTHER = 5.0        # the unrounded reference must be at least this much farther

# (sizes, MLP keyword arguments, loss)
CASES = {
    "relu_ce": ([24, 64, 48, 5], {"activation": "relu"}, "cross_entropy"),
    "tanh_mse_dropout": ([24, 40, 33, 3], {"activation": "tanh", "dropout": 0.25}, "mse"),
    "gelu_bce_bn": ([24, 64, 31, 4], {"activation": "gelu", "batch_norm": True},
                    "binary_cross_entropy"),
    "elu_ce_bn_dropout": ([40, 128, 96, 10],
                          {"activation": "elu", "batch_norm": True, "dropout": 0.2},
                          "cross_entropy"),
    # The first layer's weight gradient (600 x 1000, 2.4 MB) is at least
    # 1 MiB per thread on 1 or 2 threads: the AVX512-BF16 kernel streams it
    # (gemm.h Epilogue::stream).
    "relu_ce_streamed_dw": ([1000, 600, 5], {"activation": "relu"}, "cross_entropy"),
}
KERNELS = ("avx512_bf16", "generic_bf16")


@pytest.fixture(params=KERNELS)
def bf16_kernel(request):
    """Each bf16 kernel in turn (the AVX512-BF16 one where the CPU has it)."""
    if request.param == "avx512_bf16" and not HAVE_BF16:
        pytest.skip("this CPU (or OS) lacks AVX512_BF16")
    previous = fm.ops.set_isa(request.param)
    try:
        assert fm.show_config()["bf16_isa"] == request.param.replace("_bf16", "").replace(
            "avx512", "avx512_bf16")
        yield request.param
    finally:
        fm.ops.set_isa(previous)


def _batch(rng, loss, n, n_in, k):
    X = (rng.standard_normal((n, n_in)) * 1.5).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, k)) < 0.4).astype(np.float32)
    else:
        y = rng.standard_normal((n, k)).astype(np.float32)
    return X, y


def _model(sizes, kw, loss, seed=3, lr=1e-2):
    model = fm.MLP(sizes, loss=loss, dtype="mixed_bfloat16", seed=seed, **kw)
    model.compile(fm.optim.Adam(lr=lr))
    return model


def _reference(model, gemm_round):
    layers = model.layers
    net = ref.Network([layer.W.copy() for layer in layers], [layer.b.copy() for layer in layers],
                      [layer.activation for layer in layers], model.loss_name,
                      dropout=[layer.dropout for layer in layers],
                      batch_norm=[layer.batch_norm for layer in layers], gemm_round=gemm_round)
    for i, layer in enumerate(layers):
        if layer.batch_norm:
            net.gammas[i][...] = layer.gamma
            net.betas[i][...] = layer.beta
            net.running_means[i][...] = layer.running_mean
            net.running_vars[i][...] = layer.running_var
    return net


def _compare(core, rounded, plain, what):
    """core within RTOL of the bf16-rounded reference and FARTHER times
    closer to it than to the unrounded one; returns the two errors."""
    near, far = rel_error(core, rounded), rel_error(core, plain)
    assert near <= RTOL, f"{what}: {near:.2e} from the bf16-rounded reference"
    return near, far


# ---------------------------------------------------------------------------
# construction, policy, errors


def test_policy_is_float32_storage_with_bf16_gemm():
    model = fm.MLP([6, 8, 3], dtype="mixed_bfloat16", seed=0)
    assert model.dtype == np.float32
    assert model.dtype_policy == "mixed_bfloat16"
    assert model.layers[0].W.dtype == np.float32
    assert model._net.bf16_gemm
    assert "dtype='mixed_bfloat16'" in repr(model)
    assert not fm.MLP([6, 8, 3])._net.bf16_gemm
    assert fm.MLP([6, 8, 3], dtype="float64").dtype_policy == "float64"


def test_float64_network_refuses_bf16_gemm():
    model = fm.MLP([6, 8, 3], dtype="float64")
    with pytest.raises(ValueError, match="float64"):
        model._net.bf16_gemm = True


def test_unknown_dtype_names_the_choices():
    with pytest.raises((TypeError, ValueError), match="mixed_bfloat16"):
        fm.MLP([6, 8, 3], dtype="bfloat16")


def _run(code, **env):
    full = dict(os.environ, **env)
    full.pop("FASTMLP_ISA", None)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120)


@pytest.mark.skipif("avx512" not in fm.ops.supported_isas(), reason="no AVX-512 on this CPU")
def test_missing_bf16_instructions_are_a_clear_error(tmp_path):
    build = "import fastmlp as fm; m = fm.MLP([4, 8, 2], dtype='mixed_bfloat16')"
    r = _run(build, FASTMLP_HIDE_ISA="avx512_bf16")
    assert r.returncode != 0
    assert "ValueError: dtype: 'mixed_bfloat16' needs a CPU with AVX512_BF16" in r.stderr
    assert "FASTMLP_ISA=generic_bf16" in r.stderr
    # Forcing the portable kernel runs it anyway, and so does set_isa.
    r = _run(build + "; print(fm.show_config()['bf16_isa'], m._net.bf16_gemm)",
             FASTMLP_HIDE_ISA="avx512_bf16", FASTMLP_ISA="generic_bf16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["generic", "True"]
    r = _run("import fastmlp as fm; fm.ops.set_isa('generic_bf16'); "
             "m = fm.MLP([4, 8, 2], dtype='mixed_bfloat16'); print(m._net.bf16_gemm)",
             FASTMLP_HIDE_ISA="avx512_bf16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True"]
    # Loading a saved mixed model there: the same error (or the forced kernel).
    path = str(tmp_path / "m.npz")
    fm.MLP([4, 8, 2], dtype="mixed_bfloat16", seed=1).save(path)
    r = _run(f"import fastmlp as fm; fm.load({path!r})", FASTMLP_HIDE_ISA="avx512_bf16")
    assert r.returncode != 0
    assert "needs a CPU with AVX512_BF16" in r.stderr
    r = _run(f"import fastmlp as fm; print(fm.load({path!r}).dtype_policy)",
             FASTMLP_HIDE_ISA="avx512_bf16", FASTMLP_ISA="generic_bf16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["mixed_bfloat16"]


# ---------------------------------------------------------------------------
# a whole step against the bf16-rounded reference


@pytest.mark.parametrize("case", list(CASES))
def test_step_matches_bf16_rounded_reference(rng, case, bf16_kernel):
    sizes, kw, loss = CASES[case]
    model = _model(sizes, kw, loss)
    X, y = _batch(rng, loss, 64, sizes[0], sizes[-1])
    # One step first, so the batch-norm and Adam state are not trivial.
    model.train_step(X[::-1].copy(), y[::-1].copy())
    rounded, plain = _reference(model, ref.round_bf16), _reference(model, None)
    step, seed = model._net.step_count, model.seed

    out = model.forward(X, training=True)
    nears, fars = [], []
    want = [net.forward(X, training=True, step=step, seed=seed) for net in (rounded, plain)]
    nears_fars = _compare(out, *want, "forward output")
    nears.append(nears_fars[0])
    fars.append(nears_fars[1])
    # eval mode (running statistics, no dropout) too
    ev = [net.forward(X) for net in (rounded, plain)]
    _compare(model.forward(X), *ev, "eval forward")

    grads = model.gradients(X, y)
    (loss_r, g_r), (loss_p, g_p) = (net.backward(X, y, step=step, seed=seed)
                                    for net in (rounded, plain))
    assert abs(model.loss(X, y, training=True) - loss_r) <= RTOL * abs(loss_r)
    for li, (g, gr, gp) in enumerate(zip_same(grads, g_r, g_p)):
        for key in gr:
            if key == "b" and model.layers[li].batch_norm:
                # exactly 0 in exact arithmetic (batch norm removes the bias)
                assert np.max(np.abs(g[key])) <= 1e-5 * np.max(np.abs(g["W"]))
                continue
            near, far = _compare(g[key], gr[key], gp[key], f"d{key}{li}")
            if key == "W":
                nears.append(near)
                fars.append(far)
    # The reference with rounding is the closer one, by far, overall.
    assert max(nears) * FARTHER <= max(fars), (nears, fars)

    # The Adam step: the core's update of its own gradients (module docstring).
    # The flat buffers share one layout (parameters, gradients, Adam's m and v).
    net = model._net
    cfg = model.optimizer.get_config()
    p_before = np.array(net.params_flat())
    m_before, v_before = (np.array(a) for a in net.optimizer_state())
    t = net.optimizer_steps + 1
    model.train_step(X, y)
    g = np.array(net.grads_flat())
    for li, gl in enumerate(grads):  # the step's gradients are those compared above
        assert np.array_equal(net.grad(li, "W"), gl["W"])
    p_new, _ = ref.adam_step(p_before, g, [m_before, v_before], t, cfg["lr"], cfg["betas"][0],
                             cfg["betas"][1], cfg["eps"], cfg["weight_decay"])
    np.testing.assert_allclose(net.params_flat(), p_new, rtol=1e-5, atol=1e-7)


def _params(model):
    out = []
    for layer in model.layers:
        p = {"W": layer.W, "b": layer.b}
        if layer.batch_norm:
            p["gamma"] = layer.gamma
            p["beta"] = layer.beta
        out.append(p)
    return out


def test_kernels_agree(rng):
    """The AVX512-BF16 and the portable kernel: the same rounding, float32
    sums in a different association (VDPBF16PS adds a pair at a time), so
    the same step to float32 rounding and its rare bf16 flips (RTOL), not
    bitwise."""
    if not HAVE_BF16:
        pytest.skip("this CPU (or OS) lacks AVX512_BF16")
    sizes, kw, loss = CASES["elu_ce_bn_dropout"]
    X, y = _batch(rng, loss, 96, sizes[0], sizes[-1])
    runs = {}
    for kernel in KERNELS:
        previous = fm.ops.set_isa(kernel)
        try:
            model = _model(sizes, kw, loss)
            runs[kernel] = (model.forward(X, training=True), model.gradients(X, y))
        finally:
            fm.ops.set_isa(previous)
    (out_a, g_a), (out_b, g_b) = runs.values()
    assert rel_error(out_a, out_b) <= RTOL
    for a, b in zip_same(g_a, g_b):
        assert rel_error(a["W"], b["W"]) <= RTOL


# ---------------------------------------------------------------------------
# threads, persistence, estimators, training


def _thread_run(threads, kernel):
    previous_isa = fm.ops.set_isa(kernel)
    previous = fm.get_num_threads()
    fm.set_num_threads(threads)
    try:
        rng = np.random.default_rng(7)
        sizes, kw, loss = CASES["elu_ce_bn_dropout"]
        model = _model(sizes, kw, loss)
        X, y = _batch(rng, loss, 160, sizes[0], sizes[-1])
        losses = [model.train_step(X[i:i + 80], y[i:i + 80]) for i in (0, 80, 0)]
        return losses, model.forward(X), [np.array(p) for p in (model.layers[0].W,
                                                              model.layers[1].W)]
    finally:
        fm.set_num_threads(previous)
        fm.ops.set_isa(previous_isa)


@pytest.mark.parametrize("kernel", KERNELS)
def test_one_and_two_threads_bitwise_identical(kernel):
    if kernel == "avx512_bf16" and not HAVE_BF16:
        pytest.skip("this CPU (or OS) lacks AVX512_BF16")
    l1, o1, w1 = _thread_run(1, kernel)
    l2, o2, w2 = _thread_run(2, kernel)
    assert l1 == l2
    assert np.array_equal(o1, o2)
    for a, b in zip_same(w1, w2):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_input_panels_change_no_value(bf16_kernel, threads):
    # Each layer's forward epilogue writes its output in bf16 as the next
    # layer's weight-gradient B panel (on by default); with it off, that
    # product packs the same values itself: parameters, optimizer state and
    # losses bit for bit the same, over every case above (dropout and batch
    # norm layers write none), hidden widths that split 32-column slivers
    # between threads (20, 48) or end in a partial one (300), odd batches and
    # a fit whose last batch is shorter.
    extra = {"narrow_widths": ([30, 20, 48, 4], {"activation": "tanh"}, "cross_entropy"),
             "partial_sliver": ([50, 300, 64, 5], {"activation": "relu"}, "cross_entropy")}
    previous = fm.get_num_threads()
    fm.set_num_threads(threads)
    try:
        for name, (sizes, kw, loss) in {**CASES, **extra}.items():
            runs = []
            for on in (True, False):
                model = _model(sizes, kw, loss)
                assert model._net.bf16_input_panels is True
                model._net.bf16_input_panels = on
                rng = np.random.default_rng(5)
                X, y = _batch(rng, loss, 101, sizes[0], sizes[-1])
                losses = [model.train_step(X, y) for _ in range(2)]
                model.fit(X, y, epochs=1, batch_size=36, shuffle=False, verbose=0)
                runs.append((losses, np.array(model._net.params_flat()),
                             [np.array(s) for s in model._net.optimizer_state()]))
            (l1, p1, s1), (l2, p2, s2) = runs
            assert l1 == l2, name
            assert np.array_equal(p1.view(np.uint32), p2.view(np.uint32)), name
            for a, b in zip(s1, s2):
                assert np.array_equal(a.view(np.uint32), b.view(np.uint32)), name
    finally:
        fm.set_num_threads(previous)


def _trained(rng, **kw):
    X, y = _batch(rng, "cross_entropy", 256, 12, 3)
    model = fm.MLP([12, 32, 16, 3], dtype="mixed_bfloat16", seed=2, **kw)
    model.compile(fm.optim.Adam(lr=1e-2))
    model.fit(X, y, epochs=3, batch_size=64, verbose=0)
    return model, X


def test_save_load_pickle_keep_the_policy(rng, tmp_path):
    model, X = _trained(rng, batch_norm=True, dropout=0.1)
    want = model.predict_proba(X)
    path = model.save(str(tmp_path / "mixed.npz"))
    for back in (fm.load(path), pickle.loads(pickle.dumps(model))):
        assert back.dtype_policy == "mixed_bfloat16"
        assert back.dtype == np.float32
        assert back._net.bf16_gemm
        assert np.array_equal(back.predict_proba(X), want)
        assert np.array_equal(back.layers[0].W, model.layers[0].W)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_fit_and_score():
    """Digits (the last 397 rows held out, the harder writers): the mixed
    estimators score as the float32 ones do (observed: equal to 3 digits)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    scores = {}
    for dtype in ("float32", "mixed_bfloat16"):
        clf = fm.MLPClassifier(hidden_layer_sizes=(64,), dtype=dtype, max_iter=30,
                               random_state=0).fit(X[:1400], y[:1400])
        reg = fm.MLPRegressor(hidden_layer_sizes=(32,), dtype=dtype, max_iter=50,
                              random_state=0).fit(X[:1400], X[:1400, 20])
        assert clf._model.dtype_policy == dtype
        assert clf.coefs_[0].dtype == np.float32
        scores[dtype] = (clf.score(X[1400:], y[1400:]), reg.score(X[1400:], X[1400:, 20]))
    (c32, r32), (cmix, rmix) = scores["float32"], scores["mixed_bfloat16"]
    assert cmix > 0.85 and rmix > 0.95, scores
    assert abs(cmix - c32) <= 0.02 and abs(rmix - r32) <= 0.01, scores


def test_training_reaches_float32_loss():
    """30 epochs on a 3-class problem: the mixed run's final loss within 10%
    (or 0.01) of float32's from the same seed."""
    from fastmlp.datasets import make_spirals

    X, y = make_spirals(n_per_class=200, seed=0)
    X = X.astype(np.float32)
    final = {}
    for dtype in ("float32", "mixed_bfloat16"):
        model = fm.MLP([2, 64, 64, 3], dtype=dtype, seed=0)
        model.compile(fm.optim.Adam(lr=1e-2))
        final[dtype] = model.fit(X, y, epochs=30, batch_size=32, verbose=0)["loss"][-1]
    f32, mixed = final["float32"], final["mixed_bfloat16"]
    assert f32 < 0.5
    assert abs(mixed - f32) <= max(0.1 * f32, 0.01), final


# ---------------------------------------------------------------------------
# the bf16 weight panels (network.h): packed once per change of the weights,
# never used stale


def _twins(rng):
    """A mixed model after two Adam steps, and a batch."""
    X, y = _batch(rng, "cross_entropy", 96, 40, 10)
    model = _model([40, 128, 96, 10], {"activation": "relu"}, "cross_entropy")
    model.train_step(X, y)
    model.train_step(X, y)
    return model, X, y


def _fresh_copy(model):
    """The same state in a network that has never packed a panel."""
    return pickle.loads(pickle.dumps(model))


def _same_step(model, X, y):
    """One train_step of model and of a fresh copy of it: identical losses,
    outputs and weights, bit for bit."""
    twin = _fresh_copy(model)
    assert model.train_step(X, y) == twin.train_step(X, y)
    assert np.array_equal(model.forward(X), twin.forward(X))
    for a, b in zip_same(model.layers, twin.layers):
        assert np.array_equal(a.W, b.W)


@pytest.mark.parametrize("bf16_kernel", KERNELS, indirect=True)
def test_panels_follow_every_write_to_the_weights(rng, bf16_kernel):
    # Steps in a row reuse the panels the optimizer step leaves behind; a
    # write through any view of the weights between two calls must reach the
    # next pass, however the view was made or kept: the result is always the
    # one a network that never packed a panel computes from the same state.
    model, X, y = _twins(rng)
    _same_step(model, X, y)                       # nothing written in between

    W = model.layers[1].W                         # a view dropped after writing
    W *= 0.5
    del W
    _same_step(model, X, y)

    kept = model.layers[2].W                      # a view kept across the steps
    kept[:, :3] = 0.25
    _same_step(model, X, y)
    kept[0, 0] = -1.0
    _same_step(model, X, y)
    del kept

    part = model.layers[0].W.T[5:9]               # a derived array outliving its view
    part[...] = 0.125
    _same_step(model, X, y)
    part += 1.0
    del part
    _same_step(model, X, y)

    flat = model._net.params_flat()               # the flat buffer
    flat[:50] = 0.0
    del flat
    _same_step(model, X, y)

    model.layers[1].W = np.ones_like(model.layers[1].W)   # assignment
    _same_step(model, X, y)


def test_panels_not_repacked_without_a_write(rng):
    # The point of the panels: consecutive calls with no view alive keep them;
    # a live view makes every pass repack (correct, slower), its end stops it.
    model, X, y = _twins(rng)
    net = model._net
    model.train_step(X, y)
    model.forward(X)
    assert net.bf16_panels_fresh
    W = model.layers[0].W
    assert not net.bf16_panels_fresh
    model.forward(X)
    assert net.bf16_panels_fresh                 # repacked for that pass...
    model.forward(X)                             # ...and again: W is still alive
    W[0, 0] += 1.0
    del W
    assert not net.bf16_panels_fresh
    model.forward(X)
    assert net.bf16_panels_fresh
