"""The core's whole training step against the NumPy reference, step by step.

Every test here drives a float64 fm.MLP through its public training calls
(train_step, gradients, loss, forward) and replays the same computation with
fastmlp.reference building blocks: reference.Network forward/backward in
training mode with the dropout masks of (model.seed, step), the l1/l2
penalty, clip_grad_value then clip_grad_norm, reference.optimizer_step on
each parameter array with its own state, and the batch-norm running
statistics moved by the step's batch. After every step the loss, every
parameter array and the running statistics must agree.

Tolerance. Arrays are compared norm-wise: max|actual - expected| <= 1e-12 *
max|expected| per array (conftest.rel_error). An element-wise relative bound
means nothing for an element that is a sum cancelling to ~0 (a gradient entry,
a parameter crossing 0): its relative error is unbounded although its absolute
error is rounding-sized. Over 20 steps the largest norm-wise error observed
is ~1e-13 (a few hundred roundings), so 1e-12 still catches any wrong
operation, order or constant.

One quantity is exactly zero in exact arithmetic: the gradient of the bias of
a batch-normalized layer (batch norm subtracts the batch mean, so the bias
cancels). Both implementations compute it as rounding noise (~1e-17), and the
adaptive optimizers divide it by eps (1e-8, 1e-10), turning *different* noise
into different steps of up to ~lr * 1e-7 that also leak into the running
mean. So for those biases only, the reference takes the core's gradient (from
model.gradients on the same batch before the step) after checking that the
core's and its own are both zero to rounding; every other gradient is
compared there as well. Everything else is the reference's own. Networks
without batch norm make no model.gradients call: their train_step runs cold.

The last test replays the same composition in PyTorch (autograd, F.batch_norm,
clip_grad_value_, clip_grad_norm_, torch.optim), when torch is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref

from conftest import TeamProbe, rel_error, zip_same

RTOL = 1e-12
N_STEPS = 20
SIZES = [5, 8, 6, 3]  # input, two hidden layers, output

OPTIMIZERS = {
    "sgd": lambda: fm.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda: fm.optim.Adam(lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3),
    "adamw_amsgrad": lambda: fm.optim.AdamW(lr=1e-2, weight_decay=0.05, amsgrad=True),
    "rmsprop": lambda: fm.optim.RMSprop(lr=1e-3, alpha=0.9, momentum=0.5, centered=True,
                                        weight_decay=1e-3),
    "adagrad": lambda: fm.optim.Adagrad(lr=0.05, lr_decay=1e-2, weight_decay=1e-3,
                                        initial_accumulator_value=0.1),
}

# (MLP keyword arguments, compile keyword arguments). The clip thresholds are
# chosen so that both clippings act on most steps (asserted in the test).
VARIANTS = {
    "plain": ({}, {}),
    "dropout": ({"dropout": 0.3}, {}),
    "batch_norm": ({"batch_norm": True}, {}),
    "all": ({"dropout": 0.3, "batch_norm": True},
            {"l1": 1e-3, "l2": 1e-2, "clip_value": 0.05, "clip_norm": 0.1}),
}

ACTIVATIONS = ("relu", "tanh", "gelu")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy", "poisson")


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _batch(rng, loss, n, k=SIZES[-1], n_in=SIZES[0]):
    X = rng.standard_normal((n, n_in)) * 1.5
    if loss == "cross_entropy":
        y = rng.integers(0, k, n)
    elif loss == "binary_cross_entropy":
        y = (rng.random((n, k)) < 0.4).astype(np.float64)
    elif loss == "poisson":
        y = rng.poisson(1.5, (n, k)).astype(np.float64)
    else:
        y = rng.standard_normal((n, k))
    return X, y


def _soft_batch(rng, loss, n):
    """Cross-entropy targets as class probabilities, one row not summing to 1."""
    X, _ = _batch(rng, loss, n)
    t = rng.dirichlet(np.ones(SIZES[-1]), n)
    t[0] *= 0.5
    return X, t


def _make_model(rng, act, loss, mlp_kw, compile_kw, optimizer, sizes=SIZES, seed=11):
    model = fm.MLP(sizes, activation=act, loss=loss, dtype="float64", seed=seed, **mlp_kw)
    model.compile(optimizer, **compile_kw)
    # Start batch-norm layers away from their trivial initial values, so that
    # the bias (analytically inert in training) and gamma/beta show in the
    # evaluation-mode output and in the running mean.
    for layer in model.layers:
        if layer.batch_norm:
            layer.b = 0.5 * rng.standard_normal(layer.units)
            layer.gamma = 1.0 + 0.2 * rng.standard_normal(layer.units)
            layer.beta = 0.2 * rng.standard_normal(layer.units)
    return model


def _bn_layers(model):
    return [i for i, layer in enumerate(model.layers) if layer.batch_norm]


class RefTrainer:
    """The reference twin of a model: a reference.Network holding float64
    copies of the model's parameters and running statistics, plus the
    optimizer configuration, per-array optimizer state and both step counters
    (optimizer steps, and the training-step count that keys dropout)."""

    def __init__(self, model, l1=0.0, l2=0.0, clip_value=None, clip_norm=None):
        layers = model.layers
        self.net = ref.Network(
            [layer.W.copy() for layer in layers], [layer.b.copy() for layer in layers],
            [layer.activation for layer in layers], model.loss_name,
            dropout=[layer.dropout for layer in layers],
            batch_norm=[layer.batch_norm for layer in layers], l1=l1, l2=l2)
        for i, layer in enumerate(layers):
            if layer.batch_norm:
                self.net.gammas[i][...] = layer.gamma
                self.net.betas[i][...] = layer.beta
                self.net.running_means[i][...] = layer.running_mean
                self.net.running_vars[i][...] = layer.running_var
        self.clip_value = clip_value
        self.clip_norm = clip_norm
        # The public description (class and constructor arguments), which the
        # reference turns into hyper-parameters with its own defaults.
        self.config = public_config(model.optimizer)
        self.state = {}
        self.opt_steps = 0
        self.step_count = model._net.step_count
        self.seed = model.seed
        self.value_clipped = 0  # steps on which clip_value changed a gradient
        self.norm_clipped = 0   # steps on which clip_norm scaled the gradients

    def gradients(self, X, y, **weights):
        """Training-mode gradients (penalty included, before clipping) with the
        masks of the next step; running statistics untouched."""
        return self.net.backward(X, y, training=True, step=self.step_count, seed=self.seed,
                                 **weights)

    def step(self, X, y, bn_bias_grads=None, **weights):
        """One training step; returns the loss (penalty included).

        bn_bias_grads: {layer: db} replacing the gradient of a batch-normalized
        layer's bias (exactly zero in exact arithmetic; see the module doc)."""
        loss, grads = self.net.backward(X, y, training=True, step=self.step_count,
                                        seed=self.seed, update_stats=True, **weights)
        for li, db in (bn_bias_grads or {}).items():
            grads[li]["b"] = db
        if self.clip_value:
            clipped = ref.clip_grad_value(grads, self.clip_value)
            self.value_clipped += any(
                not np.array_equal(a[k], b[k]) for a, b in zip(grads, clipped) for k in a)
            grads = clipped
        if self.clip_norm:
            grads, total = ref.clip_grad_norm(grads, self.clip_norm)
            self.norm_clipped += total > self.clip_norm
        self.opt_steps += 1
        for li, (params, g) in enumerate(zip_same(self.net.parameters(), grads)):
            for key, p in params.items():
                p_new, s_new = ref.optimizer_step(self.config, p, g[key], self.state.get((li, key)),
                                                  self.opt_steps)
                p[...] = p_new
                self.state[(li, key)] = s_new
        self.step_count += 1
        return loss


