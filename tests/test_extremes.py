"""Exact at the extremes: every activation (forward and derivative), every
loss and every loss gradient with respect to the logits, in float32 and
float64, core and reference, against mpmath at 50 digits.

Error measure: |computed - exact| in ulps of the target dtype at the exact
value (the spacing of the dtype's numbers at |exact|, subnormal spacing
below the smallest normal). Bound: 4 ulp (float64), 8 ulp (float32) wherever
|exact| > 1e-100 (float64) / 1e-20 (float32) and the exact value is finite
in the dtype; below the floor the absolute error must stay under the floor.

Inputs: logarithmic grids of both signs from subnormal-adjacent magnitudes
to the overflow limit, plus a dense linear grid over [-50, 50] where the
functions bend, plus the float neighbours of GELU''s derivative root; for
the cross-entropy also random rows (test_cross_entropy_random_rows), whose
differences z_j - max z are not exact and whose sums have up to 1000 terms.

Why the floor (where exactness is impossible as the functions are defined
and stored):
* results below the floor underflow in part or in full: sigmoid(z), e^z,
  elu'(z) = e^z, softplus(z) and GELU(z) ~ phi(z) for z << 0 reach the
  subnormals and then 0; the float32 paths also clamp exp's argument at -87
  (e^-87 ~ 1.6e-38, below the float32 floor);
* a result above the dtype's largest number (mse of huge residuals,
  e^z past 88.7 / 709.8) is inf, and is not compared.

poisson's loss exp(z) - t z nearly cancels at its minimum z = log t for t
near e (t (1 - log t), ~1e-16 of its terms at t = fl(e)): float32 computes it
in double, float64 such terms in triple-double; the counts grid has e and its
float neighbours.

The gradients that cancel (cross-entropy with dense targets, binary
cross-entropy with soft targets, poisson with counts other than 0 and 1, see
test_cancelling_residuals) are bounded also at the inputs nearest to their
zeros, where the float64 residual can be 2^-60 .. 2^-110 of its cancelling
term: the core and the reference compute those in triple-double (~2^-150,
csrc/nn/td.h), as double-double alone misses 4 ulp there (by up to 10^4 ulp,
HARD_F64). Their worst error is also printed on its own ("near zero").

Paths: "core" is fm.ops (the whole-array kernels, whose float32 tanh and
sigmoid run the per-ISA vector loops; every ISA this CPU has is tested for
those), "dense" a 1 x 1 layer with weight 1 and bias 0 (the GEMM epilogue
forward, dense backward's fused dz/db loop), "reference" fm.reference; the
losses go through fm.ops.loss_forward_backward (loss_output +
loss_forward_backward, as the network calls them) one row at a time.

The worst errors, with PyTorch's for the same function beside them when
torch is installed, are printed at the end of the module's run (visible
without -s).
"""

from __future__ import annotations

import functools

import mpmath as mp
import numpy as np
import pytest

import fastmlp as fm
from fastmlp import reference as ref

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

mp.mp.dps = 50

DTYPES = (np.float32, np.float64)
TOL = {np.float32: 8.0, np.float64: 4.0}
FLOOR = {np.float32: 1e-20, np.float64: 1e-100}
ACTS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus")
GELU_ROOT = mp.mpf("-0.75179152469356445745790494677952403966447115342345")

# (function, dtype) -> {implementation: worst ulps}; printed at module end.
WORST: dict = {}


def _name(dtype):
    return np.dtype(dtype).name


@functools.lru_cache(maxsize=None)
def grid(dtype):
    """Inputs of one dtype, both signs: log grid to the overflow limit,
    linear grid over [-50, 50], 0, and the neighbours of GELU''s root."""
    fi = np.finfo(dtype)
    lo = np.log10(float(fi.smallest_subnormal)) + 1.0
    hi = np.log10(float(fi.max))
    with np.errstate(over="ignore", under="ignore"):
        mags = np.logspace(lo, hi, 240)
    lin = np.linspace(-50.0, 50.0, 161)
    root = dtype(float(GELU_ROOT))
    near = [root]
    for _ in range(3):
        near.append(np.nextafter(near[-1], dtype(0)))
        near.insert(0, np.nextafter(near[0], dtype(-1)))
    z = np.concatenate([mags, -mags, lin, [0.0], np.array(near, dtype=np.float64)])
    z = np.unique(z.astype(dtype))
    return z[np.isfinite(z)]


# --- exact values (mpmath, cancellation-free forms) -------------------------


def _sig(x):
    return 1 / (1 + mp.exp(-x))


def _gelu(x):
    if x < -60:  # below 1e-780: no need to ask erfc
        return mp.mpf(0)
    return x * mp.ncdf(x)


def _gelu_d(x):
    if x < -60:
        return mp.mpf(0)
    return mp.ncdf(x) + x * mp.npdf(x)


def _sig_d(x):
    e = mp.exp(-abs(x))
    return e / (1 + e) ** 2


EXACT_ACT = {
    "sigmoid": (_sig, _sig_d),
    "tanh": (mp.tanh, lambda x: 1 / mp.cosh(x) ** 2),
    "relu": (lambda x: max(x, 0), lambda x: mp.mpf(1 if x > 0 else 0)),
    "leaky_relu": (lambda x: x if x > 0 else mp.mpf("0.01") * x,
                   lambda x: mp.mpf(1) if x > 0 else mp.mpf("0.01")),
    "elu": (lambda x: x if x > 0 else mp.expm1(x), lambda x: mp.mpf(1) if x > 0 else mp.exp(x)),
    "gelu": (_gelu, _gelu_d),
    "softplus": (lambda x: mp.log1p(mp.exp(x)), _sig),
}


