"""Pure-NumPy reference for fastmlp: the network mathematics, written to be read.

This module is the oracle that the C++ core is tested against and, at the same
time, the project's explanation of backpropagation. Every function here has a
twin in ``csrc/`` with the same name, argument order and shapes; a parity test
that fails therefore points at exactly one kernel. Nothing here is fast, and
nothing here is clever: each line is meant to be checked against a formula.

Notation
--------
Arrays are row-major with the batch first. For one dense layer::

    x  (n, in)    the layer's input: n samples, one per row
    w  (out, in)  the weight matrix, laid out like torch.nn.Linear.weight
    b  (out,)     the bias
    z  (n, out)   the pre-activation
    y  (n, out)   the post-activation, which is the next layer's x

A ``d`` in front of a name means "derivative of the scalar loss L with respect
to that array", with the same shape as the array: ``dy[i, j] = dL/dy[i, j]``.

Backpropagation in four equations
---------------------------------
The forward pass of a layer is::

    z = x @ w.T + b          z[i, j] = sum_k x[i, k] * w[j, k] + b[j]
    y = act(z)               applied element by element

Backpropagation is the chain rule applied to these two lines in reverse. It
receives dy from the layer above (or from the loss) and produces everything
the layer needs plus the dy of the layer below:

1. Through the activation. y[i, j] depends on z[i, j] alone, so the Jacobian
   dy/dz is diagonal and the chain rule collapses to a product::

       dz = dy * act'(z)                                  (n, out)

2. Into the weights. w[j, k] touches every sample i through z[i, j], with
   dz[i, j]/dw[j, k] = x[i, k]; summing the contributions over the batch::

       dw[j, k] = sum_i dz[i, j] * x[i, k]   i.e.  dw = dz.T @ x     (out, in)

3. Into the bias. dz[i, j]/db[j] = 1 for every sample, so::

       db[j] = sum_i dz[i, j]                i.e.  db = dz.sum(axis=0)  (out,)

4. Into the input, which becomes the dy of the layer below. x[i, k] feeds
   every unit j of the same sample i, with dz[i, j]/dx[i, k] = w[j, k]::

       dx[i, k] = sum_j dz[i, j] * w[j, k]   i.e.  dx = dz @ w        (n, in)

A network is a stack of layers, so the backward pass starts at the loss with
dy (or directly dz, see below) of the output layer and applies 1-4 from the
last layer to the first. Each layer only needs its own x, z and y from the
forward pass, which is why both the forward pass here and the core's
workspace keep z and y for every layer.

The loss is a mean over the batch, so every loss gradient carries a factor
1/n (or 1/(n*k) for element-wise means); it enters once, at the top, and then
flows through all of 1-4 unchanged. The weight gradients are therefore
gradients of the *mean* loss, as in PyTorch.

Losses that own the output transform
------------------------------------
Softmax followed by cross entropy, and sigmoid followed by binary cross
entropy, have far simpler and far more stable derivatives together than
apart: d/dz of the combination is ``softmax(z) - t`` (resp.
``sigmoid(z) - t``), divided by the batch size, whereas going through dy and
then act'(z) divides by probabilities that may be 0. So, exactly like
torch.nn.CrossEntropyLoss and BCEWithLogitsLoss, those losses take the output
layer's pre-activation z ("logits") and return dz directly; the output layer
then has the identity activation. Poisson regression is the same with exp:
its output is the predicted mean exp(z), the loss is written in z (as
torch.nn.PoissonNLLLoss(log_input=True)), and dz = ``exp(z) - t`` (over
n k). Mean squared error has no such transform: it takes the output y of the
last layer (whatever its activation) and returns dy, which goes through step
1 like any other layer.

Where the C++ twins live
------------------------
==================================  =====================================================
C++                                 this module
==================================  =====================================================
csrc/nn/activations.h               sigmoid, softmax, log_softmax, activation_forward,
                                    activation_backward
csrc/nn/dense.h                     dense_forward, dense_backward
csrc/nn/losses.h                    mse_*, cross_entropy_*, binary_cross_entropy_*,
                                    poisson_*, output_transform, loss_forward,
                                    loss_backward
csrc/optim/optimizer.h              sgd_step, adam_step, rmsprop_step, adagrad_step,
                                    optimizer_step
csrc/nn/dropout.h, csrc/nn/rng.h    dropout_mask, philox4x32
csrc/nn/batchnorm.h                 batch_norm_forward, batch_norm_backward
csrc/optim/regularize.h             l1_l2_penalty, l1_l2_gradient, clip_grad_norm,
                                    clip_grad_value
csrc/network/network.h              Network
csrc/gemm/gemm.h                    matmul
==================================  =====================================================

Conventions
-----------
* Functions return new arrays and never modify their inputs, with two
  documented exceptions: ``numerical_gradient`` perturbs and restores its
  array, and ``Network.sgd_step`` updates the network's parameters in place.
* Arithmetic happens in the dtype of the inputs: float32 in, float32 out.
  Constants are Python floats, which NumPy treats as "weak" and never lets
  widen an array's dtype.
* Definitions are PyTorch's documented ones: leaky_relu slope 0.01, elu
  alpha 1, softplus beta 1, gelu in its exact erf form, losses averaged as
  torch's default ``reduction='mean'`` averages them, SGD as torch.optim.SGD.
* Nothing overflows for large ``|z|`` (say z = +-1000): every exponential is
  taken of a non-positive number. Such exponentials may *underflow* to 0,
  which is harmless and which NumPy ignores by default. The one exception is
  poisson, whose output exp(z) *is* the predicted mean: beyond the dtype's
  range it is inf (silently, as in the core), and so is the loss.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Network",
    "activation_backward",
    "activation_forward",
    "binary_cross_entropy_backward",
    "binary_cross_entropy_loss",
    "cross_entropy_backward",
    "cross_entropy_loss",
    "dense_backward",
    "dense_forward",
    "log_softmax",
    "loss_backward",
    "loss_forward",
    "matmul",
    "mse_backward",
    "mse_loss",
    "numerical_gradient",
    "output_transform",
    "poisson_backward",
    "poisson_loss",
    "round_bf16",
    "sgd_step",
    "sigmoid",
    "softmax",
]

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy", "poisson")
# What the losses that own their output transform apply to the logits z.
_OUTPUT_TRANSFORM_NAME = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                          "poisson": "exp"}

_LEAKY_SLOPE = 0.01  # torch.nn.LeakyReLU default negative_slope
_SQRT1_2 = math.sqrt(0.5)  # 1/sqrt(2), as M_SQRT1_2 in torch's gelu kernel
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)  # normalises the standard normal density

# math.erfc applied element by element. It evaluates in double precision; the
# result is cast back to the input's dtype by _erfc below. The normal CDF is
# written Phi(z) = erfc(-z / sqrt 2) / 2 rather than (1 + erf(z / sqrt 2)) / 2:
# the two are equal, but for z << 0 the second subtracts two numbers close to
# 1 and keeps only a few correct digits, while erfc is accurate everywhere.
_erfc_f64 = np.vectorize(math.erfc, otypes=[np.float64])


def _erfc(z):
    return _erfc_f64(z).astype(z.dtype, copy=False)


# Exact at the extremes (tests/test_extremes.py): the formulas below work in
# float64 and round once to the input's dtype, so float32 results are exact
# to its precision; in float64 each is written without cancellation.


def _wide(z):
    """z as float64 (float32 inputs are evaluated in double, rounded once)."""
    return np.asarray(z, dtype=np.float64)


_SPLIT = 134217729.0  # 2^27 + 1: Veltkamp's splitter for doubles


def _two_prod_err(a, b, p):
    """a * b - p exactly, where p = fl(a * b) (Dekker's product, the fma-free
    form of C++'s std::fma(a, b, -p)); |a|, |b| < 2^500 so the split cannot
    overflow."""
    ta = _SPLIT * a
    ah = ta - (ta - a)
    al = a - ah
    tb = _SPLIT * b
    bh = tb - (tb - b)
    bl = b - bh
    return ((ah * bh - p) + ah * bl + al * bh) + al * bl


# Double-double arithmetic (a value is hi + lo, about 106 bits) for the loss
# gradients' residuals that cancel: softmax(z) t_sum - t, sigmoid(z) - t and
# exp(z) - t vanish at data-dependent points, where the exact value is far
# below the rounding of the exponential itself. Used only on the elements
# near such a zero (_may_cancel). C++: csrc/nn/dd.h, line by line.


def _dd_two_sum(a, b):
    """a + b = s + e exactly (Knuth)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _dd_fast_two_sum(a, b):
    """a + b = s + e exactly, for |a| >= |b|."""
    s = a + b
    return s, b - (s - a)


def _dd_two_prod(a, b):
    p = a * b
    return p, _two_prod_err(a, b, p)


def _dd_add(a, b):
    """The accurate double-double sum (relative error ~2^-105 also when the
    operands nearly cancel)."""
    sh, sl = _dd_two_sum(a[0], b[0])
    th, tl = _dd_two_sum(a[1], b[1])
    sh, sl = _dd_fast_two_sum(sh, sl + th)
    return _dd_fast_two_sum(sh, sl + tl)


def _dd_mul(a, b):
    ph, pl = _dd_two_prod(a[0], b[0])
    return _dd_fast_two_sum(ph, pl + (a[0] * b[1] + a[1] * b[0]))


def _dd_neg(a):
    return -a[0], -a[1]


def _dd_prod_diff(a, b, c, d):
    """a b - c d, accurate where the products nearly cancel: the high parts'
    products are split exactly and their difference is exact, so every
    rounding is relative to the difference, not to the products."""
    p, q = _dd_two_prod(a[0], b[0]), _dd_two_prod(c[0], d[0])
    acc = _dd_two_sum(p[0], -q[0])
    acc = _dd_add(acc, _dd_two_sum(p[1], -q[1]))
    acc = _dd_add(acc, _dd_two_prod(a[0], b[1]))
    acc = _dd_add(acc, _dd_two_prod(a[1], b[0]))
    acc = _dd_add(acc, _dd_neg(_dd_two_prod(c[0], d[1])))
    acc = _dd_add(acc, _dd_neg(_dd_two_prod(c[1], d[0])))
    return _dd_add(acc, (a[1] * b[1], -(c[1] * d[1])))


_DD_LN2 = (float.fromhex("0x1.62e42fefa39efp-1"), float.fromhex("0x1.abc9e3b39803fp-56"),
           float.fromhex("0x1.7b57a079a1934p-111"))
_DD_HALVINGS = 5
_DD_FIRST_DD = 7  # _DD_INV_FACT[7] = 1/7!
# 1/n! for n = 14 .. 2 as (hi, lo), from mpmath.
_DD_INV_FACT = tuple((float.fromhex(h), float.fromhex(lo)) for h, lo in (
    ("0x1.93974a8c07c9dp-37", "0x1.05d6f8a2efd1fp-92"),
    ("0x1.6124613a86d09p-33", "0x1.f28e0cc748ebep-87"),
    ("0x1.1eed8eff8d898p-29", "-0x1.2aec959e14c06p-83"),
    ("0x1.ae64567f544e4p-26", "-0x1.c062e06d1f209p-80"),
    ("0x1.27e4fb7789f5cp-22", "0x1.cbbc05b4fa99ap-76"),
    ("0x1.71de3a556c734p-19", "-0x1.c154f8ddc6c00p-73"),
    ("0x1.a01a01a01a01ap-16", "0x1.a01a01a01a01ap-76"),
    ("0x1.a01a01a01a01ap-13", "0x1.a01a01a01a01ap-73"),
    ("0x1.6c16c16c16c17p-10", "-0x1.f49f49f49f49fp-65"),
    ("0x1.1111111111111p-7", "0x1.1111111111111p-63"),
    ("0x1.5555555555555p-5", "0x1.5555555555555p-59"),
    ("0x1.5555555555555p-3", "0x1.5555555555555p-57"),
    ("0x1.0000000000000p-1", "0x0.0p+0"),
))


def _dd_expm1_reduced(x, xlo):
    """e^(x + xlo) = 2^k (1 + m): returns (m as (hi, lo), k). Reduction by a
    triple ln2, r / 2^5, Taylor through r^14 in double-double, five squarings
    m -> 2m + m^2 (relative error about 2^-106)."""
    kd = np.rint(x * 1.4426950408889634)
    r = _dd_add((x, xlo), _dd_neg(_dd_two_prod(kd, _DD_LN2[0])))
    r = _dd_add(r, _dd_neg(_dd_two_prod(kd, _DD_LN2[1])))
    r = _dd_fast_two_sum(r[0], r[1] - kd * _DD_LN2[2])
    r = (np.ldexp(r[0], -_DD_HALVINGS), np.ldexp(r[1], -_DD_HALVINGS))
    # r^8/8! .. r^14/14! in double (below 2^-60 of r), double-double from 1/7!.
    qh = np.full_like(x, _DD_INV_FACT[0][0])
    for c in _DD_INV_FACT[1:_DD_FIRST_DD]:
        qh = qh * r[0] + c[0]
    q = (qh, np.zeros_like(x))
    for c in _DD_INV_FACT[_DD_FIRST_DD:] + ((1.0, 0.0),):
        q = _dd_add(_dd_mul(q, r), c)
    m = _dd_mul(q, r)
    for _ in range(_DD_HALVINGS):
        m = _dd_add((2.0 * m[0], 2.0 * m[1]), _dd_mul(m, m))
    return m, kd.astype(np.int64)


def _dd_exp_neg(x, xlo):
    """e^(x + xlo), x <= 0, as (hi, lo); 0 below -746 (under half the
    smallest subnormal)."""
    out = x >= -746.0
    x, xlo = np.where(out, x, 0.0), np.where(out, xlo, 0.0)
    m, k = _dd_expm1_reduced(x, xlo)
    h, lo = _dd_add((np.ones_like(x), np.zeros_like(x)), m)
    return np.where(out, np.ldexp(h, k), 0.0), np.where(out, np.ldexp(lo, k), 0.0)


def _dd_exp_minus(z, t):
    """exp(z) - t = 2^k ((1 - t 2^-k) + m), t within a factor 4 of e^z."""
    m, k = _dd_expm1_reduced(z, np.zeros_like(z))
    s = _dd_add(_dd_two_sum(np.ones_like(z), -np.ldexp(t, -k)), m)
    return np.ldexp(s[0], k)


def _dd_sigmoid_minus(z, t):
    """sigmoid(z) - t: with E = e^-|z|, ((1 - t) - t E) / (1 + E) for z > 0,
    (E (1 - t) - t) / (1 + E) otherwise; the numerator in double-double."""
    e = _dd_exp_neg(-np.abs(z), np.zeros_like(z))
    one = (np.ones_like(z), np.zeros_like(z))
    tt = (t, np.zeros_like(t))
    omt = _dd_two_sum(np.ones_like(t), -t)
    num = np.where(z > 0, _dd_prod_diff(omt, one, e, tt)[0], _dd_prod_diff(e, omt, tt, one)[0])
    return num / (1.0 + e[0])


# Triple-double (x0 + x1 + x2, about 150 bits) for the float64 residuals that
# double-double leaves too few digits of: at an input nearest to a zero the
# residual can be 2^-60 .. 2^-110 of its term, and the double-double
# exponential's ~2^-106 is then several ulp of it. Used only where the
# double-double residual is below _TD_TIGHT of its term. An expansion is a
# list of arrays (one component per element, smallest first) whose exact sum
# is what was added to it, every step error-free. C++: csrc/nn/td.h, line by
# line (no zero elimination there either, so both take the same steps).

_TD_TIGHT = 2.0 ** -48  # C++: kTightF64


def _td_grow(h, b):
    """The expansion h plus b, exactly (Shewchuk's Grow-Expansion)."""
    out = []
    q = b
    for x in h:
        q, lo = _dd_two_sum(q, x)
        out.append(lo)
    out.append(q)
    return out


def _td_expansion(terms, h=None):
    h = [] if h is None else h
    for b in terms:
        h = _td_grow(h, b)
    return h


def _td_prods(a, b):
    """The exact products of every part of a and b (tuples of arrays), as
    terms for an expansion."""
    out = []
    for x in a:
        for y in b:
            p = x * y
            out += [p, _two_prod_err(x, y, p)]
    return out


def _td_est(h):
    s = np.zeros_like(h[0])
    for x in h:
        s = s + x
    return s


def _td_to_td(h):
    """An expansion as a triple-double: three times its rounded sum,
    subtracted exactly; the fourth remainder folded into the last part."""
    x = []
    for i in range(4):
        x.append(_td_est(h))
        if i < 3:
            h = _td_grow(h, -x[-1])
    return x[0], x[1], x[2] + x[3]


def _td_nearest(h):
    """The double nearest an expansion's sum (within a hair of half an ulp)."""
    x0, x1, x2 = _td_to_td(h)
    return x0 + (x1 + x2)


def _td_div(h, d):
    """The sum of expansion h over the triple-double d, within a hair of half
    an ulp: a first quotient q, then the exact remainder h - q d divided as a
    correction (td::div)."""
    dn = _td_nearest(list(d))
    q = _td_nearest(h) / dn
    return q + _td_nearest(_td_expansion(_td_prods((-q,), d), h)) / dn


def _td_ldexp(a, k):
    return tuple(np.ldexp(x, k) for x in a)


def _td_mul_add(a, b, c):
    """a b + c: the leading products exactly, the next ones rounded, a2 b2
    dropped (2^-200)."""
    terms = _td_prods((a[0],), (b[0], b[1])) + _td_prods((a[1],), (b[0],))
    terms += [a[0] * b[2], a[1] * b[1], a[2] * b[0], a[1] * b[2] + a[2] * b[1]]
    return _td_to_td(_td_expansion(terms + list(c)))


_TD_LN2 = tuple(float.fromhex(h) for h in (
    "0x1.62e42fefa39efp-1", "0x1.abc9e3b39803fp-56", "0x1.7b57a079a1934p-111",
    "-0x1.ace93a4ebe5d1p-165"))
_TD_HALVINGS = 8
# 1/n! for n = 15 .. 2 as (x0, x1, x2), from mpmath.
_TD_INV_FACT = tuple(tuple(float.fromhex(h) for h in c) for c in (
    ("0x1.ae7f3e733b81fp-41", "0x1.1d8656b0ee8cbp-97", "-0x1.6e142a138f825p-157"),
    ("0x1.93974a8c07c9dp-37", "0x1.05d6f8a2efd1fp-92", "0x1.3aa3346236a5dp-147"),
    ("0x1.6124613a86d09p-33", "0x1.f28e0cc748ebep-87", "-0x1.7b2c4c8a840bcp-141"),
    ("0x1.1eed8eff8d898p-29", "-0x1.2aec959e14c06p-83", "0x1.2fb0073dd2d9ep-139"),
    ("0x1.ae64567f544e4p-26", "-0x1.c062e06d1f209p-80", "0x1.c7880adcbc46ep-136"),
    ("0x1.27e4fb7789f5cp-22", "0x1.cbbc05b4fa99ap-76", "-0x1.c6d278883e8f5p-132"),
    ("0x1.71de3a556c734p-19", "-0x1.c154f8ddc6c00p-73", "0x1.71de3a556c734p-127"),
    ("0x1.a01a01a01a01ap-16", "0x1.a01a01a01a01ap-76", "0x1.a01a01a01a01ap-136"),
    ("0x1.a01a01a01a01ap-13", "0x1.a01a01a01a01ap-73", "0x1.a01a01a01a01ap-133"),
    ("0x1.6c16c16c16c17p-10", "-0x1.f49f49f49f49fp-65", "-0x1.27d27d27d27d2p-119"),
    ("0x1.1111111111111p-7", "0x1.1111111111111p-63", "0x1.1111111111111p-119"),
    ("0x1.5555555555555p-5", "0x1.5555555555555p-59", "0x1.5555555555555p-113"),
    ("0x1.5555555555555p-3", "0x1.5555555555555p-57", "0x1.5555555555555p-111"),
    ("0x1.0000000000000p-1", "0x0.0p+0", "0x0.0p+0"),
))


def _td_expm1_reduced(x, xlo):
    """e^(x + xlo) = 2^k (1 + m): returns (m as (x0, x1, x2), k). Reduction by
    a four-part ln2 in one exact expansion, r / 2^8, Taylor through r^15 and
    eight squarings m -> 2m + m^2 (C++: td::expm1_reduced)."""
    kd = np.rint(x * 1.4426950408889634)
    h = _td_expansion([x, xlo])
    for c in _TD_LN2:
        p = -kd * c
        h = _td_expansion([p, _two_prod_err(-kd, c, p)], h)
    r = _td_ldexp(_td_to_td(h), -_TD_HALVINGS)
    zero = np.zeros_like(x)
    q = tuple(zero + v for v in _TD_INV_FACT[0])
    for c in _TD_INV_FACT[1:] + ((1.0, 0.0, 0.0),):
        q = _td_mul_add(q, r, tuple(zero + v for v in c))
    m = _td_mul_add(q, r, (zero, zero, zero))
    for _ in range(_TD_HALVINGS):
        m = _td_mul_add(m, m, (2.0 * m[0], 2.0 * m[1], 2.0 * m[2]))
    return m, kd.astype(np.int64)


def _td_exp_neg(x, xlo):
    """e^(x + xlo), x <= 0, as a triple-double; 0 below -746."""
    out = x >= -746.0
    x, xlo = np.where(out, x, 0.0), np.where(out, xlo, 0.0)
    m, k = _td_expm1_reduced(x, xlo)
    e = _td_ldexp(_td_to_td(_td_expansion([np.ones_like(x), *m])), k)
    return tuple(np.where(out, v, 0.0) for v in e)


def _td_exp_minus(z, t):
    """exp(z) - t = 2^k ((1 - t 2^-k) + m), in one exact sum (td::exp_minus)."""
    m, k = _td_expm1_reduced(z, np.zeros_like(z))
    h = _td_expansion([np.ones_like(z), -np.ldexp(t, -k), *m])
    return np.ldexp(_td_nearest(h), k)


def _td_exp_minus_prod(z, t):
    """exp(z) - t z = 2^k ((1 + m) - t z 2^-k), t z exact, in one exact sum:
    the Poisson loss of one element where its terms nearly cancel
    (td::exp_minus_prod)."""
    m, k = _td_expm1_reduced(z, np.zeros_like(z))
    p = t * z
    h = _td_expansion([np.ones_like(z), -np.ldexp(p, -k), -np.ldexp(_two_prod_err(t, z, p), -k),
                       *m])
    return np.ldexp(_td_nearest(h), k)


def _td_sigmoid_minus(z, t):
    """sigmoid(z) - t with E = e^-|z| = 2^k (1 + m), the numerator scaled by
    2^-k and formed exactly: ((1 - t) 2^-k - t (1 + m)) for z > 0,
    ((1 - t) (1 + m) - t 2^-k) otherwise (td::sigmoid_minus)."""
    big = ~(np.abs(z) <= 746.0)
    zs = np.where(big, 0.0, z)
    m, k = _td_expm1_reduced(-np.abs(zs), np.zeros_like(zs))
    omt = _dd_two_sum(np.ones_like(t), -t)
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        # Both forms for every element (the other one may overflow, unused).
        pos = _td_expansion([np.ldexp(omt[0], -k), np.ldexp(omt[1], -k), -t]
                            + _td_prods((-t,), m))
        neg = _td_expansion([omt[0], omt[1]] + _td_prods(omt, m) + [-np.ldexp(t, -k)])
        den = _td_to_td(_td_expansion([np.ones_like(zs), np.ldexp(1.0, k), *_td_ldexp(m, k)]))
        out = np.ldexp(np.where(zs > 0, _td_div(pos, den), _td_div(neg, den)), k)
    return np.where(big, np.where(z > 0, 1.0 - t, -t), out)


def _may_cancel(q, a):
    """Whether a residual q - a (q ~ an exponential, rounded; a exact) may have
    lost digits: q within (a/2, 4a). Outside, the difference is at least half
    of q, and q's few ulp of error stay a few ulp of it. C++: may_cancel."""
    return (a > 0) & (q > 0.5 * a) & (q < 4.0 * a)


_RSQRT2_HI = 0.7071067811865476  # 1/sqrt 2 = _RSQRT2_HI + _RSQRT2_LO
_RSQRT2_LO = -4.833646656726457e-17
_2_RSQRTPI = 1.1283791670955126  # 2/sqrt pi


def _normal_cdf(z):
    """Phi(z) = erfc(-z/sqrt 2) / 2 in float64, exact in the left tail.

    erfc(x) ~ e^{-x^2} turns a relative error d of x into 2 x^2 d, so x is
    kept as x_hi + x_lo and erfc(x_hi + x_lo) = erfc(x_hi) - x_lo (2/sqrt pi)
    e^{-x_hi^2} (first order; x_lo ~ 1e-16 x_hi). C++: gelu_cdf_f64.
    """
    z = _wide(z)
    x = -z * _RSQRT2_HI
    e = _erfc_f64(x)
    inside = np.abs(z) < 40.0  # beyond, the correction is 0 (and would overflow)
    zc = np.where(inside, z, 0.0)
    xc = -zc * _RSQRT2_HI
    x_lo = _two_prod_err(-zc, _RSQRT2_HI, xc) - zc * _RSQRT2_LO
    with np.errstate(under="ignore"):
        corr = np.where(inside, x_lo * _2_RSQRTPI * np.exp(-xc * xc), 0.0)
    return 0.5 * (e - corr)


def _normal_pdf(z):
    """phi(z) in float64 with z^2 carried exactly (p + q): rounding z^2 alone
    costs z^2/2 ulps of relative error. C++: normal_pdf_f64."""
    z = _wide(z)
    inside = np.abs(z) < 40.0
    zc = np.where(inside, z, 0.0)
    p = zc * zc
    q = _two_prod_err(zc, zc, p)
    with np.errstate(under="ignore"):
        return np.where(inside, _INV_SQRT_2PI * np.exp(-0.5 * p) * (1.0 - 0.5 * q), 0.0)


# gelu'(z) = Phi(z) + z phi(z) vanishes at z0 below; within 0.35 of it the two
# terms cancel and the Taylor series about z0 (g^(k)(z0)/k!, k = 1..21, from
# mpmath at 50 digits) replaces them. C++: gelu_deriv_f64.
_GELU_ROOT_HI = -0.7517915246935645
_GELU_ROOT_LO = 1.4956759177009883e-17
_GELU_ROOT_TAYLOR = (
    0.43149399231404692, 0.38828498299055200, -0.018199676398671087,
    -0.11400823329722171, -0.014771522148244338, 0.019421679838189066,
    0.0045392283791254156, -0.0022395380680734972, -0.00074482683867468162,
    0.00018633974623233513, 8.6159478611165716e-05, -1.1214380188426641e-05,
    -7.7484613070037191e-06, 4.3284506257392275e-07, 5.7027649792421072e-07,
    -1.6044265494246428e-09, -3.5459866461783866e-08, -1.3969420864262021e-09,
    1.9031984050131398e-09, 1.4506418938779425e-10, -8.9500376927262555e-11,
)


def _gelu_deriv(z):
    z = _wide(z)
    near = np.abs(z - _GELU_ROOT_HI) < 0.35
    d = (np.where(near, z, _GELU_ROOT_HI) - _GELU_ROOT_HI) - _GELU_ROOT_LO
    series = np.zeros_like(d)
    for c in reversed(_GELU_ROOT_TAYLOR):
        series = series * d + c
    series = series * d
    inside = np.abs(z) < 40.0
    with np.errstate(invalid="ignore"):
        direct = _normal_cdf(z) + np.where(inside, z, 0.0) * _normal_pdf(z)
    # Past |z| = 40 the limits 1 and 0 (+-inf included); NaN stays NaN.
    direct = np.where(inside | np.isnan(z), direct, np.where(z > 0, 1.0, 0.0))
    return np.where(near, series, direct)


def _zip_same(*seqs):
    """zip() of sequences that must have one length, as zip(..., strict=True),
    which needs Python 3.10 (the package supports 3.9)."""
    seqs = [list(q) for q in seqs]
    lengths = [len(q) for q in seqs]
    if len(set(lengths)) > 1:
        msg = f"internal error: zipped sequences have different lengths {lengths}"
        raise ValueError(msg)
    return zip(*seqs)


def _check_activation(act):
    if act not in ACTIVATIONS:
        msg = f"act: expected one of {ACTIVATIONS}, got {act!r}"
        raise ValueError(msg)


def _check_loss(loss):
    if loss not in LOSSES:
        msg = f"loss: expected one of {LOSSES}, got {loss!r}"
        raise ValueError(msg)


def _check_same_shape(a, a_name, b, b_name):
    # Without this check, y of shape (n, 1) against t of shape (n,) would
    # broadcast to (n, n) and give a plausible-looking but wrong loss.
    if a.shape != b.shape:
        msg = f"{b_name}: expected shape {a.shape} (the shape of {a_name}), got {b.shape}"
        raise ValueError(msg)


def _check_2d(a, name):
    if a.ndim != 2:
        msg = f"{name}: expected a 2-D array, got shape {a.shape}"
        raise ValueError(msg)


# ---------------------------------------------------------------------------
# Stable building blocks                               (csrc/nn/activations.h)
# ---------------------------------------------------------------------------


def sigmoid(z):
    """Logistic function 1 / (1 + exp(-z)), element-wise; C++: csrc/nn/activations.h.

    Written with ``e = exp(-|z|)``, which lies in (0, 1] and cannot overflow::

        z >= 0:  1 / (1 + exp(-z))          = 1 / (1 + e)
        z <  0:  exp(z) / (exp(z) + 1)      = e / (1 + e)

    Both branches are the same function; each is the form whose exponential
    has a non-positive argument.

    Parameters
    ----------
    z : array-like
        Any shape.

    Returns
    -------
    ndarray
        sigmoid(z), the shape of z.
    """
    z = np.asarray(z)
    w = _wide(z)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(w))
    return np.where(w >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def log_softmax(z):
    """Row-wise log(softmax(z)) for z (n, k); C++: csrc/nn/activations.h.

    log softmax(z)_j = z_j - log(sum_m exp(z_m)). Subtracting the row maximum
    c first changes nothing mathematically (the c cancels) but makes every
    exponent <= 0, so the sum is in [1, k] and its log is safe::

        log softmax(z)_j = (z_j - c) - log(sum_m exp(z_m - c))

    Parameters
    ----------
    z : array-like of shape (n, k)
        Logits.

    Returns
    -------
    ndarray of shape (n, k)
        Row-wise log-probabilities.
    """
    z = np.asarray(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def softmax(z):
    """Row-wise softmax exp(z_j) / sum_m exp(z_m) for z (n, k); C++: csrc/nn/activations.h.

    The row maximum is subtracted first, as in log_softmax: every exponent is
    then <= 0 and the largest is exactly exp(0) = 1, so the denominator is at
    least 1 and nothing overflows.

    Parameters
    ----------
    z : array-like of shape (n, k)
        Logits.

    Returns
    -------
    ndarray of shape (n, k)
        Rows of probabilities summing to 1.
    """
    z = np.asarray(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------------------
# Activations                                          (csrc/nn/activations.h)
# ---------------------------------------------------------------------------


def activation_forward(z, act):
    """y = act(z), element-wise, any shape; C++: csrc/nn/activations.h.

    ::

      identity    z
      sigmoid     1 / (1 + exp(-z))
      tanh        tanh(z)
      relu        max(z, 0)
      leaky_relu  z if z > 0 else 0.01 * z
      elu         z if z > 0 else exp(z) - 1          (alpha = 1)
      gelu        z * Phi(z), Phi(z) = (1 + erf(z / sqrt 2)) / 2 = erfc(-z / sqrt 2) / 2,
                  the normal CDF
      softplus    log(1 + exp(z))                     (beta = 1)

    Parameters
    ----------
    z : array-like
        Pre-activations, any shape.
    act : str
        The activation's name (one of ACTIVATIONS).

    Returns
    -------
    ndarray
        y = act(z), a new array of z's shape.
    """
    _check_activation(act)
    z = np.asarray(z)
    if act == "identity":
        return z.copy()
    if act == "sigmoid":
        return sigmoid(z)
    if act == "tanh":
        return np.tanh(z)
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "leaky_relu":
        return np.where(z > 0, z, _LEAKY_SLOPE * z)
    if act == "elu":
        # expm1 is exact near 0 where exp(z) - 1 would cancel. It is evaluated
        # on min(z, 0) so that the branch np.where discards (z > 0) cannot
        # overflow for large z.
        return np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))
    if act == "gelu":
        # z * Phi(z) with Phi exact in the left tail (see _normal_cdf).
        # Below z = -40 the value (< 1e-347) is its limit -0, also at -inf.
        w = _wide(z)
        with np.errstate(invalid="ignore"):
            y = np.where(w < -40.0, -0.0, w * _normal_cdf(z))
        return y.astype(z.dtype, copy=False)
    # softplus. For z > 0, log(1 + exp(z)) = z + log(1 + exp(-z)); for z <= 0
    # it is log(1 + exp(z)) directly. Both read max(z, 0) + log1p(exp(-|z|)),
    # whose exponential cannot overflow and whose log1p keeps full precision
    # when exp(-|z|) is tiny.
    return np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0)


