"""Sample weights and class weights in every loss (definitions: csrc/nn/losses.h).

The core (through fm.ops) against fastmlp.reference, the reference's
gradients against central finite differences, both against PyTorch's
weighted losses, all-ones weights against no weights, and bad weights.

Tolerances. float64: the core and the reference evaluate the same formulas
and differ only in the order of roundings, so they agree to 1e-12 relative,
as the unweighted kernels do (test_kernels.py). float32: the core on float32
inputs against the float64 reference on the same (exactly widened) inputs.
The unweighted kernels are within (k + 8) eps (a k-term softmax sum plus a few
ulps for exp/log); a weight adds at most six more float32 roundings per
element (s_i c_{y_i}, its product with 1/W, 1/W itself; or c_0 (1 - t) + c_1 t
and its product with s_i / (n k)), hence (k + 16) eps.

Gradients get, besides that relative bound, an absolute one in units of
gradient_unit: a gradient element is a difference p - t (a probability and its
target) times the element's weight over the denominator, and when p rounds
close to t the difference keeps only the absolute accuracy of p, a few ulps
of 1, whatever the size of the result. float64 allows 1e-14 units (about 45
ulps; the largest seen over 20 seeds is 12), float32 the bound above.
"""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _core
from fastmlp import reference as ref
from conftest import TeamProbe

# (loss, target kind, weights): every loss with every target form it takes and
# every weight it accepts; mse and poisson have no class weights.
CASES = [
    ("mse", "dense", "sample"),
    ("poisson", "dense", "sample"),
    *[("cross_entropy", kind, w) for kind in ("ids", "soft") for w in ("sample", "class", "both")],
    *[("binary_cross_entropy", kind, w) for kind in ("hard", "soft")
      for w in ("sample", "class", "both")],
]
SIZES = [(1, 3), (6, 1), (37, 5), (257, 10), (33, 129)]


def make_batch(rng, loss, kind, n, k, dtype):
    """(z, y, target): logits, the output layer's y (mse reads y, not z) and targets."""
    z = (rng.standard_normal((n, k)) * 4).astype(dtype)
    z.flat[0] = 60.0  # far into saturation
    y = rng.standard_normal((n, k)).astype(dtype)
    if loss == "poisson":
        # z is a log mean: means from ~0.01 to ~100, one of e^8, and counts
        # drawn near them (some 0), so exp(z) - t both cancels and does not.
        z = (rng.standard_normal((n, k)) * 1.5).astype(dtype)
        z.flat[0] = 8.0
        t = rng.poisson(np.exp(z.astype(np.float64) + 0.3 * rng.standard_normal((n, k))))
        t = t.astype(dtype)
    elif loss == "mse":
        t = rng.standard_normal((n, k)).astype(dtype)
    elif kind == "ids":
        t = rng.integers(0, k, n).astype(np.int32)
    elif kind == "soft" and loss == "cross_entropy":
        t = rng.random((n, k))
        t = (t / t.sum(axis=1, keepdims=True)).astype(dtype)
    elif kind == "soft":
        t = rng.random((n, k)).astype(dtype)
    else:
        t = (rng.random((n, k)) > 0.5).astype(dtype)
    return z, y, t


def make_weights(rng, loss, weights, n, k, dtype):
    """{sample_weight, class_weight} for a weight mode, with some weights exactly 0."""
    out = {}
    if weights in ("sample", "both"):
        s = rng.random(n) * 2.0
        s[1::4] = 0.0  # rows that must not count at all
        out["sample_weight"] = s.astype(dtype)
    if weights in ("class", "both"):
        nc = 2 if loss == "binary_cross_entropy" else k
        c = 0.25 + rng.random(nc) * 2.0
        if nc > 2:
            c[1] = 0.0  # a class that must not count at all
        out["class_weight"] = c.astype(dtype)
    return out


