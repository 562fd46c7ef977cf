"""fm.ops.matmul (the core's one GEMM entry point) against NumPy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import TeamProbe, rel_error

import fastmlp as fm

# Every check runs on every instruction-set path this CPU supports.
pytestmark = pytest.mark.usefixtures("isa")

TRANS = list(itertools.product([False, True], [False, True]))
# Around the register tile (4x8 / 4x4), the k block (256) and awkward primes.
MS = [1, 3, 4, 5, 17, 129]
NS = [1, 7, 8, 9, 33, 257]
KS = [1, 3, 255, 256, 257, 513]


def operands(rng, m, n, k, ta, tb, dtype):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
    return a, b


def expected_and_bound(a, b, ta, tb):
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    opa = a64.T if ta else a64
    opb = b64.T if tb else b64
    return opa @ opb, np.abs(opa) @ np.abs(opb)


def check(c, a, b, ta, tb, dtype):
    exact, abs_sum = expected_and_bound(a, b, ta, tb)
    k = a.shape[0] if ta else a.shape[1]
    eps = np.finfo(dtype).eps
    # Rigorous worst case for a k-term dot product: |fl(s) - s| <= k * u * sum|a_i b_i|
    # (u = eps/2, Higham's gamma_k); eps * k covers it with a factor 2 to spare.
    bound = k * eps * abs_sum + np.finfo(dtype).tiny
    err = np.abs(c.astype(np.float64) - exact)
    assert c.dtype == dtype
    assert c.shape == exact.shape
    assert (err <= bound).all(), f"max err/bound {np.max(err / bound):.3g}"
    if dtype == np.float64:
        assert rel_error(c, exact) <= 1e-12


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_matmul_shape_sweep(rng, dtype, ta, tb):
    for m, n, k in itertools.product(MS, NS, KS):
        a, b = operands(rng, m, n, k, ta, tb, dtype)
        c = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
        check(c, a, b, ta, tb, dtype)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_matmul_large_multi_block(rng, dtype, ta, tb):
    # Several MC, KC and NC blocks in every direction.
    m, n, k = 300, 2100, 600
    a, b = operands(rng, m, n, k, ta, tb, dtype)
    c = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
    check(c, a, b, ta, tb, dtype)


def test_matmul_matches_numpy_operator(rng, dtype):
    a = rng.standard_normal((64, 100)).astype(dtype)
    b = rng.standard_normal((100, 48)).astype(dtype)
    c = fm.ops.matmul(a, b)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


def test_naive_twin_agrees(rng):
    for ta, tb in TRANS:
        a, b = operands(rng, 37, 41, 300, ta, tb, np.float64)
        fast = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
        naive = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb, naive=True)
        assert rel_error(fast, naive) <= 1e-13


def test_out_is_written_and_never_read(rng, dtype):
    a = rng.standard_normal((33, 70)).astype(dtype)
    b = rng.standard_normal((70, 19)).astype(dtype)
    out = np.full((33, 19), np.nan, dtype=dtype)  # beta == 0 must never read C
    res = fm.ops.matmul(a, b, out=out)
    assert res is out or np.shares_memory(res, out)
    assert np.isfinite(out).all()
    check(out, a, b, False, False, dtype)


def test_degenerate_shapes(dtype):
    a = np.ones((4, 0), dtype=dtype)
    b = np.ones((0, 3), dtype=dtype)
    np.testing.assert_array_equal(fm.ops.matmul(a, b), np.zeros((4, 3)))
    assert fm.ops.matmul(np.ones((0, 5), dtype), np.ones((5, 2), dtype)).shape == (0, 2)
    assert fm.ops.matmul(np.ones((3, 5), dtype), np.ones((5, 0), dtype)).shape == (3, 0)


def test_mixed_and_noncontiguous_inputs_are_converted(rng):
    a = rng.standard_normal((20, 30))
    b = rng.standard_normal((60, 10))[::2]  # non-contiguous view, 30 x 10
    c = fm.ops.matmul(a.astype(np.float32), b)  # float32 with float64 -> float64
    assert c.dtype == np.float64
    assert rel_error(c, a.astype(np.float32).astype(np.float64) @ b) <= 1e-12
    ci = fm.ops.matmul(np.arange(6).reshape(2, 3), np.arange(6).reshape(3, 2))
    np.testing.assert_array_equal(ci, np.arange(6).reshape(2, 3) @ np.arange(6).reshape(3, 2))


def test_bitwise_identical_across_thread_counts(rng, dtype):
    a = rng.standard_normal((256, 700)).astype(dtype)
    b = rng.standard_normal((700, 300)).astype(dtype)
    results, teams = [], []
    for t in (1, 2, 3, 7):
        fm.set_num_threads(t)
        with TeamProbe() as probe:
            for ta, tb in TRANS:
                aa = np.ascontiguousarray(a.T) if ta else a
                bb = np.ascontiguousarray(b.T) if tb else b
                results.append(((ta, tb), fm.ops.matmul(aa, bb, trans_a=ta, trans_b=tb)))
        teams.append(probe.largest)
    if fm._core.have_openmp():
        # 256 x 300 x 700 = 54M multiply-adds: enough work for 7 threads.
        assert teams == [0, 2, 3, 7]
    by_case = {}
    for key, c in results:
        by_case.setdefault(key, []).append(c)
    for cs in by_case.values():
        for c in cs[1:]:
            assert np.array_equal(c, cs[0])