def public_config(optimizer):
    """(class name, constructor arguments) of an fm.optim optimizer."""
    return type(optimizer).__name__, optimizer.get_config()


def _pairs(model, trainer):
    """(name, core array, reference array) for every parameter and statistic."""
    net = trainer.net
    out = []
    for i, layer in enumerate(model.layers):
        out += [(f"W{i}", layer.W, net.weights[i]), (f"b{i}", layer.b, net.biases[i])]
        if layer.batch_norm:
            out += [(f"gamma{i}", layer.gamma, net.gammas[i]),
                    (f"beta{i}", layer.beta, net.betas[i]),
                    (f"running_mean{i}", layer.running_mean, net.running_means[i]),
                    (f"running_var{i}", layer.running_var, net.running_vars[i])]
    return out


def _assert_state_matches(model, trainer, where):
    assert model._net.step_count == trainer.step_count, where
    for name, got, want in _pairs(model, trainer):
        err = rel_error(got, want)
        assert err <= RTOL, f"{where}: {name} norm-wise relative error {err:.3g}"


def _assert_scalar(got, want, what):
    assert abs(got - want) <= RTOL * abs(want), f"{what}: {got!r} != {want!r}"


def _compare_gradients(model, trainer, X, y, **weights):
    """model.gradients against the reference's for this batch (masks of the
    next step, penalty, no clipping). Returns {layer: the core's db} for the
    batch-normalized layers, whose db must be zero to rounding in both."""
    core = model.gradients(X, y, **weights)
    _, mine = trainer.gradients(X, y, **weights)
    out = {}
    for li, (gc, gr) in enumerate(zip_same(core, mine)):
        assert set(gc) == set(gr), f"layer {li}: keys {sorted(gc)} != {sorted(gr)}"
        for key in gc:
            if key == "b" and model.layers[li].batch_norm:
                # db = sum over the batch of dL/dlin, which sums to 0 exactly:
                # what is left is rounding of n terms of the size of dbeta's.
                # Observed: <= 2e-16 * n * max|dbeta|.
                bound = 1e-14 * len(X) * float(np.max(np.abs(gr["beta"])))
                assert np.max(np.abs(gc["b"])) <= bound, f"core db{li} not ~0: {gc['b']}"
                assert np.max(np.abs(gr["b"])) <= bound, f"reference db{li} not ~0: {gr['b']}"
                out[li] = gc["b"]
            else:
                err = rel_error(gc[key], gr[key])
                assert err <= RTOL, f"gradient {key}{li}: norm-wise relative error {err:.3g}"
    return out


