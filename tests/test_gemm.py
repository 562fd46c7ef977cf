"""fm.ops.matmul (the core's one GEMM entry point) against NumPy, over shapes
derived from each path's own tile sizes and cache blocks, and fm.ops.gemm_plan
(the route each product takes) against the rules gemm_driver.cpp documents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import TeamProbe, rel_error

import fastmlp as fm

# Every check runs on every instruction-set path this CPU supports.
pytestmark = pytest.mark.usefixtures("isa")

TRANS = list(itertools.product([False, True], [False, True]))


def blocking(dtype):
    """The active path's tile sizes and cache blocks, as its plans report them."""
    p = fm.ops.gemm_plan(1, 1, 1, dtype=dtype)
    return p["wide_tile"], p["narrow_tile"], p["mc"], p["kc"], p["nc"]


def sweep_shapes(dtype):
    """(m, n, k) around the active path's blocking: the edges of every tile
    (wide and narrow), k past KC, m past MC, n past NC. A chosen set, not the
    full product, so that the large sizes meet only tiny other dimensions."""
    (mr, nr), (nmr, nnr), mc, kc, nc = blocking(dtype)
    ms = {1, mr - 1, mr, mr + 1, 2 * mr + 1, nmr + 1}
    ns = {1, nnr - 1, nnr, nnr + 1, nr - 1, nr, nr + 1, 2 * nr + 1}
    shapes = {(m, n, k) for m in ms | ns for n in ns | ms for k in (1, 7)}
    blocks = set()
    for k in (kc - 1, kc, kc + 1, 2 * kc + 1):
        blocks |= {(mr + 1, nr + 1, k), (mr, nr, k), (2, nnr - 1, k)}
    for m in (mc - 1, mc, mc + 1, 2 * mc + mr + 1):
        blocks |= {(m, nr + 1, 9), (m, nnr - 1, 9)}
    for n in (nc - 1, nc, nc + 1, 2 * nc + 1):
        blocks |= {(1, n, 3), (mr + 1, n, 3)}
    # Each also transposed, so that the swapped route (C^T) meets the same blocks.
    shapes |= blocks | {(n, m, k) for m, n, k in blocks}
    return sorted(s for s in shapes if min(s) >= 1)


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
def test_matmul_shape_sweep(isa, rng, dtype, ta, tb):
    for m, n, k in sweep_shapes(dtype):
        a, b = operands(rng, m, n, k, ta, tb, dtype)
        c = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
        check(c, a, b, ta, tb, dtype)


def test_shape_sweep_reaches_every_block(isa, dtype):
    # The sweep's shapes as the plans route them (one thread): the kernel's n
    # past NC, m past MC and k past 2 KC, the narrow kernel and narrow edge
    # tiles, and the swapped route on the paths whose tiles make it pay (the
    # generic 4 x 8 / 4 x 4 tiles never do: see plan_gemm's rule).
    (mr, nr), (nmr, nnr), mc, kc, nc = blocking(dtype)
    plans = [fm.ops.gemm_plan(m, n, k, dtype=dtype, threads=1) for m, n, k in sweep_shapes(dtype)]
    direct = [p for p in plans if not p["swapped"]]
    assert any(p["n"] > nc for p in direct)
    assert any(p["m"] > mc for p in direct)
    assert any(p["k"] > 2 * kc for p in direct)
    assert any(p["narrow"] for p in plans)
    assert any(p["rects"][0]["narrow_edge_nr"] for p in plans)
    if isa != "generic":
        assert any(p["swapped"] for p in plans)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_matmul_large_multi_block(rng, dtype, ta, tb):
    # Several MC, KC and NC blocks in every direction.
    m, n, k = 300, 2100, 600
    a, b = operands(rng, m, n, k, ta, tb, dtype)
    c = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
    check(c, a, b, ta, tb, dtype)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_streamed_c_equals_cached_c_bitwise(rng, dtype, ta, tb):
    # With the Epilogue::stream hint (C written once: the core gives it for
    # weight gradients), a thread's share of C of at least 1 MiB from one k
    # block is stored around the caches by the AVX-512 kernels (whole rows of
    # full tiles that start a cache line; the rest as usual). It must equal
    # the product without the hint bit for bit. n = 520 (float32) / 260
    # (float64) leaves every other row unaligned; m = 1201 ends in an edge tile.
    n = 520 if dtype == np.float32 else 260
    m, k = 1201, 40
    raw = np.empty(m * n + 16, dtype)  # C on a 64-byte boundary, as the core's gradients
    skip = (-raw.ctypes.data % 64) // raw.itemsize
    out = raw[skip:skip + m * n].reshape(m, n)
    a, b = operands(rng, m, n, k, ta, tb, dtype)
    streamed = fm._core.matmul(a, b, trans_a=ta, trans_b=tb, out=out, stream=True)
    cached = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
    assert np.array_equal(streamed, cached), (ta, tb)
    check(streamed, a, b, ta, tb, dtype)


