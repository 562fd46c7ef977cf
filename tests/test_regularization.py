"""L1/L2 penalties, gradient clipping, and the reference Network with dropout,
batch norm and penalties: against finite differences and against PyTorch.

All in float64. Finite differences are central with h = 1e-6 (truncation
~h^2, rounding ~1e-16 / h, both near 1e-10 relative), checked at 1e-6 as in
test_gradcheck.py. PyTorch comparisons differ only in summation order:
relative error <= 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rel_error, zip_same

from fastmlp import reference as ref

SMOOTH_ACTS = ("tanh", "sigmoid", "elu", "gelu", "softplus")


def grad_rel_error(analytic, numeric):
    diff = np.linalg.norm(analytic - numeric)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if scale == 0 else diff / scale


def away_from_zero(rng, shape, low=0.05):
    """Entries with |w| >= low, so that a step of h never crosses the kink of |w|."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, 1.0, shape)


# --------------------------------------------------------------------------
# Penalties
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("l1", "l2"), [(0.01, 0.0), (0.0, 0.03), (0.02, 0.05)])
def test_l1_l2_gradient_matches_finite_differences(rng, l1, l2):
    w = away_from_zero(rng, (4, 5))
    analytic = ref.l1_l2_gradient(w, l1, l2)
    numeric = ref.numerical_gradient(lambda: ref.l1_l2_penalty([w], l1, l2), w)
    assert grad_rel_error(analytic, numeric) <= 1e-8


def test_l1_l2_penalty_is_the_keras_sum_over_weight_matrices(rng):
    ws = [rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]
    got = ref.l1_l2_penalty(ws, 0.1, 0.2)
    want = sum(0.1 * np.abs(w).sum() + 0.2 * (w**2).sum() for w in ws)
    assert abs(got - want) <= 1e-12 * abs(want)
    assert ref.l1_l2_penalty(ws, 0.0, 0.0) == 0.0


def test_l1_subgradient_at_zero_is_zero():
    w = np.array([[0.0, -0.0, 2.0, -3.0]])
    g = ref.l1_l2_gradient(w, 0.5, 0.25)
    assert np.array_equal(g, [[0.0, 0.0, 0.5 + 1.0, -0.5 - 1.5]])


def test_l1_gradient_matches_torch_abs_backward(rng):
    torch = pytest.importorskip("torch")
    w = rng.standard_normal((4, 6))
    w[0, :3] = 0.0  # torch's abs backward is sign(w): 0 at 0
    wt = torch.from_numpy(w).requires_grad_(True)
    (0.3 * wt.abs().sum() + 0.7 * (wt * wt).sum()).backward()
    assert rel_error(ref.l1_l2_gradient(w, 0.3, 0.7), wt.grad.numpy()) <= 1e-15


# --------------------------------------------------------------------------
# Gradient clipping
# --------------------------------------------------------------------------


def _grad_list(rng):
    return [rng.standard_normal((5, 3)), rng.standard_normal(7), rng.standard_normal((2, 2))]


@pytest.mark.parametrize("max_norm", [0.0, 0.5, 2.0, 1e6])
def test_clip_grad_norm_matches_torch(rng, max_norm):
    torch = pytest.importorskip("torch")
    grads = _grad_list(rng)
    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip_same(params, grads):
        p.grad = torch.from_numpy(g.copy())
    want_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    originals = [g.copy() for g in grads]
    clipped, total = ref.clip_grad_norm(grads, max_norm)
    assert abs(total - want_norm) <= 1e-12 * want_norm
    for got, p in zip_same(clipped, params):
        assert rel_error(got, p.grad.numpy()) <= 1e-12
    for g, o in zip_same(grads, originals):
        assert np.array_equal(g, o)  # the input is not modified
    if max_norm >= 1e6:
        # coef clamped to 1: values pass through unchanged.
        assert all(np.array_equal(c, g) for c, g in zip_same(clipped, grads))
    else:
        norm_after = np.sqrt(sum((c**2).sum() for c in clipped))
        assert norm_after <= max_norm + 1e-12