def _run_and_compare(rng, model, trainer, loss, n_steps=N_STEPS, weights_for=None,
                     make_batch=_batch):
    """n_steps train_steps on batches of varying size, each replayed by the
    reference and compared; weights_for(X, y) gives the step's loss weights."""
    bn = bool(_bn_layers(model))
    for s in range(n_steps):
        X, y = make_batch(rng, loss, int(rng.integers(6, 25)))
        weights = weights_for(X, y) if weights_for else {}
        bn_grads = _compare_gradients(model, trainer, X, y, **weights) if bn else None
        got = model.train_step(X, y, **weights)
        want = trainer.step(X, y, bn_bias_grads=bn_grads, **weights)
        _assert_scalar(got, want, f"step {s}: loss")
        _assert_state_matches(model, trainer, f"after step {s + 1}")


def _assert_modes_match(rng, model, trainer, loss):
    """Evaluation-mode forward and loss (running statistics, no dropout), and
    the training-mode forward of the next step, against the reference."""
    X, y = _batch(rng, loss, 17)
    net = trainer.net
    assert rel_error(model.forward(X), net.forward(X)) <= RTOL
    _assert_scalar(model.loss(X, y), net.loss(X, y), "eval loss")
    got = model.forward(X, training=True)
    want = net.forward(X, training=True, step=trainer.step_count, seed=trainer.seed)
    assert rel_error(got, want) <= RTOL
    # Neither call moved anything.
    _assert_state_matches(model, trainer, "after forward/loss")


