"""Shared fixtures and the one tolerance rule of the test suite.

Tolerance (STYLE 2.7): a value that is a k-term reduction computed in
floating point differs from the exact one by at most about k * eps * scale in
the worst case and by about sqrt(k) * eps * scale in practice, since
rounding errors of independent terms add like a random walk (Higham, Accuracy
and Stability of Numerical Algorithms, 2nd ed., sec. 3.1 and 2.8). We allow
c * sqrt(k) * eps * max(1, max|expected|) with a constant c that also covers the few
elementary-function roundings (exp, tanh, erf) that follow each sum.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import fastmlp as fm

DTYPES = (np.float32, np.float64)


@pytest.fixture
def rng():
    return np.random.default_rng(20261125)


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    return request.param


def tolerance(dtype, k, scale=1.0, c=8.0):
    """Absolute tolerance for a k-term reduction in `dtype`, values of size `scale`."""
    eps = np.finfo(dtype).eps
    return c * np.sqrt(max(int(k), 1)) * eps * max(1.0, float(scale))


def assert_close(actual, expected, dtype, k, c=8.0, what=""):
    """actual (computed in `dtype`) against expected (float64 reference)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    atol = tolerance(dtype, k, scale, c)
    err = float(np.max(np.abs(actual - expected))) if expected.size else 0.0
    assert err <= atol, f"{what}: max abs error {err:.3g} > {atol:.3g} (scale {scale:.3g})"


def zip_same(*seqs):
    """zip() of sequences that must have one length, as zip(..., strict=True)
    (Python 3.10+; the package supports 3.9). A length mismatch fails the test."""
    seqs = [list(s) for s in seqs]
    lengths = [len(s) for s in seqs]
    assert len(set(lengths)) <= 1, f"zipped sequences have different lengths {lengths}"
    return zip(*seqs)


def rel_error(actual, expected):
    """Norm-wise relative error max|a - e| / max(max|e|, tiny)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    denom = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny) if expected.size else 1.0
    return float(np.max(np.abs(actual - expected))) / denom if expected.size else 0.0


ISAS = fm.ops.supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs a test once per GEMM instruction-set path this CPU supports
    (generic, avx2, avx512), restoring the path in use afterwards."""
    previous = fm.ops.set_isa(request.param)
    yield request.param
    fm.ops.set_isa(previous)


class TeamProbe:
    """The largest thread team that ran a parallel region of the core inside
    a with-block (_core._threads_probe): 0 when every region ran on the calling
    thread. A 1-vs-2-threads test asserts probe.largest == 2 for its 2-thread
    run, so that it cannot pass by comparing two single-threaded runs.

        with TeamProbe() as probe:
            ...
        assert probe.largest == 2
    """

    largest = None

    def __enter__(self):
        fm._core._threads_probe_reset()
        return self

    def __exit__(self, *exc):
        self.largest = fm._core._threads_probe()
        return False


def require_openmp():
    if not fm._core.have_openmp():
        pytest.skip("the core was built without OpenMP: it runs on one thread only")


@pytest.fixture(autouse=True)
def _restore_threads():
    n = fm.get_num_threads()
    yield
    fm.set_num_threads(n)


def shared_data_dir() -> Path | None:
    """../shared/data beside the repository, or FASTMLP_DATA, if present."""
    env = os.environ.get("FASTMLP_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None