def gradient_unit(loss, kind, t, w, n, k, d_ref, z=None):
    """max over elements of |d_ref| and of the factor f_ij that multiplies an
    O(1) difference in gradient element (i, j): s_i / (n k) for mse (times
    2 (y - t), which loses no accuracy), s_i c_{y_i} / sum_m c_{y_m} for class
    ids, s_i max_j c_j / n for probabilities, s_i w_ij / (n k) for binary
    cross-entropy, s_i (exp(z_ij) + t_ij) / (n k) for poisson (exp(z) carries
    its rounding into the difference exp(z) - t). |p - t| <= 1, so |d_ref| <= f
    except for mse."""
    s = w.get("sample_weight", np.ones(n)).astype(np.float64)
    c = w.get("class_weight")
    c = None if c is None else c.astype(np.float64)
    if loss == "cross_entropy" and kind == "ids":
        c_y = np.ones(n) if c is None else c[t]
        f = s * c_y / c_y.sum() if c_y.sum() else np.zeros(n)
    elif loss == "cross_entropy":
        f = s * (1.0 if c is None else c.max()) / n
    elif loss == "binary_cross_entropy" and c is not None:
        f = s * c.max() / (n * k)
    elif loss == "poisson":
        f = s[:, None] * (np.exp(z.astype(np.float64)) + np.abs(t)) / (n * k)
    else:
        f = s / (n * k)
    return max(float(np.abs(d_ref).max()), float(f.max()), 1e-300)


def widen(target):
    return target if target.dtype == np.int32 else target.astype(np.float64)


def reference_result(z, y, t, loss, w):
    w64 = {name: v.astype(np.float64) for name, v in w.items()}
    z64, y64, t64 = z.astype(np.float64), y.astype(np.float64), widen(t)
    return (ref.loss_forward(z64, y64, t64, loss, **w64),
            ref.loss_backward(z64, y64, t64, loss, **w64))


@pytest.mark.parametrize(("loss", "kind", "weights"), CASES)
@pytest.mark.parametrize(("n", "k"), SIZES)
def test_core_matches_reference(rng, dtype, loss, kind, weights, n, k):
    z, y, t = make_batch(rng, loss, kind, n, k, dtype)
    w = make_weights(rng, loss, weights, n, k, dtype)
    value, _, d = fm.ops.loss_forward_backward(loss, z, y, t, **w)
    want_value, want_d = reference_result(z, y, t, loss, w)
    assert d.dtype == dtype
    if "sample_weight" in w:  # a row of weight 0 has no gradient at all
        assert not d[w["sample_weight"] == 0].any()
    unit = gradient_unit(loss, kind, t, w, n, k, want_d, z)
    if dtype == np.float64:
        assert abs(value - want_value) <= 1e-12 * abs(want_value), (value, want_value)
        np.testing.assert_allclose(d, want_d, rtol=1e-12, atol=1e-14 * unit)
        return
    bound = (k + 16) * np.finfo(dtype).eps
    assert abs(value - want_value) <= bound * abs(want_value), (value, want_value)
    np.testing.assert_allclose(d, want_d, rtol=bound, atol=bound * unit)


@pytest.mark.parametrize(("loss", "kind", "weights"), CASES)
def test_weights_change_the_result(rng, loss, kind, weights):
    # Guards the tests above against weights that are silently ignored by both
    # sides: the weighted and the plain result must differ.
    z, y, t = make_batch(rng, loss, kind, 9, 4, np.float64)
    w = make_weights(rng, loss, weights, 9, 4, np.float64)
    value, _, d = fm.ops.loss_forward_backward(loss, z, y, t, **w)
    plain, _, d_plain = fm.ops.loss_forward_backward(loss, z, y, t)
    assert value != plain
    assert not np.allclose(d, d_plain)


# ---------------------------------------------------------------------------
# Gradients: central finite differences of the loss (float64)
# ---------------------------------------------------------------------------


def core_loss_and_grad(loss, z, y, t, w):
    value, _, d = fm.ops.loss_forward_backward(loss, z, y, t, **w)
    return value, d


def ref_loss_and_grad(loss, z, y, t, w):
    return (ref.loss_forward(z, y, t, loss, **w), ref.loss_backward(z, y, t, loss, **w))


@pytest.mark.parametrize("impl", [ref_loss_and_grad, core_loss_and_grad],
                         ids=["reference", "core"])