def test_clip_grad_norm_of_zero_gradients_is_finite():
    clipped, total = ref.clip_grad_norm([np.zeros(3), np.zeros((2, 2))], 1.0)
    assert total == 0.0
    assert all((c == 0).all() for c in clipped)


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 1.0, 10.0])
def test_clip_grad_value_matches_torch(rng, clip_value):
    torch = pytest.importorskip("torch")
    grads = _grad_list(rng)
    params = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for p, g in zip_same(params, grads):
        p.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_value_(params, clip_value)
    for got, p in zip_same(ref.clip_grad_value(grads, clip_value), params):
        assert np.array_equal(got, p.grad.numpy())


def test_clipping_takes_the_network_gradient_list(rng):
    net = _network(rng, "tanh", "mse", batch_norm=True, dropout=0.0)
    x, t = rng.standard_normal((8, 5)), rng.standard_normal((8, 3))
    _, grads = net.backward(x, t)
    flat = np.concatenate([g.ravel() for layer in grads for g in layer.values()])
    clipped, total = ref.clip_grad_norm(grads, 0.1)
    assert abs(total - np.linalg.norm(flat)) <= 1e-12 * total
    assert [set(c) for c in clipped] == [set(g) for g in grads]
    coef = 0.1 / (total + 1e-6)
    for c, g in zip_same(clipped, grads):
        for key in g:
            assert np.array_equal(c[key], g[key] * coef)
    by_value = ref.clip_grad_value(grads, 1e-3)
    assert max(np.abs(v).max() for layer in by_value for v in layer.values()) <= 1e-3
    net.sgd_step(clipped, lr=0.1)  # the clipped list is what sgd_step takes


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: ref.l1_l2_penalty([np.ones(2)], -0.1, 0.0), r"^l1:"),
        (lambda: ref.l1_l2_gradient(np.ones(2), 0.0, float("nan")), r"^l2:"),
        (lambda: ref.clip_grad_norm([np.ones(2)], -1.0), r"^max_norm:"),
        (lambda: ref.clip_grad_value([np.ones(2)], -1.0), r"^clip_value:"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------
# The reference Network with dropout, batch norm and l1/l2
# --------------------------------------------------------------------------


def _network(rng, act, loss, batch_norm=True, dropout=0.3, l1=0.0, l2=0.0, sizes=(5, 8, 6, 3)):
    n_layers = len(sizes) - 1
    weights = [away_from_zero(rng, (sizes[i + 1], sizes[i])) / np.sqrt(sizes[i])
               for i in range(n_layers)]
    biases = [rng.standard_normal(sizes[i + 1]) * 0.3 for i in range(n_layers)]
    out_act = "identity" if loss != "mse" else "tanh"
    net = ref.Network(weights, biases, [act] * (n_layers - 1) + [out_act], loss,
                      dropout=dropout, batch_norm=batch_norm, l1=l1, l2=l2)
    for li in range(n_layers):
        if net.batch_norm[li]:
            net.gammas[li][:] = rng.uniform(0.5, 1.5, sizes[li + 1])
            net.betas[li][:] = rng.standard_normal(sizes[li + 1]) * 0.3
            net.running_means[li][:] = rng.standard_normal(sizes[li + 1]) * 0.5
            net.running_vars[li][:] = rng.uniform(0.5, 2.0, sizes[li + 1])
    return net


def _targets(rng, loss, n, k):
    if loss == "cross_entropy":
        return rng.integers(0, k, n)
    if loss == "binary_cross_entropy":
        return (rng.random((n, k)) > 0.5).astype(np.float64)
    if loss == "poisson":
        return rng.poisson(1.5, (n, k)).astype(np.float64)
    return rng.standard_normal((n, k))


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", SMOOTH_ACTS)
@pytest.mark.parametrize("training", [True, False])
def test_network_gradients_match_finite_differences(rng, act, loss, training):
    # Batch norm on the first hidden layer only, dropout on both: every
    # combination of the two appears. Fixed (seed, step): the masks are the
    # same in every evaluation of the loss.
    net = _network(rng, act, loss, batch_norm=[True, False, False], dropout=[0.3, 0.4, 0.0],
                   l1=0.01, l2=0.02)
    x = rng.standard_normal((10, 5)) * 2.0
    t = _targets(rng, loss, 10, 3)
    kw = {"training": training, "step": 17, "seed": 5}
    stats = [a.copy() for a in net.running_means + net.running_vars if a is not None]
    _, grads = net.backward(x, t, **kw)
    if training:
        assert any((m == 0).any() for m in net.masks if m is not None)  # dropout did drop
    params = net.parameters()
    for li, layer in enumerate(params):
        assert set(grads[li]) == set(layer)
        for key, p in layer.items():
            numeric = ref.numerical_gradient(lambda: net.loss(x, t, **kw), p)
            analytic = grads[li][key]
            if key == "b" and net.batch_norm[li] and training:
                # Batch norm subtracts the batch mean, which absorbs the bias:
                # its gradient is 0 up to rounding (and finite-difference noise).
                assert np.abs(analytic).max() <= 1e-14
                assert np.abs(numeric).max() <= 1e-8
                continue
            err = grad_rel_error(analytic, numeric)
            assert err <= 1e-6, f"layer {li} {key}: relative error {err:.3g}"
    # Neither the loss nor backward moved the running statistics.
    after = [a for a in net.running_means + net.running_vars if a is not None]
    assert all(np.array_equal(a, b) for a, b in zip_same(stats, after))


def _torch_act(torch, act):
    F = torch.nn.functional
    return {
        "identity": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01), "elu": F.elu, "gelu": F.gelu,
        "softplus": F.softplus,
    }[act]


