"""float32 tanh and sigmoid, forward and derivative: fastmlp's whole-array
kernels (the per-ISA vector loops the GEMM epilogue and the dz pass run)
against NumPy's np.tanh and the logistic in NumPy, on an H-sized layer
output (100 x 300, in cache). extra_info gives ns per element.
"""

import numpy as np
import pytest

import fastmlp as fm

SHAPE = (100, 300)


def _arrays():
    z = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32) * 2
    return z, np.ones_like(z)


def _record(benchmark, fn):
    benchmark(fn)
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["ns_per_element"] = benchmark.stats.stats.min / (SHAPE[0] * SHAPE[1]) * 1e9


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_activation_forward(benchmark, act):
    benchmark.group = f"act-forward-{act}"
    z, _ = _arrays()
    _record(benchmark, lambda: fm.ops.activation_forward(z, act))


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_activation_derivative(benchmark, act):
    benchmark.group = f"act-derivative-{act}"
    z, dy = _arrays()
    y = fm.ops.activation_forward(z, act)
    _record(benchmark, lambda: fm.ops.activation_backward(dy, z, y, act))


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_numpy_forward(benchmark, act):
    benchmark.group = f"act-forward-{act}"
    z, _ = _arrays()
    if act == "tanh":
        _record(benchmark, lambda: np.tanh(z))
    else:
        _record(benchmark, lambda: 1.0 / (1.0 + np.exp(-z)))