def activation_backward(dy, z, y, act):
    """dz = dy * act'(z), element-wise; C++: csrc/nn/activations.h.

    Step 1 of backpropagation. z is the pre-activation and y = act(z) the
    post-activation saved by the forward pass. Every derivative is computed
    from z: the forms in y (y (1 - y), 1 - y^2, y + 1) are exactly 0 once y
    rounds to 1 (or -1), while the true values are about ``exp(-abs(z))``::

      identity    1
      sigmoid     e / (1 + e)^2, e = exp(-|z|)    = s(z) s(-z)
      tanh        4 e / (1 + e)^2, e = exp(-2|z|) = (1 - |tanh|)(1 + |tanh|)
      relu        1 if z > 0 else 0      (0 at z == 0, as torch)
      leaky_relu  1 if z > 0 else 0.01
      elu         1 if z > 0 else exp(z)
      gelu        Phi(z) + z * phi(z)    product rule on z * Phi(z); phi = Phi'
                                         is the normal density exp(-z^2/2)/sqrt(2 pi);
                                         a Taylor series about its root z0 ~ -0.7518
      softplus    sigmoid(z)             since log(1 + e^z)' = e^z / (1 + e^z)

    float32 inputs are evaluated in float64 and the derivative rounded once.
    y is accepted for the kernels' signature and not read.

    All arrays share one shape; returns a new array of that shape.

    Parameters
    ----------
    dy : array-like
        dL/dy.
    z : array-like
        The pre-activation.
    y : array-like
        The post-activation act(z).
    act : str
        The activation's name (one of ACTIVATIONS).

    Returns
    -------
    ndarray
        dz = dL/dz.
    """
    _check_activation(act)
    dy = np.asarray(dy)
    z = np.asarray(z)
    y = np.asarray(y)
    if act == "identity":
        return dy.copy()
    w = _wide(z)
    if act in ("sigmoid", "tanh"):
        with np.errstate(under="ignore"):
            e = np.exp(-np.abs(w) if act == "sigmoid" else -2.0 * np.abs(w))
        s = 1.0 / (1.0 + e)
        d = e * s * s if act == "sigmoid" else 4.0 * e * s * s
        return dy * d.astype(dy.dtype, copy=False)
    if act == "relu":
        # A select rather than dy * (z > 0): it passes dy through untouched
        # where z > 0 and writes an exact 0 elsewhere, as torch's threshold
        # backward does (a product would turn an inf or NaN in dy into NaN).
        return np.where(z > 0, dy, 0.0)
    if act == "leaky_relu":
        return np.where(z > 0, dy, _LEAKY_SLOPE * dy)
    if act == "elu":
        # exp(z), not y + 1: that is 0 once y = expm1(z) rounds to -1.
        with np.errstate(under="ignore"):
            d = np.exp(np.minimum(w, 0.0)).astype(dy.dtype, copy=False)
        return np.where(z > 0, dy, dy * d)
    if act == "gelu":
        return dy * _gelu_deriv(w).astype(dy.dtype, copy=False)
    # softplus
    return dy * sigmoid(z)


