"""The bf16 GEMM (fm.ops.matmul_bf16, csrc/gemm/gemm.h gemm_bf16) and its
rounding (fm.ops.round_bf16 against fm.reference.round_bf16, and torch).

Accuracy rule: each bf16 kernel equals a float32 GEMM of the bf16-rounded
inputs, i.e. the exact product of the rounded operands (computed here in
float64, which is exact for k <= 2^37 products of bf16 values... up to its own
rounding, far below the bound) within

    |c - exact| <= k * eps32 * (|bf16(A)| |bf16(B)|)_ij        (eps32 = 2^-23)

elementwise. Products of bf16 values are exact in float32 (8-bit significands:
16 bits of product), so the only roundings are the k float32 additions: Higham's
gamma_k = k u / (1 - k u) with u = 2^-24 (sec. 3.5), which k * eps32 covers
with a factor about 2 to spare, as tests/test_gemm.py does for float32. Every
shape the float32 route tests use runs here on both kernels, plus shapes
derived from the bf16 kernels' own tiles and cache blocks.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import TeamProbe, require_openmp
from test_gemm import sweep_shapes
from test_isa import ROUTES

import fastmlp as fm

TRANS = list(itertools.product([False, True], [False, True]))
EPS32 = 2.0**-23
HAVE_BF16 = fm.ops.have_bf16_instructions()
BF16_ISAS = ["generic", "avx512_bf16"]
# set_isa values that select each bf16 kernel (the float path is irrelevant here).
SELECT = {"generic": "generic_bf16", "avx512_bf16": "avx512_bf16"}


@pytest.fixture(params=BF16_ISAS)
def bf16_isa(request):
    """Runs a test on each bf16 kernel: the portable one everywhere, the
    AVX512-BF16 one where the CPU has it; restores the setting afterwards."""
    if request.param == "avx512_bf16" and not HAVE_BF16:
        pytest.skip("this CPU (or OS) lacks AVX512-BF16")
    previous = fm.ops.set_isa(SELECT[request.param])
    assert fm.show_config()["bf16_isa"] == request.param
    yield request.param
    fm.ops.set_isa(previous)


def _bits(x):
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def _from_bits(u):
    return np.asarray(u, dtype=np.uint32).view(np.float32)


# ---------------------------------------------------------------------------
# Rounding


ROUNDING_CASES = {
    # input bits: expected bf16 bits (as the upper half of a float32)
    0x3F800000: 0x3F80,  # 1.0, exact
    0x3F808000: 0x3F80,  # 1 + 2^-8: a tie, to the even 1.0
    0x3F818000: 0x3F82,  # 1 + 3 * 2^-8: a tie, up to the even 1 + 2^-6
    0x3F808001: 0x3F81,  # just above the tie: up
    0x3F807FFF: 0x3F80,  # just below: down
    0xBF808000: 0xBF80,  # negative tie
    0x3FFFFFFF: 0x4000,  # the carry runs into the exponent: 2.0
    0x7F7FFFFF: 0x7F80,  # FLT_MAX: past bf16's largest finite 0x7F7F by > half an ulp: inf
    0x7F7F8000: 0x7F80,  # exactly halfway to 2^128, the odd 0x7F7F rounds up: inf
    0x7F7F7FFF: 0x7F7F,  # the largest float32 that stays finite
    0xFF7FFFFF: 0xFF80,  # -FLT_MAX: -inf
    0x7F800000: 0x7F80,  # inf
    0xFF800000: 0xFF80,  # -inf
    0x00000000: 0x0000,  # +0
    0x80000000: 0x8000,  # -0 stays -0
    0x00000001: 0x0000,  # the smallest denormal rounds to +0
    0x80000001: 0x8000,  # ... and its negative to -0
    0x00008000: 0x0000,  # denormal tie, to the even 0
    0x00018000: 0x0002,  # denormal tie, up to the even 2
    0x00010001: 0x0001,  # denormal, nearest
    0x007FFFFF: 0x0080,  # the largest denormal rounds up to the smallest normal
    0x7FC00000: 0x7FC0,  # quiet NaN
    0x7F800001: 0x7FC0,  # signalling NaN with its payload in the low half: still NaN (quiet)
    0xFF800001: 0xFFC0,  # ... and negative
    0x7FBFFFFF: 0x7FFF,  # NaN whose upper payload is kept (no carry into infinity)
}


@pytest.mark.parametrize("fn", [fm.ops.round_bf16, fm.reference.round_bf16],
                         ids=["core", "reference"])
def test_round_bf16_known_cases(fn):
    src = np.array(list(ROUNDING_CASES), dtype=np.uint32)
    want = np.array(list(ROUNDING_CASES.values()), dtype=np.uint32) << np.uint32(16)
    got = _bits(fn(_from_bits(src)))
    bad = [(hex(s), hex(g), hex(w)) for s, g, w in zip(src, got, want) if g != w]
    assert not bad, bad


def test_round_bf16_core_equals_reference_bitwise(rng):
    # Random bit patterns cover every exponent, both signs, denormals, inf and
    # NaN; the float16-like grid around the ties is covered by the low-half
    # patterns 0x7FFF / 0x8000 / 0x8001 forced on a share of them.
    u = rng.integers(0, 2**32, size=200_000, dtype=np.uint64).astype(np.uint32)
    low = np.array([0x7FFF, 0x8000, 0x8001, 0x0000, 0xFFFF], dtype=np.uint32)
    u[: 50_000] = (u[: 50_000] & np.uint32(0xFFFF0000)) | low[np.arange(50_000) % low.size]
    x = _from_bits(u)
    core = fm.ops.round_bf16(x)
    ref = fm.reference.round_bf16(x)
    assert np.array_equal(_bits(core), _bits(ref))
    assert core.dtype == np.float32 and core.shape == x.shape
    assert (_bits(core) & np.uint32(0xFFFF) == 0).all()
    assert np.array_equal(np.isnan(core), np.isnan(x))


def test_round_bf16_matches_torch(rng):
    torch = pytest.importorskip("torch")
    u = rng.integers(0, 2**32, size=100_000, dtype=np.uint64).astype(np.uint32)
    x = _from_bits(u)
    x = np.concatenate([x, _from_bits(np.array(list(ROUNDING_CASES), dtype=np.uint32))])
    ours = fm.ops.round_bf16(x)
    theirs = torch.from_numpy(x.copy()).to(torch.bfloat16).to(torch.float32).numpy()
    finite = ~np.isnan(x)  # NaN payloads are not part of either contract
    assert np.array_equal(_bits(ours)[finite], _bits(theirs)[finite])
    assert np.isnan(ours[~finite]).all() and np.isnan(theirs[~finite]).all()


def test_round_bf16_shapes_and_conversion():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7.0
    y = fm.ops.round_bf16(x)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(y, fm.reference.round_bf16(x))
    assert fm.ops.round_bf16(np.float32(1.00390625)) == 1.0
    with pytest.raises(TypeError, match="^x:"):
        fm.ops.round_bf16(np.array(["a"]))


# ---------------------------------------------------------------------------
# matmul_bf16


def operands(rng, m, n, k, ta, tb):
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    return a, b


def exact_and_bound(a, b, ta, tb):
    """The exact product of the bf16-rounded operands and the k-eps bound."""
    a64 = fm.reference.round_bf16(a).astype(np.float64)
    b64 = fm.reference.round_bf16(b).astype(np.float64)
    opa = a64.T if ta else a64
    opb = b64.T if tb else b64
    k = opa.shape[1]
    return opa @ opb, k * EPS32 * (np.abs(opa) @ np.abs(opb)) + np.finfo(np.float32).tiny


def check(c, a, b, ta, tb, what=""):
    exact, bound = exact_and_bound(a, b, ta, tb)
    assert c.dtype == np.float32 and c.shape == exact.shape
    err = np.abs(c.astype(np.float64) - exact)
    assert (err <= bound).all(), f"{what}: max err/bound {np.max(err / bound):.3g}"


def all_shapes():
    """The float32 tests' shapes (the route list of test_isa.py and the sweep
    around the float32 tiles of the active path) plus the sweep around the
    bf16 kernel's own tiles and blocks (odd and even k, k = 1, thin results,
    edges of every tile, k past KC, m past MC, n past NC)."""
    return sorted(set(ROUTES) | set(sweep_shapes(np.float32)) | set(sweep_shapes("bfloat16")))


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_matmul_bf16_every_route(bf16_isa, rng, ta, tb):
    for m, n, k in all_shapes():
        a, b = operands(rng, m, n, k, ta, tb)
        c = fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb)
        check(c, a, b, ta, tb, f"{bf16_isa} {m}x{n}x{k} ta={ta} tb={tb}")


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_panel_b_equals_packing_b_bitwise(bf16_isa, rng, ta, tb):
    # A mixed_bfloat16 layer's weights are packed once into a panel
    # (gemm.h Bf16Panel) and read in place by every product: the result must
    # be the product that packs B itself, bit for bit, whether the panel was
    # packed whole or in blocks as the optimizer writes it (any word left
    # unwritten would read as NaN: the panel starts filled with NaN pairs).
    # Plans the panel cannot serve (swapped, one-vector-wide) fall back.
    shapes = all_shapes() + [(256, 1024, 784), (37, 2100, 2500)]
    plans = [fm.ops.gemm_plan(m, n, k, trans_a=ta, trans_b=tb, dtype="bfloat16") for m, n, k in shapes]
    assert sum(not p["swapped"] and not p["narrow"] for p in plans) > len(shapes) // 3
    for m, n, k in shapes:
        a, b = operands(rng, m, n, k, ta, tb)
        want = _bits(fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb))
        for in_blocks in (False, True):
            got = fm._core.matmul_bf16_panel(a, b, trans_a=ta, trans_b=tb, in_blocks=in_blocks)
            assert np.array_equal(_bits(got), want), (m, n, k, ta, tb, in_blocks)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_denormals_that_round_to_the_smallest_normal_count(bf16_isa, ta, tb):
    # float32 denormals of magnitude 0x007F8000..0x007FFFFF round (to nearest
    # even) up to bf16's smallest normal, 2^-126, which every kernel must then
    # multiply as such (VDPBF16PS reads only bf16 denormals as zero; the
    # AVX512-BF16 packing converts with VCVTNE2PS2BF16, which reads float
    # denormals as zero, and must lift this band first). One band value per
    # row of A, at a different k in each row and in both halves of a pair,
    # against powers of two in B: C holds +-2^-126 * 2^e exactly, through the
    # packed A (rows along k or along the vector) and B, and the panel.
    band = np.array([0x007F8000, 0x007FC000, 0x007FFFFF, 0x807F8000, 0x807FFFFF],
                    dtype=np.uint32)
    m, n, k = 30, 40, 37
    a = np.zeros((m, k), np.float32)
    rows = np.arange(m)
    a[rows, (rows * 7) % k] = _from_bits(band[rows % band.size])
    b = np.zeros((k, n), np.float32)
    b[:, :] = 2.0 ** (np.arange(n) % 5)[None, :]
    sign = np.where(band[rows % band.size] >> np.uint32(31), -1.0, 1.0)
    want = (sign[:, None] * 2.0**-126 * b[0][None, :]).astype(np.float32)
    assert (want != 0).all()
    opa = np.ascontiguousarray(a.T) if ta else a
    opb = np.ascontiguousarray(b.T) if tb else b
    got = fm.ops.matmul_bf16(opa, opb, trans_a=ta, trans_b=tb)
    assert np.array_equal(_bits(got), _bits(want)), (ta, tb)
    # The same band in B (op(B)^T op(A)^T: the operands' roles swapped).
    got_t = fm.ops.matmul_bf16(opb, opa, trans_a=not tb, trans_b=not ta)
    assert np.array_equal(_bits(got_t), _bits(want.T)), (ta, tb)
    panel = fm._core.matmul_bf16_panel(opb, opa, trans_a=not tb, trans_b=not ta, in_blocks=True)
    assert np.array_equal(_bits(panel), _bits(want.T)), (ta, tb)


def test_shapes_reach_every_bf16_route(bf16_isa):
    # The shapes as the bf16 plans route them (one thread): the wide and
    # narrow kernels, narrow edge tiles, the swapped route, and more than one
    # cache block along each of m, n and k (odd kc in the last k block too).
    mc, kc, nc = (fm.ops.gemm_plan(1, 1, 1, dtype="bfloat16")[key] for key in ("mc", "kc", "nc"))
    plans = [fm.ops.gemm_plan(m, n, k, dtype="bfloat16", threads=1) for m, n, k in all_shapes()]
    assert all(p["kernel"] == bf16_isa for p in plans)
    assert all(r["a_route"] == "packed" and r["b_route"] == "packed"
               for p in plans for r in p["rects"])
    direct = [p for p in plans if not p["swapped"]]
    assert any(p["n"] > nc for p in direct)
    assert any(p["m"] > mc for p in direct)
    assert any(p["k"] > 2 * kc and p["k"] % 2 for p in direct)
    assert any(p["narrow"] for p in plans)
    assert any(not p["narrow"] and not p["swapped"] for p in plans)
    assert any(p["rects"][0]["narrow_edge_nr"] for p in plans)
    assert any(p["swapped"] for p in plans)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_matmul_bf16_large_multi_block(bf16_isa, rng, ta, tb):
    m, n, k = (200, 2100, 2500) if bf16_isa != "generic" else (100, 600, 2500)
    a, b = operands(rng, m, n, k, ta, tb)
    check(fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb), a, b, ta, tb)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_streamed_c_equals_cached_c_bitwise(bf16_isa, rng, ta, tb):
    # With the Epilogue::stream hint (a weight gradient), a share of C of at
    # least 2^18 floats per thread from one k block is stored around the
    # caches by the AVX512-BF16 kernel (whole 64-byte-aligned rows of a tile;
    # the rest as usual): it must equal the product without the hint, bit for
    # bit. n = 520 leaves every other row of C unaligned; m = 1201 ends in an
    # edge tile. C must start on a 64-byte boundary, as the core's gradient
    # buffers do (NumPy's own allocations are 16-byte aligned).
    def aligned(m, n):
        raw = np.empty(m * n + 16, np.float32)
        skip = (-raw.ctypes.data % 64) // 4
        return raw[skip:skip + m * n].reshape(m, n)

    for m, n, k in ((1201, 520, 40), (1100, 512, 33)):
        a, b = operands(rng, m, n, k, ta, tb)
        streamed = fm._core.matmul_bf16(a, b, trans_a=ta, trans_b=tb, out=aligned(m, n),
                                        stream=True)
        cached = fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb)
        assert np.array_equal(_bits(streamed), _bits(cached)), (m, n, k, ta, tb)
        check(streamed, a, b, ta, tb, f"{m}x{n}x{k}")


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_edge_sliver_rows_equal_full_tile_rows_bitwise(bf16_isa, rng, ta, tb):
    # An edge sliver of fewer rows than the tile runs a shorter kernel over
    # the packed sliver (the AVX512-BF16 kernel's 4-, 8- and 10-row tiles): the
    # first m rows of a longer product, bit for bit, for every edge height,
    # in the first A block and a later one, with k in one k block (odd and
    # even) and past it; n = 2 nr + 5 has wide and narrow edge tiles.
    plan = fm.ops.gemm_plan(1, 1, 1, dtype="bfloat16")
    (mr, nr), mc, kc = plan["wide_tile"], plan["mc"], plan["kc"]
    if bf16_isa == "avx512_bf16":
        assert plan["short_rows"] == (4, 8, 10)
    n, full = 2 * nr + 5, 2 * mc + 2 * mr
    every = list(range(1, 2 * mr + 1)) + [mc + r for r in range(1, mr + 1)]
    for k, ms in ((37, every), (64, every), (kc + 3, [mr - 1, mc + 1])):
        a, b = operands(rng, full, n, k, ta, tb)
        want = fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb)
        check(want, a, b, ta, tb, f"{full}x{n}x{k}")
        for m in ms:
            part = a[:, :m] if ta else a[:m]
            got = fm.ops.matmul_bf16(part, b, trans_a=ta, trans_b=tb)
            assert np.array_equal(_bits(got), _bits(want[:m])), (m, n, k, ta, tb)


def test_bitwise_identical_for_1_and_2_threads(bf16_isa, rng):
    require_openmp()
    a = rng.standard_normal((256, 700)).astype(np.float32)
    b = rng.standard_normal((700, 300)).astype(np.float32)
    for ta, tb in TRANS:
        aa = np.ascontiguousarray(a.T) if ta else a
        bb = np.ascontiguousarray(b.T) if tb else b
        runs = []
        for t in (1, 2):
            fm.set_num_threads(t)
            with TeamProbe() as probe:
                runs.append(fm.ops.matmul_bf16(aa, bb, trans_a=ta, trans_b=tb))
            assert probe.largest == (0 if t == 1 else 2)
        assert np.array_equal(runs[0], runs[1]), (ta, tb)
        check(runs[0], aa, bb, ta, tb)
    # Thin and deep: split by rows in steps of the edge kernels, so a thread's
    # rows end inside a 12-row tile (100 rows: 52 / 48 over 2 threads).
    a = rng.standard_normal((100, 4096)).astype(np.float32)
    b = rng.standard_normal((4096, 32)).astype(np.float32)
    plan = fm.ops.gemm_plan(100, 32, 4096, dtype="bfloat16", threads=2)
    assert plan["split"] == (2, 1)
    runs = []
    for t in (1, 2, 3):
        fm.set_num_threads(t)
        runs.append(fm.ops.matmul_bf16(a, b))
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


@pytest.mark.skipif(not HAVE_BF16, reason="this CPU (or OS) lacks AVX512-BF16")
def test_portable_and_avx512_bf16_agree(rng):
    # Both are within the bound of the exact product, so within twice it of each other.
    previous = fm.ops.set_isa("generic_bf16")
    try:
        for m, n, k in [(37, 41, 301), (128, 10, 256), (10, 128, 255), (96, 300, 700)]:
            for ta, tb in TRANS:
                a, b = operands(rng, m, n, k, ta, tb)
                fm.ops.set_isa("generic_bf16")
                portable = fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb)
                fm.ops.set_isa("avx512_bf16")
                fast = fm.ops.matmul_bf16(a, b, trans_a=ta, trans_b=tb)
                _, bound = exact_and_bound(a, b, ta, tb)
                assert (np.abs(portable.astype(np.float64) - fast) <= 2 * bound).all()
    finally:
        fm.ops.set_isa(previous)


def _normal_values(rng, shape):
    """Finite normal float32 values of every exponent, a quarter of them bf16
    ties or near-ties (the low half 0x7FFF, 0x8000 or 0x8001)."""
    u = rng.integers(0, 2**32, size=int(np.prod(shape)), dtype=np.uint64).astype(np.uint32)
    exp = (u >> np.uint32(23)) & np.uint32(0xFF)
    u = np.where((exp == 0) | (exp >= 0xFE), u ^ np.uint32(0x40000000), u).astype(np.uint32)
    low = np.array([0x7FFF, 0x8000, 0x8001], dtype=np.uint32)
    q = u.size // 4
    u[:q] = (u[:q] & np.uint32(0xFFFF0000)) | low[np.arange(q) % low.size]
    return _from_bits(u).reshape(shape)


@pytest.mark.parametrize("trans", [False, True])
def test_packing_rounds_exactly_as_round_bf16(bf16_isa, rng, trans):
    # Against the identity (exact in bf16) each element of C is one product
    # x * 1 plus exact zeros, so C must be round_bf16 of the other operand,
    # value for value: this checks the packing's rounding bit by bit (every
    # packing layout: A and B, k-contiguous or not, odd k, edge rows), where
    # the accuracy bound would hide a wrong tie.
    for m, k in [(13, 33), (40, 64), (29, 97)]:
        x = _normal_values(rng, (k, m) if trans else (m, k))
        eye = np.eye(k, dtype=np.float32)
        c = fm.ops.matmul_bf16(x, eye, trans_a=trans)  # C = op(x) I: x packed as A
        want = fm.ops.round_bf16(x.T if trans else x)
        assert np.array_equal(c, want), (m, k, "A")
        y = _normal_values(rng, (k, m))  # C = I op(b) with op(b) = y: y packed as B
        b = np.ascontiguousarray(y.T) if trans else y
        c = fm.ops.matmul_bf16(eye, b, trans_b=trans)
        assert np.array_equal(c, fm.ops.round_bf16(y)), (m, k, "B")


def test_matmul_bf16_is_not_float32(bf16_isa):
    # 1 + 2^-9 is not a bf16 value: it rounds to 1 before the product.
    a = np.full((3, 5), 1.0 + 2.0**-9, dtype=np.float32)
    b = np.ones((5, 2), dtype=np.float32)
    assert np.array_equal(fm.ops.matmul_bf16(a, b), np.full((3, 2), 5.0, np.float32))
    assert not np.array_equal(fm.ops.matmul(a, b), np.full((3, 2), 5.0, np.float32))


def test_out_is_written_and_never_read(bf16_isa, rng):
    a, b = operands(rng, 33, 19, 71, False, False)
    out = np.full((33, 19), np.nan, dtype=np.float32)  # beta == 0 never reads C
    res = fm.ops.matmul_bf16(a, b, out=out)
    assert np.shares_memory(res, out) and np.isfinite(out).all()
    check(out, a, b, False, False)


def test_non_finite_values_propagate_to_their_rows_only(bf16_isa, rng):
    # Odd k: the padding pair meets inf and NaN in the other operand's last
    # pair as 0 * 0, never 0 * inf, so no NaN leaks into other rows.
    a, b = operands(rng, 20, 40, 33, False, False)
    a[3, 5] = np.nan
    a[7, 32] = np.inf
    b[32, :] = np.abs(b[32, :]) + 1.0
    b[32, 11] = np.inf
    c = fm.ops.matmul_bf16(a, b)
    assert np.isnan(c[3]).all()
    assert np.isposinf(c[7]).all()
    others = np.delete(np.arange(20), [3, 7])
    assert np.isinf(c[others, 11]).all()
    assert np.isfinite(np.delete(c[others], 11, axis=1)).all()


def test_degenerate_shapes_and_bad_input(bf16_isa):
    c = fm.ops.matmul_bf16(np.ones((4, 0), np.float32), np.ones((0, 3), np.float32))
    assert np.array_equal(c, np.zeros((4, 3)))
    assert fm.ops.matmul_bf16(np.ones((0, 5)), np.ones((5, 2))).shape == (0, 2)
    c = fm.ops.matmul_bf16(np.arange(6.0).reshape(2, 3), np.arange(6).reshape(3, 2))
    assert c.dtype == np.float32  # float64 and int inputs are converted once
    np.testing.assert_array_equal(c, np.arange(6).reshape(2, 3) @ np.arange(6).reshape(3, 2))
    with pytest.raises(ValueError, match="^b: inner dimensions differ"):
        fm.ops.matmul_bf16(np.ones((2, 3), np.float32), np.ones((4, 2), np.float32))
    with pytest.raises(ValueError, match="^a: expected a 2-D array"):
        fm.ops.matmul_bf16(np.ones(3, np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="^out:"):
        fm.ops.matmul_bf16(np.ones((2, 3)), np.ones((3, 2)), out=np.zeros((2, 2)))


# ---------------------------------------------------------------------------
# Selection: FASTMLP_ISA, FASTMLP_HIDE_ISA, show_config

CONFIG = ("import fastmlp as fm; c = fm.show_config(); "
          "print(c['isa'], c['bf16_isa'], c['bf16_instructions'])")


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120)


def test_show_config_reports_the_bf16_kernel():
    cfg = fm.show_config()
    assert cfg["bf16_isa"] in fm.ops.supported_bf16_isas()
    assert cfg["bf16_instructions"] == HAVE_BF16
    assert fm.ops.supported_bf16_isas() == (["generic", "avx512_bf16"] if HAVE_BF16
                                            else ["generic"])
    expected = "avx512_bf16" if cfg["isa"] == "avx512" and HAVE_BF16 else "generic"
    assert cfg["bf16_isa"] == expected


def test_fastmlp_isa_generic_bf16_forces_the_portable_kernel():
    r = _run(CONFIG, FASTMLP_ISA="generic_bf16")
    assert r.returncode == 0, r.stderr
    isa, bf16, _ = r.stdout.split()
    assert isa == fm.ops.supported_isas()[-1] and bf16 == "generic"
    r = _run(CONFIG, FASTMLP_ISA="avx2" if "avx2" in fm.ops.supported_isas() else "generic")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[1] == "generic"


@pytest.mark.skipif(not HAVE_BF16, reason="this CPU (or OS) lacks AVX512-BF16")
def test_fastmlp_isa_avx512_takes_the_bf16_kernel():
    for value in ("avx512", "avx512_bf16"):
        r = _run(CONFIG, FASTMLP_ISA=value)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["avx512", "avx512_bf16", "True"]


@pytest.mark.skipif("avx512" not in fm.ops.supported_isas(), reason="no AVX-512 on this CPU")
def test_missing_bf16_instructions_are_a_clear_error():
    # FASTMLP_HIDE_ISA=avx512_bf16 makes any AVX-512 CPU look like one without them.
    r = _run(CONFIG, FASTMLP_HIDE_ISA="avx512_bf16")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["avx512", "generic", "False"]
    r = _run("import fastmlp", FASTMLP_ISA="avx512_bf16", FASTMLP_HIDE_ISA="avx512_bf16")
    assert r.returncode != 0
    assert "FASTMLP_ISA: this CPU (or OS) does not support avx512_bf16" in r.stderr
    assert "generic_bf16 forces the portable bf16 kernel" in r.stderr
    r = _run("import fastmlp as fm; fm.ops.set_isa('avx512_bf16')", FASTMLP_HIDE_ISA="avx512")
    assert r.returncode != 0
    assert "ValueError: isa: this CPU (or OS) does not support avx512_bf16" in r.stderr


def test_set_isa_returns_a_value_that_restores_the_bf16_kernel():
    start = (fm.show_config()["isa"], fm.show_config()["bf16_isa"])
    previous = fm.ops.set_isa("generic_bf16")
    try:
        assert fm.show_config()["bf16_isa"] == "generic"
        inner = fm.ops.set_isa("generic")
        assert inner == "generic_bf16"
        fm.ops.set_isa(inner)
        assert fm.show_config()["bf16_isa"] == "generic"
    finally:
        fm.ops.set_isa(previous)
    assert (fm.show_config()["isa"], fm.show_config()["bf16_isa"]) == start
