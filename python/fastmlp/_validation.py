"""Input checks and the one visible conversion of user data.

Everything the core receives passes through here: arrays become C-contiguous
in the model's dtype (a copy only when the input is not already so), and
anything that cannot be read correctly raises ValueError or TypeError naming
the argument, what was expected and what was received.
"""

from __future__ import annotations

import numpy as np

FLOAT_DTYPES = {"float32": np.float32, "float64": np.float64}


def resolve_dtype(dtype, arg="dtype"):
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"{arg}: expected 'float32' or 'float64', got {dtype!r}") from exc
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{arg}: expected 'float32' or 'float64', got {dtype!r}")
    return dt


DTYPE_POLICIES = ("float32", "float64", "mixed_bfloat16")


def resolve_dtype_policy(dtype, arg="dtype"):
    """(storage dtype, policy name) of a model's dtype argument.

    "float32" / "float64" (or their NumPy dtypes) store and compute in that
    type; "mixed_bfloat16" (Keras' name for the policy) stores float32 and
    feeds the GEMMs bf16 operands, which needs the bf16 GEMM at speed
    (require_bf16_gemm).
    """
    if isinstance(dtype, str) and dtype == "mixed_bfloat16":
        require_bf16_gemm(arg)
        return np.dtype(np.float32), "mixed_bfloat16"
    try:
        dt = resolve_dtype(dtype, arg)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"{arg}: expected one of {list(DTYPE_POLICIES)}, got {dtype!r}") from None
    return dt, dt.name


def require_bf16_gemm(arg="dtype"):
    """ValueError unless the bf16 GEMM runs at speed here: the CPU has
    AVX512_BF16, or the portable bf16 kernel was forced (FASTMLP_ISA /
    fm.ops.set_isa "generic_bf16"), which runs anywhere, slower than float32."""
    from . import ops

    if ops.have_bf16_instructions() or ops._portable_bf16_forced():
        return
    raise ValueError(
        f"{arg}: 'mixed_bfloat16' needs a CPU with AVX512_BF16 instructions (VDPBF16PS) "
        "for its bf16 GEMM, and this CPU (or OS) lacks them; use dtype='float32', or set "
        "FASTMLP_ISA=generic_bf16 (or fm.ops.set_isa('generic_bf16')) to run it on the "
        "portable bf16 kernel, which is correct but slower than float32"
    )


def _scan(arr):
    """(all finite, min, max) of arr in one pass of the core where it can,
    else with NumPy (non-contiguous arrays, other dtypes). NaN is skipped by
    min/max and reported by `finite`."""
    from . import _core

    r = _core.scan(arr)
    if r is not None:
        return r
    if arr.dtype.kind == "f":
        ok = arr[~np.isnan(arr)]
        finite = ok.size == arr.size and bool(np.isfinite(ok).all())
    else:
        ok, finite = arr, True
    if ok.size == 0:
        return finite, np.inf, -np.inf
    return finite, float(ok.min()), float(ok.max())


def _as_numeric(a, name):
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: could not be read as a numeric array ({exc})") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def _check_X_shape(shape, n_features, name):
    """(n_samples, n_features) with n_samples > 0 and the expected features."""
    if len(shape) != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (n_samples, n_features), got shape {shape}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {shape}")
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"{name}: expected {n_features} features (shape (n, {n_features})), "
            f"got shape {shape}"
        )