@pytest.mark.parametrize(("loss", "kind", "weights"), CASES)
def test_gradient_matches_finite_differences(rng, impl, loss, kind, weights):
    # Central differences with eps 1e-6 carry a truncation error ~eps^2 f'''
    # ~1e-12 and a rounding error ~1e-16 |L| / eps ~1e-10 (see
    # reference.numerical_gradient); the gradients here are O(0.01 .. 1), so
    # atol 1e-8 has two orders of margin, and any missing or misplaced weight
    # is off by far more.
    n, k = 6, 4
    z, y, t = make_batch(rng, loss, kind, n, k, np.float64)
    z.flat[0] = 1.5  # finite differences need no saturation
    if loss == "poisson":
        t.flat[0] = 4.0  # ... nor poisson's count near e^8 (a loss of ~200)
    w = make_weights(rng, loss, weights, n, k, np.float64)
    p = y if loss == "mse" else z  # mse's gradient is dL/dy, the others' dL/dz
    _, grad = impl(loss, z, y, t, w)
    numeric = ref.numerical_gradient(lambda: impl(loss, z, y, t, w)[0], p)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_zero_weight_rows_do_not_count(rng, dtype):
    z, y, t = make_batch(rng, "cross_entropy", "ids", 8, 5, dtype)
    s = np.ones(8, dtype=dtype)
    s[3] = 0.0
    value, _, d = fm.ops.loss_forward_backward("cross_entropy", z, y, t, sample_weight=s)
    z2 = z.copy()
    z2[3] = [50.0, -50.0, 3.0, 0.0, 7.0]
    value2, _, d2 = fm.ops.loss_forward_backward("cross_entropy", z2, y, t, sample_weight=s)
    assert value2 == value  # 0 * l_3 is exactly 0 for any finite row
    assert not d2[3].any()
    assert np.array_equal(np.delete(d2, 3, axis=0), np.delete(d, 3, axis=0))


def test_zero_class_weight_denominator_gives_zero(rng, dtype):
    # Every row's class weighs 0: torch's 0/0 is NaN; fastmlp defines loss 0
    # and gradient 0 (csrc/nn/losses.cpp), in the core and the reference alike.
    z, y, _ = make_batch(rng, "cross_entropy", "ids", 7, 4, dtype)
    t = np.array([0, 2, 2, 0, 0, 2, 2], dtype=np.int32)
    c = np.array([0.0, 3.0, 0.0, 1.0], dtype=dtype)
    for s in (None, rng.random(7).astype(dtype)):
        value, _, d = fm.ops.loss_forward_backward("cross_entropy", z, y, t, s, c)
        assert value == 0.0
        assert d.dtype == dtype
        assert not d.any()
        assert ref.cross_entropy_loss(z, t, sample_weight=s, class_weight=c) == 0.0
        assert not ref.cross_entropy_backward(z, t, sample_weight=s, class_weight=c).any()
    # One row of a class with weight: the mean is over that row's weight alone.
    t[4] = 3
    value, _, _ = fm.ops.loss_forward_backward("cross_entropy", z, y, t, None, c)
    lse = np.log(np.exp(z[4].astype(np.float64)).sum())
    assert value == pytest.approx(lse - z[4, 3], rel=1e-12 if dtype == np.float64 else 1e-5)


def test_weighted_result_is_thread_count_independent(rng, dtype):
    # 600 x 129 is above the threading threshold of the loss loop, so two
    # threads split the rows; the per-row sums are added in row order anyway.
    for loss, kind, weights in CASES:
        z, y, t = make_batch(rng, loss, kind, 600, 129, dtype)
        w = make_weights(rng, loss, weights, 600, 129, dtype)
        fm.set_num_threads(1)
        v1, _, d1 = fm.ops.loss_forward_backward(loss, z, y, t, **w)
        fm.set_num_threads(2)
        with TeamProbe() as probe:
            v2, _, d2 = fm.ops.loss_forward_backward(loss, z, y, t, **w)
        assert probe.largest == 2, (loss, kind, weights)  # the rows were split
        assert v1 == v2, (loss, kind, weights)
        assert d1.tobytes() == d2.tobytes(), (loss, kind, weights)


