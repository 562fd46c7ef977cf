"""Low-level kernels of the core, one function per C++ kernel, with the names
and argument order of fastmlp.reference, for tests and benchmarks.

Inputs are converted once to C-contiguous float32 or float64 (float32 only
when every floating input is float32); results are new arrays, except
matmul's optional ``out``, which must already be C-contiguous, of the result
dtype and shape.
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._enums import activation as _activation, loss as _loss
from ._validation import check_loss_weights

__all__ = [
    "fma_peak",
    "gemm_plan",
    "set_isa",
    "supported_isas",
    "activation_backward",
    "activation_forward",
    "dense_backward",
    "dense_forward",
    "loss_forward_backward",
    "matmul",
    "permutation",
    "sgd_step",
]


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _common_dtype(arrays, names):
    dts = []
    for a, name in zip(arrays, names):
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a numeric array, got dtype {a.dtype}")
        dts.append(a.dtype)
    return np.float32 if all(d == np.float32 for d in dts) else np.float64


def _prepare(named, ndims):
    arrays = [np.asarray(a) for a in named.values()]
    dtype = _common_dtype(arrays, named.keys())
    out = []
    for (name, a), nd in zip(named.items(), ndims):
        if a.ndim != nd:
            raise ValueError(f"{name}: expected a {nd}-D array, got shape {a.shape}")
        out.append(np.ascontiguousarray(a, dtype=dtype))
    return out


def matmul(a, b, trans_a=False, trans_b=False, out=None, naive=False):
    """op(a) @ op(b) through the core's GEMM (naive=True: its triple-loop twin)."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.ndim == 2 and b.ndim == 2
            and a.dtype in _FLOATS and a.dtype == b.dtype
            and a.flags.c_contiguous and b.flags.c_contiguous
            and (out is None or (type(out) is np.ndarray and out.dtype == a.dtype
                                 and out.flags.c_contiguous))):
        # Already in the core's form: no conversion (the core checks the shapes).
        return _core.matmul(a, b, bool(trans_a), bool(trans_b), out, bool(naive))
    a, b = _prepare({"a": a, "b": b}, (2, 2))
    if out is not None:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
        if out.dtype != a.dtype:
            raise TypeError(f"out: expected dtype {a.dtype}, got {out.dtype}")
        if not out.flags.c_contiguous:
            raise ValueError("out: expected a C-contiguous array")
    return _core.matmul(a, b, bool(trans_a), bool(trans_b), out, bool(naive))


def activation_forward(z, act):
    (z,) = _prepare({"z": z}, (2,))
    return _core.activation_forward(z, _activation(act, "act"))


def activation_backward(dy, z, y, act):
    dy, z, y = _prepare({"dy": dy, "z": z, "y": y}, (2, 2, 2))
    return _core.activation_backward(dy, z, y, _activation(act, "act"))


def dense_forward(x, w, b, act):
    """(z, y) = (x w^T + b, act(z))."""
    x, w, b = _prepare({"x": x, "w": w, "b": b}, (2, 2, 1))
    return _core.dense_forward(x, w, b, _activation(act, "act"))


def dense_backward(dy, x, w, z, y, act):
    """(dx, dw, db, dz) of one dense layer."""
    dy, x, w, z, y = _prepare({"dy": dy, "x": x, "w": w, "z": z, "y": y}, (2, 2, 2, 2, 2))
    return _core.dense_backward(dy, x, w, z, y, _activation(act, "act"))


def _loss_weight(w, name, dtype):
    """None, or w as a C-contiguous 1-D array of the computation's dtype
    (its length is the core's to check: rows or classes)."""
    return None if w is None else check_loss_weights(w, name, None, dtype)