# ---------------------------------------------------------------------------
# Dense layer                                                (csrc/nn/dense.h)
# ---------------------------------------------------------------------------


def dense_forward(x, w, b, act, *, gemm_round=None):
    """One dense layer forward; C++: csrc/nn/dense.h.

    x (n, in), w (out, in), b (out,)  ->  z (n, out), y (n, out)::

        z = x @ w.T + b      (b broadcasts over the n rows)
        y = act(z)

    Both z and y are returned because backward needs them: the derivative of
    each activation reads one or the other (see activation_backward).

    With gemm_round (e.g. :func:`round_bf16`) the product's operands are
    rounded first, ``z = gemm_round(x) @ gemm_round(w).T + b``: the core's
    mixed_bfloat16 GEMM, whose bias and activation stay in float32.

    Parameters
    ----------
    x : array-like of shape (n, in)
        The layer's input.
    w : array-like of shape (out, in)
        Weights.
    b : array-like of shape (out,)
        Bias.
    act : str
        The activation's name.
    gemm_round : callable, optional
        Applied to both operands of the product (None: none).

    Returns
    -------
    z, y : ndarray of shape (n, out)
        Pre- and post-activation.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    b = np.asarray(b)
    _check_2d(x, "x")
    _check_2d(w, "w")
    if x.shape[1] != w.shape[1]:
        msg = f"x: expected shape (n, {w.shape[1]}) to match w {w.shape}, got {x.shape}"
        raise ValueError(msg)
    if b.shape != (w.shape[0],):
        msg = f"b: expected shape ({w.shape[0]},), got {b.shape}"
        raise ValueError(msg)
    if gemm_round is not None:
        x, w = gemm_round(x), gemm_round(w)
    z = x @ w.T + b
    y = activation_forward(z, act)
    return z, y


def dense_backward(dy, x, w, z, y, act, *, gemm_round=None):
    """One dense layer backward; C++: csrc/nn/dense.h.

    dy (n, out), x (n, in), w (out, in), z (n, out), y (n, out)
    ->  dx (n, in), dw (out, in), db (out,), dz (n, out)

    The four equations of the module docstring, in order::

        dz = dy * act'(z)        through the activation (element-wise)
        dw = dz.T @ x            (out, n) @ (n, in): sums over the batch
        db = dz.sum(axis=0)      every sample adds its dz row to the bias
        dx = dz @ w              (n, out) @ (out, in): the dy of the layer below

    dz is returned as well; the core keeps it in its workspace and the parity
    tests compare it.

    With gemm_round (e.g. :func:`round_bf16`) both products take rounded
    operands, ``dw = r(dz).T @ r(x)`` and ``dx = r(dz) @ r(w)``, while dz and
    db stay unrounded: the core's mixed_bfloat16 backward.

    Parameters
    ----------
    dy : array-like of shape (n, out)
        dL/dy from the layer above (or the loss).
    x : array-like of shape (n, in)
        The layer's input, saved by the forward pass.
    w : array-like of shape (out, in)
        Weights.
    z, y : array-like of shape (n, out)
        Pre- and post-activation, saved by the forward pass.
    act : str
        The activation's name.
    gemm_round : callable, optional
        Applied to the operands of both products (None: none).

    Returns
    -------
    dx : ndarray of shape (n, in)
        The dy of the layer below.
    dw : ndarray of shape (out, in)
        Weight gradient.
    db : ndarray of shape (out,)
        Bias gradient.
    dz : ndarray of shape (n, out)
        Gradient with respect to z.
    """
    dz = activation_backward(dy, z, y, act)
    db = dz.sum(axis=0)
    if gemm_round is not None:
        rdz = gemm_round(dz)
        return rdz @ gemm_round(w), rdz.T @ gemm_round(x), db, dz
    dw = dz.T @ x
    dx = dz @ w
    return dx, dw, db, dz


# ---------------------------------------------------------------------------
# Losses                                                    (csrc/nn/losses.h)
# ---------------------------------------------------------------------------
#
# Every loss takes two optional keyword arguments, as in csrc/nn/losses.h:
#
#   sample_weight  s (n,): weighs row i (sample i) by s_i
#   class_weight   c: (k,) per class for cross_entropy, (2,) for the targets 0
#                  and 1 of binary_cross_entropy; not defined for mse and poisson
#
# None means all ones, which gives the plain means above bit for bit (every
# weight enters as a product with 1, which is exact). Weights must be finite
# and >= 0.


def _float_dtype(a):
    """The dtype weights are cast to: a's, if it is a float dtype."""
    return a.dtype if np.issubdtype(a.dtype, np.floating) else np.dtype(np.float64)


def _weights(w, name, length, what, dtype):
    """w as `length` finite weights >= 0 in `dtype`, one per `what`."""
    w = np.asarray(w)
    if w.dtype.kind not in "biuf":
        msg = f"{name}: expected a numeric array, got dtype {w.dtype}"
        raise TypeError(msg)
    if w.shape != (length,):
        msg = f"{name}: expected shape ({length},) (one weight per {what}), got {w.shape}"
        raise ValueError(msg)
    w = w.astype(dtype)
    bad = ~(np.isfinite(w) & (w >= 0))  # NaN fails both tests
    if bad.any():
        i = int(np.argmax(bad))
        msg = f"{name}: expected finite weights >= 0, got {w[i]} at index {i}"
        raise ValueError(msg)
    return w


def _sample_weight(sample_weight, a):
    """Row weights s (n,) for a (n, ...), all ones when None."""
    if sample_weight is None:
        return np.ones(a.shape[:1], dtype=_float_dtype(a))
    if a.ndim == 0:
        msg = f"sample_weight: expected None for an input without rows, got {sample_weight!r}"
        raise ValueError(msg)
    return _weights(sample_weight, "sample_weight", a.shape[0], "row", _float_dtype(a))


def _per_row(s, a):
    """s (n,) shaped to broadcast over the rows of a: (n, 1) for a (n, k)."""
    return s.reshape(s.shape + (1,) * (a.ndim - 1))


def _no_class_weight(class_weight, loss):
    """The regression losses (mse, poisson) have no classes to weight."""
    if class_weight is not None:
        raise ValueError(
            f"class_weight: expected None for {loss} (class weights are for classification)")


def mse_loss(y, t, *, sample_weight=None, class_weight=None):
    """Mean squared error over all elements, as torch.nn.MSELoss(); C++: csrc/nn/losses.h.

    y, t (n, k)::

        L = (1 / (n k)) * sum_ij s_i (y_ij - t_ij)^2

    with s = sample_weight (n,), all ones by default (the plain mean). The
    denominator stays n k whatever the weights: torch's unreduced
    MSELoss(reduction="none") times s, then averaged. Regression has no
    classes, so class_weight must be None.

    Parameters
    ----------
    y : array-like of shape (n, k)
        The network's output.
    t : array-like of shape (n, k)
        Targets.
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        Must be None (regression has no classes).

    Returns
    -------
    float
        L.
    """
    y = np.asarray(y)
    t = np.asarray(t)
    _check_same_shape(y, "y", t, "t")
    _no_class_weight(class_weight, "mse")
    s = _per_row(_sample_weight(sample_weight, y), y)
    d = y - t
    return float(np.sum(s * d * d) / y.size)


def mse_backward(y, t, *, sample_weight=None, class_weight=None):
    """Gradient of mse_loss with respect to y; C++: csrc/nn/losses.h.

    dL/dy_ij = 2 s_i (y_ij - t_ij) / (n k): the derivative of a square, times
    the row's weight and the 1/(n k) of the mean. Returns dy (n, k), which the
    output layer then takes through its activation's derivative.

    Parameters
    ----------
    y : array-like of shape (n, k)
        The network's output.
    t : array-like of shape (n, k)
        Targets.
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        Must be None (regression has no classes).

    Returns
    -------
    ndarray of shape (n, k)
        dL/dy.
    """
    y = np.asarray(y)
    t = np.asarray(t)
    _check_same_shape(y, "y", t, "t")
    _no_class_weight(class_weight, "mse")
    s = _per_row(_sample_weight(sample_weight, y), y)
    return 2.0 * s * (y - t) / y.size


def _class_ids(target, n, k):
    """Validated integer class ids (n,) from a 1-D target."""
    if target.shape != (n,):
        msg = f"target: expected class ids of shape ({n},), got {target.shape}"
        raise ValueError(msg)
    # Accept floats that hold whole numbers (labels often arrive as such);
    # refuse anything else rather than truncate it silently.
    is_int = np.issubdtype(target.dtype, np.integer)
    if not is_int and not (np.all(np.isfinite(target)) and np.all(target == np.round(target))):
        msg = "target: expected integer class ids, got non-integer values"
        raise ValueError(msg)
    ids = target.astype(np.intp)
    if n and (ids.min() < 0 or ids.max() >= k):
        msg = (
            f"target: expected class ids in [0, {k - 1}], got values in [{ids.min()}, {ids.max()}]"
        )
        raise ValueError(msg)
    return ids


def _ce_target(z, target):
    """Split cross-entropy targets into ("ids", ids (n,)) or ("probs", t (n, k))."""
    _check_2d(z, "z")
    n, k = z.shape
    target = np.asarray(target)
    if target.ndim == 1:
        return "ids", _class_ids(target, n, k)
    _check_same_shape(z, "z", target, "target")
    return "probs", target


def _ce_weights(z, sample_weight, class_weight):
    """(s (n,), c (k,)) for cross entropy, all ones where None."""
    k = z.shape[1]
    s = _sample_weight(sample_weight, z)
    if class_weight is None:
        return s, np.ones(k, dtype=_float_dtype(z))
    return s, _weights(class_weight, "class_weight", k, "class, a column of z", _float_dtype(z))


def cross_entropy_loss(z, target, *, sample_weight=None, class_weight=None):
    """Softmax cross entropy from logits, as torch.nn.CrossEntropyLoss(); C++: csrc/nn/losses.h.

    z (n, k) are logits (the output layer's pre-activation). With s =
    sample_weight (n,) and c = class_weight (k,), both all ones by default,
    target is either

    * class ids (n,) of an integer dtype::

          L = sum_i s_i c_{y_i} l_i / sum_i c_{y_i},   l_i = -log_softmax(z)[i, y_i]

      which is CrossEntropyLoss(weight=c) when s is all ones (a mean weighted
      by the class weights) and Keras' sample_weight mean (sum_i s_i l_i / n)
      when c is all ones. If sum_i c_{y_i} = 0 (every row's class weighs 0),
      L = 0 rather than torch's 0/0 = NaN: such a batch contributes nothing.
    * class probabilities or one-hot rows (n, k) of a float dtype::

          L = (1/n) sum_i s_i (-sum_j c_j t_ij log_softmax(z)[i, j])

      as CrossEntropyLoss(weight=c) defines it for probability targets (the
      denominator is n whatever the weights).

    log_softmax is used rather than log(softmax): a probability that
    underflows to 0 would make log(0) = -inf, while log_softmax is finite.
    It is formed as (z_j - max) - log1p(r), r the sum of exp(z_m - max)
    over the non-leading classes, so that a confident row's loss (~r) keeps
    all its digits (log(1 + r) would round it to 0).

    Parameters
    ----------
    z : array-like of shape (n, k)
        Logits.
    target : array-like
        Class ids (n,) or class probabilities (n, k).
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        (k,) class weights, finite and >= 0; None: all ones.

    Returns
    -------
    float
        L.
    """
    z = np.asarray(z)
    kind, t = _ce_target(z, target)
    s, c = _ce_weights(z, sample_weight, class_weight)
    logp = _log_softmax_exact(z)
    n = z.shape[0]
    if kind == "ids":
        c_y = c[t]  # each row's class weight
        nll = -logp[np.arange(n), t]
        denominator = c_y.sum()
        if denominator == 0:
            return 0.0
        return float((s * c_y * nll).sum() / denominator)
    return float((s[:, None] * -(c * t * logp)).sum() / n)