@functools.lru_cache(maxsize=None)
def exact_act(act, dtype, deriv):
    f = EXACT_ACT[act][1 if deriv else 0]
    return tuple(f(mp.mpf(float(v))) for v in grid(dtype))


def ulp_errors(computed, exact, dtype):
    """Errors in ulps of dtype at each exact value; NaN where not compared
    (exact below the floor with the absolute error under it, or beyond the
    dtype's range). A point below the floor whose absolute error exceeds it
    counts as inf."""
    fi = np.finfo(dtype)
    p = fi.nmant  # 23 / 52
    tiny = mp.mpf(float(fi.smallest_normal))
    big = mp.mpf(float(fi.max))
    floor = FLOOR[dtype]
    out = np.empty(len(exact))
    for i, (c, e) in enumerate(zip(np.asarray(computed, dtype=np.float64).ravel(), exact)):
        a = abs(e)
        if a > big:
            out[i] = np.nan
            continue
        if a <= floor:
            out[i] = np.nan if abs(c - float(e)) <= floor else np.inf
            continue
        if not np.isfinite(c):
            out[i] = np.inf
            continue
        ex = max(mp.frexp(a)[1], mp.frexp(tiny)[1]) - 1  # floor(log2 a), normal range
        ulp = mp.ldexp(1, int(ex) - p)
        out[i] = float(abs(mp.mpf(c) - e) / ulp)
    return out


def worst(err):
    err = err[~np.isnan(err)]
    return float(err.max()) if err.size else 0.0


def record(fn, dtype, impl, w):
    WORST.setdefault((fn, _name(dtype)), {})[impl] = w


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    yield
    if not WORST:
        return
    lines = ["", "worst ulp error at the extremes (fastmlp core / dense / reference, torch)"]
    for (fn, dt), d in sorted(WORST.items()):
        cols = "  ".join(f"{k}={v:.3g}" for k, v in sorted(d.items()))
        lines.append(f"  {fn:<28} {dt:<8} {cols}")
    # Printed past the output capture, so that it shows without -s.
    cm = request.config.pluginmanager.getplugin("capturemanager")
    if cm is not None:
        with cm.global_and_fixture_disabled():
            print("\n".join(lines))
    else:  # pragma: no cover
        print("\n".join(lines))


def check(fn, dtype, impl, computed, exact):
    err = ulp_errors(computed, exact, dtype)
    w = worst(err)
    record(fn, dtype, impl, w)
    bad = np.flatnonzero(err > TOL[dtype])
    if bad.size:
        msg = f"{fn} {_name(dtype)} {impl}: {bad.size} points over {TOL[dtype]} ulp, worst {w:.3g}"
        raise AssertionError(msg + f"; indices {bad[:8].tolist()}")


# --- activations -------------------------------------------------------------


def _act_impl(impl, act, z, deriv):
    """act(z) or act'(z) through one path: ops (the whole-array kernels, the
    float32 ISA loops), dense (a 1x1 identity layer: the GEMM epilogue and
    dense_backward's loop) or reference."""
    dtype = z.dtype.type
    if impl == "core":
        zz = z.reshape(1, -1)
        y = fm.ops.activation_forward(zz, act)
        if not deriv:
            return y.ravel()
        return fm.ops.activation_backward(np.ones_like(zz), zz, y, act).ravel()
    if impl == "dense":
        x = z.reshape(-1, 1)
        w = np.ones((1, 1), dtype=dtype)
        b = np.zeros(1, dtype=dtype)
        zz, y = fm.ops.dense_forward(x, w, b, act)
        assert np.array_equal(zz, x)
        if not deriv:
            return y.ravel()
        return fm.ops.dense_backward(np.ones_like(x), x, w, zz, y, act)[3].ravel()
    with np.errstate(over="ignore", under="ignore"):
        y = ref.activation_forward(z, act)
        if not deriv:
            return y
        return ref.activation_backward(np.ones_like(z), z, y, act)


