"""gemm_pieces (gemm.h PieceSums): the reproducible data-parallel reduction's
dW product. Each group's result must be, bit for bit, what the pieces'
separate products (fm.ops.matmul of each piece's rows alone) give when
added node by node in the tree that splits [a, b) at (a + b) / 2, on every
instruction-set path, every route of the driver and any thread count: that
is what makes a piece's contribution the same whichever process holds it."""

import numpy as np
import pytest

import fastmlp as fm
from conftest import TeamProbe, require_openmp
from fastmlp import _core
from test_isa import ROUTES


def tree_groups(pieces, first, total):
    """Python twin of piece_tree_groups: the maximal tree nodes within the
    local pieces, as local bounds."""
    if total <= 0:
        return list(range(pieces + 1))
    out = []

    def walk(a, b):
        if b <= first or a >= first + pieces:
            return
        if a >= first and b <= first + pieces:
            out.append(a - first)
            return
        walk(a, (a + b) // 2)
        walk((a + b) // 2, b)
    walk(0, total)
    return out + [pieces]


def tree_sum(products, first, a, b):
    """Node [a, b) of the tree over global piece indices, formed as x + y."""
    if b - a == 1:
        return products[a - first]
    mid = (a + b) // 2
    return tree_sum(products, first, a, mid) + tree_sum(products, first, mid, b)


def expected(a, b, bounds, first, total, ta, tb):
    products = []
    for q in range(len(bounds) - 1):
        k0, k1 = bounds[q], bounds[q + 1]
        aq = np.ascontiguousarray(a[k0:k1] if ta else a[:, k0:k1])
        bq = np.ascontiguousarray(b[:, k0:k1] if tb else b[k0:k1])
        products.append(fm.ops.matmul(aq, bq, trans_a=ta, trans_b=tb))
    groups = tree_groups(len(bounds) - 1, first, total)
    return [tree_sum(products, first, first + g0, first + g1)
            for g0, g1 in zip(groups, groups[1:])], groups


def cut(k, rng, count):
    inner = sorted(rng.choice(np.arange(1, k), size=min(count, k - 1) - 1, replace=False).tolist())
    return [0] + inner + [k]


# (first, total) against the number of local pieces: no tree, the whole
# tree, and a share in the middle of a larger tree whose nodes cross it.
TREES = [(0, 0), (0, None), (3, 13), (5, 17)]


@pytest.mark.parametrize("shape", ROUTES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_groups_equal_the_pieces_products_added_in_the_tree(isa, rng, dtype, shape):
    m, n, k = shape
    if k < 2:
        pytest.skip("one row of k cannot be cut")
    if k > _core.gemm_pieces_max_k(dtype == np.float64):
        with pytest.raises(ValueError, match="gemm_pieces_max_k"):
            _core.matmul_pieces(np.ones((k, m), dtype), np.ones((k, n), dtype), [0, 1, k],
                                0, 0, True, False)
        return
    for ta, tb in ((True, False), (False, False), (False, True), (True, True)):
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
        for count in (2, 3, 5):
            bounds = cut(k, rng, count)
            pieces = len(bounds) - 1
            for first, total in TREES:
                total = pieces if total is None else total
                if total and first + pieces > total:
                    continue
                got, groups = _core.matmul_pieces(a, b, bounds, first, total, ta, tb)
                want, want_groups = expected(a, b, bounds, first, total, ta, tb)
                assert list(groups) == want_groups
                assert got.shape == (len(want), m, n)
                for g, w in enumerate(want):
                    np.testing.assert_array_equal(got[g], w, err_msg=(
                        f"{isa} ta={ta} tb={tb} bounds={bounds} first={first} total={total} "
                        f"group {g}"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pieces_longer_than_a_k_block(isa, rng, dtype):
    # Fixed cuts around gemm()'s k block kc (half of gemm_pieces_max_k): a
    # short piece then a long one (the right child formed in a tile, not
    # added by the kernel), a long one then a short one, pieces of exactly
    # kc, and one piece of 2 kc; trees starting at several offsets.
    kc = _core.gemm_pieces_max_k(dtype == np.float64) // 2
    m, n = 37, 45
    cuts = [[0, 3, kc + 5], [0, kc + 5, kc + 9], [0, kc + 1, 2 * kc], [0, kc, kc + 1, kc + 2],
            [0, 2 * kc], [0, 7, 9, kc + 11, kc + 12]]
    for bounds in cuts:
        k = bounds[-1]
        a = rng.standard_normal((k, m)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        pieces = len(bounds) - 1
        for first in (0, 1, 2, 3, pieces):
            total = first + pieces + (first % 2)
            got, groups = _core.matmul_pieces(a, b, bounds, first, total, True, False)
            want, want_groups = expected(a, b, bounds, first, total, True, False)
            assert list(groups) == want_groups
            for g, w in enumerate(want):
                np.testing.assert_array_equal(got[g], w, err_msg=f"{isa} {bounds} first={first}")


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_changes_no_bit(rng, threads):
    # dW of configuration L's first layer over 4 pieces of 64 rows.
    if threads > 1:
        require_openmp()
    dz = rng.standard_normal((256, 1024)).astype(np.float32)
    x = rng.standard_normal((256, 784)).astype(np.float32)
    bounds = [0, 64, 128, 192, 256]
    with _threads(1):
        one, _ = _core.matmul_pieces(dz, x, bounds, 0, 4, True, False)
    with _threads(threads), TeamProbe() as probe:
        got, groups = _core.matmul_pieces(dz, x, bounds, 0, 4, True, False)
    if threads > 1:
        assert probe.largest == threads  # it did run on two threads
    assert list(groups) == [0, 4]
    np.testing.assert_array_equal(got, one)
    want, _ = expected(dz, x, bounds, 0, 4, True, False)
    np.testing.assert_array_equal(got[0], want[0])


class _threads:
    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.before = fm.get_num_threads()
        fm.set_num_threads(self.n)

    def __exit__(self, *exc):
        fm.set_num_threads(self.before)


def test_bad_pieces_are_refused():
    a = np.ones((6, 3))
    b = np.ones((6, 4))
    for bounds in ([0, 6, 6], [1, 6], [0, 4], [0, 3, 2, 6], [0]):
        with pytest.raises(ValueError, match="bounds"):
            _core.matmul_pieces(a, b, bounds, 0, 0, True, False)
    with pytest.raises(ValueError, match="first, total"):
        _core.matmul_pieces(a, b, [0, 3, 6], 3, 4, True, False)