def cross_entropy_backward(z, target, *, sample_weight=None, class_weight=None):
    """Gradient of cross_entropy_loss with respect to the logits z; C++: csrc/nn/losses.h.

    For one row, with p = softmax(z) and u_j = c_j t_j (the class-weighted
    target; u = t without class weights)::

        L_row = -sum_j u_j (z_j - log sum_m exp(z_m))
              = -sum_j u_j z_j + (sum_j u_j) * log sum_m exp(z_m)
        dL_row/dz_j = -u_j + (sum_j u_j) * p_j

    since d/dz_j of log sum_m exp(z_m) is exactly p_j. The row's weight and
    the mean's denominator then scale it:

    * class ids: u is c_{y_i} times the one-hot row, so::

          dz_i = s_i c_{y_i} (p_i - onehot_i) / sum_m c_{y_m}

      (zero for every row when sum_m c_{y_m} = 0, as the loss is 0 then).
    * probabilities: ``dz_i = s_i (p_i * sum_j u_ij - u_i) / n``.

    Without weights this is the familiar (p - onehot) / n; keeping sum_j u_j
    makes it exact for target rows that do not sum to 1 as well.

    Exactness: p_j sum_j u_j - u_j vanishes where p_j = u_j / sum_j u_j and
    cancels near there. A one-hot row takes -u_c r / (1 + r) for its
    class (as class ids do); elsewhere the classes where it may cancel are
    recomputed in double-double (``_cross_entropy_soft_exact``), a dominant
    target by the complement of the other classes, and float64 ones within a
    few dozen ulp of the zero again in triple-double
    (``_cross_entropy_soft_td``).

    Parameters
    ----------
    z : array-like of shape (n, k)
        Logits.
    target : array-like
        Class ids (n,) or class probabilities (n, k).
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        (k,) class weights, finite and >= 0; None: all ones.

    Returns
    -------
    ndarray of shape (n, k)
        dL/dz.
    """
    z = np.asarray(z)
    kind, t = _ce_target(z, target)
    s, c = _ce_weights(z, sample_weight, class_weight)
    _, _, e, r = _softmax_parts(z)
    p = e / (1.0 + r)  # float64, one rounding
    n = z.shape[0]
    if kind == "ids":
        rows = np.arange(n)
        c_y = c[t]
        denominator = c_y.sum()
        if denominator == 0:
            return np.zeros_like(z)
        # p_c - 1 = -r / (1 + r) where p_c > 1/2 (c is then the unique max):
        # the subtraction from 1 would cancel the digits that r keeps (a
        # confident row).
        pc = p[rows, t]
        d = p.copy()
        d[rows, t] = np.where(pc > 0.5, -r[:, 0] / (1.0 + r[:, 0]), pc - 1.0)
        d = d.astype(z.dtype, copy=False)
        return d * (s * c_y)[:, None] / denominator
    u = _wide(c * t)
    tsum = _row_sum(u)[:, None]
    d = p * tsum - u
    # A one-hot row (any weight): t_sum (p_c - 1) by -t_sum r / (1 + r)
    # where p_c > 1/2, as for class ids. Other rows: double-double where
    # p_j t_sum - u_j may cancel (_may_cancel), e.g. p_j ~ t_j for soft targets.
    one_hot = np.count_nonzero(u, axis=1) == 1
    hot = np.argmax(u != 0, axis=1)
    rows = np.flatnonzero(one_hot & (p[np.arange(n), hot] > 0.5))
    if rows.size:
        cols = hot[rows]
        d[rows, cols] = -r[rows, 0] / (1.0 + r[rows, 0]) * tsum[rows, 0]
    near = _may_cancel(p * tsum, u) & ~one_hot[:, None]
    rows = np.flatnonzero(near.any(axis=1))
    if rows.size:
        d[rows] = np.where(near[rows], _cross_entropy_soft_exact(z[rows], u[rows], near[rows]),
                           d[rows])
    d = d.astype(z.dtype, copy=False)
    return d * s[:, None] / n


def _cross_entropy_soft_exact(z, u, near):
    """p_j t_sum - u_j = (e_j t_sum - u_j s) / s with e_j = e^(z_j - max z),
    s = sum_j e_j and t_sum = sum_j u_j, the numerator in double-double, for
    every class of the rows given (the caller keeps the flagged ones, near);
    float64 rows where a flagged one is below _TD_TIGHT of its term again in
    triple-double (_cross_entropy_soft_td). C++: cross_entropy_soft_exact."""
    w = _wide(z)
    mx = w.max(axis=1, keepdims=True)
    x = _dd_two_sum(w, -np.broadcast_to(mx, w.shape))  # z_j - max exactly
    with np.errstate(under="ignore"):
        e = _dd_exp_neg(*x)
    zero = np.zeros(w.shape[0])
    ssum, tsum = (zero, zero), (zero, zero)
    for j in range(w.shape[1]):
        ssum = _dd_add(ssum, (e[0][:, j], e[1][:, j]))
        tsum = _dd_add(tsum, (u[:, j], zero))
    col = lambda a: (a[0][:, None], a[1][:, None])  # noqa: E731
    num = _dd_prod_diff(e, col(tsum), col(ssum), (u, np.zeros_like(u)))
    # A dominant target c (u_c > t_sum / 2) takes the complement: the
    # numerators sum to 0, so N_c = -sum_{j != c} N_j, rounded relative to the
    # other classes' terms rather than to u_c.
    c = np.argmax(u, axis=1)
    rows = np.arange(w.shape[0])
    others = (zero, zero)
    for j in range(w.shape[1]):
        mine = c == j
        others = _dd_add(others, (np.where(mine, 0.0, num[0][:, j]),
                                  np.where(mine, 0.0, num[1][:, j])))
    dominant = u[rows, c] > 0.5 * tsum[0]
    out = num[0] / ssum[0][:, None]
    out[rows, c] = np.where(dominant, -others[0] / ssum[0], out[rows, c])
    if z.dtype == np.float64:
        # Too near a zero for double-double: relative to u_j s, or for the
        # dominant class's complement to (t_sum - u_c) s.
        tight = np.abs(num[0]) < _TD_TIGHT * u * ssum[0][:, None]
        tight[rows, c] = np.where(
            dominant, np.abs(others[0]) < _TD_TIGHT * (tsum[0] - u[rows, c]) * ssum[0],
            tight[rows, c])
        redo = np.flatnonzero((tight & near).any(axis=1))
        if redo.size:
            out[redo] = _cross_entropy_soft_td(z[redo], u[redo])
    return out


def _cross_entropy_soft_td(z, u):
    """_cross_entropy_soft_exact in triple-double: e_j, s and t_sum as
    triple-doubles, each numerator e_j t_sum - u_j s formed exactly from them
    and only then rounded. C++: cross_entropy_soft_td."""
    w = _wide(z)
    mx = w.max(axis=1, keepdims=True)
    x = _dd_two_sum(w, -np.broadcast_to(mx, w.shape))  # z_j - max exactly
    with np.errstate(under="ignore"):
        e = _td_exp_neg(*x)
    zero = np.zeros(w.shape[0])
    ssum, tsum = (zero, zero, zero), (zero, zero, zero)
    for j in range(w.shape[1]):
        ssum = _td_to_td(_td_expansion([*ssum, *(v[:, j] for v in e)]))
        tsum = _td_to_td(_td_expansion([*tsum, u[:, j], zero, zero]))
    c = np.argmax(u, axis=1)
    rows = np.arange(w.shape[0])
    others = (zero, zero, zero)
    out = np.empty_like(w)
    for j in range(w.shape[1]):
        num = _td_expansion(_td_prods(tuple(v[:, j] for v in e), tsum)
                            + _td_prods((-u[:, j],), ssum))
        mine = c == j
        others = _td_to_td(_td_expansion(
            [*others, *(np.where(mine, 0.0, v) for v in _td_to_td(num))]))
        out[:, j] = _td_div(num, ssum)
    dominant = u[rows, c] > 0.5 * tsum[0]
    complement = _td_div(_td_expansion([-v for v in others]), ssum)
    out[rows, c] = np.where(dominant, complement, out[rows, c])
    return out


def _row_sum(a):
    """Row sums of a (n, k) in float64, compensated (TwoSum per column,
    vectorized over the rows): a plain sum's error grows with k (up to k ulp,
    typically sqrt(k)), which would pass into every p_j and log1p(r).
    C++: softmax_tail."""
    hi = np.zeros(a.shape[0])
    lo = np.zeros(a.shape[0])
    for j in range(a.shape[1]):
        hi, err = _dd_two_sum(hi, a[:, j])
        lo += err
    return hi + lo