# ---------------------------------------------------------------------------
# 1. the whole training step, every optimizer x variant x activation x loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_train_steps_match_reference(rng, opt, variant, act, loss):
    mlp_kw, compile_kw = VARIANTS[variant]
    model = _make_model(rng, act, loss, mlp_kw, compile_kw, OPTIMIZERS[opt]())
    trainer = RefTrainer(model, **compile_kw)
    _assert_state_matches(model, trainer, "before training")
    _run_and_compare(rng, model, trainer, loss)
    if "clip_value" in compile_kw:  # the clipping paths were exercised, not skipped
        assert trainer.value_clipped >= N_STEPS // 2
        assert trainer.norm_clipped >= N_STEPS // 2
    # 4. evaluation mode after training
    _assert_modes_match(rng, model, trainer, loss)


def test_streamed_weight_gradient_matches_reference(rng):
    """A layer large enough that, on one thread, its weight gradient (360 x
    400 float64, 1.1 MiB) is stored with non-temporal stores by the AVX-512
    kernels (gemm.h Epilogue::stream, given by dense_backward): the training
    steps still match the reference, gradients included."""
    fm.set_num_threads(1)
    sizes = [400, 360, 3]
    model = fm.MLP(sizes, activation="tanh", loss="cross_entropy", dtype="float64", seed=3)
    model.compile(OPTIMIZERS["sgd"](), clip_norm=5.0)
    dw = model._net.grad(0, "W")  # the premise: rows that start cache lines, 1 MiB or more
    assert dw.ctypes.data % 64 == 0 and dw.strides[0] % 64 == 0 and dw.nbytes >= 1 << 20
    trainer = RefTrainer(model, clip_norm=5.0)

    def batch(rng, loss, n):
        return _batch(rng, loss, n, k=sizes[-1], n_in=sizes[0])

    _run_and_compare(rng, model, trainer, "cross_entropy", n_steps=4, make_batch=batch)
    X, y = batch(rng, "cross_entropy", 19)
    _compare_gradients(model, trainer, X, y)


@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_mixed_layers_match_reference(rng, opt):
    """Per-layer settings: a batch-normalized tanh layer with dropout, a
    dropout-only relu layer, a plain elu layer, and an mse output layer with
    its own activation (sigmoid), which backward takes through act'."""
    D = fm.Dense
    layers = [D(8, activation="tanh", dropout=0.2, batch_norm=True),
              D(7, activation="relu", dropout=0.5), D(6, activation="elu"),
              D(3, activation="sigmoid")]
    model = fm.MLP([5, *layers], loss="mse", dtype="float64", seed=4)
    compile_kw = {"l2": 1e-3, "clip_norm": 0.2}
    model.compile(OPTIMIZERS[opt](), **compile_kw)
    assert [la.activation for la in model.layers] == ["tanh", "relu", "elu", "sigmoid"]
    trainer = RefTrainer(model, **compile_kw)
    assert trainer.net.dropout == [0.2, 0.5, 0.0, 0.0]
    assert trainer.net.batch_norm == [True, False, False, False]
    _run_and_compare(rng, model, trainer, "mse")
    assert trainer.norm_clipped > 0
    _assert_modes_match(rng, model, trainer, "mse")


def test_recompile_restarts_the_optimizer_but_not_the_dropout_steps(rng):
    """compile() with a new optimizer starts it from fresh state (step 1
    again: bias corrections, lr_decay) while the training-step count that
    keys the dropout masks runs on."""
    mlp_kw, compile_kw = VARIANTS["all"]
    model = _make_model(rng, "relu", "cross_entropy", mlp_kw, compile_kw,
                        OPTIMIZERS["adam"]())
    trainer = RefTrainer(model, **compile_kw)
    _run_and_compare(rng, model, trainer, "cross_entropy", n_steps=7)
    for name in ("adagrad", "adamw_amsgrad"):
        model.compile(OPTIMIZERS[name](), **compile_kw)
        trainer.config = public_config(model.optimizer)
        trainer.state = {}
        trainer.opt_steps = 0
        assert model._net.step_count == trainer.step_count > 0
        _run_and_compare(rng, model, trainer, "cross_entropy", n_steps=7)
    _assert_modes_match(rng, model, trainer, "cross_entropy")


# ---------------------------------------------------------------------------
# 2. sample weights and class weights through train_step
# ---------------------------------------------------------------------------