def loss_forward_backward(loss, z, y, target, sample_weight=None, class_weight=None):
    """(mean loss, output y, gradient) of a loss on one batch.

    z: the output layer's pre-activation (n, k); y: its activation output
    (used by mse only); target: (n, k), or (n,) integer class ids for
    cross_entropy. The gradient is dL/dy for mse, dL/dz otherwise. The
    returned output is y for mse, softmax(z), sigmoid(z) or exp(z) (poisson)
    otherwise.

    sample_weight (n,) and class_weight ((k,) for cross_entropy, (2,) for the
    weights of targets 0 and 1 in binary_cross_entropy; not for mse and
    poisson) are
    optional, finite and >= 0, and converted once to z's dtype; None means all
    ones. They weight the loss as fastmlp.reference.loss_forward documents
    (torch's weighted means); with class ids and class weights the mean is
    over sum_i class_weight[target_i], and a batch where that sum is 0 has
    loss 0 and gradient 0.
    """
    lid = _loss(loss)
    z, y = _prepare({"z": z, "y": y}, (2, 2))
    t = np.asarray(target)
    if t.ndim == 1 and t.dtype.kind in "biu":
        t = np.ascontiguousarray(t, dtype=np.int32)
    else:
        t = np.ascontiguousarray(t, dtype=z.dtype)
    sw = _loss_weight(sample_weight, "sample_weight", z.dtype)
    cw = _loss_weight(class_weight, "class_weight", z.dtype)
    return _core.loss_forward_backward(lid, z, y, t, sw, cw)


def sgd_step(p, g, lr, momentum=0.0, nesterov=False, weight_decay=0.0, buf=None):
    """(p_new, buf_new) after one torch.optim.SGD step; buf None on the first step.
    Runs the core's SGD kernel (optimizer_step with kind sgd)."""
    p, g = _prepare({"p": p, "g": g}, (1, 1))
    p = p.copy()
    config = _core.OptConfig(kind=_core.OptimizerKind.sgd, lr=float(lr),
                             momentum=float(momentum), nesterov=bool(nesterov),
                             weight_decay=float(weight_decay))
    states = []
    if momentum != 0.0:
        states = [np.zeros_like(p) if buf is None
                  else np.array(buf, dtype=p.dtype, order="C", copy=True)]
        if states[0].shape != p.shape:
            raise ValueError(f"buf: expected shape {p.shape}, got {states[0].shape}")
    # step 1 seeds the momentum buffer with g, as torch does on its first step
    _core.optimizer_step(config, p, g, states, 1 if buf is None else 2)
    return p, (states[0] if states else None)


def optimizer_step(optimizer, p, g, state=None, step=1):
    """(p_new, state_new) after one update by the core's optimizer kernel.

    optimizer: an fm.optim optimizer or a _core.OptConfig. state: the
    list of state arrays in the core's order (fm.reference.optimizer_step
    lists it), or None before the first step; step: this update's 1-based
    number. Inputs are copied, never modified.
    """
    from .optim import Optimizer

    if isinstance(optimizer, Optimizer):
        config = optimizer._core_config()
    elif isinstance(optimizer, _core.OptConfig):
        config = optimizer
    else:
        raise TypeError(
            f"optimizer: expected an fm.optim optimizer or a _core.OptConfig, "
            f"got {type(optimizer).__name__}"
        )
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
        raise TypeError(f"step: expected an integer, got {step!r}")
    count = _core.optimizer_state_count(config)
    p, g = _prepare({"p": p, "g": g}, (1, 1))
    p = p.copy()
    if state is None:
        state = [np.empty_like(p) for _ in range(count)]
        _core.optimizer_init_state(config, state)
    else:
        state = list(state)
        if len(state) != count:
            raise ValueError(f"state: expected {count} arrays for this optimizer, got {len(state)}")
        state = [np.array(s, dtype=p.dtype, order="C", copy=True) for s in state]
        for i, s in enumerate(state):
            if s.shape != p.shape:
                raise ValueError(f"state: expected arrays of shape {p.shape}, got {s.shape} at {i}")
    _core.optimizer_step(config, p, g, state, int(step))
    return p, state


def permutation(n, seed, epoch=0):
    """The core's seeded shuffle of range(n) (counter-based, thread-independent)."""
    return _core.permutation(int(n), int(seed), int(epoch))