def _softmax_parts(z):
    """Per row, in float64: e_j = exp(z_j - max) (exactly 1 at the first
    argmax m) and r = sum_{j != m} e_j, so that sum_j e_j = 1 + r. C++:
    loss_output.

    e_j is e^(d + lo) with d = fl(z_j - max) and lo its rounding error
    (exact, TwoSum), as e^d + e^d lo: rounding d would cost e^d a relative
    |d| 2^-53 (dozens of ulp for d ~ -100; float32 inputs have lo = 0). r is
    a compensated sum (_row_sum)."""
    w = _wide(z)
    m = np.argmax(w, axis=1)
    rows = np.arange(w.shape[0])
    mx = w[rows, m][:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        d, lo = _dd_two_sum(w, -np.broadcast_to(mx, w.shape))
    lo = np.where(np.isfinite(lo), lo, 0.0)  # rows with an infinite logit
    with np.errstate(under="ignore", invalid="ignore"):
        e = np.exp(d)
        e = e + e * lo
    e[rows, m] = 0.0
    r = _row_sum(e)[:, None]
    e[rows, m] = 1.0
    return w, mx, e, r


def _log_softmax_exact(z):
    """log softmax(z) = (z_j - max) - log1p(r), in float64: log1p keeps the
    digits of a confident row's loss (~r) that log(1 + r) loses, and the
    max is never added back and subtracted (which would round the loss to
    the ulp of max z)."""
    w, mx, _, r = _softmax_parts(z)
    return (w - mx) - np.log1p(r)


def _bce_weights(z, t, sample_weight, class_weight):
    """The weight s_i w_ij of every element, broadcastable against z.

    w_ij = c_0 (1 - t_ij) + c_1 t_ij: c_0 weighs the targets 0 and c_1 the
    targets 1 (and a soft target in between, linearly). Without class weights
    w is exactly 1, for any t.
    """
    s = _per_row(_sample_weight(sample_weight, z), z)
    if class_weight is None:
        return s
    c = _weights(class_weight, "class_weight", 2, "target value 0 and 1", _float_dtype(z))
    return s * (c[0] * (1.0 - t) + c[1] * t)


def binary_cross_entropy_loss(z, t, *, sample_weight=None, class_weight=None):
    """Binary cross entropy from logits, as torch.nn.BCEWithLogitsLoss(); C++: csrc/nn/losses.h.

    z, t (n, k). With p = sigmoid(z), each element contributes
    l_ij = -t log p - (1 - t) log(1 - p). Using log p = -softplus(-z) and
    log(1 - p) = -softplus(z) this is softplus(z) - t z, computed stably as::

        max(z, 0) - z t + log1p(exp(-|z|))

    and, with s = sample_weight (n,) and c = class_weight (2,)::

        L = (1 / (n k)) sum_ij s_i w_ij l_ij,   w_ij = c_0 (1 - t_ij) + c_1 t_ij

    i.e. BCEWithLogitsLoss(weight=s_i w_ij); all ones by default, the plain
    mean over all n k elements. No log of a probability is ever taken, so p
    rounding to 0 or 1 does no harm.

    Parameters
    ----------
    z : array-like of shape (n, k)
        Logits.
    t : array-like of shape (n, k)
        Targets in [0, 1].
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        (2,) weights of the targets 0 and 1, finite and >= 0; None: all ones.

    Returns
    -------
    float
        L.
    """
    z = np.asarray(z)
    t = np.asarray(t)
    _check_same_shape(z, "z", t, "t")
    w = _bce_weights(z, t, sample_weight, class_weight)
    # Two non-negative terms, z (1 - t) for z > 0 and -z t otherwise, plus
    # log1p: max(z, 0) - z t would cancel for a soft target near 1.
    elem = np.where(z > 0, z * (1 - t), -z * t) + np.log1p(np.exp(-np.abs(z)))
    return float(np.sum(w * elem) / z.size)


def binary_cross_entropy_backward(z, t, *, sample_weight=None, class_weight=None):
    """Gradient of binary_cross_entropy_loss with respect to z; C++: csrc/nn/losses.h.

    d/dz of softplus(z) - t z is sigmoid(z) - t; the element's weight does
    not depend on z, so it multiplies as in the loss, and the mean adds
    1/(n k): dz = s_i w_ij (sigmoid(z) - t) / (n k), shape (n, k).

    For a soft target 0 < t < 1, sigmoid(z) - t vanishes at z = logit(t);
    near it the difference is recomputed in double-double
    (``_dd_sigmoid_minus``), as the core does; float64 ones nearest the zero
    (below 2^-48 of their term) in triple-double (``_td_sigmoid_minus``).

    Parameters
    ----------
    z : array-like of shape (n, k)
        Logits.
    t : array-like of shape (n, k)
        Targets in [0, 1].
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        (2,) weights of the targets 0 and 1, finite and >= 0; None: all ones.

    Returns
    -------
    ndarray of shape (n, k)
        dL/dz.
    """
    z = np.asarray(z)
    t = np.asarray(t)
    _check_same_shape(z, "z", t, "t")
    w = _bce_weights(z, t, sample_weight, class_weight)
    # sigmoid(z) - t without 1 - tiny: with s = sigmoid(-|z|), (1 - t) - s
    # for z > 0 (-s, ~e^-z, at t = 1, where sigmoid(z) - 1 is 0) and s - t
    # otherwise; in float64, rounded once.
    zw, tw = _wide(z), _wide(t)
    with np.errstate(under="ignore"):
        ez = np.exp(-np.abs(zw))
    sm = ez / (1.0 + ez)
    a = np.where(zw > 0, 1.0 - tw, tw)
    d = np.where(zw > 0, a - sm, sm - a)
    # Soft targets cancel near z = logit(t): double-double there.
    near = _may_cancel(sm, a)
    if near.any():
        zn, tn = np.broadcast_to(zw, d.shape)[near], np.broadcast_to(tw, d.shape)[near]
        with np.errstate(under="ignore"):
            dn = _dd_sigmoid_minus(zn, tn)
        # float64: triple-double where that is too near the zero.
        tight = np.abs(dn) < _TD_TIGHT * a[near]
        if z.dtype == np.float64 and tight.any():
            dn[tight] = _td_sigmoid_minus(zn[tight], tn[tight])
        d[near] = dn
    d = d.astype(z.dtype, copy=False)
    return d * w / z.size


def _exp(z):
    """exp(z), inf past the dtype's range without a warning (poisson's mean)."""
    with np.errstate(over="ignore"):
        return np.exp(z)


def poisson_loss(z, t, *, sample_weight=None, class_weight=None):
    """Poisson negative log likelihood from log means, as
    torch.nn.PoissonNLLLoss(log_input=True, full=False); C++: csrc/nn/losses.h.

    z, t (n, k): z is the log of the predicted mean mu = exp(z) (the output
    layer's pre-activation), t the observed counts (any finite values >= 0).
    With s = sample_weight (n,), all ones by default (the plain mean)::

        L = (1 / (n k)) * sum_ij s_i (exp(z_ij) - t_ij z_ij)

    which is -log P(t | mu) averaged over all n k elements, less the term
    log(t!) that does not depend on z (torch's full=False). The denominator
    stays n k whatever the weights, as for mse_loss. Regression has no
    classes, so class_weight must be None.

    scikit-learn's MLPRegressor(loss="poisson") (sklearn.neural_network.
    _base.poisson_loss) minimises the half Poisson deviance, averaged over
    rows with weights s and summed over the k outputs::

        L_sk = sum_j sum_i s_i (t log(t / mu) - t + mu)_ij / sum_i s_i
             = (n k / sum_i s_i) * L + sum_ij s_i (t log t - t)_ij / sum_i s_i

    (t log t = 0 at t = 0), i.e. k L + C(t) without weights: the same
    minimiser, and gradients k (n / sum_i s_i) times these.

    exp(z) overflows to inf for z beyond the dtype's range (about 88.7 in
    float32, 709.8 in float64), and so does L: a diverged network.

    Parameters
    ----------
    z : array-like of shape (n, k)
        Log means.
    t : array-like of shape (n, k)
        Observed counts, >= 0.
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        Must be None (regression has no classes).

    Returns
    -------
    float
        L.
    """
    z = np.asarray(z)
    t = np.asarray(t)
    _check_same_shape(z, "z", t, "t")
    _no_class_weight(class_weight, "poisson")
    s = _per_row(_sample_weight(sample_weight, z), z)
    if z.dtype == np.float32:
        # In double, rounded once: exp(z) - t z keeps its digits where the
        # terms nearly cancel (C++ does the same).
        # Past float32's range exp(z) is inf, as the core's output is.
        zw, tw = _wide(z), _wide(t)
        ez = np.where(np.isinf(_exp(z)), np.inf, _exp(zw))
        return float(np.sum(s * (ez - tw * zw)) / z.size)
    # float64: where t z is within a factor 2 of exp(z) their difference is
    # exact and holds only the two roundings; those terms exactly (the loss
    # near its minimum t (1 - log t), ~1e-16 of its terms for t near e).
    ez, tz = _exp(z), t * z
    terms = ez - tz
    close = (tz > 0.5 * ez) & (tz < 2.0 * ez)
    if close.any():
        terms[close] = _td_exp_minus_prod(z[close], t[close])
    return float(np.sum(s * terms) / z.size)


def poisson_backward(z, t, *, sample_weight=None, class_weight=None):
    """Gradient of poisson_loss with respect to z; C++: csrc/nn/losses.h.

    d/dz of exp(z) - t z is exp(z) - t (the predicted mean minus the
    target), times the row's weight and the 1/(n k) of the mean:
    dz = s_i (exp(z) - t) / (n k), shape (n, k). The output layer is linear,
    so this is its dz directly. Near z = log t (a count other than 0 and 1)
    exp(z) - t is recomputed in double-double (``_dd_exp_minus``), float64
    ones nearest it in triple-double (``_td_exp_minus``).

    Parameters
    ----------
    z : array-like of shape (n, k)
        Log means.
    t : array-like of shape (n, k)
        Observed counts, >= 0.
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        Must be None (regression has no classes).

    Returns
    -------
    ndarray of shape (n, k)
        dL/dz.
    """
    z = np.asarray(z)
    t = np.asarray(t)
    _check_same_shape(z, "z", t, "t")
    _no_class_weight(class_weight, "poisson")
    s = _per_row(_sample_weight(sample_weight, z), z)
    # |z| < 1: (1 - t) + expm1(z), exact for a count t = 1 near its optimum
    # z = 0 where exp(z) - 1 cancels; float64, rounded once.
    zw, tw = _wide(z), _wide(t)
    small = np.abs(zw) < 1.0
    ez = _exp(zw)
    d = np.where(small, (1.0 - tw) + np.expm1(np.where(small, zw, 0.0)), ez - tw)
    # Near the other zeros z = log t the residual is below exp's rounding:
    # double-double there (a count of 1 keeps the expm1 form above).
    near = (tw != 1.0) & _may_cancel(ez, tw)
    if near.any():
        zn, tn = np.broadcast_to(zw, d.shape)[near], np.broadcast_to(tw, d.shape)[near]
        dn = _dd_exp_minus(zn, tn)
        # float64: triple-double where that is too near the zero.
        tight = np.abs(dn) < _TD_TIGHT * tn
        if z.dtype == np.float64 and tight.any():
            dn[tight] = _td_exp_minus(zn[tight], tn[tight])
        d[near] = dn
    return s * d.astype(z.dtype, copy=False) / z.size


def output_transform(z, loss):
    """What the network reports as its output, given the last layer's z; C++: csrc/nn/losses.h.

    ::

      mse                   z unchanged (a copy). An mse network applies its
                            output activation in the layer itself; Network
                            reports that layer's y.
      cross_entropy         softmax(z), class probabilities per row
      binary_cross_entropy  sigmoid(z), a probability per element
      poisson               exp(z), the predicted mean per element

    Parameters
    ----------
    z : array-like of shape (n, k)
        The last layer's pre-activation.
    loss : str
        The loss's name (one of LOSSES).

    Returns
    -------
    ndarray of shape (n, k)
        The network's output.
    """
    _check_loss(loss)
    z = np.asarray(z)
    if loss == "mse":
        return z.copy()
    if loss == "cross_entropy":
        return softmax(z)
    if loss == "poisson":
        return _exp(z)
    return sigmoid(z)


def loss_forward(z, y, t, loss, *, sample_weight=None, class_weight=None):
    """Mean loss of the output layer; C++: csrc/nn/losses.h.

    z and y are the output layer's pre- and post-activation. mse reads y; the
    three losses that own their output transform read the logits z.
    sample_weight (n,) and class_weight ((k,) for cross_entropy, (2,) for
    binary_cross_entropy, None for mse and poisson) weigh the mean as
    mse_loss, cross_entropy_loss, binary_cross_entropy_loss and poisson_loss
    define.

    Parameters
    ----------
    z, y : array-like of shape (n, k)
        The output layer's pre- and post-activation.
    t : array-like
        Targets: (n, k), or class ids (n,) for cross_entropy.
    loss : str
        The loss's name (one of LOSSES).
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        (k,) for cross_entropy, (2,) for binary_cross_entropy, None for mse and poisson.

    Returns
    -------
    float
        The mean loss.
    """
    _check_loss(loss)
    weights = {"sample_weight": sample_weight, "class_weight": class_weight}
    if loss == "mse":
        return mse_loss(y, t, **weights)
    if loss == "cross_entropy":
        return cross_entropy_loss(z, t, **weights)
    if loss == "poisson":
        return poisson_loss(z, t, **weights)
    return binary_cross_entropy_loss(z, t, **weights)


def loss_backward(z, y, t, loss, *, sample_weight=None, class_weight=None):
    """Start of the backward pass; C++: csrc/nn/losses.h.

    * mse: returns dL/dy (n, k), to be taken through the output activation's
      derivative.
    * cross_entropy, binary_cross_entropy, poisson: returns dL/dz (n, k)
      directly; the output activation is the identity, so dz = dy.

    The weights are those of loss_forward.

    Parameters
    ----------
    z, y : array-like of shape (n, k)
        The output layer's pre- and post-activation.
    t : array-like
        Targets: (n, k), or class ids (n,) for cross_entropy.
    loss : str
        The loss's name (one of LOSSES).
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None: all ones.
    class_weight : array-like, optional
        (k,) for cross_entropy, (2,) for binary_cross_entropy, None for mse and poisson.

    Returns
    -------
    ndarray of shape (n, k)
        dL/dy (mse) or dL/dz.
    """
    _check_loss(loss)
    weights = {"sample_weight": sample_weight, "class_weight": class_weight}
    if loss == "mse":
        return mse_backward(y, t, **weights)
    if loss == "cross_entropy":
        return cross_entropy_backward(z, t, **weights)
    if loss == "poisson":
        return poisson_backward(z, t, **weights)
    return binary_cross_entropy_backward(z, t, **weights)


# ---------------------------------------------------------------------------
# Optimizers                                          (csrc/optim/optimizer.h)
# ---------------------------------------------------------------------------


def sgd_step(p, g, lr, momentum=0.0, nesterov=False, weight_decay=0.0, buf=None):
    """One step of torch.optim.SGD (dampening 0) on one array; C++: csrc/optim/optimizer.h.

    p, g and buf share one shape. Returns (p_new, buf_new), where buf_new is
    None when momentum == 0; p, g and buf are left untouched::

        g   = g + weight_decay * p                (L2 penalty, folded into g)
        buf = g                   on the first step (buf is None)
        buf = momentum * buf + g  afterwards
        g   = g + momentum * buf  with nesterov, else g = buf
        p   = p - lr * g

    Why the first step sets buf = g: torch creates the momentum buffer lazily
    as a copy of the first gradient instead of starting from zeros. With
    dampening 0, as here, a zero buffer would give the same first step
    (momentum * 0 + g = g), so a core that zero-fills its flat buffer once
    matches bitwise. The convention matters for torch's dampened form, where
    buf = momentum * buf + (1 - dampening) * g would shrink the very first
    step; seeding with g makes the first step a plain gradient step. We follow
    it so that "no buffer yet" (None) means exactly what it means in torch.

    Parameters
    ----------
    p : array-like
        Parameters.
    g : array-like
        Their gradient.
    lr : float
        Learning rate, >= 0.
    momentum : float, default 0.0
        Momentum factor, >= 0.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0).
    weight_decay : float, default 0.0
        Coupled L2 decay, >= 0.
    buf : array-like, optional
        The momentum buffer; None before the first step.

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    buf_new : ndarray or None
        The momentum buffer (None when momentum == 0).
    """
    if lr < 0.0:
        msg = f"lr: expected >= 0, got {lr}"
        raise ValueError(msg)
    if momentum < 0.0:
        msg = f"momentum: expected >= 0, got {momentum}"
        raise ValueError(msg)
    if weight_decay < 0.0:
        msg = f"weight_decay: expected >= 0, got {weight_decay}"
        raise ValueError(msg)
    if nesterov and momentum == 0.0:
        msg = "nesterov: requires momentum > 0, got momentum=0"
        raise ValueError(msg)
    p = np.asarray(p)
    g = np.asarray(g)
    if g.shape != p.shape:
        msg = f"g: expected shape {p.shape} (the shape of p), got {g.shape}"
        raise ValueError(msg)
    if weight_decay != 0.0:
        g = g + weight_decay * p
    buf_new = None
    if momentum != 0.0:
        if buf is None:
            buf_new = g.copy()
        else:
            buf = np.asarray(buf)
            if buf.shape != p.shape:
                msg = f"buf: expected shape {p.shape} (the shape of p), got {buf.shape}"
                raise ValueError(msg)
            buf_new = momentum * buf + g
        g = g + momentum * buf_new if nesterov else buf_new
    p_new = p - lr * g
    return p_new, buf_new


# The optimizers of csrc/optim/optimizer.h. Each function below is written
# from the definition of its rule (torch.optim's documented algorithm), as
# formulas on whole arrays; none repeats the core's operation order. They
# take and return the optimizer's state as a list of arrays in the core's
# order (see optimizer_step), None meaning "no step taken yet".

# torch.optim's documented defaults, one dict per optimizer class, keyed by
# the public constructor arguments (fastmlp.optim.<Class>(...).get_config()
# uses the same names). They are written out here rather than read from
# fastmlp.optim or from the core, so that a wrong default there is caught by
# a comparison with this oracle instead of being inherited by it. One
# deliberate difference from torch: SGD's lr is 0.01 (DESIGN.md), where
# torch 2.x changed its default to 1e-3.
OPTIMIZER_DEFAULTS = {
    "SGD": {"lr": 0.01, "momentum": 0.0, "dampening": 0.0, "nesterov": False,
            "weight_decay": 0.0},
    "Adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
             "amsgrad": False},
    "AdamW": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2,
              "amsgrad": False},
    "RMSprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0,
                "centered": False},
    "Adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0,
                "initial_accumulator_value": 0.0, "eps": 1e-10},
}


def _check_step(step):
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        msg = f"step: expected the 1-based number of this update (an integer >= 1), got {step!r}"
        raise ValueError(msg)
    return int(step)


def _check_state(state, n, p, names):
    """state as a list of n arrays of p's shape, or None (fresh start)."""
    if state is None:
        return None
    state = [np.asarray(s) for s in state]
    if len(state) != n:
        msg = f"state: expected {n} arrays ({', '.join(names)}), got {len(state)}"
        raise ValueError(msg)
    for name, s in zip(names, state):
        if s.shape != p.shape:
            msg = f"state: {name} has shape {s.shape}, expected {p.shape} (the shape of p)"
            raise ValueError(msg)
    return state


def _check_p_g(p, g):
    p = np.asarray(p)
    g = np.asarray(g)
    if g.shape != p.shape:
        msg = f"g: expected shape {p.shape} (the shape of p), got {g.shape}"
        raise ValueError(msg)
    return p, g


def adam_step(p, g, state, step, lr, beta1, beta2, eps, weight_decay=0.0, amsgrad=False,
              decoupled=False):
    """One step of torch.optim.Adam (decoupled=False) or AdamW (decoupled=True).

    C++: csrc/optim/optimizer.h (kinds adam, adamw). state is [m, v] or, with
    amsgrad, [m, v, v_max], or None before the first step (all zeros); step
    is this update's number t = 1, 2, ... Returns (p_new, state_new)::

        g     = g + weight_decay * p           (Adam: coupled L2, part of g)
        p     = p * (1 - lr * weight_decay)    (AdamW: decoupled, shrinks p)
        m     = beta1 * m + (1 - beta1) * g    first moment, running mean of g
        v     = beta2 * v + (1 - beta2) * g^2  second moment, of g^2
        m_hat = m / (1 - beta1^t)              bias corrections
        v_hat = v / (1 - beta2^t)              (amsgrad: v_max = max(v_max, v)
                                                takes v's place here)
        p     = p - lr * m_hat / (sqrt(v_hat) + eps)

    Bias correction: m and v start at 0, so after t steps they are averages
    whose weights (1 - beta) beta^(t-1-i) sum to 1 - beta^t, not 1; dividing
    by that sum turns them into proper weighted means. Without it the first
    steps would be scaled down by (1 - beta1) / sqrt(1 - beta2) ~ 3.2x.

    Coupled vs decoupled decay: Adam adds weight_decay * p to g, so the
    decay is divided by sqrt(v_hat) like the gradient, and parameters with
    large gradients are barely decayed. AdamW instead shrinks p by the factor
    1 - lr * weight_decay before the Adam step, the same for every parameter
    (Loshchilov and Hutter, "Decoupled Weight Decay Regularization").

    AMSGrad (Reddi et al.) divides by the largest v seen so far, so the
    effective step size lr / sqrt(v_hat) never grows.

    eps is added to sqrt(v_hat), not to v_hat, as torch does (and as the
    Adam paper writes it); this is not scikit-learn's folded form.

    Parameters
    ----------
    p : array-like
        Parameters.
    g : array-like
        Their gradient.
    state : list of array-like, optional
        [m, v], or [m, v, v_max] with amsgrad; None before the first step.
    step : int
        This update's number t = 1, 2, ...
    lr : float
        Learning rate.
    beta1, beta2 : float
        Decay rates of the moment estimates.
    eps : float
        Added to sqrt(v_hat).
    weight_decay : float, default 0.0
        Coupled (Adam) or decoupled (AdamW) decay.
    amsgrad : bool, default False
        Divide by the largest v so far.
    decoupled : bool, default False
        True: AdamW's decoupled weight decay.

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    state_new : list of ndarray
        The updated state.
    """
    step = _check_step(step)
    p, g = _check_p_g(p, g)
    names = ("m", "v", "v_max") if amsgrad else ("m", "v")
    state = _check_state(state, len(names), p, names)
    if state is None:
        state = [np.zeros_like(p) for _ in names]
    m, v = state[0], state[1]
    if weight_decay != 0.0:
        if decoupled:
            p = p * (1.0 - lr * weight_decay)
        else:
            g = g + weight_decay * p
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * g * g
    new_state = [m, v]
    if amsgrad:
        v = np.maximum(state[2], v)
        new_state.append(v)
    m_hat = m / (1.0 - beta1**step)
    v_hat = v / (1.0 - beta2**step)
    p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, new_state


def rmsprop_step(p, g, state, step, lr, alpha, eps, weight_decay=0.0, momentum=0.0,
                 centered=False):
    """One step of torch.optim.RMSprop; C++: csrc/optim/optimizer.h (kind rmsprop).

    state is [v], then g_avg if centered, then buf if momentum > 0, in that
    order; None before the first step (all zeros). The rule does not depend on
    the step number (it is accepted for symmetry). Returns (p_new, state_new)::

        g     = g + weight_decay * p            (coupled L2)
        v     = alpha * v + (1 - alpha) * g^2   running mean of g^2
        g_avg = alpha * g_avg + (1 - alpha) * g (centered only)
        d     = sqrt(v - g_avg^2) + eps  if centered, else sqrt(v) + eps
        buf   = momentum * buf + g / d;  p = p - lr * buf   (momentum > 0)
        p     = p - lr * g / d                              (otherwise)

    Dividing by the root mean square of recent gradients gives every
    parameter a step of about lr whatever its gradient's scale. The centered
    form divides by an estimate of the gradient's standard deviation instead
    (v - g_avg^2 is a variance). Unlike Adam there is no bias correction, so
    the first steps are larger: v starts at 0 and d at ``sqrt(1 - alpha) |g|``.
    Momentum, when used, accumulates the normalised step g / d.

    Parameters
    ----------
    p : array-like
        Parameters.
    g : array-like
        Their gradient.
    state : list of array-like, optional
        [v] (+ [g_avg] if centered) (+ [buf] if momentum > 0); None before the first step.
    step : int
        This update's number t = 1, 2, ...
    lr : float
        Learning rate.
    alpha : float
        Decay rate of the running mean of g^2.
    eps : float
        Added to the root.
    weight_decay : float, default 0.0
        Coupled L2 decay.
    momentum : float, default 0.0
        Momentum on the normalised step.
    centered : bool, default False
        Divide by the root of an estimate of the variance.

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    state_new : list of ndarray
        The updated state.
    """
    _check_step(step)
    p, g = _check_p_g(p, g)
    names = ["v"]
    if centered:
        names.append("g_avg")
    if momentum > 0.0:
        names.append("buf")
    state = _check_state(state, len(names), p, names)
    if state is None:
        state = [np.zeros_like(p) for _ in names]
    s = dict(zip(names, state))
    if weight_decay != 0.0:
        g = g + weight_decay * p
    v = alpha * s["v"] + (1.0 - alpha) * g * g
    new = {"v": v}
    if centered:
        g_avg = alpha * s["g_avg"] + (1.0 - alpha) * g
        new["g_avg"] = g_avg
        d = np.sqrt(v - g_avg * g_avg) + eps
    else:
        d = np.sqrt(v) + eps
    if momentum > 0.0:
        buf = momentum * s["buf"] + g / d
        new["buf"] = buf
        p = p - lr * buf
    else:
        p = p - lr * g / d
    return p, [new[k] for k in names]