CLASS_WEIGHTS = {
    "cross_entropy": np.array([0.5, 2.0, 1.25]),
    "cross_entropy_probs": np.array([0.5, 2.0, 1.25]),
    "binary_cross_entropy": np.array([0.7, 1.8]),
}


def _weighted_batches(rng, kind, mode):
    """weights_for(X, y) and a batch maker for a target kind and weight mode."""
    loss = "cross_entropy" if kind == "cross_entropy_probs" else kind

    def weights_for(X, y):
        w = {}
        if mode in ("sample", "both"):
            s = rng.uniform(0.0, 2.0, len(X))
            s[:2] = 0.0  # rows that count for nothing
            w["sample_weight"] = s
        if mode in ("class", "both"):
            w["class_weight"] = CLASS_WEIGHTS[kind]
        return w

    return loss, weights_for


WEIGHT_CASES = [
    ("cross_entropy", "sample"), ("cross_entropy", "class"), ("cross_entropy", "both"),
    ("cross_entropy_probs", "both"),
    ("binary_cross_entropy", "sample"), ("binary_cross_entropy", "class"),
    ("binary_cross_entropy", "both"),
    ("mse", "sample"),
    ("poisson", "sample"),
]


@pytest.mark.parametrize("variant", ["plain", "all"])
@pytest.mark.parametrize(("kind", "mode"), WEIGHT_CASES)
def test_weighted_train_steps_match_reference(rng, kind, mode, variant):
    loss, weights_for = _weighted_batches(rng, kind, mode)
    mlp_kw, compile_kw = VARIANTS[variant]
    model = _make_model(rng, "tanh", loss, mlp_kw, compile_kw, OPTIMIZERS["adam"]())
    trainer = RefTrainer(model, **compile_kw)
    make_batch = _soft_batch if kind == "cross_entropy_probs" else _batch
    _run_and_compare(rng, model, trainer, loss, weights_for=weights_for, make_batch=make_batch)
    # The weighted evaluation-mode loss as well.
    X, y = make_batch(rng, loss, 13)
    w = weights_for(X, y)
    _assert_scalar(model.loss(X, y, **w), trainer.net.loss(X, y, **w), "weighted eval loss")


# ---------------------------------------------------------------------------
# 3. model.gradients against central finite differences of model.loss
# ---------------------------------------------------------------------------

FD_EPS = 1e-6


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_gradients_match_finite_differences(rng, act, loss):
    model = _make_model(rng, act, loss, {"dropout": 0.3, "batch_norm": True},
                        {"l1": 1e-3, "l2": 1e-2}, fm.optim.Adam(1e-2))
    for _ in range(3):  # a few steps: step_count > 0, running statistics moved
        model.train_step(*_batch(rng, loss, 12))
    for layer in model.layers:  # |W| >= 0.05: the L1 term is smooth within +-eps
        W = layer.W
        W[...] = np.where(np.abs(W) < 0.05, np.copysign(0.05, W), W)
    X, y = _batch(rng, loss, 12)
    weights = {"sample_weight": rng.uniform(0.2, 2.0, 12)}
    if loss in CLASS_WEIGHTS:  # not for the regression losses
        weights["class_weight"] = CLASS_WEIGHTS[loss]
    stats = [(layer.running_mean.copy(), layer.running_var.copy())
             for layer in model.layers if layer.batch_norm]
    step_count = model._net.step_count
    grads = model.gradients(X, y, **weights)

    def f():
        return model.loss(X, y, training=True, **weights)

    f0 = f()
    checked = 0
    for li, g in enumerate(grads):
        layer = model.layers[li]
        for key, analytic in g.items():
            view = getattr(layer, key)
            assert view.shape == analytic.shape
            picks = rng.choice(view.size, size=min(6, view.size), replace=False)
            for flat in picks:
                idx = np.unravel_index(flat, view.shape)
                original = view[idx]
                view[idx] = original + FD_EPS
                f_plus = f()
                view[idx] = original - FD_EPS
                f_minus = f()
                view[idx] = original
                numeric = (f_plus - f_minus) / (2.0 * FD_EPS)
                # Truncation ~eps^2 |f'''| ~ 1e-12; rounding ~1e-16 |f| / eps ~ 1e-10.
                tol = 1e-8 + 1e-6 * abs(analytic[idx])
                assert abs(numeric - analytic[idx]) <= tol, (
                    f"d loss / d {key}{li}{idx}: analytic {analytic[idx]!r}, numeric {numeric!r}")
                checked += 1
    assert checked >= 40
    # Evaluating the training loss changed nothing: parameters restored
    # exactly, no step taken, running statistics untouched.
    assert f() == f0
    assert model._net.step_count == step_count
    for (m0, v0), layer in zip_same(stats, [la for la in model.layers if la.batch_norm]):
        assert np.array_equal(layer.running_mean, m0)
        assert np.array_equal(layer.running_var, v0)