def _torch_loss(torch, net, x, t, training, seed, step, stats):
    """The reference Network's loss written with torch ops; returns (loss, params)."""
    F = torch.nn.functional
    params = [{k: torch.from_numpy(v.copy()).requires_grad_(True) for k, v in layer.items()}
              for layer in net.parameters()]
    h = torch.from_numpy(x)
    z = None
    for li, p in enumerate(params):
        lin = h @ p["W"].T + p["b"]
        if net.batch_norm[li]:
            rm, rv = stats[li]
            z = F.batch_norm(lin, rm, rv, weight=p["gamma"], bias=p["beta"], training=training,
                             momentum=net.bn_momentum, eps=net.bn_eps)
        else:
            z = lin
        h = _torch_act(torch, net.activations[li])(z)
        if training and net.dropout[li] > 0:
            mask = ref.dropout_mask(tuple(h.shape), net.dropout[li], seed, step, li, "float64")
            h = h * torch.from_numpy(mask)
    if net.loss_name == "mse":
        loss = F.mse_loss(h, torch.from_numpy(t))
    elif net.loss_name == "cross_entropy":
        loss = F.cross_entropy(z, torch.from_numpy(t))
    elif net.loss_name == "poisson":
        loss = F.poisson_nll_loss(z, torch.from_numpy(t), log_input=True, full=False)
    else:
        loss = F.binary_cross_entropy_with_logits(z, torch.from_numpy(t))
    for p in params:
        loss = loss + net.l1 * p["W"].abs().sum() + net.l2 * (p["W"] ** 2).sum()
    return loss, params


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ["relu", "tanh", "gelu"])
def test_network_matches_torch(rng, act, loss):
    torch = pytest.importorskip("torch")
    net = _network(rng, act, loss, batch_norm=True, dropout=0.25, l1=0.003, l2=0.01)
    stats = [(torch.from_numpy(m.copy()), torch.from_numpy(v.copy())) if m is not None else None
             for m, v in zip_same(net.running_means, net.running_vars)]
    for step in range(3):
        x = rng.standard_normal((12, 5))
        t = _targets(rng, loss, 12, 3)
        value, grads = net.backward(x, t, step=step, seed=9, update_stats=True)
        want, params = _torch_loss(torch, net, x, t, True, 9, step, stats)
        want.backward()
        assert abs(value - want.item()) <= 1e-12 * abs(want.item())
        for li, layer in enumerate(params):
            for key, p in layer.items():
                if key == "b" and net.batch_norm[li]:
                    assert np.abs(grads[li][key]).max() <= 1e-14  # absorbed by batch norm
                    continue
                assert rel_error(grads[li][key], p.grad.numpy()) <= 1e-12, (li, key)
        for li, s in enumerate(stats):
            if s is not None:  # torch updated its running statistics in place
                assert rel_error(net.running_means[li], s[0].numpy()) <= 1e-12
                assert rel_error(net.running_vars[li], s[1].numpy()) <= 1e-12
    x = rng.standard_normal((7, 5))
    t = _targets(rng, loss, 7, 3)
    want, _ = _torch_loss(torch, net, x, t, False, 0, 0, stats)
    assert abs(net.loss(x, t) - want.item()) <= 1e-12 * abs(want.item())