def _check_shape(shape):
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"shape: expected an int or a tuple of ints, got {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0:
            raise ValueError(f"shape: expected non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def dropout_mask(shape, p, seed, step, layer, dtype="float32"):
    """The core's inverted-dropout mask for (seed, step, layer): an array of
    `shape`, each element 0 or 1/(1 - p); bitwise equal to
    fastmlp.reference.dropout_mask (the stream is documented in csrc/nn/dropout.h)."""
    from ._validation import check_float, resolve_dtype

    dt = resolve_dtype(dtype)
    p = check_float(p, "p", minimum=0.0, maximum=1.0, max_inclusive=False)
    out = np.empty(_check_shape(shape), dtype=dt)
    _core.dropout_mask(out.reshape(-1), p, seed, step, layer)
    return out


def apply_mask(x, mask):
    """x * mask element by element (dropout forward, and backward with dy for x)."""
    x, mask = np.asarray(x), np.asarray(mask)
    dtype = _common_dtype((x, mask), ("x", "mask"))
    x = np.ascontiguousarray(x, dtype=dtype)
    mask = np.ascontiguousarray(mask, dtype=dtype)
    return _core.apply_mask(x, mask)


def batch_norm_forward(x, gamma, beta, eps=1e-5, training=True, running_mean=None,
                       running_var=None, momentum=0.1):
    """Batch normalization of x (n, f) per column through the core, as torch.nn.BatchNorm1d.

    Returns (y, cache). training=True: batch statistics; cache is a dict
    {"training": True, "xhat", "invstd", "gamma", "mean", "var" (biased),
    "running_mean", "running_var"} for batch_norm_backward (and readable by
    fastmlp.reference.batch_norm_backward). When running_mean and running_var
    are given, cache["running_mean"] / cache["running_var"] are *updated
    copies* (momentum rule with the unbiased variance, n >= 2); the arrays
    passed in are never modified. Otherwise both are None.
    training=False: normalizes with running_mean and running_var (required);
    cache is None (the core has no eval backward: the layer is then affine).
    """
    from ._validation import check_float

    eps = check_float(eps, "eps", minimum=0.0)
    momentum = check_float(momentum, "momentum", minimum=0.0, maximum=1.0)
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_var: expected running_mean and running_var together, "
                         "got only one of them")
    named = {"x": x, "gamma": gamma, "beta": beta}
    if running_mean is not None:
        named.update(running_mean=running_mean, running_var=running_var)
    arrays = _prepare(named, (2,) + (1,) * (len(named) - 1))
    x, gamma, beta = arrays[:3]
    for name, a in zip(("running_mean", "running_var"), arrays[3:]):
        if a.shape != (x.shape[1],):
            raise ValueError(f"{name}: expected shape ({x.shape[1]},) (one value per column of x), "
                             f"got {a.shape}")
    if not training:
        if running_mean is None:
            raise ValueError("running_mean: expected the running statistics for training=False, "
                             "got None")
        return _core.batchnorm_forward_eval(x, gamma, beta, arrays[3], arrays[4], eps), None
    y, xhat, mean, var, invstd = _core.batchnorm_forward_train(x, gamma, beta, eps)
    cache = {"training": True, "xhat": xhat, "invstd": invstd, "gamma": gamma, "mean": mean,
             "var": var, "running_mean": None, "running_var": None}
    if running_mean is not None:
        rm, rv = arrays[3].copy(), arrays[4].copy()  # _prepare may return the caller's arrays
        _core.batchnorm_update_running(rm, rv, mean, var, x.shape[0], momentum)
        cache["running_mean"], cache["running_var"] = rm, rv
    return y, cache


def batch_norm_backward(dy, cache):
    """(dx, dgamma, dbeta) of the training forward, from dy (n, f) and the
    cache that batch_norm_forward(training=True) returned."""
    if not isinstance(cache, dict) or not cache.get("training") or not {
            "xhat", "gamma", "invstd"} <= cache.keys():
        raise TypeError("cache: expected the cache of batch_norm_forward(training=True)")
    dy, xhat, gamma, invstd = _prepare(
        {"dy": dy, "xhat": cache["xhat"], "gamma": cache["gamma"], "invstd": cache["invstd"]},
        (2, 2, 1, 1))
    return tuple(_core.batchnorm_backward(dy, xhat, gamma, invstd))


__all__ += [
    "optimizer_step",
    "apply_mask",
    "batch_norm_backward",
    "batch_norm_forward",
    "dropout_mask",
]


