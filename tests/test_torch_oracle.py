"""The reference and the core against PyTorch, in float64, when torch is installed.

This closes the oracle chain: the definitions (activation constants, loss
reductions, SGD's momentum convention, init variances) are PyTorch's.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional

TORCH_ACT = {
    "identity": lambda z: z,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
    "elu": lambda z: F.elu(z, alpha=1.0),
    "gelu": lambda z: F.gelu(z, approximate="none"),
    "softplus": lambda z: F.softplus(z, beta=1.0),
}


def torch_loss(loss, out, t):
    if loss == "mse":
        return F.mse_loss(out, t)
    if loss == "cross_entropy":
        return F.cross_entropy(out, t)
    if loss == "poisson":
        # out is the log of the predicted mean; full=False, reduction="mean"
        return F.poisson_nll_loss(out, t, log_input=True, full=False)
    return F.binary_cross_entropy_with_logits(out, t)


@pytest.mark.parametrize("loss", ref.LOSSES)
@pytest.mark.parametrize("act", ref.ACTIVATIONS)
def test_network_matches_torch_autograd(rng, act, loss):
    model = fm.MLP([5, 7, 6, 3], activation=act, loss=loss, dtype="float64", seed=4)
    for layer in model.layers:
        layer.b[:] = rng.standard_normal(layer.b.shape) * 0.3
    X = rng.standard_normal((9, 5))
    if loss == "cross_entropy":
        y = rng.integers(0, 3, 9)
        ty = torch.tensor(y)
    else:
        if loss == "binary_cross_entropy":
            y = (rng.random((9, 3)) > 0.5).astype(float)
        elif loss == "poisson":
            y = rng.poisson(1.5, (9, 3)).astype(float)
        else:
            y = rng.standard_normal((9, 3))
        ty = torch.tensor(y)
    Ws = [torch.tensor(l.W.copy(), requires_grad=True) for l in model.layers]
    bs = [torch.tensor(l.b.copy(), requires_grad=True) for l in model.layers]
    h = torch.tensor(X)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        h = h @ W.T + b
        if i < len(Ws) - 1:
            h = TORCH_ACT[act](h)
    L = torch_loss(loss, h, ty)
    L.backward()
    assert model.loss(X, y) == pytest.approx(L.item(), rel=1e-12)
    for g, W, b in zip(model.gradients(X, y), Ws, bs):
        np.testing.assert_allclose(g["W"], W.grad.numpy(), rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(g["b"], b.grad.numpy(), rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize(("momentum", "nesterov", "wd"),
                         [(0.0, False, 0.0), (0.9, False, 0.0), (0.9, True, 1e-2), (0.5, False, 0.1)])
def test_sgd_matches_torch_over_20_steps(rng, momentum, nesterov, wd):
    model = fm.MLP([6, 8, 3], activation="tanh", loss="cross_entropy", dtype="float64", seed=1)
    model.compile(optimizer=fm.optim.SGD(lr=0.1, momentum=momentum, nesterov=nesterov,
                                         weight_decay=wd))
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    tmodel = tmodel.double()
    with torch.no_grad():
        for lin, layer in zip([tmodel[0], tmodel[2]], model.layers):
            lin.weight.copy_(torch.tensor(layer.W))
            lin.bias.copy_(torch.tensor(layer.b))
    opt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=momentum, nesterov=nesterov,
                          weight_decay=wd)
    for _ in range(20):
        X = rng.standard_normal((16, 6))
        y = rng.integers(0, 3, 16)
        model.train_step(X, y)
        opt.zero_grad()
        F.cross_entropy(tmodel(torch.tensor(X)), torch.tensor(y)).backward()
        opt.step()
    for lin, layer in zip([tmodel[0], tmodel[2]], model.layers):
        np.testing.assert_allclose(layer.W, lin.weight.detach().numpy(), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(layer.b, lin.bias.detach().numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(("init", "torch_std"), [
    ("he_uniform", lambda fi, fo: np.sqrt(2.0 / fi)),
    ("he_normal", lambda fi, fo: np.sqrt(2.0 / fi)),
    ("glorot_uniform", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),
    ("glorot_normal", lambda fi, fo: np.sqrt(2.0 / (fi + fo))),
    ("lecun_normal", lambda fi, fo: np.sqrt(1.0 / fi)),
])
def test_init_variances_match_torch_definitions(init, torch_std):
    model = fm.MLP([400, 300, 10], init=init, dtype="float64", seed=0)
    W = model.layers[0].W
    std = torch_std(400, 300)
    # Compare with torch.nn.init on a tensor of the same shape.
    t = torch.empty(300, 400, dtype=torch.float64)
    {"he_uniform": lambda: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu"),
     "he_normal": lambda: torch.nn.init.kaiming_normal_(t, nonlinearity="relu"),
     "glorot_uniform": lambda: torch.nn.init.xavier_uniform_(t),
     "glorot_normal": lambda: torch.nn.init.xavier_normal_(t),
     "lecun_normal": lambda: torch.nn.init.kaiming_normal_(t, nonlinearity="linear")}[init]()
    assert W.std() == pytest.approx(std, rel=0.02)
    assert t.std().item() == pytest.approx(std, rel=0.02)
    if "uniform" in init:
        bound = std * np.sqrt(3.0)
        assert np.abs(W).max() <= bound
        assert np.abs(W).max() > 0.99 * bound
    assert np.all(model.layers[0].b == 0)