def adagrad_step(p, g, state, step, lr, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator=0.0, eps=1e-10):
    """One step of torch.optim.Adagrad; C++: csrc/optim/optimizer.h (kind adagrad).

    state is [s] (the running sum of squared gradients), or None before the
    first step, when s starts at initial_accumulator. step is this update's
    number t = 1, 2, ... Returns (p_new, state_new)::

        lr_t = lr / (1 + (t - 1) * lr_decay)   the step size decays with t
        g    = g + weight_decay * p            (coupled L2)
        s    = s + g^2
        p    = p - lr_t * g / (sqrt(s) + eps)

    s only grows, so each parameter's step shrinks like 1/sqrt(t) for
    gradients of steady size, and faster for parameters that are updated
    often: frequent features learn slowly, rare ones keep large steps. eps
    is added to sqrt(s), after the root, and guards the division while s is
    still 0 (initial_accumulator 0 and a zero gradient).

    Parameters
    ----------
    p : array-like
        Parameters.
    g : array-like
        Their gradient.
    state : list of array-like, optional
        [s]; None before the first step.
    step : int
        This update's number t = 1, 2, ...
    lr : float
        Learning rate.
    lr_decay : float, default 0.0
        Decay of the step size with t.
    weight_decay : float, default 0.0
        Coupled L2 decay.
    initial_accumulator : float, default 0.0
        Starting value of s.
    eps : float, default 1e-10
        Added to sqrt(s).

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    state_new : list of ndarray
        The updated state.
    """
    step = _check_step(step)
    p, g = _check_p_g(p, g)
    state = _check_state(state, 1, p, ("s",))
    s = np.full_like(p, initial_accumulator) if state is None else state[0]
    lr_t = lr / (1.0 + (step - 1) * lr_decay)
    if weight_decay != 0.0:
        g = g + weight_decay * p
    s = s + g * g
    p = p - lr_t * g / (np.sqrt(s) + eps)
    return p, [s]


def _sgd_general_step(p, g, state, step, lr, momentum, dampening, nesterov, weight_decay):
    """torch.optim.SGD with dampening: sgd_step's rule, but for t > 1

        buf = momentum * buf + (1 - dampening) * g

    (the first step still sets buf = g: torch copies the first gradient into
    the buffer undamped). Nesterov requires dampening 0, so it goes through
    sgd_step, like every dampening-0 case."""
    buf = None if (state is None or step == 1 or momentum == 0.0) else state[0]
    if dampening == 0.0 or momentum == 0.0:
        p_new, buf_new = sgd_step(p, g, lr, momentum, nesterov, weight_decay, buf)
        return p_new, [] if buf_new is None else [buf_new]
    if weight_decay != 0.0:
        g = g + weight_decay * p
    buf_new = g.copy() if buf is None else momentum * buf + (1.0 - dampening) * g
    return p - lr * buf_new, [buf_new]


def optimizer_config(optimizer, **overrides):
    """The full hyper-parameters of an optimizer, from its public description.

    optimizer is a class name ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad";
    any case), a pair (class name, dict of constructor arguments), or an
    object with get_config() (an fm.optim optimizer, named by its class);
    overrides are further constructor arguments. Arguments not given take
    OPTIMIZER_DEFAULTS (torch's). Returns (class name, {argument: value}).

    Only public constructor arguments are read (lr, betas, eps,
    weight_decay, momentum, dampening, nesterov, amsgrad, centered, alpha,
    lr_decay, initial_accumulator_value): never the core's configuration, so
    that this oracle stays independent of how fastmlp.optim talks to the core.

    Parameters
    ----------
    optimizer : str, tuple or optimizer
        A class name, a pair (class name, dict of constructor arguments), or
        an object with get_config().
    **overrides
        Further constructor arguments.

    Returns
    -------
    name : str
        The class name, as spelled in OPTIMIZER_DEFAULTS.
    config : dict
        Every constructor argument.
    """
    args = {}
    if isinstance(optimizer, tuple):
        if len(optimizer) != 2 or not isinstance(optimizer[1], dict):
            msg = f"optimizer: expected (class name, dict of arguments), got {optimizer!r}"
            raise TypeError(msg)
        optimizer, args = optimizer
    elif not isinstance(optimizer, str) and hasattr(optimizer, "get_config"):
        args = optimizer.get_config()
        optimizer = type(optimizer).__name__
    if not isinstance(optimizer, str):
        msg = (f"optimizer: expected a class name, (name, arguments) or an optimizer with "
               f"get_config(), got {optimizer!r}")
        raise TypeError(msg)
    names = {k.lower(): k for k in OPTIMIZER_DEFAULTS}
    name = names.get(optimizer.lower())
    if name is None:
        msg = f"optimizer: expected one of {sorted(OPTIMIZER_DEFAULTS)}, got {optimizer!r}"
        raise ValueError(msg)
    given = {**args, **overrides}
    unknown = sorted(set(given) - set(OPTIMIZER_DEFAULTS[name]))
    if unknown:
        msg = (f"config: unknown argument {unknown[0]!r} for {name} "
               f"(expected some of {sorted(OPTIMIZER_DEFAULTS[name])})")
        raise ValueError(msg)
    config = {**OPTIMIZER_DEFAULTS[name], **given}
    if "betas" in config:
        betas = tuple(config["betas"])
        if len(betas) != 2:
            msg = f"betas: expected a pair (beta1, beta2), got {config['betas']!r}"
            raise ValueError(msg)
        config["betas"] = betas
    return name, config


def optimizer_step(optimizer, p, g, state=None, step=1, **overrides):
    """One update by any optimizer of csrc/optim/optimizer.h, from its public description.

    optimizer (and overrides) as for optimizer_config: e.g. "Adam",
    ("AdamW", {"lr": 0.01, "amsgrad": True}), or fm.optim.RMSprop(centered=True).
    state is the list of state arrays, in the core's order, or None before
    the first step; step is this update's number t = 1, 2, ... Returns
    (p_new, state_new); inputs are not modified.

    State, in order::

        SGD      [buf] if momentum != 0, else []
        Adam(W)  [m, v] (+ [v_max] with amsgrad)
        RMSprop  [v] (+ [g_avg] if centered) (+ [buf] if momentum > 0)
        Adagrad  [s]

    Parameters
    ----------
    optimizer : str, tuple or optimizer
        As for optimizer_config.
    p : array-like
        Parameters.
    g : array-like
        Their gradient.
    state : list of array-like, optional
        The state arrays in the order above; None before the first step.
    step : int, default 1
        This update's number t = 1, 2, ...
    **overrides
        Further constructor arguments.

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    state_new : list of ndarray
        The updated state.
    """
    name, c = optimizer_config(optimizer, **overrides)
    step = _check_step(step)
    p, g = _check_p_g(p, g)
    if name == "SGD":
        n = 1 if c["momentum"] != 0.0 else 0
        state = _check_state(state, n, p, ("buf",) * n)
        return _sgd_general_step(p, g, state, step, c["lr"], c["momentum"], c["dampening"],
                                 c["nesterov"], c["weight_decay"])
    if name in ("Adam", "AdamW"):
        beta1, beta2 = c["betas"]
        return adam_step(p, g, state, step, c["lr"], beta1, beta2, c["eps"],
                         c["weight_decay"], c["amsgrad"], decoupled=name == "AdamW")
    if name == "RMSprop":
        return rmsprop_step(p, g, state, step, c["lr"], c["alpha"], c["eps"],
                            c["weight_decay"], c["momentum"], c["centered"])
    return adagrad_step(p, g, state, step, c["lr"], c["lr_decay"], c["weight_decay"],
                        c["initial_accumulator_value"], c["eps"])


# ---------------------------------------------------------------------------
# GEMM                                                      (csrc/gemm/gemm.h)
# ---------------------------------------------------------------------------