@pytest.mark.parametrize(("ta", "tb"), TRANS)
def test_edge_sliver_rows_equal_full_tile_rows_bitwise(isa, rng, dtype, ta, tb):
    # The last sliver of a product whose rows are not a multiple of the tile
    # height runs a shorter kernel (ukr.h ShortRows: 4, 8 or 10 rows of the
    # AVX-512 float32 tile's 12), which must give every element the sum the
    # full tile gives it: the first m rows of a product of 2 mc rows, bit for
    # bit, for every edge height (n = 2 nr + 5: wide and narrow edge tiles).
    plan = fm.ops.gemm_plan(1, 1, 1, dtype=dtype)
    (mr, nr), mc = plan["wide_tile"], plan["mc"]
    if isa in ("avx2", "avx512"):
        assert plan["short_rows"] and max(plan["short_rows"]) < mr
    n, full = 2 * nr + 5, 2 * mc + 2 * mr
    every = list(range(1, 2 * mr + 1)) + [mc + r for r in range(1, mr + 1)]
    # k within one k block for every height; past one and two blocks for two.
    for k, ms in ((37, every), (600, [mr - 1, mc + 1]), (2500, [mr - 1, mc + 1])):
        a, b = operands(rng, full, n, k, ta, tb, dtype)
        want = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
        check(want, a, b, ta, tb, dtype)
        for m in ms:
            part = a[:, :m] if ta else a[:m]
            got = fm.ops.matmul(part, b, trans_a=ta, trans_b=tb)
            assert np.array_equal(got, want[:m]), (m, n, k, ta, tb)


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


def test_array_likes_are_converted():
    # Nested lists are array-likes too (float64, as np.asarray makes them);
    # the values are exact in every float type, so each route must agree
    # exactly. A read-only float32 pair takes the core's direct route.
    a = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    b = [[1.0, 0.5], [0.25, 2.0], [-1.0, 3.0]]
    want = np.array(a) @ np.array(b)
    c = fm.ops.matmul(a, b)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, want)
    np.testing.assert_array_equal(fm.ops.matmul(b, a, trans_a=True, trans_b=True), want.T)
    np.testing.assert_array_equal(fm.ops.matmul(np.array(a), b), want)
    c16 = fm.ops.matmul(np.array(a, np.float16), np.array(b, np.float16))
    assert c16.dtype == np.float64
    np.testing.assert_array_equal(c16, want)
    a32, b32 = np.array(a, np.float32), np.array(b, np.float32)
    a32.flags.writeable = False
    out = np.empty((2, 2), np.float32)
    assert fm.ops.matmul(a32, b32, out=out) is out
    np.testing.assert_array_equal(out, want)
    # The flags are read as bool() reads them, on the direct route too.
    got = fm.ops.matmul(b32, a32, trans_a=np.bool_(True), trans_b=1, naive=0)
    np.testing.assert_array_equal(got, want.T)
    # The other fm.ops entry points convert the same way.
    np.testing.assert_array_equal(fm.ops.activation_forward(a, "relu"), np.array(a))
    z, y = fm.ops.dense_forward(a, [[1.0, 0.0, 0.0]], [0.5], "identity")
    np.testing.assert_array_equal(z, [[1.5], [4.5]])
    np.testing.assert_array_equal(y, z)


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