def test_eval_mode_uses_running_statistics_and_no_dropout(rng):
    net = _network(rng, "tanh", "mse", batch_norm=True, dropout=0.5)
    x = rng.standard_normal((6, 5))
    out = net.forward(x)
    assert all(m is None for m in net.masks)
    assert not net.bn_caches[0]["training"]
    assert np.array_equal(net.bn_caches[0]["mean"], net.running_means[0])
    assert np.array_equal(out, net.forward(x, training=False, step=3, seed=4))
    train_a = net.forward(x, training=True, step=1, seed=2).copy()
    train_b = net.forward(x, training=True, step=2, seed=2).copy()
    assert not np.array_equal(train_a, train_b)  # a new mask per step
    assert np.array_equal(train_a, net.forward(x, training=True, step=1, seed=2))


def test_update_stats_moves_running_statistics_like_torch_momentum(rng):
    net = _network(rng, "tanh", "mse", batch_norm=True, dropout=0.0)
    x = rng.standard_normal((9, 5))
    rm0, rv0 = net.running_means[0].copy(), net.running_vars[0].copy()
    net.forward(x, training=True)
    assert np.array_equal(net.running_means[0], rm0)  # not asked to update
    net.forward(x, training=True, update_stats=True)
    lin = x @ net.weights[0].T + net.biases[0]
    want_rm = 0.9 * rm0 + 0.1 * lin.mean(axis=0)
    want_rv = 0.9 * rv0 + 0.1 * lin.var(axis=0, ddof=1)
    assert rel_error(net.running_means[0], want_rm) <= 1e-12
    assert rel_error(net.running_vars[0], want_rv) <= 1e-12


def test_sgd_step_updates_batch_norm_parameters(rng):
    net = _network(rng, "elu", "cross_entropy", batch_norm=True, dropout=0.0)
    x, t = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    before = [{k: v.copy() for k, v in layer.items()} for layer in net.parameters()]
    _, grads = net.backward(x, t)
    net.sgd_step(grads, lr=0.5)
    for b, layer, g in zip_same(before, net.parameters(), grads):
        for key in layer:
            assert np.array_equal(layer[key], b[key] - 0.5 * g[key])


def test_plain_network_is_unchanged_by_the_new_options(rng):
    # No dropout, no batch norm, no penalty: training and eval coincide, and
    # the gradients are exactly those of the plain layer loop.
    net = _network(rng, "tanh", "mse", batch_norm=False, dropout=0.0)
    x, t = rng.standard_normal((6, 5)), rng.standard_normal((6, 3))
    assert net.loss(x, t) == net.loss(x, t, training=True, step=4, seed=8)
    _, grads = net.backward(x, t)
    assert all(set(g) == {"W", "b"} for g in grads)
    assert all(g is None for g in net.gammas)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dropout": [0.1, 0.1, 0.2]}, r"^dropout:"),
        ({"dropout": [0.1, 0.1]}, r"^dropout:"),
        ({"dropout": 1.0}, r"^dropout:"),
        ({"batch_norm": [True, True, True]}, r"^batch_norm:"),
        ({"l1": -1.0}, r"^l1:"),
        ({"l2": float("inf")}, r"^l2:"),
    ],
)
def test_network_bad_options(rng, kwargs, match):
    sizes = (5, 8, 6, 3)
    weights = [rng.standard_normal((sizes[i + 1], sizes[i])) for i in range(3)]
    biases = [np.zeros(sizes[i + 1]) for i in range(3)]
    with pytest.raises(ValueError, match=match):
        ref.Network(weights, biases, ["tanh", "tanh", "identity"], "mse", **kwargs)


def test_update_stats_outside_training_is_refused(rng):
    net = _network(rng, "tanh", "mse")
    with pytest.raises(ValueError, match=r"^update_stats:"):
        net.forward(rng.standard_normal((4, 5)), update_stats=True)