# ---------------------------------------------------------------------------
# 4. evaluation-mode forward after training, from the model's own state
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
def test_eval_forward_after_training_matches_reference(rng, loss):
    mlp_kw, compile_kw = VARIANTS["all"]
    model = _make_model(rng, "gelu", loss, mlp_kw, compile_kw, OPTIMIZERS["adamw_amsgrad"]())
    for _ in range(N_STEPS):
        model.train_step(*_batch(rng, loss, int(rng.integers(6, 25))))
    # A fresh reference network holding the trained model's state.
    net = RefTrainer(model, l1=compile_kw["l1"], l2=compile_kw["l2"]).net
    for i in _bn_layers(model):  # the statistics have moved well away from (0, 1)
        assert np.max(np.abs(net.running_means[i])) > 0.1
        assert np.max(np.abs(net.running_vars[i] - 1.0)) > 0.1
    X, y = _batch(rng, loss, 31)
    out = model.forward(X)
    assert rel_error(out, net.forward(X)) <= RTOL
    _assert_scalar(model.loss(X, y), net.loss(X, y), "eval loss")
    # Evaluation mode is deterministic and ignores dropout: same output twice,
    # and a different one from the training-mode forward.
    assert np.array_equal(model.forward(X), out)
    assert not np.allclose(model.forward(X, training=True), out)
    if loss == "cross_entropy":
        assert np.array_equal(model.predict(X), net.forward(X).argmax(axis=1))


# ---------------------------------------------------------------------------
# 5. thread count: bitwise identical training
# ---------------------------------------------------------------------------


def _thread_run(threads, seed=5):
    fm.set_num_threads(threads)
    assert fm.get_num_threads() == threads
    rng = np.random.default_rng(99)
    # Large enough that the GEMMs, dropout, batch norm, clipping and the
    # optimizer update all split over two threads.
    sizes = [64, 512, 256, 10]
    model = fm.MLP(sizes, activation="relu", loss="cross_entropy", dtype="float32",
                   dropout=0.3, batch_norm=True, seed=seed)
    model.compile(fm.optim.Adam(1e-3), l1=1e-5, l2=1e-4, clip_value=0.01, clip_norm=0.5)
    losses = []
    with TeamProbe() as probe:
        for _ in range(N_STEPS):
            X = rng.standard_normal((256, sizes[0])).astype(np.float32)
            y = rng.integers(0, sizes[-1], 256)
            losses.append(model.train_step(X, y))
    if fm._core.have_openmp():
        assert probe.largest == (0 if threads == 1 else 2)
    state = []
    for layer in model.layers:
        state += [layer.W.copy(), layer.b.copy()]
        if layer.batch_norm:
            state += [layer.gamma.copy(), layer.beta.copy(), layer.running_mean.copy(),
                      layer.running_var.copy()]
    return losses, state


def test_one_and_two_threads_bitwise_identical():
    losses1, state1 = _thread_run(1)
    losses2, state2 = _thread_run(2)
    assert losses1 == losses2
    assert len(state1) == len(state2)
    for a, b in zip_same(state1, state2):
        assert a.dtype == np.float32
        assert np.array_equal(a, b)


# ---------------------------------------------------------------------------
# The same composition against PyTorch (closes the chain: the order of
# penalty, clipping, update and running statistics is torch's)
# ---------------------------------------------------------------------------