# ---------------------------------------------------------------------------
# All-ones weights are no weights, bit for bit
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "kind", "weights"), CASES)
@pytest.mark.parametrize(("n", "k"), [(1, 3), (257, 10), (600, 129)])
def test_all_ones_weights_are_bitwise_unweighted(rng, dtype, loss, kind, weights, n, k):
    z, y, t = make_batch(rng, loss, kind, n, k, dtype)
    ones = {name: np.ones_like(v) for name, v in make_weights(rng, loss, weights, n, k,
                                                                dtype).items()}
    value, out, d = fm.ops.loss_forward_backward(loss, z, y, t, **ones)
    plain, out_plain, d_plain = fm.ops.loss_forward_backward(loss, z, y, t)
    assert value == plain
    assert d.tobytes() == d_plain.tobytes()
    assert out.tobytes() == out_plain.tobytes()
    # The reference too: its weights default to ones and multiply exactly.
    assert ref.loss_forward(z, y, t, loss, **ones) == ref.loss_forward(z, y, t, loss)
    assert (ref.loss_backward(z, y, t, loss, **ones).tobytes()
            == ref.loss_backward(z, y, t, loss).tobytes())


def test_weights_are_converted_to_the_dtype_of_z(rng):
    z, y, t = make_batch(rng, "binary_cross_entropy", "soft", 11, 3, np.float32)
    s, c = rng.random(11), np.array([0.5, 2.0])
    got = fm.ops.loss_forward_backward("binary_cross_entropy", z, y, t, list(s), c)
    want = fm.ops.loss_forward_backward("binary_cross_entropy", z, y, t, s.astype(np.float32),
                                        c.astype(np.float32))
    assert got[0] == want[0]
    assert got[2].dtype == np.float32
    assert got[2].tobytes() == want[2].tobytes()


# ---------------------------------------------------------------------------
# PyTorch's weighted losses (float64)
# ---------------------------------------------------------------------------


def torch_loss_and_grad(loss, kind, z, y, t, s, c):
    """torch's value and gradient (dL/dz, or dL/dy for mse) of the weighted loss."""
    torch = pytest.importorskip("torch")
    nn = torch.nn
    n, k = z.shape
    zt = torch.tensor(z, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    st = torch.tensor(s if s is not None else np.ones(n))
    ct = None if c is None else torch.tensor(c)
    tt = torch.tensor(t.astype(np.int64) if kind == "ids" else t)
    if loss == "mse":
        # torch's unreduced MSELoss times s_i, averaged over all n k elements.
        value = (nn.MSELoss(reduction="none")(yt, tt) * st[:, None]).mean()
        leaf = yt
    elif loss == "poisson":
        # likewise PoissonNLLLoss (z the log mean, no Stirling term).
        per_elem = nn.PoissonNLLLoss(log_input=True, full=False, reduction="none")(zt, tt)
        value = (per_elem * st[:, None]).mean()
        leaf = zt
    elif loss == "cross_entropy" and s is None:
        # CrossEntropyLoss(weight=c) itself, class ids or probabilities.
        value = nn.CrossEntropyLoss(weight=ct)(zt, tt)
        leaf = zt
    elif loss == "cross_entropy":
        # reduction="none" gives c_{y_i} l_i (ids) or -sum_j c_j t_ij log p_ij
        # (probabilities); the mean is over sum_i c_{y_i} or n as torch's own.
        per_row = nn.CrossEntropyLoss(weight=ct, reduction="none")(zt, tt)
        if kind == "ids":
            den = ct[tt].sum() if ct is not None else torch.tensor(float(n), dtype=torch.float64)
        else:
            den = torch.tensor(float(n), dtype=torch.float64)
        value = (per_row * st).sum() / den
        leaf = zt
    else:
        w = st[:, None] * torch.ones_like(tt)
        if ct is not None:
            w = w * (ct[0] * (1.0 - tt) + ct[1] * tt)
        value = nn.BCEWithLogitsLoss(weight=w)(zt, tt)
        leaf = zt
    value.backward()
    return float(value.detach()), leaf.grad.numpy()


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize(("loss", "kind", "weights"), CASES)
def test_matches_torch(rng, impl, loss, kind, weights):
    n, k = 37, 5
    z, y, t = make_batch(rng, loss, kind, n, k, np.float64)
    w = make_weights(rng, loss, weights, n, k, np.float64)
    want_value, want_grad = torch_loss_and_grad(loss, kind, z, y, t, w.get("sample_weight"),
                                                w.get("class_weight"))
    if impl == "core":
        value, grad = core_loss_and_grad(loss, z, y, t, w)
    else:
        value, grad = ref_loss_and_grad(loss, z, y, t, w)
    # torch rounds in its own order (log_softmax, then a weighted sum); the
    # loss is a sum of 37 to 185 non-negative terms, so the orders agree to a
    # few hundred eps, and the gradients as in test_core_matches_reference.
    assert abs(value - want_value) <= 1e-12 * abs(want_value), (value, want_value)
    unit = gradient_unit(loss, kind, t, w, n, k, want_grad, z)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-14 * unit)