@pytest.mark.parametrize("impl", ["core", "dense", "reference"])
@pytest.mark.parametrize("deriv", [False, True], ids=["forward", "derivative"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_activation(act, deriv, impl, dtype):
    z = grid(dtype)
    got = _act_impl(impl, act, z, deriv)
    check(f"{act}{chr(39) if deriv else ''}", dtype, impl, got, exact_act(act, dtype, deriv))


@pytest.fixture(params=fm.ops.supported_isas())
def each_isa(request):
    """Every instruction-set path this CPU runs, in turn."""
    previous = fm.ops.set_isa(request.param)
    try:
        yield request.param
    finally:
        fm.ops.set_isa(previous)


# float32 tanh and sigmoid run vector loops compiled per ISA (the GEMM
# epilogue's act_run, the backward's act_back_run): each must be exact.
fast_paths = pytest.mark.parametrize(("act", "deriv"), [(a, d) for a in ("sigmoid", "tanh")
                                                        for d in (False, True)],
                                     ids=["sigmoid", "sigmoid'", "tanh", "tanh'"])


@fast_paths
def test_float32_fast_paths_every_isa(act, deriv, each_isa):
    z = grid(np.float32)
    exact = exact_act(act, np.float32, deriv)
    for impl in ("core", "dense"):
        err = ulp_errors(_act_impl(impl, act, z, deriv), exact, np.float32)
        assert worst(err) <= TOL[np.float32], (impl, worst(err))


def _float32_sweep(stride=4099):
    """Every stride-th float32 bit pattern, both signs, finite: ~2 million
    inputs from the subnormals to the largest float, denser than the grid
    above by four orders of magnitude."""
    bits = np.arange(0, 0x7F800000, stride, dtype=np.uint32)
    z = bits.view(np.float32)
    return np.stack([z, -z])  # 2-D, as the kernels take it


def _double_act(act, z, deriv):
    """The float32 functions in double: fm.reference on float64 input
    (within ~2 ulp of float64, far below a float32 ulp)."""
    z = z.astype(np.float64)
    y = ref.activation_forward(z, act)
    return ref.activation_backward(np.ones_like(z), z, y, act) if deriv else y


def _ulps_f32(got, exact):
    """ulp_errors' measure, vectorized, against a double reference."""
    got = got.astype(np.float64)
    a = np.abs(exact)
    ex = np.floor(np.log2(np.maximum(a, float(np.finfo(np.float32).smallest_normal))))
    err = np.abs(got - exact) / np.ldexp(1.0, (ex - 23).astype(int))
    below = a <= FLOOR[np.float32]
    return np.where(below, np.where(np.abs(got - exact) <= FLOOR[np.float32], 0.0, np.inf), err)


@fast_paths
def test_float32_fast_paths_dense_sweep(act, deriv, each_isa):
    # The same vector loops over ~2 million inputs spread over every binade
    # (the AVX-512 unit's were also checked over all 2^32 inputs: tanh within
    # 1.5 ulp, sigmoid 2.2, both derivatives 3.5), against double.
    z = _float32_sweep()
    exact = _double_act(act, z, deriv)
    if deriv:
        got = fm.ops.activation_backward(np.ones_like(z), z, np.zeros_like(z), act)
    else:
        got = fm.ops.activation_forward(z, act)
    err = _ulps_f32(got, exact)
    assert err.max() <= TOL[np.float32], (each_isa, float(z[np.argmax(err)]), err.max())
    record(f"{act}{chr(39) if deriv else ''} (sweep)", np.float32, each_isa, float(err.max()))


def _torch_act(act, z, deriv):
    import torch.nn.functional as F

    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "leaky_relu": F.leaky_relu, "elu": F.elu, "gelu": F.gelu, "softplus": F.softplus}
    t = torch.from_numpy(z.copy()).requires_grad_(deriv)
    y = fns[act](t)
    if not deriv:
        return y.detach().numpy()
    y.backward(torch.ones_like(y))
    return t.grad.numpy()


@pytest.mark.parametrize("deriv", [False, True], ids=["forward", "derivative"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_torch_activation_column(act, deriv, dtype):
    if torch is None:
        pytest.skip("torch is not installed: no comparison column")
    z = grid(dtype)
    got = _torch_act(act, z, deriv)
    err = ulp_errors(got, exact_act(act, dtype, deriv), dtype)
    record(f"{act}{chr(39) if deriv else ''}", dtype, "torch", worst(err))


# --- losses ------------------------------------------------------------------
#
# Each case is a list of single rows (z, target), evaluated one row per call
# (n = 1, so the mean is the row's loss and the gradient is not scaled).


def _mags(dtype, n=120):
    fi = np.finfo(dtype)
    with np.errstate(over="ignore", under="ignore"):
        return np.logspace(np.log10(float(fi.smallest_normal)), np.log10(float(fi.max)) - 0.5, n)


@functools.lru_cache(maxsize=None)
def loss_cases(loss, dtype):
    """Rows (z (1, k), target) of one loss, covering both signs and the ends."""
    m = np.concatenate([_mags(dtype), np.linspace(0.0, 60.0, 61)])
    rows = []
    if loss == "cross_entropy":
        for a in m:
            for off in (0.0, 1e4):
                for c in (0, 1):
                    for s in (1.0, -1.0):
                        z = np.array([[off + s * a, off, off - 1.0]], dtype=dtype)
                        if np.all(np.isfinite(z)) and np.abs(z).max() < 0.1 * np.finfo(dtype).max:
                            rows.append((z, np.array([c], dtype=np.int32)))
    elif loss == "binary_cross_entropy":
        for a in np.concatenate([m, -m]):
            for t in (0.0, 1.0):
                rows.append((np.array([[a]], dtype=dtype), np.array([[t]], dtype=dtype)))
    elif loss == "poisson":
        zs = np.concatenate([np.linspace(-200.0, 200.0, 201), np.logspace(-30, 2, 60),
                             -np.logspace(-30, 2.8, 60)])
        for a in zs:
            for t in (0.0, 1.0):
                rows.append((np.array([[a]], dtype=dtype), np.array([[t]], dtype=dtype)))
    else:  # mse, k = 1: y on the grid, t = 0 or a neighbour of y
        for a in np.concatenate([m, -m]):
            y = dtype(a)
            for t in (dtype(0), np.nextafter(y, dtype(0)), dtype(y * dtype(0.75))):
                rows.append((np.array([[y]], dtype=dtype), np.array([[t]], dtype=dtype)))
    return rows


def _exact_loss_row(loss, z, t):
    """(loss, gradient list) of one row, exactly (cancellation-free forms)."""
    zs = [mp.mpf(float(v)) for v in z.ravel()]
    if loss == "cross_entropy":
        c = int(t[0])
        mi = max(range(len(zs)), key=lambda j: zs[j])
        mx = zs[mi]
        r = mp.fsum(mp.exp(v - mx) for j, v in enumerate(zs) if j != mi)
        s = 1 + r
        value = (mx - zs[c]) + mp.log1p(r)
        grad = [mp.exp(v - mx) / s for v in zs]
        grad[c] = -mp.fsum(mp.exp(v - mx) for j, v in enumerate(zs) if j != c) / s
        return value, grad
    tt = mp.mpf(float(t.ravel()[0]))
    x = zs[0]
    if loss == "binary_cross_entropy":
        if tt == 1:
            return mp.log1p(mp.exp(-x)), [-1 / (1 + mp.exp(x))]
        return mp.log1p(mp.exp(x)), [1 / (1 + mp.exp(-x))]
    if loss == "poisson":
        if tt == 0:
            return mp.exp(x), [mp.exp(x)]
        return mp.exp(x) - x, [mp.expm1(x)]
    r = x - tt
    return r * r, [2 * r]


@functools.lru_cache(maxsize=None)
def exact_loss(loss, dtype):
    vals, grads = [], []
    for z, t in loss_cases(loss, dtype):
        v, g = _exact_loss_row(loss, z, t)
        vals.append(v)
        grads.extend(g)
    return tuple(vals), tuple(grads)


def _loss_impl(impl, loss, z, t):
    if impl == "core":
        value, _, d = fm.ops.loss_forward_backward(loss, z, z, t)
        return value, d.ravel()
    with np.errstate(over="ignore", under="ignore"):
        if loss == "mse":
            return ref.mse_loss(z, t), ref.mse_backward(z, t).ravel()
        if loss == "cross_entropy":
            return ref.cross_entropy_loss(z, t), ref.cross_entropy_backward(z, t).ravel()
        if loss == "binary_cross_entropy":
            return (ref.binary_cross_entropy_loss(z, t),
                    ref.binary_cross_entropy_backward(z, t).ravel())
        return ref.poisson_loss(z, t), ref.poisson_backward(z, t).ravel()


def _torch_loss(loss, z, t):
    import torch.nn.functional as F

    zt = torch.from_numpy(z.copy()).requires_grad_(True)
    if loss == "cross_entropy":
        v = F.cross_entropy(zt, torch.from_numpy(t.astype(np.int64)), reduction="sum")
    elif loss == "binary_cross_entropy":
        v = F.binary_cross_entropy_with_logits(zt, torch.from_numpy(t), reduction="sum")
    elif loss == "poisson":
        v = F.poisson_nll_loss(zt, torch.from_numpy(t), log_input=True, full=False,
                               reduction="sum")
    else:
        v = F.mse_loss(zt, torch.from_numpy(t), reduction="sum")
    v.backward()
    return float(v.detach()), zt.grad.numpy().ravel()


LOSSES = ("mse", "cross_entropy", "binary_cross_entropy", "poisson")


def _run_cases(fn, loss, cases):
    """fn(loss, z, t) over the (z, t) cases: every value, every gradient."""
    vals, grads = [], []
    for z, t in cases:
        v, g = fn(loss, z, t)
        vals.append(v)
        grads.append(g)
    return np.array(vals), np.concatenate(grads)


def _loss_errors(label, dtype, impl, got, exact):
    """Records the worst ulp error of the values and of the gradients (got and
    exact: (values, gradients)) and returns what is over TOL, as messages."""
    errs = []
    for what, g, ex in zip(("loss", "gradient"), got, exact):
        err = ulp_errors(g, ex, dtype)
        record(f"{label} {what}", dtype, impl, worst(err))
        bad = np.flatnonzero(err > TOL[dtype])
        if bad.size:
            errs.append(f"{what}: {bad.size} points over {TOL[dtype]} ulp, worst {worst(err):.3g}")
    return errs


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_loss_and_gradient(loss, impl, dtype):
    got = _run_cases(functools.partial(_loss_impl, impl), loss, loss_cases(loss, dtype))
    errs = _loss_errors(loss, dtype, impl, got, exact_loss(loss, dtype))
    assert not errs, f"{loss} {_name(dtype)} {impl}: " + "; ".join(errs)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_torch_loss_column(loss, dtype):
    if torch is None:
        pytest.skip("torch is not installed: no comparison column")
    got = _run_cases(_torch_loss, loss, loss_cases(loss, dtype))
    _loss_errors(loss, dtype, "torch", got, exact_loss(loss, dtype))  # a column, not asserted


def test_confident_cross_entropy_examples():
    # The motivating case: a confident correct prediction has a loss and a
    # true-class gradient of ~(k-1) e^-a, not 0 (float64 and float32).
    for dtype, a in ((np.float64, 40.0), (np.float32, 30.0)):
        z = np.array([[a, 0.0, 0.0]], dtype=dtype)
        value, _, d = fm.ops.loss_forward_backward("cross_entropy", z, z, np.array([0]))
        expect = float(2 * mp.exp(-a))
        assert value == pytest.approx(expect, rel=1e-5)
        assert float(d[0, 0]) == pytest.approx(-expect, rel=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_infinite_inputs_give_the_limits(dtype):
    z = np.array([[-np.inf, np.inf]], dtype=dtype)
    limits = {  # act: (act(-inf), act(inf)), (act'(-inf), act'(inf))
        "sigmoid": ((0, 1), (0, 0)), "tanh": ((-1, 1), (0, 0)), "gelu": ((0, np.inf), (0, 1)),
        "softplus": ((0, np.inf), (0, 1)), "elu": ((-1, np.inf), (0, 1)),
    }
    for act, (fwd, der) in limits.items():
        for impl in ("core", "reference"):
            got_f = _act_impl(impl, act, z.ravel(), False)
            got_d = _act_impl(impl, act, z.ravel(), True)
            # Equal, or within the floor of a 0 limit: float32's fast exp
            # clamps its argument at -87 (e^-87 ~ 1.6e-38, see the docstring).
            for got, want in ((got_f, fwd), (got_d, der)):
                want = np.array(want, dtype=dtype)
                ok = (got == want) | ((want == 0) & (np.abs(got) <= FLOOR[dtype]))
                assert ok.all(), (act, impl, got, want)


# --- residuals that cancel: soft targets, one-hot rows, counts ---------------
#
# The gradients p_j t_sum - t_j (cross-entropy with dense targets),
# sigmoid(z) - t (binary cross-entropy, 0 < t < 1) and exp(z) - t (poisson)
# vanish at data-dependent zeros (softmax(z)_j = t_j / t_sum, z = logit t,
# z = log t). Grids: the float neighbours of each zero for a few targets (the
# inputs whose residual is a few ulp of t or less), relative offsets 2^-j
# from it, the three nearest inputs for RANDOM_TARGETS seeded random targets,
# and the logarithmic grid of both signs with soft targets. The core and the
# reference recompute these residuals in double-double (csrc/nn/dd.h, ~2^-106
# relative to the cancelling term a: t_j, t, 1 - t, or for a dominant soft
# target the other classes' sum), and the float64 ones below 2^-48 of a again
# in triple-double (csrc/nn/td.h, ~2^-150). Every point is bounded; those
# below NEAR_ZERO_F64 of a (the triple-double ones) are also recorded on
# their own ("... near zero").

NEAR_ZERO_F64 = 2.0 ** -48
# float64 (z, t) pairs nearest to a zero, found by a search over 4000 random
# targets per kind (the three floats nearest each zero), where double-double
# misses 4 ulp, by 50 .. 10^4 ulp: the residual is 2^-61 .. 2^-73 of t. For
# ce_soft t is the row (t, 1 - t) and z the row (z, 0).
HARD_F64 = {
    "bce_soft": ((-0.003680388513276646, 0.49907990391025897),
                 (0.13396011982460776, 0.5334400372432689),
                 (0.010265037880563663, 0.5025662369362672),
                 (-0.6581749501237488, 0.34114970276997464),
                 (1.4803521529624308, 0.8146257654390555)),
    "poisson_counts": ((0.09347198341302314, 1.0979798412626558),
                       (-0.4428549821286218, 0.6422003308603061),
                       (1.8872925173495914, 6.60147109481772),
                       (2.6087173678548115, 13.581619453490003)),
    "ce_soft": ((0.13396011982460776, 0.5334400372432689),
                (-0.011692274920151126, 0.49707696457039524),
                (-1.4156162298583597, 0.19534974046719655)),
}
# float32 (z, t) pairs, found by a search over 400000 random float32 targets,
# whose exact residual is so far below t (2^-45 .. 2^-59 of it) that double
# precision alone (exp or sigmoid in double, then t subtracted) misses float32's
# 8 ulp by 10^3 .. 10^7 ulp: computing in double is not enough for float32.
HARD_F32 = {
    "bce_soft": ((3.337860107421875e-06, 0.5000008344650269),
                 (1.0251998901367188e-05, 0.5000025629997253),
                 (1.621246337890625e-05, 0.5000040531158447)),
    "poisson_counts": ((0.00022682955022901297, 1.0002268552780151),
                       (-0.0015870402567088604, 0.9984142184257507),
                       (-0.6013035178184509, 0.5480967164039612),
                       (0.041882604360580444, 1.0427720546722412),
                       (-0.17379045486450195, 0.8404729962348938)),
}
RANDOM_TARGETS = 60
SOFT_T = (1e-6, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999)
COUNTS = (1e-5, 0.5, 2.0, float(np.e), float(np.nextafter(np.e, 0.0)),
          float(np.nextafter(np.e, 4.0)), 2.75, 3.0, 7.5, 10.0, 1e5)
N_NEIGHBOURS = 12
N_OFFSETS = 50  # relative offsets 2^-1 .. 2^-50 from the zero, both sides


def _around(x, dtype, n_neighbours=N_NEIGHBOURS, n_offsets=N_OFFSETS):
    """Float neighbours of x (n_neighbours each side) and x (1 +- 2^-j)."""
    pts = [dtype(x)]
    for _ in range(n_neighbours):
        pts.append(np.nextafter(pts[-1], dtype(np.inf)))
        pts.insert(0, np.nextafter(pts[0], dtype(-np.inf)))
    for j in range(1, n_offsets + 1):
        for s in (1.0, -1.0):
            pts.append(dtype(x * (1.0 + s * 2.0 ** -j)))
    return np.unique(np.array(pts, dtype=dtype))


@functools.lru_cache(maxsize=None)
def cancel_cases(kind, dtype):
    """Rows (z (1, k), t (1, k)) of one kind: ce_onehot, ce_soft, bce_soft,
    poisson_counts."""
    rows = []
    rng = np.random.default_rng(12)
    soft_t = SOFT_T + tuple(rng.uniform(0.001, 0.999, RANDOM_TARGETS))
    counts = COUNTS + tuple(10.0 ** rng.uniform(-3.0, 6.0, RANDOM_TARGETS))
    # a few neighbours for the listed targets, the nearest three for the random
    near = {t: (N_NEIGHBOURS, N_OFFSETS) for t in SOFT_T + COUNTS}
    m = np.concatenate([_mags(dtype, 60), np.linspace(0.0, 40.0, 21)])
    if kind == "ce_onehot":
        for a in m:
            for off in (0.0, 1e4):
                for c in (0, 1):
                    for s in (1.0, -1.0):
                        z = np.array([[off + s * a, off, off - 1.0]], dtype=dtype)
                        if np.all(np.isfinite(z)) and np.abs(z).max() < 0.1 * np.finfo(dtype).max:
                            rows.append((z, np.eye(3, dtype=dtype)[c][None, :]))
    elif kind == "ce_soft":
        # (0.7, 0.2, 0.1) over the class-id grid; rows summing to 0.9; and
        # the neighbours of each zero p_0 = t_0 / t_sum (k = 2 and 3).
        for tt in ((0.7, 0.2, 0.1), (0.6, 0.3, 0.0)):
            t = np.array([tt], dtype=dtype)
            for a in m:
                for s in (1.0, -1.0):
                    rows.append((np.array([[s * a, 0.0, -1.0]], dtype=dtype), t))
        with mp.workdps(60):
            for t0 in soft_t:
                t = np.array([[t0, 1.0 - t0]], dtype=dtype)
                ts = [mp.mpf(float(v)) for v in t.ravel()]
                for z0 in _around(float(mp.log(ts[0] / ts[1])), dtype, *near.get(t0, (1, 0))):
                    rows.append((np.array([[z0, 0.0]], dtype=dtype), t))
            for z0, t0 in HARD_F64["ce_soft"]:
                rows.append((np.array([[z0, 0.0]], dtype=dtype),
                             np.array([[t0, 1.0 - t0]], dtype=dtype)))
            for tt in ((0.7, 0.2, 0.1), (0.5, 0.25, 0.125)):
                t = np.array([tt], dtype=dtype)
                ts = [mp.mpf(float(v)) for v in t.ravel()]
                z12 = np.array([-0.5, 1.25], dtype=dtype)
                rest = mp.fsum(mp.exp(mp.mpf(float(v))) for v in z12)
                root = mp.log(ts[0] / (ts[1] + ts[2]) * rest)  # p_0 = t_0 / t_sum
                for z0 in _around(float(root), dtype):
                    rows.append((np.array([[z0, z12[0], z12[1]]], dtype=dtype), t))
    elif kind == "bce_soft":
        for t0 in soft_t:
            t = np.array([[t0]], dtype=dtype)
            tm = mp.mpf(float(t[0, 0]))
            with mp.workdps(60):
                root = float(mp.log(tm) - mp.log1p(-tm))
            for z0 in _around(root, dtype, *near.get(t0, (1, 0))):
                rows.append((np.array([[z0]], dtype=dtype), t))
        for t0 in (0.3, 0.999):
            for a in np.concatenate([m, -m]):
                rows.append((np.array([[a]], dtype=dtype), np.array([[t0]], dtype=dtype)))
        for z0, t0 in HARD_F32["bce_soft"] + HARD_F64["bce_soft"]:
            rows.append((np.array([[z0]], dtype=dtype), np.array([[t0]], dtype=dtype)))
    else:  # poisson_counts
        for z0, t0 in HARD_F32["poisson_counts"] + HARD_F64["poisson_counts"]:
            rows.append((np.array([[z0]], dtype=dtype), np.array([[t0]], dtype=dtype)))
        big = np.log(np.finfo(dtype).max)
        counts = counts + ((1e300,) if dtype == np.float64 else (1e30,))
        near[counts[-1]] = (N_NEIGHBOURS, N_OFFSETS)
        for t0 in counts:
            t = np.array([[t0]], dtype=dtype)
            with mp.workdps(60):
                root = float(mp.log(mp.mpf(float(t[0, 0]))))
            for z0 in _around(root, dtype, *near.get(t0, (1, 0))):
                if z0 < big:
                    rows.append((np.array([[z0]], dtype=dtype), t))
        for t0 in (3.0, 0.5):
            for a in np.linspace(-80.0, 80.0, 81):
                rows.append((np.array([[a]], dtype=dtype), np.array([[t0]], dtype=dtype)))
    return rows


def _exact_cancel_row(kind, z, t):
    """(loss, gradients, cancelling terms a_j) of one row, at 120 digits (the
    residuals near a zero can be ~2^-110 of their terms; 120 digits leave
    them ~290 bits)."""
    with mp.workdps(120):
        zs = [mp.mpf(float(v)) for v in z.ravel()]
        ts = [mp.mpf(float(v)) for v in t.ravel()]
        if kind.startswith("ce"):
            mx = max(zs)
            e = [mp.exp(v - mx) for v in zs]
            s = mp.fsum(e)
            lse = mp.log(s)
            tsum = mp.fsum(ts)
            value = mp.fsum(tj * ((mx - zj) + lse) for tj, zj in zip(ts, zs))
            grad = [ej / s * tsum - tj for ej, tj in zip(e, ts)]
            # The cancelling term: t_j, but for a dominant target (t_c >
            # t_sum / 2), whose residual is the complement -sum_{j != c}.
            c = max(range(len(ts)), key=lambda j: ts[j])
            terms = list(ts)
            if ts[c] > tsum / 2:
                terms[c] = tsum - ts[c]
            return +value, [+g for g in grad], terms
        x, tt = zs[0], ts[0]
        if kind == "bce_soft":
            value = mp.log1p(mp.exp(-abs(x))) + (x * (1 - tt) if x > 0 else -x * tt)
            return +value, [1 / (1 + mp.exp(-x)) - tt], [1 - tt if x > 0 else tt]
        return mp.exp(x) - tt * x, [mp.exp(x) - tt], [tt]


@functools.lru_cache(maxsize=None)
def exact_cancel(kind, dtype):
    vals, grads, terms = [], [], []
    for z, t in cancel_cases(kind, dtype):
        v, g, a = _exact_cancel_row(kind, z, t)
        vals.append(v)
        grads.extend(g)
        terms.extend(a)
    return tuple(vals), tuple(grads), tuple(terms)


CANCEL_LOSS = {"ce_onehot": "cross_entropy", "ce_soft": "cross_entropy",
               "bce_soft": "binary_cross_entropy", "poisson_counts": "poisson"}
CANCEL_NAME = {"ce_onehot": "cross_entropy one-hot", "ce_soft": "cross_entropy soft",
               "bce_soft": "binary_cross_entropy soft", "poisson_counts": "poisson counts"}


def _near_zero(kind, grads, terms, dtype):
    """The float64 points whose exact residual is below NEAR_ZERO_F64 of its
    cancelling term (see above), recorded on their own; none for float32,
    nor for one-hot rows."""
    if dtype == np.float32 or kind == "ce_onehot":  # one-hot: the exact complement form
        return np.zeros(len(grads), dtype=bool)
    return np.array([abs(g) < NEAR_ZERO_F64 * abs(a) for g, a in zip(grads, terms)])


def _run_cancel(fn, kind, dtype):
    vals, grads = [], []
    for z, t in cancel_cases(kind, dtype):
        v, g = fn(CANCEL_LOSS[kind], z, t)
        vals.append(v)
        grads.append(g)
    return np.array(vals), np.concatenate(grads)


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("kind", list(CANCEL_LOSS))
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_cancelling_residuals(kind, impl, dtype):
    vals, grads = _run_cancel(functools.partial(_loss_impl, impl), kind, dtype)
    ev, eg, terms = exact_cancel(kind, dtype)
    near = _near_zero(kind, eg, terms, dtype)
    errs = []
    checks = [("gradient", grads, eg, ~near)]
    checks.append(("loss", vals, ev, np.ones(len(ev), dtype=bool)))
    for what, got, ex, keep in checks:
        err = ulp_errors(got, ex, dtype)
        name = f"{CANCEL_NAME[kind]} {what}"
        record(name, dtype, impl, worst(np.where(keep, err, np.nan)))
        if not keep.all():
            record(name + " near zero", dtype, impl, worst(np.where(keep, np.nan, err)))
        bad = np.flatnonzero(err > TOL[dtype])  # near zero included
        if bad.size:
            errs.append(f"{what}: {bad.size} points over {TOL[dtype]} ulp, worst "
                        f"{worst(err):.3g}; indices {bad[:8].tolist()}")
    assert not errs, f"{kind} {_name(dtype)} {impl}: " + "; ".join(errs)


def _hard_f64_rows(kind):
    for z0, t0 in HARD_F64[kind]:
        if kind == "ce_soft":
            yield np.array([[z0, 0.0]]), np.array([[t0, 1.0 - t0]])
        else:
            yield np.array([[z0]]), np.array([[t0]])


@pytest.mark.parametrize("kind", list(HARD_F64))
def test_double_double_is_not_enough_near_a_zero(kind):
    # HARD_F64: inputs nearest to a zero where double-double (the reference's
    # _dd_* twins of csrc/nn/dd.h, all that the core used before the
    # triple-double path) misses 4 ulp; the core and the reference, which
    # take triple-double there, are within it.
    for z, t in _hard_f64_rows(kind):
        _, eg, _ = _exact_cancel_row(kind, z, t)
        if kind == "ce_soft":
            dd = ref._cross_entropy_soft_exact(z, t, np.zeros(z.shape, dtype=bool)).ravel()
        elif kind == "bce_soft":
            dd = ref._dd_sigmoid_minus(z.ravel(), t.ravel())
        else:
            dd = ref._dd_exp_minus(z.ravel(), t.ravel())
        assert worst(ulp_errors(dd, eg, np.float64)) > TOL[np.float64], (z, t)
        for impl in ("core", "reference"):
            _, got = _loss_impl(impl, CANCEL_LOSS[kind], z, t)
            err = worst(ulp_errors(got, eg, np.float64))
            assert err <= TOL[np.float64], (impl, z, t, err)


def _torch_dense_loss(loss, z, t):
    import torch.nn.functional as F

    zt = torch.from_numpy(z.copy()).requires_grad_(True)
    tt = torch.from_numpy(t.copy())
    if loss == "cross_entropy":
        v = F.cross_entropy(zt, tt, reduction="sum")
    elif loss == "binary_cross_entropy":
        v = F.binary_cross_entropy_with_logits(zt, tt, reduction="sum")
    else:
        v = F.poisson_nll_loss(zt, tt, log_input=True, full=False, reduction="sum")
    v.backward()
    return float(v.detach()), zt.grad.numpy().ravel()


@pytest.mark.parametrize("kind", list(CANCEL_LOSS))
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_torch_cancelling_column(kind, dtype):
    if torch is None:
        pytest.skip("torch is not installed: no comparison column")
    vals, grads = _run_cancel(_torch_dense_loss, kind, dtype)
    ev, eg, terms = exact_cancel(kind, dtype)
    near = _near_zero(kind, eg, terms, dtype)
    err = ulp_errors(grads, eg, dtype)
    record(f"{CANCEL_NAME[kind]} gradient", dtype, "torch", worst(np.where(near, np.nan, err)))
    if near.any():
        record(f"{CANCEL_NAME[kind]} gradient near zero", dtype, "torch",
               worst(np.where(near, err, np.nan)))
    if kind != "poisson_counts":
        record(f"{CANCEL_NAME[kind]} loss", dtype, "torch", worst(ulp_errors(vals, ev, dtype)))


# --- cross-entropy on random rows ----------------------------------------------
#
# The grids above use rows whose differences z_j - max z are (nearly) exact;
# random logits are not, and rounding d = fl(z_j - max) costs e^d a relative
# |d| 2^-53 (dozens of ulp at d ~ -100), while a plain sum of the row's
# exponentials carries up to k ulp. These rows exercise both: several seeds,
# k = 2 .. 6 and k = 1000, logit scales 1 .. 100, ties at the max, huge
# offsets with a small spread; targets as class ids, one-hot rows, and soft
# rows with zero entries that need not sum to 1.

CE_KINDS = ("labels", "onehot", "soft")
CE_SEEDS = (0, 1, 2)
CE_SCALES = (1.0, 3.0, 10.0, 30.0, 100.0)


@functools.lru_cache(maxsize=None)
def random_ce_cases(kind, dtype):
    """Rows (z (1, k), target as passed, u (k,) the exact dense target)."""
    rows = []
    for seed in CE_SEEDS:
        rng = np.random.default_rng([seed, CE_KINDS.index(kind), np.dtype(dtype).itemsize])
        shapes = [(int(rng.integers(2, 7)), False) for _ in range(60)] + [(1000, True)]
        for k, wide in shapes:
            scale = float(rng.choice(CE_SCALES))
            z = rng.standard_normal(k) * scale
            if wide and seed == 1:
                z = rng.standard_normal(k)  # confident: one class far ahead
                z[rng.integers(k)] += 40.0
            if rng.random() < 0.2:  # a tie at the max
                z[rng.choice(k, size=2, replace=False)] = z.max()
            if rng.random() < 0.2:  # a huge offset, a small spread
                z = 1e4 + z / scale
            z = z.astype(dtype)[None]
            c = int(rng.integers(k))
            if kind == "labels":
                t = np.array([c], dtype=np.int32)
                u = np.eye(k)[c]
            elif kind == "onehot":
                t = np.eye(k, dtype=dtype)[c][None]
                u = t[0].astype(np.float64)
            else:
                v = rng.uniform(0.0, 1.0, k)
                v[rng.choice(k, size=int(rng.integers(0, k)), replace=False)] = 0.0
                v[c] = max(v[c], 0.05)  # never all zero
                v *= float(rng.choice((1.0, 1.0 / v.sum(), 0.01, 3.0)))
                t = v.astype(dtype)[None]
                u = t[0].astype(np.float64)
            rows.append((z, t, u))
    return rows


def _exact_ce_dense(z, u):
    """(loss, gradient) of one row with dense target u exactly, in forms that
    do not cancel: s = 1 + r (r the sum of e_j = e^(z_j - max) over j != m,
    m the first argmax), loss sum_j u_j ((max - z_j) + log1p(r)), gradient
    (e_j t_sum - u_j s) / s, for j = m as (sum_{j != m} u_j - u_m r) / s, so
    that 1/(1 + r) - 1 is never formed."""
    zs = [mp.mpf(float(v)) for v in z.ravel()]
    us = [mp.mpf(float(v)) for v in u]
    m = max(range(len(zs)), key=lambda j: zs[j])
    mx = zs[m]
    e = [mp.exp(v - mx) for v in zs]
    r = mp.fsum(v for j, v in enumerate(e) if j != m)
    s = 1 + r
    tsum = mp.fsum(us)
    lse = mp.log1p(r)
    value = mp.fsum(uj * ((mx - zj) + lse) for uj, zj in zip(us, zs) if uj != 0)
    grad = [(ej * tsum - uj * s) / s for ej, uj in zip(e, us)]
    grad[m] = (mp.fsum(uj for j, uj in enumerate(us) if j != m) - us[m] * r) / s
    return value, grad


@functools.lru_cache(maxsize=None)
def exact_random_ce(kind, dtype):
    vals, grads = [], []
    for z, _, u in random_ce_cases(kind, dtype):
        v, g = _exact_ce_dense(z, u)
        vals.append(v)
        grads.extend(g)
    return tuple(vals), tuple(grads)


def _run_random_ce(fn, kind, dtype):
    return _run_cases(fn, "cross_entropy", ((z, t) for z, t, _ in random_ce_cases(kind, dtype)))


@pytest.mark.parametrize("impl", ["core", "reference"])
@pytest.mark.parametrize("kind", CE_KINDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_cross_entropy_random_rows(kind, impl, dtype):
    got = _run_random_ce(functools.partial(_loss_impl, impl), kind, dtype)
    errs = _loss_errors(f"cross_entropy random {kind}", dtype, impl, got,
                        exact_random_ce(kind, dtype))
    assert not errs, f"cross_entropy random {kind} {_name(dtype)} {impl}: " + "; ".join(errs)


@pytest.mark.parametrize("kind", CE_KINDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=_name)
def test_torch_random_cross_entropy_column(kind, dtype):
    if torch is None:
        pytest.skip("torch is not installed: no comparison column")
    fn = _torch_loss if kind == "labels" else _torch_dense_loss
    _loss_errors(f"cross_entropy random {kind}", dtype, "torch", _run_random_ce(fn, kind, dtype),
                 exact_random_ce(kind, dtype))  # a column, not asserted