def _convert(arr, dtype):
    """arr as a C-contiguous array of dtype. A finite float64 beyond float32's
    range becomes inf here, and a signalling NaN a quiet one; the caller's
    finiteness check reports both (see _not_finite), not a RuntimeWarning on
    the way."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)


def _not_finite(arr, out, name):
    """The message for a converted array `out` of `arr` that is not finite:
    an overflow of the conversion itself is named, since the caller gave no
    infinity."""
    if out.dtype != arr.dtype and arr.dtype.kind == "f" and np.isfinite(arr).all():
        return (f"{name}: values beyond the range of {out.dtype} (largest "
                f"{num_str(float(np.finfo(out.dtype).max))}), got "
                f"{num_str(float(np.abs(arr).max()))}")
    return f"{name}: contains NaN or infinity"


def check_X(X, dtype, n_features=None, name="X"):
    """2-D, non-empty, finite, C-contiguous array of `dtype` (n_samples, n_features)."""
    arr = _as_numeric(X, name)
    _check_X_shape(arr.shape, n_features, name)
    out = _convert(arr, dtype)
    if not _scan(out)[0]:
        raise ValueError(_not_finite(arr, out, name))
    return out


def is_sparse(X):
    """Whether X is a scipy.sparse matrix or array (without importing scipy)."""
    return type(X).__module__.startswith("scipy.sparse") and hasattr(X, "tocsr")


def check_sparse_X(X, dtype, n_features=None, name="X"):
    """A scipy.sparse X as CSR of `dtype` (n_samples, n_features), checked
    like check_X: 2-D, non-empty, numeric, finite. Only the stored values are
    converted; nothing is densified here (fit and predict densify a block of
    rows at a time)."""
    _check_X_shape(X.shape, n_features, name)
    if np.dtype(X.dtype).kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric sparse matrix, got dtype {X.dtype}")
    out = X.tocsr()
    data = out.data
    if out.dtype != dtype:
        with np.errstate(over="ignore"):
            out = out.astype(dtype)
    if out.data.size and not np.isfinite(out.data).all():
        raise ValueError(_not_finite(data, out.data, name))
    return out


def dense_rows(X, rows, dtype):
    """Rows `rows` (a slice or an index array) of a CSR X as a C-contiguous
    dense array of `dtype`: the one place sparse input becomes dense."""
    return np.ascontiguousarray(X[rows].toarray(), dtype=dtype)


def check_y(y, loss, n_samples, n_outputs, dtype, name="y"):
    """Targets in the form the core reads.

    cross_entropy: integer class ids (n,) -> int32, or class probabilities /
    one-hot (n, k) -> dtype. binary_cross_entropy, mse and poisson: (n,) or
    (n, k) -> (n, k) of dtype; binary targets must lie in [0, 1], poisson
    targets (counts, or any non-negative values) must be >= 0.
    """
    arr = _as_numeric(y, name)
    if arr.shape[:1] != (n_samples,):
        raise ValueError(
            f"{name}: expected {n_samples} targets (one per row of X), got shape {arr.shape}"
        )
    if loss == "cross_entropy":
        if arr.ndim == 1:
            if arr.dtype.kind == "f":
                if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
                    raise TypeError(
                        f"{name}: expected integer class ids for cross_entropy, got non-integer "
                        f"values of dtype {arr.dtype}"
                    )
            _, lo, hi = _scan(arr)
            if arr.dtype.kind != "f":
                lo, hi = int(lo), int(hi)
            if lo < 0 or hi >= n_outputs:
                raise ValueError(
                    f"{name}: class ids must lie in [0, {n_outputs}) for a network with "
                    f"{n_outputs} outputs, got values in [{lo}, {hi}]"
                )
            return np.ascontiguousarray(arr, dtype=np.int32)
        if arr.ndim != 2 or arr.shape[1] != n_outputs:
            raise ValueError(
                f"{name}: expected class ids of shape ({n_samples},) or class probabilities of "
                f"shape ({n_samples}, {n_outputs}), got shape {arr.shape}"
            )
        out = _convert(arr, dtype)
        finite, lo, _ = _scan(out)
        if not finite or lo < 0:
            raise ValueError(f"{name}: class probabilities must be finite and non-negative")
        return out

    if arr.ndim == 1:
        arr = arr.reshape(n_samples, 1)
    if arr.ndim != 2 or arr.shape[1] != n_outputs:
        raise ValueError(
            f"{name}: expected shape ({n_samples},) or ({n_samples}, {n_outputs}) for a network "
            f"with {n_outputs} outputs, got shape {np.shape(y)}"
        )
    out = _convert(arr, dtype)
    finite, lo, hi = _scan(out)
    if not finite:
        raise ValueError(_not_finite(arr, out, name))
    if loss == "binary_cross_entropy" and (lo < 0 or hi > 1):
        raise ValueError(f"{name}: binary_cross_entropy targets must lie in [0, 1]")
    if loss == "poisson" and lo < 0:
        raise ValueError(f"{name}: poisson targets must be >= 0, got {num_str(lo)}")
    return out


_INDEX_MAX = 2**63 - 1


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if value > _INDEX_MAX:
        # The core counts in signed 64-bit integers.
        raise OverflowError(f"{name}: {value} does not fit a 64-bit count (at most {_INDEX_MAX})")
    return int(value)


def check_float(value, name, minimum=None, maximum=None, min_inclusive=True, max_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if minimum is not None and (v < minimum or (v == minimum and not min_inclusive)):
        op = ">=" if min_inclusive else ">"
        raise ValueError(f"{name}: expected a number {op} {minimum}, got {value!r}")
    if maximum is not None and (v > maximum or (v == maximum and not max_inclusive)):
        op = "<=" if max_inclusive else "<"
        raise ValueError(f"{name}: expected a number {op} {maximum}, got {value!r}")
    return v


def num_str(v):
    """The shortest of the %.{1..17}g texts that read back as v ("-1", "-10",
    "0.1", "-1e+15", "inf", "nan"), as the core's bind::num_str writes it, so
    a message is the same from either side."""
    v = float(v)
    if v != v:
        return "nan"
    texts = (f"{v:.{prec}g}" for prec in range(1, 18))
    return min((s for s in texts if float(s) == v), key=len)


def check_loss_weights(w, name, length, dtype, per="row"):
    """Per-row or per-class loss weights: a 1-D numeric array of `length`
    finite values >= 0 (length None: any), converted once to `dtype`. The
    Python check of loss weights: fm.MLP and fm.ops both use it; the core
    checks again what reaches it directly, with the same message."""
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        want = "a 1-D array" if length is None else f"shape ({length},)"
        raise ValueError(f"{name}: expected {want}, one weight per {per}, got {arr.shape}")
    arr = _convert(arr, dtype)
    bad = ~(np.isfinite(arr) & (arr >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{name}: weights must be finite and >= 0, got {num_str(arr[i])} at index {i}")
    return arr


def class_weight_array(cw, loss, n_outputs, y, dtype):
    """class_weight as the core takes it: (n_outputs,) for cross_entropy, (2,)
    (the weights of targets 0 and 1) for binary_cross_entropy. cw is
    "balanced" (n / (classes * count) from the targets y; 0 for a class that
    never occurs), a dict {class: weight} (others 1), or a sequence."""
    if loss in ("mse", "poisson"):
        raise ValueError(f"class_weight: not defined for the {loss} loss (use sample_weight)")
    n_classes = n_outputs if loss == "cross_entropy" else 2
    if isinstance(cw, str):
        if cw != "balanced":
            raise ValueError(f"class_weight: expected 'balanced', a dict or a sequence, got {cw!r}")
        if loss == "cross_entropy":
            ids = y if y.ndim == 1 else np.argmax(y, axis=1)
            counts = np.bincount(ids, minlength=n_outputs).astype(np.float64)
        else:
            ones = float(np.sum(y > 0.5))
            counts = np.array([y.size - ones, ones])
        total = counts.sum()
        arr = np.where(counts > 0, total / (n_classes * np.maximum(counts, 1)), 0.0)
    elif isinstance(cw, dict):
        arr = np.ones(n_classes)
        for key, value in cw.items():
            if (isinstance(key, bool) or not isinstance(key, (int, np.integer))
                    or not 0 <= key < n_classes):
                raise ValueError(
                    f"class_weight: keys must be class ids in [0, {n_classes}), got {key!r}")
            arr[int(key)] = check_float(value, f"class_weight[{key}]", minimum=0.0)
    else:
        arr = cw
    return check_loss_weights(arr, "class_weight", n_classes, dtype, per="class")