# ---------------------------------------------------------------------------
# Bad weights: ValueError/TypeError naming the argument
# ---------------------------------------------------------------------------

N, K = 4, 3


def _bad_batch(loss):
    rng = np.random.default_rng(5)
    kind = {"mse": "dense", "cross_entropy": "ids", "binary_cross_entropy": "hard",
            "poisson": "dense"}[loss]
    return make_batch(rng, loss, kind, N, K, np.float64)


BAD = [
    ("cross_entropy", {"sample_weight": np.array([1.0, -0.5, 1.0, 1.0])}, "sample_weight"),
    ("mse", {"sample_weight": np.array([1.0, np.nan, 1.0, 1.0])}, "sample_weight"),
    ("binary_cross_entropy", {"sample_weight": np.array([1.0, 1.0, np.inf, 1.0])},
     "sample_weight"),
    ("cross_entropy", {"sample_weight": np.ones(N + 1)}, "sample_weight"),
    ("mse", {"sample_weight": np.ones((N, 1))}, "sample_weight"),
    ("cross_entropy", {"class_weight": np.array([1.0, -1.0, 1.0])}, "class_weight"),
    ("cross_entropy", {"class_weight": np.array([1.0, np.nan, 1.0])}, "class_weight"),
    ("cross_entropy", {"class_weight": np.ones(K + 1)}, "class_weight"),
    ("binary_cross_entropy", {"class_weight": np.ones(K)}, "class_weight"),  # needs 2
    ("binary_cross_entropy", {"class_weight": np.array([-np.inf, 1.0])}, "class_weight"),
    ("mse", {"class_weight": np.ones(K)}, "class_weight"),
    ("poisson", {"sample_weight": np.array([1.0, -1.0, 1.0, 1.0])}, "sample_weight"),
    ("poisson", {"class_weight": np.ones(K)}, "class_weight"),
]


@pytest.mark.parametrize(("loss", "kwargs", "name"), BAD)
def test_bad_weights_raise_value_error(loss, kwargs, name):
    z, y, t = _bad_batch(loss)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        fm.ops.loss_forward_backward(loss, z, y, t, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ref.loss_forward(z, y, t, loss, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        ref.loss_backward(z, y, t, loss, **kwargs)


def test_bad_weight_types_at_every_level():
    z, y, t = _bad_batch("cross_entropy")
    lid = _core.Loss.cross_entropy
    for name in ("sample_weight", "class_weight"):
        n = N if name == "sample_weight" else K
        with pytest.raises(TypeError, match=rf"^{name}:"):
            fm.ops.loss_forward_backward("cross_entropy", z, y, t, **{name: np.array(["a"] * n)})
        with pytest.raises(TypeError, match=rf"^{name}:"):
            ref.loss_forward(z, y, t, "cross_entropy", **{name: np.array(["a"] * n)})
        # The core itself takes only arrays of z's dtype, C-contiguous.
        with pytest.raises(TypeError, match=rf"^{name}:"):
            _core.loss_forward_backward(lid, z, y, t, **{name: np.ones(n, dtype=np.float32)})
        with pytest.raises(TypeError, match=rf"^{name}:"):
            _core.loss_forward_backward(lid, z, y, t, **{name: [1.0] * n})
        with pytest.raises(ValueError, match=rf"^{name}:"):
            _core.loss_forward_backward(lid, z, y, t, **{name: np.ones(2 * n)[::2]})
        with pytest.raises(ValueError, match=rf"^{name}:"):
            _core.loss_forward_backward(lid, z, y, t, **{name: -np.ones(n)})
    value = _core.loss_forward_backward(lid, z, y, t, np.ones(N), np.ones(K))[0]
    assert value == _core.loss_forward_backward(lid, z, y, t)[0]