def matmul(a, b, trans_a=False, trans_b=False):
    """op(a) @ op(b), op being the transpose when asked for; C++: csrc/gemm/gemm.h.

    op(a) (m, k), op(b) (k, n) -> (m, n). The three GEMMs of a dense layer
    are matmul(x, w, trans_b=True) forward, and in backward
    matmul(dz, x, trans_a=True) for dw and matmul(dz, w) for dx.

    Parameters
    ----------
    a, b : array-like, 2-D
        The operands.
    trans_a, trans_b : bool, default False
        Transpose a / b first.

    Returns
    -------
    ndarray of shape (m, n)
        op(a) @ op(b).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    _check_2d(a, "a")
    _check_2d(b, "b")
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    if opa.shape[1] != opb.shape[0]:
        msg = (
            f"b: expected op(b) with {opa.shape[1]} rows to match op(a) {opa.shape}, "
            f"got op(b) {opb.shape}"
        )
        raise ValueError(msg)
    return opa @ opb


def round_bf16(x):
    """x rounded to bfloat16, returned as float32; C++: csrc/common/bf16.h (bf16_bits).

    bfloat16 keeps the upper 16 bits of a float32 (sign, the 8 exponent bits,
    7 of the 23 significand bits). Rounding to nearest, ties to even, on the
    bit pattern: add 0x7FFF plus the lowest kept bit and drop the low 16 bits.
    The carry this may produce runs into the exponent, as rounding up should:
    a significand of all ones rounds to the next power of two, and values from
    halfway between bf16's largest finite number (0x7F7F, 3.3895e38) and the
    next power of two upwards, float32's largest finite number included,
    become infinity. Denormals round like any other value; -0 stays -0. NaN
    stays NaN: the addition could carry a NaN with a payload only in the low
    half into infinity, so NaNs are quieted instead (the top significand bit
    set, sign and the upper payload kept). This is torch's
    ``x.to(torch.bfloat16)``.

    Parameters
    ----------
    x : array-like
        Values, converted to float32 first (any shape).

    Returns
    -------
    ndarray of float32, the shape of x
        Each value's nearest bfloat16, exactly representable in float32.
    """
    x = np.asarray(x, dtype=np.float32)
    u = np.ascontiguousarray(x).view(np.uint32)
    lsb = (u >> np.uint32(16)) & np.uint32(1)
    rounded = (u + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)  # wraps only for NaN
    is_nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet = (u & np.uint32(0xFFFF0000)) | np.uint32(0x00400000)
    return np.where(is_nan, quiet, rounded).astype(np.uint32).view(np.float32).reshape(x.shape)


# ---------------------------------------------------------------------------
# Dropout                                     (csrc/nn/dropout.h, csrc/nn/rng.h)
# ---------------------------------------------------------------------------

_U32 = np.uint64(0xFFFFFFFF)
_PHILOX_M0 = np.uint64(0xD2511F53)  # multiplies counter word 0
_PHILOX_M1 = np.uint64(0xCD9E8D57)  # multiplies counter word 2
_PHILOX_W0 = 0x9E3779B9  # key increments per round (golden ratio, sqrt(3) - 1)
_PHILOX_W1 = 0xBB67AE85
_DROPOUT_STREAM = 3  # RngStream::dropout in csrc/nn/rng.h
_MAX_LAYER = (1 << 24) - 1  # the layer shares counter word 2 with the 8-bit stream id


def _check_uint(v, name, bits):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        msg = f"{name}: expected an int, got {type(v).__name__}"
        raise TypeError(msg)
    v = int(v)
    if not 0 <= v < (1 << bits):
        msg = f"{name}: expected an int in [0, 2**{bits}), got {v}"
        raise ValueError(msg)
    return v


def philox4x32(counters, seed):
    """Philox4x32-10 of every row of counters (N, 4) uint32 under key = seed; C++: csrc/nn/rng.h.

    Returns (N, 4) uint32. Philox (Salmon et al., "Parallel random numbers:
    as easy as 1, 2, 3", SC'11) is a keyed bijection of 128-bit counters:
    ten rounds of ::

        hi0:lo0 = 0xD2511F53 * c0          (32 x 32 -> 64-bit products)
        hi1:lo1 = 0xCD9E8D57 * c2
        (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        k0 += 0x9E3779B9; k1 += 0xBB67AE85  (mod 2^32)

    with (k0, k1) = (low, high) 32 bits of the 64-bit seed. Because a draw is
    a pure function of (seed, counter), the core can hand any element to any
    thread. All arithmetic is in uint64, where a product of two 32-bit words
    cannot overflow, and every word is masked back to 32 bits.

    Parameters
    ----------
    counters : ndarray of shape (N, 4), uint32
        The counters.
    seed : int
        The 64-bit key.

    Returns
    -------
    ndarray of shape (N, 4), uint32
        The random words.
    """
    seed = _check_uint(seed, "seed", 64)
    c = np.asarray(counters)
    if c.ndim != 2 or c.shape[1] != 4:
        msg = f"counters: expected shape (N, 4), got {c.shape}"
        raise ValueError(msg)
    if c.dtype != np.uint32:
        msg = f"counters: expected dtype uint32, got {c.dtype}"
        raise TypeError(msg)
    c = c.astype(np.uint64)
    c0, c1, c2, c3 = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    for _ in range(10):
        p0 = _PHILOX_M0 * c0
        p1 = _PHILOX_M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0),
            p1 & _U32,
            (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1),
            p0 & _U32,
        )
        k0 = (k0 + _PHILOX_W0) & 0xFFFFFFFF
        k1 = (k1 + _PHILOX_W1) & 0xFFFFFFFF
    return np.stack([c0, c1, c2, c3], axis=1).astype(np.uint32)


def dropout_mask(shape, p, seed, step, layer, dtype="float32"):
    """Inverted-dropout mask of one layer's output; C++: csrc/nn/dropout.h.

    shape: the output's shape, (n, units) for a layer; returns an array of it
    in `dtype`, each element 0 (dropped) or 1 / (1 - p) (kept), so that the
    expected value of y * mask is y and nothing needs rescaling at eval time.

    Element e (row-major index) takes word e % 4 of the Philox block with
    counter (e // 4, step mod 2^32, 3 | layer << 8, step >> 32) under key
    seed; with w that word and u = w * 2^-32 in [0, 1), it is kept when
    u >= p. So the mask depends on (seed, step, layer, e) only: one mask per
    optimizer step and layer, the same for any thread count, and backward
    reuses it. 1 / (1 - p) is computed in float64 and rounded once to dtype.
    p == 0 gives all ones (u >= 0 always holds).

    Parameters
    ----------
    shape : int or tuple of int
        The layer output's shape.
    p : float
        The dropout rate, in [0, 1).
    seed : int
        The 64-bit seed.
    step : int
        The optimizer step.
    layer : int
        The layer's index.
    dtype : str or dtype, default "float32"
        float32 or float64.

    Returns
    -------
    ndarray
        The mask.
    """
    try:
        dt = np.dtype(dtype)
    except TypeError:
        msg = f"dtype: expected 'float32' or 'float64', got {dtype!r}"
        raise TypeError(msg) from None
    if dt not in (np.float32, np.float64):
        msg = f"dtype: expected 'float32' or 'float64', got {dtype!r}"
        raise ValueError(msg)
    p = float(p)
    if not 0.0 <= p < 1.0:
        msg = f"p: expected 0 <= p < 1, got {p}"
        raise ValueError(msg)
    seed = _check_uint(seed, "seed", 64)
    step = _check_uint(step, "step", 64)
    layer = _check_uint(layer, "layer", 24)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    count = math.prod(shape)
    n_blocks = -(-count // 4)
    counters = np.empty((n_blocks, 4), dtype=np.uint32)
    counters[:, 0] = np.arange(n_blocks, dtype=np.uint64) & _U32  # uint32(e / 4)
    counters[:, 1] = step & 0xFFFFFFFF
    counters[:, 2] = _DROPOUT_STREAM | (layer << 8)
    counters[:, 3] = step >> 32
    words = philox4x32(counters, seed).reshape(-1)[:count]
    u = words.astype(np.float64) * 2.0**-32  # exact: w < 2^32 has 32 significant bits
    scale = dt.type(1.0 / (1.0 - p))
    return np.where(u >= p, scale, dt.type(0)).astype(dt).reshape(shape)


# ---------------------------------------------------------------------------
# Batch normalization                                    (csrc/nn/batchnorm.h)
# ---------------------------------------------------------------------------


def _check_features(a, name, f):
    a = np.asarray(a)
    if a.shape != (f,):
        msg = f"{name}: expected shape ({f},) (one value per column of x), got {a.shape}"
        raise ValueError(msg)
    return a


def batch_norm_forward(x, gamma, beta, eps=1e-5, training=True, running_mean=None,
                       running_var=None, momentum=0.1):
    """Batch normalization of x (n, f) per column, as torch.nn.BatchNorm1d; C++: csrc/nn/batchnorm.h.

    Returns (y, cache, new_running_mean, new_running_var); the inputs are not
    modified.

    training=True normalizes with the statistics of this batch::

        mean = x.mean(axis=0)                      (f,)
        var  = ((x - mean) ** 2).mean(axis=0)      (f,) biased: divides by n
        invstd = 1 / sqrt(var + eps)
        xhat = (x - mean) * invstd                 (n, f) zero mean, unit variance
        y    = gamma * xhat + beta                 (n, f)

    and, when running_mean and running_var are given, returns them updated
    as torch does, with the *unbiased* variance (n >= 2 rows needed)::

        new_running_mean = (1 - momentum) running_mean + momentum mean
        new_running_var  = (1 - momentum) running_var + momentum var n / (n - 1)

    (None, None when they are not given). training=False normalizes with the
    running statistics instead, which are then required and returned
    unchanged (as copies)::

        invstd = 1 / sqrt(running_var + eps);  xhat = (x - running_mean) * invstd

    cache (for batch_norm_backward) is a dict: training, xhat, invstd, gamma,
    mean and var (the batch's, or the running ones in eval).

    Why the two-pass variance (mean first, then squared deviations):
    mean(x^2) - mean(x)^2 subtracts two nearly equal numbers when ``|mean|`` is
    large against the spread, and can even come out negative.

    Parameters
    ----------
    x : array-like of shape (n, f)
        The input.
    gamma, beta : array-like of shape (f,)
        Scale and shift.
    eps : float, default 1e-5
        Added to the variance.
    training : bool, default True
        Batch statistics (True) or the running ones (False).
    running_mean, running_var : array-like of shape (f,), optional
        The running statistics (required when training is False).
    momentum : float, default 0.1
        Weight of the batch in the running statistics.

    Returns
    -------
    y : ndarray of shape (n, f)
        The output.
    cache : dict
        For batch_norm_backward.
    new_running_mean, new_running_var : ndarray of shape (f,) or None
        The updated running statistics.
    """
    x = np.asarray(x)
    _check_2d(x, "x")
    n, f = x.shape
    gamma = _check_features(gamma, "gamma", f)
    beta = _check_features(beta, "beta", f)
    if not (math.isfinite(eps) and eps >= 0.0):
        msg = f"eps: expected a finite number >= 0, got {eps}"
        raise ValueError(msg)
    if not 0.0 <= momentum <= 1.0:
        msg = f"momentum: expected 0 <= momentum <= 1, got {momentum}"
        raise ValueError(msg)
    if (running_mean is None) != (running_var is None):
        msg = "running_var: expected running_mean and running_var together, got only one of them"
        raise ValueError(msg)
    if running_mean is not None:
        running_mean = _check_features(running_mean, "running_mean", f)
        running_var = _check_features(running_var, "running_var", f)
    if training:
        if n < 1:
            msg = f"x: expected at least one row, got shape {x.shape}"
            raise ValueError(msg)
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        invstd = 1.0 / np.sqrt(var + eps)
        new_mean = new_var = None
        if running_mean is not None:
            if n < 2:
                msg = (f"x: expected at least 2 rows to update the running variance "
                       f"(it divides by n - 1), got shape {x.shape}")
                raise ValueError(msg)
            new_mean = (1.0 - momentum) * running_mean + momentum * mean
            new_var = (1.0 - momentum) * running_var + momentum * (var * (n / (n - 1)))
    else:
        if running_mean is None:
            msg = "running_mean: expected the running statistics for training=False, got None"
            raise ValueError(msg)
        mean, var = running_mean.copy(), running_var.copy()
        invstd = 1.0 / np.sqrt(var + eps)
        new_mean, new_var = running_mean.copy(), running_var.copy()
    xhat = (x - mean) * invstd
    y = gamma * xhat + beta
    cache = {"training": bool(training), "xhat": xhat, "invstd": invstd, "gamma": gamma,
             "mean": mean, "var": var}
    return y, cache, new_mean, new_var


def batch_norm_backward(dy, cache):
    """Gradients of batch_norm_forward; C++: csrc/nn/batchnorm.h.

    dy (n, f) = dL/dy -> (dx (n, f), dgamma (f,), dbeta (f,)).

    y = gamma xhat + beta gives at once, summing over the rows that share a
    column's gamma and beta::

        dbeta  = sum_i dy_i            dgamma = sum_i dy_i xhat_i
        dxhat_i = gamma dy_i

    In training mode xhat_i = (x_i - mu) s with s = (var + eps)^(-1/2), and
    both mu = mean_k x_k and var = mean_k (x_k - mu)^2 depend on every x_i of
    the column, so the chain rule has three paths (per column; i, k rows)::

        dL/dx_i = dxhat_i s  +  dL/dvar dvar/dx_i  +  dL/dmu dmu/dx_i

        dL/dvar = sum_k dxhat_k (x_k - mu) (-1/2) (var + eps)^(-3/2)
                = -(s^2 / 2) sum_k dxhat_k xhat_k
        dvar/dx_i = 2 (x_i - mu) / n     (its path through mu is
                                          -(2/n) sum_k (x_k - mu) = 0)
        dL/dmu  = -s sum_k dxhat_k       (the var path again carries
                                          sum_k (x_k - mu) = 0)
        dmu/dx_i = 1 / n

    Adding them, with (x_i - mu) s = xhat_i::

        dx_i = s (dxhat_i - mean_k(dxhat_k) - xhat_i mean_k(dxhat_k xhat_k))
             = gamma s (dy_i - mean(dy) - xhat_i mean(dy xhat))

    The two means project out of dy what normalization cannot see: a shift
    of the column (so each column of dx sums to 0) and, when eps = 0, a
    rescaling of it (dx is then also orthogonal to xhat in each column).

    In eval mode mean and var are constants (the running statistics), the
    layer is affine, and dx = gamma s dy.

    Parameters
    ----------
    dy : array-like of shape (n, f)
        dL/dy.
    cache : dict
        What batch_norm_forward returned.

    Returns
    -------
    dx : ndarray of shape (n, f)
        dL/dx.
    dgamma, dbeta : ndarray of shape (f,)
        Gradients of scale and shift.
    """
    dy = np.asarray(dy)
    xhat = cache["xhat"]
    _check_same_shape(xhat, "the cached xhat", dy, "dy")
    gamma, invstd = cache["gamma"], cache["invstd"]
    dbeta = dy.sum(axis=0)
    dgamma = (dy * xhat).sum(axis=0)
    if not cache["training"]:
        return gamma * invstd * dy, dgamma, dbeta
    n = dy.shape[0]
    dx = (gamma * invstd) * (dy - dbeta / n - xhat * (dgamma / n))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------------------
# Regularization and gradient clipping
# ---------------------------------------------------------------------------


def _check_nonneg(v, name):
    v = float(v)
    if not (math.isfinite(v) and v >= 0.0):
        msg = f"{name}: expected a finite number >= 0, got {v}"
        raise ValueError(msg)
    return v


def l1_l2_penalty(weights, l1, l2):
    """``l1 * sum |W| + l2 * sum W^2`` over the weight matrices in `weights`, as a float.

    The penalty Keras' l1_l2 regularizer adds to the loss. Only weight
    matrices take part: biases, and batch norm's gamma and beta, are not
    penalized (shrinking a bias or a scale toward 0 does not reduce capacity).
    Its gradient is l1_l2_gradient. This differs from torch.optim's
    weight_decay, which adds wd * p to the gradient of every parameter and
    no term to the loss (with wd = 2 * l2 it gives the same step as the L2
    part here), and from decoupled decay (AdamW), which shrinks p outside
    the adaptive update altogether.

    Parameters
    ----------
    weights : iterable of array-like
        The weight matrices.
    l1, l2 : float
        Penalty factors, >= 0.

    Returns
    -------
    float
        The penalty, summed in float64.
    """
    l1 = _check_nonneg(l1, "l1")
    l2 = _check_nonneg(l2, "l2")
    total = 0.0
    for w in weights:
        w = np.asarray(w, dtype=np.float64)
        total += l1 * float(np.abs(w).sum()) + l2 * float((w * w).sum())
    return total


def l1_l2_gradient(w, l1, l2):
    """d/dW of l1_l2_penalty for one weight matrix: l1 sign(W) + 2 l2 W.

    ``|w|`` has no derivative at 0; sign(0) = 0 is the subgradient that torch's
    abs backward and Keras use, and it keeps exact zeros at zero.

    Parameters
    ----------
    w : array-like
        One weight matrix.
    l1, l2 : float
        Penalty factors, >= 0.

    Returns
    -------
    ndarray
        The penalty's gradient, w's shape.
    """
    l1 = _check_nonneg(l1, "l1")
    l2 = _check_nonneg(l2, "l2")
    w = np.asarray(w)
    return l1 * np.sign(w) + (2.0 * l2) * w


def _flatten_grads(grads, name):
    """[(index, key or None, array)] of a list of arrays or of per-layer dicts."""
    items = []
    for i, g in enumerate(grads):
        if isinstance(g, dict):
            items.extend((i, k, np.asarray(v)) for k, v in g.items())
        else:
            items.append((i, None, np.asarray(g)))
    for i, k, a in items:
        if a.dtype.kind != "f":
            where = f"{name}[{i}]" + (f"[{k!r}]" if k is not None else "")
            msg = f"{where}: expected a floating-point array, got dtype {a.dtype}"
            raise TypeError(msg)
    return items


def _unflatten_grads(grads, items, arrays):
    out = [dict(g) if isinstance(g, dict) else None for g in grads]
    for (i, k, _), a in _zip_same(items, arrays):
        if k is None:
            out[i] = a
        else:
            out[i][k] = a
    return out


def clip_grad_norm(grads, max_norm):
    """Scale gradients to a total 2-norm of at most max_norm, as ``torch.nn.utils.clip_grad_norm_``.

    grads: a list of arrays, or the per-layer dicts that Network.backward
    returns. Returns (clipped, total_norm): clipped has the structure of
    grads (new arrays; grads is not modified), total_norm is the norm before
    clipping, a float::

        total_norm = || (||g_1||_2, ||g_2||_2, ...) ||_2   (the norm of all elements together)
        coef = min(max_norm / (total_norm + 1e-6), 1)
        g_i  = g_i * coef                                   for every i

    The 1e-6 keeps the division finite for a zero gradient; torch multiplies
    by the clamped coefficient even when it is 1, which changes no value.

    Parameters
    ----------
    grads : list of array-like or list of dict
        Gradients: arrays, or Network.backward's per-layer dicts.
    max_norm : float
        The largest total norm allowed, >= 0.

    Returns
    -------
    clipped : list
        The structure of grads, with new arrays.
    total_norm : float
        The norm before clipping.
    """
    max_norm = _check_nonneg(max_norm, "max_norm")
    items = _flatten_grads(grads, "grads")
    norms = [float(np.sqrt((a.astype(np.float64) ** 2).sum())) for _, _, a in items]
    total = float(np.sqrt(np.sum(np.square(norms)))) if norms else 0.0
    coef = min(max_norm / (total + 1e-6), 1.0)
    return _unflatten_grads(grads, items, [a * a.dtype.type(coef) for _, _, a in items]), total


def clip_grad_value(grads, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value], as
    ``torch.nn.utils.clip_grad_value_``.

    grads: a list of arrays or of per-layer dicts; returns the same structure
    with new arrays.

    Parameters
    ----------
    grads : list of array-like or list of dict
        Gradients: arrays, or Network.backward's per-layer dicts.
    clip_value : float
        The bound, >= 0.

    Returns
    -------
    list
        The structure of grads, with new arrays.
    """
    clip_value = _check_nonneg(clip_value, "clip_value")
    items = _flatten_grads(grads, "grads")
    return _unflatten_grads(grads, items, [np.clip(a, -clip_value, clip_value) for _, _, a in items])


__all__ += [  # the sections above, appended here to keep their additions in one place
    "adam_step",
    "adagrad_step",
    "optimizer_config",
    "optimizer_step",
    "rmsprop_step",
    "batch_norm_backward",
    "batch_norm_forward",
    "clip_grad_norm",
    "clip_grad_value",
    "dropout_mask",
    "l1_l2_gradient",
    "l1_l2_penalty",
    "philox4x32",
]


# ---------------------------------------------------------------------------
# The whole network                                    (csrc/network/network.h)
# ---------------------------------------------------------------------------


class Network:
    """The whole network, forward and backward, as the core's layer loop does it.

    C++: csrc/network/network.h. Layer l (0-based, L layers) has::

        weights[l]  (out_l, in_l)   with in_{l+1} == out_l
        biases[l]   (out_l,)
        activations[l], one name per layer, the output layer included

    and, optionally (keyword arguments, hidden layers only)::

        dropout      a rate p (every hidden layer) or one rate per layer, the
                     output layer's 0: inverted dropout of the layer's output
                     after its activation, in training mode only
        batch_norm   a bool (every hidden layer) or one per layer, the output
                     layer's False: z = batch_norm(x W^T + b), then the
                     activation, as Linear -> BatchNorm1d -> activation in torch
        l1, l2       penalty l1 * sum|W| + l2 * sum W^2 over the weight
                     matrices, added to the loss (l1_l2_penalty)
        bn_eps, bn_momentum   batch norm's eps (1e-5) and momentum (0.1)
        gemm_round   applied to the operands of every layer's three products
                     (dense_forward / dense_backward's gemm_round): round_bf16
                     makes this the core's mixed_bfloat16 network (with
                     float32 weights; everything else stays unrounded)

    A batch-norm layer holds gammas[l] (ones), betas[l] (zeros), and the
    buffers running_means[l] (zeros) and running_vars[l] (ones), in the
    dtype of weights[l]; the four are None for other layers.

    After forward (and backward, which runs forward itself) the per-layer
    workspace is kept under the core's names::

        self.xs[l]    (n, in_l)    input of layer l (xs[0] is the batch)
        self.lins[l]  (n, out_l)   x W^T + b; the same array as zs[l] without batch norm
        self.zs[l]    (n, out_l)   pre-activation (after batch norm, if any)
        self.ys[l]    (n, out_l)   post-activation act(zs[l]), before dropout
        self.masks[l] (n, out_l)   the dropout mask, or None; xs[l + 1] = ys[l] * masks[l]
        self.bn_caches[l]          batch_norm_forward's cache, or None
        self.dzs[l]   (n, out_l)   dL/dz of layer l (after backward)

    Modes: forward(x, training=True, step, seed) uses batch statistics and
    the dropout masks of (seed, step, l); training=False (the default of
    forward and loss) uses the running statistics and no dropout. backward
    defaults to training=True, since gradients are taken for training. The
    running statistics change only when a training forward is asked to
    (update_stats=True): a loss evaluated many times over, as by
    numerical_gradient, leaves them alone.

    The parameter arrays are held, not copied: sgd_step writes into them.

    Parameters
    ----------
    weights : list of array-like
        Per layer (out_l, in_l).
    biases : list of array-like
        Per layer (out_l,).
    activations : list of str
        One name per layer, the output layer included.
    loss : str
        The loss's name (one of LOSSES).
    dropout : float or list of float, default 0.0
        Hidden layers' dropout rate(s).
    batch_norm : bool or list of bool, default False
        Hidden layers' batch normalization.
    l1, l2 : float, default 0.0
        The weight penalty.
    bn_eps : float, default 1e-5
        Batch norm's eps.
    bn_momentum : float, default 0.1
        Batch norm's momentum.
    gemm_round : callable, optional
        Rounds the GEMM operands (None: none).
    """

    def __init__(self, weights, biases, activations, loss, *, dropout=0.0, batch_norm=False,
                 l1=0.0, l2=0.0, bn_eps=1e-5, bn_momentum=0.1, gemm_round=None):
        _check_loss(loss)
        weights = [np.asarray(w) for w in weights]
        biases = [np.asarray(b) for b in biases]
        activations = list(activations)
        n_layers = len(weights)
        if n_layers == 0:
            msg = "weights: expected at least one layer, got none"
            raise ValueError(msg)
        if len(biases) != n_layers:
            msg = f"biases: expected {n_layers} arrays (one per layer), got {len(biases)}"
            raise ValueError(msg)
        if len(activations) != n_layers:
            msg = (
                f"activations: expected {n_layers} names (one per layer, output included), "
                f"got {len(activations)}"
            )
            raise ValueError(msg)
        for li, (w, b, act) in enumerate(_zip_same(weights, biases, activations)):
            _check_activation(act)
            _check_2d(w, f"weights[{li}]")
            if li > 0 and w.shape[1] != weights[li - 1].shape[0]:
                msg = (
                    f"weights[{li}]: expected {weights[li - 1].shape[0]} input columns "
                    f"(the outputs of layer {li - 1}), got shape {w.shape}"
                )
                raise ValueError(msg)
            if b.shape != (w.shape[0],):
                msg = f"biases[{li}]: expected shape ({w.shape[0]},), got {b.shape}"
                raise ValueError(msg)
        if loss != "mse" and activations[-1] != "identity":
            msg = (
                f"activations[-1]: expected 'identity' for loss {loss!r}, which applies "
                f"{_OUTPUT_TRANSFORM_NAME[loss]} itself; "
                f"got {activations[-1]!r}"
            )
            raise ValueError(msg)
        self.weights = weights
        self.biases = biases
        self.activations = activations
        self.loss_name = loss
        self.dropout = self._per_hidden_layer(dropout, "dropout", 0.0, float)
        for li, p in enumerate(self.dropout):
            if not 0.0 <= p < 1.0:
                msg = f"dropout: expected rates in [0, 1), got {p} for layer {li}"
                raise ValueError(msg)
        self.batch_norm = self._per_hidden_layer(batch_norm, "batch_norm", False, bool)
        self.l1 = _check_nonneg(l1, "l1")
        self.l2 = _check_nonneg(l2, "l2")
        self.bn_eps = float(bn_eps)
        self.bn_momentum = float(bn_momentum)
        self.gemm_round = gemm_round
        self.gammas, self.betas, self.running_means, self.running_vars = [], [], [], []
        for w, bn in _zip_same(weights, self.batch_norm):
            out, dt = w.shape[0], w.dtype
            self.gammas.append(np.ones(out, dtype=dt) if bn else None)
            self.betas.append(np.zeros(out, dtype=dt) if bn else None)
            self.running_means.append(np.zeros(out, dtype=dt) if bn else None)
            self.running_vars.append(np.ones(out, dtype=dt) if bn else None)
        self.xs = []
        self.lins = []
        self.zs = []
        self.ys = []
        self.masks = []
        self.bn_caches = []
        self.dzs = []
        self.output = None
        self._sgd_bufs = None  # per layer {"W": buf, "b": buf, ...}, created by the first sgd_step

    def _per_hidden_layer(self, value, name, off, kind):
        """One value per layer from a scalar (hidden layers) or a per-layer list."""
        n_layers = len(self.weights)
        if isinstance(value, (list, tuple, np.ndarray)):
            values = [kind(v) for v in value]
            if len(values) != n_layers:
                msg = f"{name}: expected {n_layers} values (one per layer), got {len(values)}"
                raise ValueError(msg)
            if values[-1] != off:
                msg = (f"{name}: expected {off!r} for the output layer (hidden layers only), "
                       f"got {values[-1]!r}")
                raise ValueError(msg)
            return values
        return [kind(value)] * (n_layers - 1) + [off]

    def forward(self, x, training=False, step=0, seed=0, update_stats=False):
        """Run every layer on x (n, in_0); return the network output (n, out_{L-1}).

        The output is output_transform of the last layer: its y for mse,
        softmax(z) for cross_entropy, sigmoid(z) for binary_cross_entropy,
        exp(z) for poisson.

        training=True: batch norm normalizes with this batch's statistics and
        each hidden layer l with a dropout rate multiplies its output by
        dropout_mask((n, out_l), p_l, seed, step, l). update_stats=True
        (training only) also moves running_means/running_vars toward this
        batch's statistics, in place, as one torch training forward does.
        training=False: running statistics, no dropout; seed and step unused.

        Parameters
        ----------
        x : array-like of shape (n, in_0)
            The batch.
        training : bool, default False
            Batch statistics and dropout (True).
        step : int, default 0
            The optimizer step (selects the dropout masks).
        seed : int, default 0
            The seed of the dropout masks.
        update_stats : bool, default False
            Move the running statistics (training only).

        Returns
        -------
        ndarray of shape (n, out_{L-1})
            The network output.
        """
        x = np.asarray(x)
        _check_2d(x, "x")
        if x.shape[1] != self.weights[0].shape[1]:
            msg = f"x: expected shape (n, {self.weights[0].shape[1]}), got {x.shape}"
            raise ValueError(msg)
        if update_stats and not training:
            msg = "update_stats: running statistics are only updated in training mode (training=True)"
            raise ValueError(msg)
        self.xs, self.lins, self.zs, self.ys, self.masks, self.bn_caches = [], [], [], [], [], []
        for li, (w, b, act) in enumerate(_zip_same(self.weights, self.biases, self.activations)):
            cache = None
            if self.batch_norm[li]:
                lin, _ = dense_forward(x, w, b, "identity", gemm_round=self.gemm_round)
                keep_stats = not training or update_stats
                z, cache, new_mean, new_var = batch_norm_forward(
                    lin, self.gammas[li], self.betas[li], eps=self.bn_eps, training=training,
                    running_mean=self.running_means[li] if keep_stats else None,
                    running_var=self.running_vars[li] if keep_stats else None,
                    momentum=self.bn_momentum,
                )
                if training and update_stats:
                    self.running_means[li][...] = new_mean
                    self.running_vars[li][...] = new_var
                y = activation_forward(z, act)
            else:
                z, y = dense_forward(x, w, b, act, gemm_round=self.gemm_round)
                lin = z
            mask = None
            if training and self.dropout[li] > 0.0:
                mask = dropout_mask(y.shape, self.dropout[li], seed, step, li, dtype=y.dtype)
            self.xs.append(x)
            self.lins.append(lin)
            self.zs.append(z)
            self.ys.append(y)
            self.masks.append(mask)
            self.bn_caches.append(cache)
            x = y if mask is None else y * mask  # this layer's output is the next layer's input
        if self.loss_name == "mse":
            self.output = self.ys[-1].copy()
        else:
            self.output = output_transform(self.zs[-1], self.loss_name)
        return self.output

    def penalty(self):
        """l1 * sum|W| + l2 * sum W^2 over the weight matrices (0.0 without l1/l2)."""
        if self.l1 == 0.0 and self.l2 == 0.0:
            return 0.0
        return l1_l2_penalty(self.weights, self.l1, self.l2)

    def loss(self, x, t, training=False, step=0, seed=0, update_stats=False, *,
             sample_weight=None, class_weight=None):
        """Mean loss on the batch (x, t) plus the l1/l2 penalty; no gradients, no update.

        training, step, seed and update_stats as in forward (eval by default).
        sample_weight (n,) and class_weight weigh the mean as loss_forward
        defines (None: unweighted); the penalty is not weighted.

        Parameters
        ----------
        x : array-like of shape (n, in_0)
            The batch.
        t : array-like
            Its targets.
        training : bool, default False
            Batch statistics and dropout (True).
        step : int, default 0
            The optimizer step (selects the dropout masks).
        seed : int, default 0
            The seed of the dropout masks.
        update_stats : bool, default False
            Move the running statistics (training only).
        sample_weight : array-like of shape (n,), optional
            Row weights, finite and >= 0; None: all ones.
        class_weight : array-like, optional
            (k,) for cross_entropy, (2,) for binary_cross_entropy, None for mse and poisson.

        Returns
        -------
        float
            The loss plus the penalty.
        """
        self.forward(x, training=training, step=step, seed=seed, update_stats=update_stats)
        loss = loss_forward(self.zs[-1], self.ys[-1], t, self.loss_name,
                            sample_weight=sample_weight, class_weight=class_weight)
        return loss + self.penalty() if (self.l1 or self.l2) else loss

    def backward(self, x, t, training=True, step=0, seed=0, update_stats=False, *,
                 sample_weight=None, class_weight=None):
        """Forward, then backward through every layer; returns (loss, grads).

        grads[l] = {"W": dW (out_l, in_l), "b": db (out_l,)}, plus
        "gamma" and "beta" (out_l,) for a batch-norm layer: gradients of the
        mean loss over the batch plus the penalty (whose gradient,
        l1_l2_gradient, enters dW only). The forward pass runs with training
        (default True), step, seed and update_stats as in forward.

        The loss hands down dy of the output layer (mse) or its dz directly
        (the other three, whose output activation is the identity, so that
        dense_backward's dz = dy * 1 passes it through unchanged). Then each
        layer, last to first, turns its dy into dz, dW, db and the dy of the
        layer below, which is its dx (sample_weight and class_weight weigh
        the loss and its gradient as in loss)::

            dy = dy * mask                    dropout: x_{l+1} = y * mask
            dz = dy * act'(z)                 through the activation
            dlin, dgamma, dbeta = batch_norm_backward(dz)   with batch norm
                                              (else dlin = dz)
            dW = dlin^T x, db = sum_rows(dlin), dx = dlin W
            dW += l1 sign(W) + 2 l2 W         the penalty

        Parameters
        ----------
        x : array-like of shape (n, in_0)
            The batch.
        t : array-like
            Its targets.
        training : bool, default True
            Batch statistics and dropout (True).
        step : int, default 0
            The optimizer step (selects the dropout masks).
        seed : int, default 0
            The seed of the dropout masks.
        update_stats : bool, default False
            Move the running statistics (training only).
        sample_weight : array-like of shape (n,), optional
            Row weights, finite and >= 0; None: all ones.
        class_weight : array-like, optional
            (k,) for cross_entropy, (2,) for binary_cross_entropy, None for mse and poisson.

        Returns
        -------
        loss : float
            The loss plus the penalty.
        grads : list of dict
            Per layer gradients.
        """
        weights = {"sample_weight": sample_weight, "class_weight": class_weight}
        loss = self.loss(x, t, training=training, step=step, seed=seed, update_stats=update_stats,
                         **weights)
        d = loss_backward(self.zs[-1], self.ys[-1], t, self.loss_name, **weights)
        n_layers = len(self.weights)
        grads = [None] * n_layers
        self.dzs = [None] * n_layers
        dy = d
        for li in reversed(range(n_layers)):
            if self.masks[li] is not None:
                dy = dy * self.masks[li]
            # The core skips dx for layer 0 (nothing below consumes it); here it
            # is computed and dropped, to keep the loop body one call.
            if self.batch_norm[li]:
                dz = activation_backward(dy, self.zs[li], self.ys[li], self.activations[li])
                dlin, dgamma, dbeta = batch_norm_backward(dz, self.bn_caches[li])
                dx, dw, db, _ = dense_backward(dlin, self.xs[li], self.weights[li],
                                               self.lins[li], self.lins[li], "identity",
                                               gemm_round=self.gemm_round)
                grads[li] = {"W": dw, "b": db, "gamma": dgamma, "beta": dbeta}
            else:
                dx, dw, db, dz = dense_backward(
                    dy, self.xs[li], self.weights[li], self.zs[li], self.ys[li],
                    self.activations[li], gemm_round=self.gemm_round
                )
                grads[li] = {"W": dw, "b": db}
            if self.l1 or self.l2:
                grads[li]["W"] = dw + l1_l2_gradient(self.weights[li], self.l1, self.l2)
            self.dzs[li] = dz
            dy = dx
        return loss, grads

    def parameters(self):
        """Per layer {"W", "b"} (+ {"gamma", "beta"} with batch norm): the held arrays,
        keyed like the gradients of backward."""
        params = []
        for li in range(len(self.weights)):
            p = {"W": self.weights[li], "b": self.biases[li]}
            if self.batch_norm[li]:
                p["gamma"] = self.gammas[li]
                p["beta"] = self.betas[li]
            params.append(p)
        return params

    def sgd_step(self, grads, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
        """Apply sgd_step to every parameter (W, b, and gamma, beta with batch
        norm), writing the results into them in place.

        Momentum buffers are kept on the network between calls, one per
        parameter array, and start as None (see sgd_step for why). grads may
        have been clipped first (clip_grad_norm / clip_grad_value take and
        return this list of dicts).

        Parameters
        ----------
        grads : list of dict
            What backward returned (possibly clipped).
        lr : float
            Learning rate.
        momentum : float, default 0.0
            Momentum factor.
        nesterov : bool, default False
            Nesterov momentum.
        weight_decay : float, default 0.0
            Coupled L2 decay.
        """
        if len(grads) != len(self.weights):
            msg = f"grads: expected {len(self.weights)} layers, got {len(grads)}"
            raise ValueError(msg)
        params = self.parameters()
        if self._sgd_bufs is None:
            self._sgd_bufs = [dict.fromkeys(p) for p in params]
        for li, grad in enumerate(grads):
            if set(grad) != set(params[li]):
                msg = f"grads[{li}]: expected keys {sorted(params[li])}, got {sorted(grad)}"
                raise ValueError(msg)
            for key, param in params[li].items():
                p_new, buf_new = sgd_step(
                    param,
                    grad[key],
                    lr,
                    momentum=momentum,
                    nesterov=nesterov,
                    weight_decay=weight_decay,
                    buf=self._sgd_bufs[li][key],
                )
                param[...] = p_new
                self._sgd_bufs[li][key] = buf_new


# ---------------------------------------------------------------------------
# Gradient checking
# ---------------------------------------------------------------------------


def numerical_gradient(f, p, eps=1e-6):
    """Central finite differences of the scalar f() with respect to each element of p.

    f takes no arguments and reads p (for example through a Network holding
    it). Each element is perturbed in place, f is evaluated at p_i + eps and
    p_i - eps, and p_i is restored to its exact original value afterwards.
    Returns a float64 array of p's shape::

        grad_i = (f(p_i + eps) - f(p_i - eps)) / (2 eps)

    Why central differences: by Taylor's theorem the one-sided quotient
    (f(p + eps) - f(p)) / eps is off by eps f''/2, an O(eps) error, while in
    the central one the even terms cancel and the error is eps^2 f'''/6,
    O(eps^2). With eps = 1e-6 that truncation error is ~1e-12.

    Why float64: the difference f(p + eps) - f(p - eps) is small next to f
    itself, so the rounding error of f (about machine epsilon times ``|f|``) is
    divided by 2 eps. In float64 that is ~1e-16 / 1e-6 = 1e-10, far below the
    gradients being checked; in float32 it would be ~1e-7 / 1e-6, i.e. noise
    of the size of the answer (and eps = 1e-6 is below float32's resolution
    near 1). Give this function float64 parameters.

    Parameters
    ----------
    f : callable
        f() -> float, reading p.
    p : ndarray
        The parameters, float64; perturbed in place and restored.
    eps : float, default 1e-6
        The step.

    Returns
    -------
    ndarray
        The gradient estimate, float64, p's shape.
    """
    grad = np.zeros(p.shape, dtype=np.float64)
    for idx in np.ndindex(p.shape):
        original = p[idx]
        p[idx] = original + eps
        f_plus = f()
        p[idx] = original - eps
        f_minus = f()
        p[idx] = original  # exact restore, not "+ eps": no drift from rounding
        grad[idx] = (f_plus - f_minus) / (2.0 * eps)
    return grad
