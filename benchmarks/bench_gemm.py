"""GEMM: fastmlp's core against NumPy's matmul (OpenBLAS) and torch.mm on the
same operands, each writing into a preallocated output.

Square sizes 256..2048 in float32 and float64, and the products of the M
configuration's layers (784-256-256-10, batch 128): forward X W^T (N,T),
weight gradient dZ^T X (T,N) and input gradient dZ W (N,N), the thin output
layer (n = 10) included; float32 also for the L configuration
(784-1024x3-10, batch 256), whose 256-row products weigh the packing. Each case checks its result once against float64
NumPy outside the timed call, then times it; GFLOP/s = 2 m n k / time, shown
in extra_info.
"""

import numpy as np
import pytest
from _peers import CONFIGS, GEMM_LIBRARIES, build_gemm, gemm_operands, mlp_gemm_shapes

SQUARE = [256, 512, 1024, 2048]
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
LIBS = pytest.mark.parametrize("lib", GEMM_LIBRARIES)


def _run(benchmark, lib, m, n, k, ta, tb, dtype):
    if lib == "torch":
        pytest.importorskip("torch")
    a, b = gemm_operands(m, n, k, ta, tb, dtype)
    fn = build_gemm(lib, a, b, ta, tb)  # checks the result once
    benchmark(fn)
    if benchmark.stats is not None:  # None under --benchmark-disable (a smoke run)
        benchmark.extra_info["gflops"] = 2.0 * m * n * k / benchmark.stats.stats.mean / 1e9


@LIBS
@DTYPES
@pytest.mark.parametrize("size", SQUARE)
def test_gemm_square(benchmark, lib, dtype, size):
    benchmark.group = f"gemm-square-{np.dtype(dtype).name}-{size}"
    _run(benchmark, lib, size, size, size, False, False, dtype)


def _shape_id(s):
    m, n, k, ta, tb, label = s
    return f"{label}-{m}x{n}x{k}-{'T' if ta else 'N'}{'T' if tb else 'N'}"


@LIBS
@DTYPES
@pytest.mark.parametrize("shape", mlp_gemm_shapes(), ids=_shape_id)
def test_gemm_mlp_shapes(benchmark, lib, dtype, shape):
    m, n, k, ta, tb, label = shape
    benchmark.group = f"gemm-mlp-{np.dtype(dtype).name}-{_shape_id(shape)}"
    _run(benchmark, lib, m, n, k, ta, tb, dtype)


# The L network's distinct products (its hidden layers repeat the same shapes).
L_SHAPES = list({s[:5]: s for s in mlp_gemm_shapes(CONFIGS["L"].sizes, CONFIGS["L"].batch)}.values())


@LIBS
@pytest.mark.parametrize("shape", L_SHAPES, ids=_shape_id)
def test_gemm_l_shapes(benchmark, lib, shape):
    m, n, k, ta, tb, label = shape
    benchmark.group = f"gemm-mlp-L-float32-{_shape_id(shape)}"
    _run(benchmark, lib, m, n, k, ta, tb, np.float32)


# The fixed cost of one call: at 4x4x4 the product is nothing, the bindings'
# argument handling and checks are all of it (fm.ops.matmul hands arrays in
# the core's form to _core.matmul_direct).
@LIBS
def test_gemm_call_overhead(benchmark, lib):
    benchmark.group = "gemm-call-overhead-4x4x4-f32"
    _run(benchmark, lib, 4, 4, 4, False, False, np.float32)
