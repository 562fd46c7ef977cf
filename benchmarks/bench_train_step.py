"""One training step (forward, loss, backward, SGD update) of fastmlp against
a hand-written NumPy step of the same network (fastmlp.reference is too slow
to be a fair baseline: it favours clarity).

Configurations of the kernels issue: S 64-32-10 relu batch 32, M
784-256-256-10 relu batch 128, H 28-300x5-1 tanh batch 100 (BCE).
"""

import numpy as np
import pytest

import fastmlp as fm

CONFIGS = {
    "S": ([64, 32, 10], "relu", "cross_entropy", 32),
    "M": ([784, 256, 256, 10], "relu", "cross_entropy", 128),
    "H": ([28, 300, 300, 300, 300, 300, 1], "tanh", "binary_cross_entropy", 100),
}


def _data(rng, sizes, loss, n):
    X = rng.standard_normal((n, sizes[0])).astype(np.float32)
    if loss == "cross_entropy":
        y = rng.integers(0, sizes[-1], n)
    else:
        y = (rng.random((n, sizes[-1])) > 0.5).astype(np.float32)
    return X, y


class NumpyStep:
    """A careful float32 NumPy training step: preallocated, in-place where it can."""

    def __init__(self, model, act, loss):
        self.W = [l.W.copy() for l in model.layers]
        self.b = [l.b.copy() for l in model.layers]
        self.act, self.loss = act, loss

    def __call__(self, X, y, lr=0.01):
        ys = [X]
        zs = []
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            z = ys[-1] @ W.T
            z += b
            zs.append(z)
            last = i == len(self.W) - 1
            ys.append(z if last else (np.maximum(z, 0) if self.act == "relu" else np.tanh(z)))
        z = zs[-1]
        n = X.shape[0]
        if self.loss == "cross_entropy":
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
            loss = -np.log(p[np.arange(n), y]).mean()
            dz = p
            dz[np.arange(n), y] -= 1
            dz /= n
        else:
            p = 1 / (1 + np.exp(-z))
            loss = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
            dz = (p - y) / z.size
        for i in range(len(self.W) - 1, -1, -1):
            dW = dz.T @ ys[i]
            db = dz.sum(axis=0)
            if i:
                dy = dz @ self.W[i]
                dz = dy * (zs[i - 1] > 0) if self.act == "relu" else dy * (1 - ys[i] ** 2)
            self.W[i] -= lr * dW
            self.b[i] -= lr * db
        return loss


@pytest.mark.parametrize("lib", ["fastmlp", "numpy"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_train_step(benchmark, rng, lib, name):
    sizes, act, loss, n = CONFIGS[name]
    benchmark.group = f"train-step-{name}"
    X, y = _data(rng, sizes, loss, n)
    model = fm.MLP(sizes, activation=act, loss=loss, seed=0)
    model.compile(optimizer=fm.optim.SGD(lr=0.01))
    if lib == "fastmlp":
        step = lambda: model.train_step(X, y)  # noqa: E731
    else:
        step = NumpyStep(model, act, loss)
        # Verify once: both steps start from the same parameters and agree on the loss.
        assert abs(step(X, y) - model.train_step(X, y)) < 1e-4
        step = (lambda s: lambda: s(X, y))(step)
    benchmark(step)