def supported_isas():
    """The GEMM instruction-set paths this CPU runs, e.g. ['generic', 'avx2', 'avx512']."""
    return list(_core.supported_isas())


def set_isa(isa):
    """Switch the GEMM path for this process ('generic', 'avx2' or 'avx512'),
    as FASTMLP_ISA does at import. Returns the previous path. For tests and
    benchmarks: every path computes the same products, at different speeds."""
    if not isinstance(isa, str):
        raise TypeError(f"isa: expected a string, got {isa!r}")
    previous = _core.gemm_kernel()
    _core.set_isa(isa)
    return previous


def fma_peak(dtype="float32", threads=1, seconds=0.3, isa=None):
    """Measured multiply-add throughput in GFLOP/s: `threads` threads each run
    independent FMA chains of the given path (default: the one in use) for
    about `seconds`. The yardstick for "fraction of peak" in the benchmarks."""
    from ._validation import check_float, check_positive_int, resolve_dtype

    dt = resolve_dtype(dtype)
    threads = check_positive_int(threads, "threads")
    seconds = check_float(seconds, "seconds", minimum=0.0, min_inclusive=False)
    isa = _core.gemm_kernel() if isa is None else isa
    if isa not in _core.supported_isas():
        raise ValueError(f"isa: expected one of {_core.supported_isas()}, got {isa!r}")
    return float(_core.fma_peak(isa, dt == np.float64, threads, seconds))


def gemm_plan(m, n, k, trans_a=False, trans_b=False, dtype="float32", isa=None, lda=None,
              ldb=None, ldc=None, threads=None):
    """The route the core's GEMM takes for C (m x n) = op(A) (m x k) @ op(B) (k x n).

    For tests and tuning: the plan that gemm() (csrc/gemm/gemm.h, plan_gemm and
    plan_rect) would follow, computed without running the product. isa: any
    path of this build ('generic', 'avx2', 'avx512'; default the one in use),
    whether or not this CPU runs it. lda, ldb, ldc: row strides in elements
    (default: the arrays are contiguous). threads: the threads available
    (default fm.get_num_threads()); the plan may use fewer. No route changes a
    value, only the speed.

    Returns a dict:
      kernel, dtype          the path and element type
      mr, nr                 register tile of the kernel in use; wide_tile and
                             narrow_tile are the path's two (mr, nr)
      mc, kc, nc, direct     the path's cache blocks; direct: full tiles may read
                             operands in place (False on generic)
      narrow                 the one-vector (narrow) kernel runs every tile
      swapped                the kernel computes C^T = op(B)^T op(A)^T; then m, n,
                             trans_a, trans_b, lda, ldb below are that product's
      m, n, k, trans_a, trans_b, lda, ldb, ldc
      threads, split         threads used and their (tm, tn) grid of rectangles
      rects                  per thread, its rectangle of the product and route:
        rows, cols           [i0, i1), [j0, j1)
        a_route              'rows' (op(A) = A read in place), 'kstrided' (op(A) =
                             A^T read in place) or 'packed'; edge tiles are always
                             packed
        b_route              'rows' (op(B) = B read in place) or 'packed'
        a_why, b_why         why packed: 'no_direct', 'transposed' (op(B) = B^T),
                             'size' (beyond the read-in-place limit), 'conflicts'
                             (rows in a few L1 sets: A's stride a multiple of 4 KiB,
                             B's of 1 KiB with nr elements in one cache line); ''
        narrow_edge_nr       edge tiles at most this many columns wide run the
                             narrow kernel (0: never)
        tile_order           'ir_fastest' or 'jr_fastest' for k blocks of kc;
        tile_order_last      the same for the last k block (the only one if k <= kc)
        transposed_c         tiles are written to C transposed (swapped)
    """
    from ._validation import resolve_dtype

    dt = resolve_dtype(dtype)
    if isa is not None and not isinstance(isa, str):
        raise TypeError(f"isa: expected a string or None, got {isa!r}")
    return _core.gemm_plan(int(m), int(n), int(k), bool(trans_a), bool(trans_b), dt.name, isa,
                           lda, ldb, ldc, threads)
