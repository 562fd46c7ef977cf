"""GEMM: fastmlp's core against NumPy's matmul (OpenBLAS) on the same operands.

Each case checks its result once outside the timed call, then times it.
GFLOP/s = 2 m n k / time, shown in extra_info.
"""

import numpy as np
import pytest

import fastmlp as fm

SQUARE = [256, 512, 1024]
# (m, n, k, trans_a, trans_b): the three products of a 784-256-256-10 layer
# stack at batch 128: forward X W^T, weight gradient dZ^T X, input gradient dZ W.
MLP_SHAPES = [
    (128, 256, 784, False, True),
    (256, 784, 128, True, False),
    (128, 10, 256, False, True),
    (128, 256, 10, False, False),
]


def _case(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def _run(benchmark, lib, a, b, ta, tb, flops):
    opa = a.T if ta else a
    opb = b.T if tb else b
    if lib == "fastmlp":
        out = np.empty((opa.shape[0], opb.shape[1]), dtype=a.dtype)
        res = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)
        fn = lambda: fm.ops.matmul(a, b, trans_a=ta, trans_b=tb, out=out)  # noqa: E731
    else:
        out = np.empty((opa.shape[0], opb.shape[1]), dtype=a.dtype)
        res = np.matmul(opa, opb, out=out)
        fn = lambda: np.matmul(opa, opb, out=out)  # noqa: E731
    tol = 1e-3 if a.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(res, opa.astype(np.float64) @ opb.astype(np.float64),
                               rtol=tol, atol=tol * np.sqrt(a.shape[0] * a.shape[1]))
    benchmark(fn)
    benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.mean / 1e9


@pytest.mark.parametrize("lib", ["fastmlp", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("size", SQUARE)
def test_gemm_square(benchmark, rng, lib, dtype, size):
    benchmark.group = f"gemm-square-{np.dtype(dtype).name}-{size}"
    a, b = _case(rng, size, size, size, False, False, dtype)
    _run(benchmark, lib, a, b, False, False, 2.0 * size**3)


@pytest.mark.parametrize("lib", ["fastmlp", "numpy"])
@pytest.mark.parametrize("shape", MLP_SHAPES, ids=lambda s: "x".join(map(str, s[:3])) + f"-{'T' if s[3] else 'N'}{'T' if s[4] else 'N'}")
def test_gemm_mlp_shapes(benchmark, rng, lib, shape):
    m, n, k, ta, tb = shape
    benchmark.group = f"gemm-mlp-f32-{m}x{n}x{k}"
    a, b = _case(rng, m, n, k, ta, tb, np.float32)
    _run(benchmark, lib, a, b, ta, tb, 2.0 * m * n * k)
