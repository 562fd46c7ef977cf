"""Low-level kernels of the core, one function per C++ kernel, with the names
and argument order of fastmlp.reference, for tests and benchmarks.

Inputs are converted once to C-contiguous float32 or float64 (float32 only
when every floating input is float32); results are new arrays, except
matmul's optional ``out``, which must already be C-contiguous, of the result
dtype and shape.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core
from ._enums import activation as _activation, loss as _loss
from ._validation import check_loss_weights

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from .optim import Optimizer

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
    "matmul_bf16",
    "round_bf16",
    "supported_bf16_isas",
    "have_bf16_instructions",
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
    for name, a, nd in zip(named.keys(), arrays, ndims):
        if a.ndim != nd:
            raise ValueError(f"{name}: expected a {nd}-D array, got shape {a.shape}")
        # A signalling NaN (float16 or float32 input) raises the invalid flag
        # as it is widened; it stays NaN, which the kernels propagate.
        with np.errstate(invalid="ignore"):
            out.append(np.ascontiguousarray(a, dtype=dtype))
    return out


def matmul(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False,
           out: np.ndarray | None = None, naive: bool = False) -> np.ndarray:
    """``op(a) @ op(b)`` through the core's GEMM.

    Parameters
    ----------
    a : array-like, 2-D
        op(a) is (m, k).
    b : array-like, 2-D
        op(b) is (k, n).
    trans_a, trans_b : bool, default False
        Use the transpose of a / b (absorbed by the packing, never copied).
    out : ndarray, optional
        C-contiguous (m, n) array of the result dtype to write into.
    naive : bool, default False
        Run the triple-loop twin of the GEMM instead (the in-core reference).

    Returns
    -------
    ndarray of shape (m, n)
        float32 when both inputs are float32, else float64; ``out`` when given.
    """
    # Arrays already in the core's form (float32 or float64, C-contiguous,
    # one dtype, out likewise) go straight in; for anything else the core
    # returns None and the conversions and checks below run. Checking here
    # instead cost ~0.6 us a call, as much as a 128x256x10 product's gap to
    # np.matmul.
    c = _core.matmul_direct(a, b, trans_a, trans_b, out, naive)
    if c is not None:
        return c
    a, b = _prepare({"a": a, "b": b}, (2, 2))
    _check_out(out, a.dtype)
    return _core.matmul(a, b, bool(trans_a), bool(trans_b), out, bool(naive))


def _check_out(out, dtype):
    """A product's `out=`: None, or a C-contiguous ndarray of `dtype` (the
    core checks its shape)."""
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"out: expected dtype {np.dtype(dtype)}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out: expected a C-contiguous array")


def _as_f32(x, name, ndim=None):
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    # float64 beyond float32's range becomes inf, as the products would give.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(x, dtype=np.float32)


def matmul_bf16(a: ArrayLike, b: ArrayLike, trans_a: bool = False, trans_b: bool = False,
                out: np.ndarray | None = None) -> np.ndarray:
    """``bf16(op(a)) @ bf16(op(b))`` in float32 through the core's bf16 GEMM.

    Each operand is rounded to bfloat16 (:func:`round_bf16`, round to nearest
    even) while it is packed, the products of the rounded values are summed
    in float32 (csrc/gemm/gemm.h, ``gemm_bf16``). The kernel is
    ``fm.show_config()["bf16_isa"]``: "avx512_bf16" (VDPBF16PS) or "generic"
    (portable float32 arithmetic on the rounded values; see :func:`set_isa`).
    Each is within ``k * 2**-23 * (|bf16(A)| @ |bf16(B)|)`` of the exact
    product of the rounded operands; the two may differ in the last bits
    (the order of VDPBF16PS's two additions), and VDPBF16PS reads bf16
    denormals (magnitudes below 1.18e-38) as zero. Results are bitwise
    identical for any thread count.

    Parameters
    ----------
    a : array-like, 2-D
        op(a) is (m, k); converted once to C-contiguous float32 if it is not.
    b : array-like, 2-D
        op(b) is (k, n); converted likewise.
    trans_a, trans_b : bool, default False
        Use the transpose of a / b (absorbed by the packing, never copied).
    out : ndarray, optional
        C-contiguous float32 (m, n) array to write into.

    Returns
    -------
    ndarray of float32, shape (m, n)
        ``out`` when given.
    """
    a = _as_f32(a, "a", 2)
    b = _as_f32(b, "b", 2)
    _check_out(out, np.float32)
    return _core.matmul_bf16(a, b, bool(trans_a), bool(trans_b), out)


def round_bf16(x: ArrayLike) -> np.ndarray:
    """x rounded to bfloat16 (nearest, ties to even), as float32 (csrc/common/bf16.h).

    The rounding the bf16 GEMM applies to its operands; twin of
    :func:`fastmlp.reference.round_bf16` (NaN stays NaN, values at or beyond
    halfway past bf16's largest finite value become infinity, -0 stays -0).

    Parameters
    ----------
    x : array-like
        Any shape; converted once to C-contiguous float32 if it is not.

    Returns
    -------
    ndarray of float32, the shape of x
    """
    return _core.round_bf16(_as_f32(x, "x"))


def supported_bf16_isas() -> list[str]:
    """The bf16 GEMM kernels this CPU runs: ['generic'] plus 'avx512_bf16' where it can.

    Returns
    -------
    list of str
        Kernel names, the portable one first.
    """
    return list(_core.supported_bf16_isas())


def have_bf16_instructions() -> bool:
    """Whether this CPU (and OS) run the AVX512-BF16 instructions the fast bf16 kernel needs.

    Without them only the portable bf16 kernel runs, at float32 speed or
    below: what a bf16 training mode checks before it refuses to run slowly.

    Returns
    -------
    bool
        cpuid leaf 7 subleaf 1 EAX bit 5 (AVX512_BF16) with AVX-512 enabled
        by the OS (and not hidden by the FASTMLP_HIDE_ISA test hook).
    """
    return bool(_core.have_bf16_instructions())


def activation_forward(z: ArrayLike, act: str) -> np.ndarray:
    """``y = act(z)`` element by element (:func:`fastmlp.reference.activation_forward`).

    Parameters
    ----------
    z : array-like, 2-D
        Pre-activations.
    act : str
        An activation name (identity, sigmoid, tanh, relu, leaky_relu, elu,
        gelu, softplus).

    Returns
    -------
    ndarray
        y, the shape of z.
    """
    (z,) = _prepare({"z": z}, (2,))
    return _core.activation_forward(z, _activation(act, "act"))


def activation_backward(dy: ArrayLike, z: ArrayLike, y: ArrayLike, act: str) -> np.ndarray:
    """``dz = dy * act'(z)`` (:func:`fastmlp.reference.activation_backward`).

    Parameters
    ----------
    dy : array-like, 2-D
        Gradient with respect to the activation's output.
    z : array-like, 2-D
        The pre-activation.
    y : array-like, 2-D
        The post-activation ``act(z)``.
    act : str
        The activation's name.

    Returns
    -------
    ndarray
        dz, the shape of dy.
    """
    dy, z, y = _prepare({"dy": dy, "z": z, "y": y}, (2, 2, 2))
    return _core.activation_backward(dy, z, y, _activation(act, "act"))


def dense_forward(x: ArrayLike, w: ArrayLike, b: ArrayLike,
                  act: str) -> tuple[np.ndarray, np.ndarray]:
    """One dense layer forward: ``z = x w^T + b``, ``y = act(z)``.

    One GEMM with bias and activation in its epilogue
    (:func:`fastmlp.reference.dense_forward`).

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

    Returns
    -------
    z, y : ndarray of shape (n, out)
        Pre- and post-activation.
    """
    x, w, b = _prepare({"x": x, "w": w, "b": b}, (2, 2, 1))
    return _core.dense_forward(x, w, b, _activation(act, "act"))


def dense_backward(dy: ArrayLike, x: ArrayLike, w: ArrayLike, z: ArrayLike, y: ArrayLike,
                   act: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One dense layer backward (:func:`fastmlp.reference.dense_backward`).

    Parameters
    ----------
    dy : array-like of shape (n, out)
        Gradient with respect to the layer's output y.
    x : array-like of shape (n, in)
        The layer's input.
    w : array-like of shape (out, in)
        Weights.
    z, y : array-like of shape (n, out)
        Pre- and post-activation from the forward pass.
    act : str
        The activation's name.

    Returns
    -------
    dx : ndarray of shape (n, in)
        Gradient for the layer below.
    dw : ndarray of shape (out, in)
        Weight gradient.
    db : ndarray of shape (out,)
        Bias gradient.
    dz : ndarray of shape (n, out)
        Gradient with respect to z.
    """
    dy, x, w, z, y = _prepare({"dy": dy, "x": x, "w": w, "z": z, "y": y}, (2, 2, 2, 2, 2))
    return _core.dense_backward(dy, x, w, z, y, _activation(act, "act"))


def _loss_weight(w, name, dtype):
    """None, or w as a C-contiguous 1-D array of the computation's dtype
    (its length is the core's to check: rows or classes)."""
    return None if w is None else check_loss_weights(w, name, None, dtype)


def loss_forward_backward(loss: str, z: ArrayLike, y: ArrayLike, target: ArrayLike,
                          sample_weight: ArrayLike | None = None,
                          class_weight: ArrayLike | None = None) -> tuple:
    """Mean loss, network output and gradient of a loss on one batch, in one pass.

    The weights weigh the loss as :func:`fastmlp.reference.loss_forward`
    documents (torch's weighted means); with class ids and class weights the
    mean is over ``sum_i class_weight[target_i]``, and a batch where that sum
    is 0 has loss 0 and gradient 0.

    Parameters
    ----------
    loss : str
        "mse", "cross_entropy", "binary_cross_entropy" or "poisson".
    z : array-like of shape (n, k)
        The output layer's pre-activation.
    y : array-like of shape (n, k)
        Its activation output (read by mse only).
    target : array-like
        (n, k), or (n,) integer class ids for cross_entropy.
    sample_weight : array-like of shape (n,), optional
        Row weights, finite and >= 0; None means all ones.
    class_weight : array-like, optional
        (k,) for cross_entropy, (2,) for the weights of targets 0 and 1 in
        binary_cross_entropy; not for mse and poisson.

    Returns
    -------
    loss : float
        The mean loss.
    output : ndarray of shape (n, k)
        y for mse, softmax(z), sigmoid(z) or exp(z) (poisson) otherwise.
    grad : ndarray of shape (n, k)
        dL/dy for mse, dL/dz otherwise.
    """
    lid = _loss(loss)
    z, y = _prepare({"z": z, "y": y}, (2, 2))
    t = np.asarray(target)
    if t.dtype.kind not in "biuf":
        # Complex targets would lose their imaginary part, strings be parsed.
        raise TypeError(f"target: expected a numeric array, got dtype {t.dtype}")
    if t.ndim == 1 and t.dtype.kind in "biu":
        # Class ids: the core checks them in int32, so an id that int32
        # cannot hold (2**32 would wrap to 0) is refused before the cast.
        info = np.iinfo(np.int32)
        if t.size and (int(t.min()) < 0 or int(t.max()) > info.max):
            k = z.shape[1]
            raise ValueError(f"target: class ids must lie in [0, {k}), got values in "
                             f"[{int(t.min())}, {int(t.max())}]")
        t = np.ascontiguousarray(t, dtype=np.int32)
    else:
        # Overflow to inf and signalling NaNs are left to the core's checks
        # of the values, not warned about here.
        with np.errstate(over="ignore", invalid="ignore"):
            t = np.ascontiguousarray(t, dtype=z.dtype)
    sw = _loss_weight(sample_weight, "sample_weight", z.dtype)
    cw = _loss_weight(class_weight, "class_weight", z.dtype)
    return _core.loss_forward_backward(lid, z, y, t, sw, cw)


def sgd_step(p: ArrayLike, g: ArrayLike, lr: float, momentum: float = 0.0,
             nesterov: bool = False, weight_decay: float = 0.0,
             buf: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """One torch.optim.SGD step through the core's optimizer kernel.

    Parameters
    ----------
    p, g : array-like, 1-D
        Parameters and their gradient (not modified).
    lr : float
        Learning rate.
    momentum : float, default 0.0
        Momentum factor.
    nesterov : bool, default False
        Nesterov momentum.
    weight_decay : float, default 0.0
        Coupled L2 decay.
    buf : array-like, optional
        The momentum buffer; None on the first step.

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    buf_new : ndarray or None
        The momentum buffer (None without momentum).
    """
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


def optimizer_step(optimizer: Optimizer | Any, p: ArrayLike, g: ArrayLike,
                   state: list | None = None,
                   step: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
    """One update by the core's optimizer kernel. Inputs are copied, never modified.

    Parameters
    ----------
    optimizer : fastmlp.optim.Optimizer or fastmlp._core.OptConfig
        The optimizer.
    p, g : array-like, 1-D
        Parameters and their gradient.
    state : list of array-like, optional
        The state arrays in the core's order
        (:func:`fastmlp.reference.optimizer_step` lists it); None before the
        first step.
    step : int, default 1
        This update's 1-based number.

    Returns
    -------
    p_new : ndarray
        The updated parameters.
    state_new : list of ndarray
        The updated state.
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


def permutation(n: int, seed: int, epoch: int = 0) -> np.ndarray:
    """The core's seeded shuffle of ``range(n)`` (counter-based, thread-independent).

    Parameters
    ----------
    n : int
        Number of rows.
    seed : int
        The seed (fit uses the model's).
    epoch : int, default 0
        The epoch: each has its own order.

    Returns
    -------
    ndarray of shape (n,)
        A permutation of ``range(n)``, the order fit visits the rows in.
    """
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


def dropout_mask(shape: int | tuple[int, ...], p: float, seed: int, step: int, layer: int,
                 dtype: DTypeLike = "float32") -> np.ndarray:
    """The core's inverted-dropout mask for (seed, step, layer).

    Bitwise equal to :func:`fastmlp.reference.dropout_mask` (the stream is
    documented in csrc/nn/dropout.h).

    Parameters
    ----------
    shape : int or tuple of int
        The mask's shape.
    p : float
        The dropout rate, in [0, 1).
    seed : int
        The model's seed.
    step : int
        The optimizer step.
    layer : int
        The layer's index.
    dtype : str or dtype, default "float32"
        float32 or float64.

    Returns
    -------
    ndarray
        Each element 0 or ``1 / (1 - p)``.
    """
    from ._validation import check_float, resolve_dtype

    dt = resolve_dtype(dtype)
    p = check_float(p, "p", minimum=0.0, maximum=1.0, max_inclusive=False)
    out = np.empty(_check_shape(shape), dtype=dt)
    _core.dropout_mask(out.reshape(-1), p, seed, step, layer)
    return out


def apply_mask(x: ArrayLike, mask: ArrayLike) -> np.ndarray:
    """``x * mask`` element by element (dropout forward, and backward with dy for x).

    Parameters
    ----------
    x : array-like
        The layer's output (or its gradient).
    mask : array-like
        A mask of x's shape (:func:`dropout_mask`).

    Returns
    -------
    ndarray
        The product.
    """
    x, mask = np.asarray(x), np.asarray(mask)
    dtype = _common_dtype((x, mask), ("x", "mask"))
    x = np.ascontiguousarray(x, dtype=dtype)
    mask = np.ascontiguousarray(mask, dtype=dtype)
    return _core.apply_mask(x, mask)


def batch_norm_forward(x: ArrayLike, gamma: ArrayLike, beta: ArrayLike, eps: float = 1e-5,
                       training: bool = True, running_mean: ArrayLike | None = None,
                       running_var: ArrayLike | None = None,
                       momentum: float = 0.1) -> tuple[np.ndarray, dict | None]:
    """Batch normalization of x per column through the core, as torch.nn.BatchNorm1d.

    The arrays passed in are never modified.

    Parameters
    ----------
    x : array-like of shape (n, f)
        The input.
    gamma, beta : array-like of shape (f,)
        Scale and shift.
    eps : float, default 1e-5
        Added to the variance.
    training : bool, default True
        True: normalize with the batch's statistics. False: with
        running_mean and running_var (then required).
    running_mean, running_var : array-like of shape (f,), optional
        Running statistics; with training=True, updated copies are returned
        in the cache (momentum rule with the unbiased variance, n >= 2).
    momentum : float, default 0.1
        Weight of the batch in the running statistics.

    Returns
    -------
    y : ndarray of shape (n, f)
        The normalized, scaled and shifted x.
    cache : dict or None
        training=True: ``{"training": True, "xhat", "invstd", "gamma",
        "mean", "var" (biased), "running_mean", "running_var"}`` for
        :func:`batch_norm_backward` (and readable by
        :func:`fastmlp.reference.batch_norm_backward`); the running entries
        are the updated copies, or None when none were given.
        training=False: None (the core has no eval backward: the layer is
        then affine).
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


def batch_norm_backward(dy: ArrayLike, cache: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of the training forward of :func:`batch_norm_forward`.

    Parameters
    ----------
    dy : array-like of shape (n, f)
        Gradient with respect to y.
    cache : dict
        What ``batch_norm_forward(training=True)`` returned.

    Returns
    -------
    dx : ndarray of shape (n, f)
        Gradient with respect to x.
    dgamma, dbeta : ndarray of shape (f,)
        Gradients of scale and shift.
    """
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


def supported_isas() -> list[str]:
    """The GEMM instruction-set paths this CPU runs, e.g. ['generic', 'avx2', 'avx512']."""
    return list(_core.supported_isas())


def set_isa(isa: str) -> str:
    """Switch the GEMM path for this process, as ``FASTMLP_ISA`` does at import.

    For tests and benchmarks: every path computes the same products, at
    different speeds.

    The bf16 GEMM kernel follows: "avx512" takes "avx512_bf16" where the
    CPU has it (:func:`have_bf16_instructions`), the other paths the portable
    one. Two more values choose it: "avx512_bf16" (the avx512 paths with the
    AVX512-BF16 kernel; an error without it) and "generic_bf16" (the best
    float paths with the portable bf16 kernel).

    Parameters
    ----------
    isa : str
        "generic", "avx2" or "avx512"; one this CPU supports
        (:func:`supported_isas`); or "avx512_bf16", "generic_bf16".

    Returns
    -------
    str
        The previous setting (passing it back restores it).
    """
    global _bf16_forced
    if not isinstance(isa, str):
        raise TypeError(f"isa: expected a string, got {isa!r}")
    previous = _core.gemm_kernel()
    bf16 = _core.bf16_kernel()
    default_bf16 = ("avx512_bf16" if previous == "avx512" and _core.have_bf16_instructions()
                    else "generic")
    if bf16 != default_bf16:
        previous = "avx512_bf16" if bf16 == "avx512_bf16" else "generic_bf16"
    _core.set_isa(isa)
    _bf16_forced = isa == "generic_bf16"
    return previous


# Whether the portable bf16 kernel was chosen explicitly (FASTMLP_ISA at
# import, or set_isa since): on a CPU without AVX512_BF16 that is the one way
# to run dtype="mixed_bfloat16" (the kernel names alone cannot tell, since
# the default there is the portable kernel too).
_bf16_forced = os.environ.get("FASTMLP_ISA") == "generic_bf16"


def _portable_bf16_forced() -> bool:
    return _bf16_forced


def fma_peak(dtype: DTypeLike = "float32", threads: int = 1, seconds: float = 0.3,
             isa: str | None = None) -> float:
    """Measured multiply-add throughput in GFLOP/s.

    ``threads`` threads each run independent FMA chains of the given path for
    about ``seconds``: the yardstick for "fraction of peak" in the benchmarks.

    Parameters
    ----------
    dtype : str or dtype, default "float32"
        float32 or float64.
    threads : int, default 1
        Threads to run.
    seconds : float, default 0.3
        About how long to measure.
    isa : str, optional
        The path; default the one in use.

    Returns
    -------
    float
        GFLOP/s (two FLOPs per FMA).
    """
    from ._validation import check_float, check_positive_int, resolve_dtype

    dt = resolve_dtype(dtype)
    threads = check_positive_int(threads, "threads")
    seconds = check_float(seconds, "seconds", minimum=0.0, min_inclusive=False)
    isa = _core.gemm_kernel() if isa is None else isa
    if isa not in _core.supported_isas():
        raise ValueError(f"isa: expected one of {_core.supported_isas()}, got {isa!r}")
    return float(_core.fma_peak(isa, dt == np.float64, threads, seconds))


def gemm_plan(m: int, n: int, k: int, trans_a: bool = False, trans_b: bool = False,
              dtype: DTypeLike = "float32", isa: str | None = None, lda: int | None = None,
              ldb: int | None = None, ldc: int | None = None,
              threads: int | None = None) -> dict:
    """The route the core's GEMM takes for C (m x n) = op(A) (m x k) @ op(B) (k x n).

    For tests and tuning: the plan that gemm() (csrc/gemm/gemm.h, plan_gemm and
    plan_rect) would follow, computed without running the product. No route
    changes a value, only the speed.

    Parameters
    ----------
    m, n, k : int
        The product's sizes.
    trans_a, trans_b : bool, default False
        Whether op(A) = A^T, op(B) = B^T.
    dtype : str or dtype, default "float32"
        float32 or float64; or "bfloat16" for the bf16 GEMM (:func:`matmul_bf16`,
        whose operands are always packed).
    isa : str, optional
        Any path of this build ('generic', 'avx2', 'avx512'; default the one
        in use), whether or not this CPU runs it; for bfloat16 a bf16 kernel
        ('generic', 'avx512_bf16').
    lda, ldb, ldc : int, optional
        Row strides in elements (default: the arrays are contiguous).
    threads : int, optional
        The threads available (default ``fm.get_num_threads()``); the plan
        may use fewer.

    Returns
    -------
    dict
        The plan, with these keys::

          kernel, dtype          the path and element type
          mr, nr                 register tile of the kernel in use; wide_tile and
                                 narrow_tile are the path's two (mr, nr)
          short_rows             the row counts of the path's shorter kernels: an edge
                                 sliver of fewer than mr rows runs the shortest that
                                 holds it, at the width of its tile (empty: the full
                                 tile runs, its padded rows computed and dropped)
          mc, kc, nc, direct     the path's cache blocks; direct: full tiles may read
                                 operands in place (False on generic)
          narrow                 the one-vector (narrow) kernel runs every tile
          swapped                the kernel computes C^T = op(B)^T op(A)^T; then m, n,
                                 trans_a, trans_b, lda, ldb below are that product's
          m, n, k, trans_a, trans_b, lda, ldb, ldc
          threads, split         threads used and their (tm, tn) grid of rectangles
          row_step               rectangles' rows start at multiples of it (mr, or the
                                 shortest edge kernel's rows where every multiple of
                                 them up to mr has a kernel); columns on tile edges
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

    bf16 = isinstance(dtype, str) and dtype == "bfloat16"
    name = "bfloat16" if bf16 else resolve_dtype(dtype).name
    if isa is not None and not isinstance(isa, str):
        raise TypeError(f"isa: expected a string or None, got {isa!r}")
    return _core.gemm_plan(int(m), int(n), int(k), bool(trans_a), bool(trans_b), name, isa,
                           lda, ldb, ldc, threads)