def _torch_optimizer(torch, name, params):
    o = torch.optim
    return {
        "sgd": lambda: o.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        "adam": lambda: o.Adam(params, lr=1e-2, betas=(0.8, 0.99), weight_decay=1e-3),
        "adamw_amsgrad": lambda: o.AdamW(params, lr=1e-2, weight_decay=0.05, amsgrad=True),
        "rmsprop": lambda: o.RMSprop(params, lr=1e-3, alpha=0.9, momentum=0.5, centered=True,
                                     weight_decay=1e-3),
        "adagrad": lambda: o.Adagrad(params, lr=0.05, lr_decay=1e-2, weight_decay=1e-3,
                                     initial_accumulator_value=0.1),
    }[name]()


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_train_steps_match_torch(rng, opt, loss):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    mlp_kw, compile_kw = VARIANTS["all"]
    model = _make_model(rng, "gelu", loss, mlp_kw, compile_kw, OPTIMIZERS[opt]())
    t64 = torch.float64
    layers = []
    for layer in model.layers:
        p = {"W": torch.tensor(layer.W, dtype=t64, requires_grad=True),
             "b": torch.tensor(layer.b, dtype=t64, requires_grad=True)}
        if layer.batch_norm:
            p["gamma"] = torch.tensor(layer.gamma, dtype=t64, requires_grad=True)
            p["beta"] = torch.tensor(layer.beta, dtype=t64, requires_grad=True)
            p["running_mean"] = torch.tensor(layer.running_mean, dtype=t64)
            p["running_var"] = torch.tensor(layer.running_var, dtype=t64)
        layers.append(p)
    params = [p[k] for p in layers for k in ("W", "b", "gamma", "beta") if k in p]
    optimizer = _torch_optimizer(torch, opt, params)
    last = len(layers) - 1
    for s in range(N_STEPS):
        X, y = _batch(rng, loss, int(rng.integers(6, 25)))
        step = model._net.step_count
        core_grads = model.gradients(X, y)
        got = model.train_step(X, y)

        optimizer.zero_grad()
        x = torch.tensor(X, dtype=t64)
        for li, (p, layer) in enumerate(zip_same(layers, model.layers)):
            z = x @ p["W"].T + p["b"]
            if layer.batch_norm:
                z = F.batch_norm(z, p["running_mean"], p["running_var"], p["gamma"], p["beta"],
                                 training=True, momentum=0.1, eps=1e-5)
            if li == last:
                break
            x = F.gelu(z, approximate="none")
            if layer.dropout:
                mask = ref.dropout_mask(tuple(x.shape), layer.dropout, model.seed, step, li,
                                        dtype=np.float64)
                x = x * torch.tensor(mask)
        if loss == "mse":
            value = F.mse_loss(z, torch.tensor(y))
        elif loss == "cross_entropy":
            value = F.cross_entropy(z, torch.tensor(y))
        elif loss == "poisson":
            value = F.poisson_nll_loss(z, torch.tensor(y), log_input=True, full=False)
        else:
            value = F.binary_cross_entropy_with_logits(z, torch.tensor(y))
        for p in layers:
            value = value + compile_kw["l1"] * p["W"].abs().sum() \
                + compile_kw["l2"] * (p["W"] ** 2).sum()
        value.backward()
        for li, layer in enumerate(model.layers):
            if layer.batch_norm:  # exactly 0 but for rounding; see the module doc
                assert float(layers[li]["b"].grad.abs().max()) <= 1e-14
                layers[li]["b"].grad.copy_(torch.tensor(core_grads[li]["b"]))
        torch.nn.utils.clip_grad_value_(params, compile_kw["clip_value"])
        torch.nn.utils.clip_grad_norm_(params, compile_kw["clip_norm"])
        optimizer.step()

        _assert_scalar(got, value.item(), f"step {s}: loss")
        for li, (p, layer) in enumerate(zip_same(layers, model.layers)):
            for key, want in p.items():
                err = rel_error(getattr(layer, key), want.detach().numpy())
                assert err <= RTOL, f"after step {s + 1}: {key}{li} relative error {err:.3g}"
