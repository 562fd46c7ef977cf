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


def check_X(X, dtype, n_features=None, name="X"):
    """2-D, non-empty, finite, C-contiguous array of `dtype` (n_samples, n_features)."""
    arr = _as_numeric(X, name)
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array (n_samples, n_features), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one sample, got shape {arr.shape}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(
            f"{name}: expected {n_features} features (shape (n, {n_features})), "
            f"got shape {arr.shape}"
        )
    out = np.ascontiguousarray(arr, dtype=dtype)
    if not _scan(out)[0]:
        raise ValueError(f"{name}: contains NaN or infinity")
    return out


def check_y(y, loss, n_samples, n_outputs, dtype, name="y"):
    """Targets in the form the core reads.

    cross_entropy: integer class ids (n,) -> int32, or class probabilities /
    one-hot (n, k) -> dtype. binary_cross_entropy and mse: (n,) or (n, k) ->
    (n, k) of dtype; binary targets must lie in [0, 1].
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
        out = np.ascontiguousarray(arr, dtype=dtype)
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
    out = np.ascontiguousarray(arr, dtype=dtype)
    finite, lo, hi = _scan(out)
    if not finite:
        raise ValueError(f"{name}: contains NaN or infinity")
    if loss == "binary_cross_entropy" and (lo < 0 or hi > 1):
        raise ValueError(f"{name}: binary_cross_entropy targets must lie in [0, 1]")
    return out


def check_positive_int(value, name, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
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