def test_row_split_inside_a_tile_is_bitwise_invariant(rng, dtype):
    # Thin, deep products split by rows, in steps of the edge kernels
    # (row_step), so a thread's rows can end inside a register tile: 100 rows
    # over 2 threads are 52 / 48 (AVX-512 float32) or 50 / 50 (float64, AVX2),
    # then 3 and 7.
    for m, n, k in ((100, 32, 4096), (256, 40, 3000)):
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        plans = [fm.ops.gemm_plan(m, n, k, dtype=dtype, threads=t) for t in (2, 3, 7)]
        assert all(p["split"][1] == 1 for p in plans)
        if plans[0]["row_step"] < plans[0]["mr"]:
            assert any(r["rows"][0] % p["mr"] for p in plans for r in p["rects"])
        want = None
        for t in (1, 2, 3, 7):
            fm.set_num_threads(t)
            got = fm.ops.matmul(a, b)
            if want is None:
                want = got
            assert np.array_equal(got, want), (m, n, k, t)


# ---------------------------------------------------------------------------
# fm.ops.gemm_plan: the routes, checked against the rules as gemm_driver.cpp
# documents them (restated here in Python, not computed by the core).

ES = {np.float32: 4, np.float64: 8}


def fill(m, n, mr, nr):
    """Fraction of the register tiles' lanes that hold elements of an m x n result."""
    return (m / (-(-m // mr) * mr)) * (n / (-(-n // nr) * nr))


def expected_top(m, n, k, ta, tb, lda, ldb, plan, threads):
    """plan_gemm's rules: narrow when its tiles are > 1.25x fuller, swapped
    (C^T = op(B)^T op(A)^T on the wide kernel) when > 1.5x fuller than that;
    threads: one per 262144 multiply-adds, at most `threads`, reduced until a
    tm x tn grid (rows in row steps, columns in tiles) uses all of them
    (least padded work + packing)."""
    (mr, nr), (nmr, nnr) = plan["wide_tile"], plan["narrow_tile"]
    narrow = fill(m, n, nmr, nnr) > 1.25 * fill(m, n, mr, nr)
    umr, unr = (nmr, nnr) if narrow else (mr, nr)
    swapped = fill(n, m, mr, nr) > 1.5 * fill(m, n, umr, unr)
    if swapped:
        narrow, umr, unr = False, mr, nr
        m, n, ta, tb, lda, ldb = n, m, not tb, not ta, ldb, lda
    work = float(m) * n * k / 262144.0
    nt = 1 if threads <= 1 or work < 2.0 else min(int(work), threads)

    # Rows split in steps of the shortest edge kernel whose multiples up to
    # the tile height all have kernels (4 of 12 on AVX-512 float32), so that
    # no thread's last sliver computes padding.
    short = plan["short_rows"]
    rs = next((s for s in short
               if umr % s == 0 and s % 2 == 0 and all(r in short for r in range(s, umr, s))), umr)

    def split(nt):
        mt, ntl = -(-m // rs), -(-n // unr)
        best, best_cost = (1, 1), None
        for tm in range(1, nt + 1):
            tn = nt // tm
            if nt % tm or tm > mt or tn > ntl:
                continue
            rows, cols = -(-mt // tm) * rs, -(-ntl // tn) * unr
            cost = rows * cols * k + 4.0 * (rows + cols) * k
            if best_cost is None or cost < best_cost:
                best, best_cost = (tm, tn), cost
        return best

    sp = split(nt)
    while nt > 1 and sp[0] * sp[1] != nt:
        nt -= 1
        sp = split(nt)
    if nt <= 1:
        nt, sp = 1, (1, 1)
    return dict(swapped=swapped, narrow=narrow, mr=umr, nr=unr, m=m, n=n, trans_a=ta, trans_b=tb,
                lda=lda, ldb=ldb, threads=nt, split=sp, row_step=rs)


def expected_rect(rows, cols, k, ta, tb, lda, ldb, ldc, es, plan):
    """plan_rect's rules for a rows x cols rectangle of the product the kernel computes."""
    mr, nr, direct = plan["mr"], plan["nr"], plan["direct"]
    kib = 1024
    limit = 512 * kib  # bytes an operand read in place along k may span
    if not direct:
        a = ("packed", "no_direct")
    elif not ta:
        if rows * lda * es > 4 * limit:
            a = ("packed", "size")
        elif (lda * es) % (4 * kib) == 0 and cols > 2 * nr:
            a = ("packed", "conflicts")
        else:
            a = ("rows", "")
    else:
        a = ("kstrided", "") if k * lda * es <= limit else ("packed", "size")
    if not direct:
        b = ("packed", "no_direct")
    elif tb:
        b = ("packed", "transposed")
    elif k * ldb * es > limit:
        b = ("packed", "size")
    elif (ldb * es) % kib == 0 and nr * es <= 64:
        b = ("packed", "conflicts")
    else:
        b = ("rows", "")
    nmr, nnr = plan["narrow_tile"]
    alias = not plan["swapped"] and (ldc * es) % (4 * kib) == 0
    kc = plan["kc"]

    def order(kblock):
        return "jr_fastest" if alias and kblock < 32 else "ir_fastest"

    return dict(a_route=a[0], a_why=a[1], b_route=b[0], b_why=b[1],
                narrow_edge_nr=nr // 2 if (nmr == mr and 2 * nnr == nr) else 0,
                tile_order=order(min(kc, k)), tile_order_last=order((k - 1) % kc + 1),
                transposed_c=plan["swapped"])


def check_plan(m, n, k, ta, tb, dtype, isa, lda=None, ldb=None, ldc=None, threads=1):
    lda = lda or (m if ta else k)
    ldb = ldb or (k if tb else n)
    ldc = ldc or n
    p = fm.ops.gemm_plan(m, n, k, ta, tb, dtype=dtype, isa=isa, lda=lda, ldb=ldb, ldc=ldc,
                         threads=threads)
    want = expected_top(m, n, k, ta, tb, lda, ldb, p, threads)
    assert {key: p[key] for key in want} == want, (m, n, k, ta, tb)
    assert p["kernel"] == isa and p["k"] == k and p["ldc"] == ldc
    # The rectangles tile the product, one per thread: columns on register-tile
    # boundaries, rows on multiples of row_step, as even as those allow.
    assert len(p["rects"]) == p["threads"] == p["split"][0] * p["split"][1]
    rs = p["row_step"]
    covered = 0
    for r in p["rects"]:
        (i0, i1), (j0, j1) = r["rows"], r["cols"]
        assert i0 % rs == 0 and j0 % p["nr"] == 0 and i0 < i1 <= p["m"] and j0 < j1 <= p["n"]
        assert i1 == p["m"] or i1 % rs == 0
        covered += (i1 - i0) * (j1 - j0)
        got = {key: r[key] for key in ("a_route", "a_why", "b_route", "b_why", "narrow_edge_nr",
                                        "tile_order", "tile_order_last", "transposed_c")}
        assert got == expected_rect(i1 - i0, j1 - j0, k, p["trans_a"], p["trans_b"], p["lda"],
                                    p["ldb"], ldc, ES[dtype], p), (m, n, k, ta, tb, r)
    assert covered == p["m"] * p["n"]
    return p


def test_plans_follow_the_rules(isa, dtype):
    (mr, nr), (nmr, nnr), mc, kc, nc = blocking(dtype)
    shapes = sweep_shapes(dtype)[::5] + [(128, 256, 784), (256, 784, 128), (128, 784, 256),
                                          (256, 1024, 10), (1024, 1024, 1024), (300, 2100, 600)]
    # At the thresholds: short k (32) with C rows 4 KiB apart; A rows 4 KiB
    # apart with C 2 NR wide; work of 2 and 3 threads' minimum (262144).
    shapes += [(256, 1024, k) for k in (31, 32, 33, kc + 31, kc + 32)]
    shapes += [(64, n, 1024) for n in (2 * nr, 2 * nr + 1, 2 * nnr, 2 * nnr + 1)]
    shapes += [(64, 64, k) for k in (127, 128, 191, 192, 256, 385)]
    for (m, n, k), (ta, tb) in itertools.product(shapes, TRANS):
        for threads in (1, 2, 3, 8):
            check_plan(m, n, k, ta, tb, dtype, isa, threads=threads)
    # Strides: 1 KiB and 4 KiB multiples, padded rows.
    for ld in (256, 1024, 1000, 2048):
        for ta, tb in TRANS:
            check_plan(64, 100, 40, ta, tb, dtype, isa, lda=max(ld, 100), ldb=max(ld, 100),
                       ldc=max(ld, 100))


def rect(p):
    (r,) = p["rects"]
    return r


def test_plan_forward_product_packs_b(isa, dtype):
    # Forward X W^T (batch 128, 784 -> 256): op(B) = W^T, which no kernel reads in place.
    p = fm.ops.gemm_plan(128, 256, 784, trans_b=True, dtype=dtype, isa=isa, threads=1)
    assert not p["swapped"]
    assert rect(p)["b_route"] == "packed"
    assert rect(p)["b_why"] == ("transposed" if p["direct"] else "no_direct")


def test_plan_generic_packs_everything(dtype):
    for ta, tb in TRANS:
        r = rect(fm.ops.gemm_plan(64, 64, 64, ta, tb, dtype=dtype, isa="generic", threads=1))
        assert (r["a_route"], r["a_why"], r["b_route"], r["b_why"]) == (
            "packed", "no_direct", "packed", "no_direct")


def test_plan_thin_output_layer_avoids_the_wide_tile(isa, dtype):
    # 128 x 10 (an output layer's 10 classes): the wide tile (nr >= 8) wastes
    # most lanes; the plan takes the narrow kernel or the swapped product when
    # that fills its tiles clearly better.
    p = fm.ops.gemm_plan(128, 10, 256, trans_b=True, dtype=dtype, isa=isa, threads=1)
    (mr, nr), (nmr, nnr) = p["wide_tile"], p["narrow_tile"]
    if fill(128, 10, nmr, nnr) > 1.25 * fill(128, 10, mr, nr):
        assert p["narrow"] or p["swapped"]
        assert (p["mr"], p["nr"]) != (mr, nr) or p["swapped"]
    if isa == "avx512":
        # 12 x 16 narrow tile: 10/16 of the lanes, against 10/32 for 12 x 32.
        assert p["narrow"] and not p["swapped"] and p["nr"] == 16


def test_plan_swapped_product_is_the_transpose():
    # avx2 float64 (6 x 8 tiles, narrow 6 x 4): 7 x 4097 fills 7/12 of the
    # 6-row tiles; swapped, 4097 rows fill 6-row tiles and 7 columns 7/8 of 8,
    # so C^T is computed. (A plan for any path of the build, run or not.)
    p = fm.ops.gemm_plan(7, 4097, 3, trans_a=False, trans_b=True, dtype="float64", isa="avx2",
                         threads=1)
    assert p["swapped"] and not p["narrow"]
    assert (p["m"], p["n"], p["trans_a"], p["trans_b"]) == (4097, 7, False, True)
    assert (p["lda"], p["ldb"]) == (3, 3)
    assert rect(p)["transposed_c"] and rect(p)["tile_order"] == "ir_fastest"


def test_plan_short_k_with_aliasing_c_rows_runs_jr_fastest(isa, dtype):
    # dX = dZ W of L's output layer: 256 x 1024, k = 10, C rows 4 or 8 KiB apart.
    p = fm.ops.gemm_plan(256, 1024, 10, dtype=dtype, isa=isa, threads=1)
    assert rect(p)["tile_order_last"] == "jr_fastest"
    # Rows 1000 elements apart do not alias: the usual order.
    p = fm.ops.gemm_plan(256, 1000, 10, dtype=dtype, isa=isa, threads=1)
    assert rect(p)["tile_order_last"] == "ir_fastest"
    # k past the k block: only the short last block changes order.
    kc = p["kc"]
    p = fm.ops.gemm_plan(256, 1024, kc + 10, dtype=dtype, isa=isa, threads=1)
    assert (rect(p)["tile_order"], rect(p)["tile_order_last"]) == ("ir_fastest", "jr_fastest")


def test_plan_b_rows_of_one_cache_line_at_1kib_stride_are_packed(isa, dtype):
    # dW = dZ^T X for 256-wide layers: op(B) = X (128 x 256), row stride 1 or 2 KiB.
    p = fm.ops.gemm_plan(256, 256, 128, trans_a=True, dtype=dtype, isa=isa, threads=1)
    r = rect(p)
    if not p["direct"]:
        assert r["b_why"] == "no_direct"
    elif p["nr"] * ES[dtype] <= 64:  # a B row of one cache line
        assert (r["b_route"], r["b_why"]) == ("packed", "conflicts")
    else:
        assert (r["b_route"], r["b_why"]) == ("rows", "")
    if p["direct"]:
        assert r["a_route"] == "kstrided"  # op(A) = dZ^T read in place, 128 x 256 x es bytes
    # The same product with rows 300 elements apart reads B in place.
    if p["direct"]:
        p = fm.ops.gemm_plan(256, 300, 128, trans_a=True, dtype=dtype, isa=isa, threads=1)
        assert rect(p)["b_route"] == "rows"


def test_plan_large_operands_are_packed(isa, dtype):
    p = fm.ops.gemm_plan(1024, 1024, 1024, dtype=dtype, isa=isa, threads=1)
    if p["direct"]:
        # 1024 rows of 1024 elements: 4 or 8 MiB, beyond the 2 MiB limit of row-major A.
        assert (rect(p)["a_route"], rect(p)["a_why"]) == ("packed", "size")
        assert (rect(p)["b_route"], rect(p)["b_why"]) == ("packed", "size")
        p = fm.ops.gemm_plan(256, 256, 1024, trans_a=True, dtype=dtype, isa=isa, threads=1)
        assert (rect(p)["a_route"], rect(p)["a_why"]) == ("packed", "size")
        # Small enough: read in place.
        p = fm.ops.gemm_plan(100, 300, 100, dtype=dtype, isa=isa, threads=1)
        assert rect(p)["a_route"] == "rows" and rect(p)["b_route"] == "rows"


def test_plan_a_rows_4kib_apart_are_packed_unless_c_is_narrow(isa):
    # float32, k = 1024: A's rows 4 KiB apart.
    p = fm.ops.gemm_plan(256, 1024, 1024, trans_b=True, isa=isa, threads=1)
    if p["direct"]:
        assert (rect(p)["a_route"], rect(p)["a_why"]) == ("packed", "conflicts")
        p = fm.ops.gemm_plan(64, p["nr"] * 2, 1024, trans_b=True, isa=isa, threads=1)
        assert not p["swapped"] and rect(p)["a_route"] == "rows"


def test_plan_threads_split_only_large_products(isa, dtype):
    assert fm.ops.gemm_plan(16, 16, 16, dtype=dtype, isa=isa, threads=8)["threads"] == 1
    p = fm.ops.gemm_plan(512, 512, 512, dtype=dtype, isa=isa, threads=2)
    assert p["threads"] == 2 and len(p["rects"]) == 2
    assert fm.ops.gemm_plan(512, 512, 512, dtype=dtype, isa=isa)["threads"] <= fm.get_num_threads()


def test_plan_arguments_are_checked():
    with pytest.raises(ValueError, match="^m, n, k:"):
        fm.ops.gemm_plan(0, 4, 4)
    with pytest.raises(ValueError, match="^lda:"):
        fm.ops.gemm_plan(4, 4, 8, lda=7)
    with pytest.raises(ValueError, match="^isa:"):
        fm.ops.gemm_plan(4, 4, 4, isa="sse")
    with pytest.raises(ValueError, match="^dtype:"):
        fm.ops.gemm_plan(4, 4, 4, dtype="int32")
    with pytest.raises(ValueError, match="^threads:"):
        fm.ops.gemm_plan(4, 4, 4, threads=0)
    assert fm.ops.gemm_plan(4, 4, 4)["kernel"] == fm.show_config()["isa"]
